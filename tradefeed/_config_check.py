"""Checking a parsed configuration document, section by section.

:class:`Checker` collects every problem with its document path and line (``feeds[2].url``,
line 14) instead of stopping at the first; :func:`check_feed`, :func:`check_settings`,
:func:`check_metrics` and :func:`check_outputs` check one section each and return its
values, and :func:`substitute` puts ``${VAR}`` / ``${VAR:-default}`` from the environment
in (an unset variable is a problem, never an empty credential).  Venue parameters are
checked by the venue's own adapter.  What must not go here: reading YAML or deciding the
document's top-level shape (``config.py``).
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Mapping

from ._config_types import FORMATS, SINK_QUEUE, FeedConfig, OutputConfig
from .adapters import REGISTRY
from .backoff import Backoff
from .exceptions import ConfigError
from .signing import Eip712Signer

__all__ = [
    "Checker",
    "check_feed",
    "check_metrics",
    "check_outputs",
    "check_settings",
    "join_path",
    "kind_of",
    "substitute",
]

_SETTINGS = (
    "dispatch", "backoff", "ping_interval", "ping_timeout", "connect_timeout", "dedup_window", "stale_after", "join_timeout",
    "metrics",
)  # fmt: skip
_METRICS = ("port", "host", "reconnect_grace", "sink_pending_limit")
_BACKOFF = ("initial", "max_delay", "multiplier", "jitter", "max_retries")
_FEED_COMMON = ("venue", "name", "url", "backoff")
_OVERFLOW = ("drop_oldest", "drop_newest")
_OUTPUT = {
    "stdout": ("type", "format"),
    "file": ("type", "path", "format", "fsync") + SINK_QUEUE,
    "sqlite": ("type", "path", "table") + SINK_QUEUE,
    "redis": ("type", "url", "stream", "maxlen") + SINK_QUEUE,
}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Checker:
    """Collects problems with their document path and line."""

    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[tuple[str, int | None, str]] = []

    def line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", path) if re.search(r"(\.[^.\[]+|\[\d+\])$", path) else ""
        return None

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, self.line(path), message))

    def raise_if_any(self) -> None:
        if self.problems:
            self.problems.sort(key=lambda p: p[1] or 0)  # stable: same line keeps its order
            text = "\n".join(_format(self.source, p) for p in self.problems)
            raise ConfigError(
                "%d problem(s) in %s:\n%s" % (len(self.problems), self.source, text), problems=self.problems
            )

    def keys(self, mapping: Any, allowed: tuple[str, ...], path: str, what: str) -> bool:
        """Check that *mapping* is a mapping with only *allowed* keys (did-you-mean)."""
        if not isinstance(mapping, dict):
            self.add(path, "%s must be a mapping, not %s" % (what, kind_of(mapping)))
            return False
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = "; did you mean %r?" % close[0] if close else "; expected one of %s" % ", ".join(allowed)
                self.add(join_path(path, str(key)), "unknown key %r%s" % (key, hint))
        return True


def _format(source: str, problem: tuple[str, int | None, str]) -> str:
    path, line, message = problem
    where = "%s:%d" % (source, line) if line else source
    return "%s: %s: %s" % (where, path or "(top)", message)


def join_path(path: str, key: str) -> str:
    """The document path of *key* under *path* (``feeds[0]`` and ``url``: ``feeds[0].url``)."""
    return "%s.%s" % (path, key) if path else key


def kind_of(value: Any) -> str:
    """What *value* is, for a message: ``a mapping``, ``a list``, ``null``..."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a " + type(value).__name__
    )


def _number(check: Checker, value: Any, path: str, *, minimum: float, strict: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check.add(path, "must be a number, not %s" % kind_of(value))
        return None
    if not math.isfinite(value) or value > 1e9:
        check.add(path, "must be a finite number of reasonable size, not %r" % (value,))
        return None
    if value < minimum or (strict and value == minimum):
        check.add(path, "must be %s %g, not %r" % (">" if strict else ">=", minimum, value))
        return None
    return float(value)


def _backoff(check: Checker, value: Any, path: str) -> Backoff | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"max_retries": value}
    if not check.keys(value, _BACKOFF, path, "backoff"):
        return None
    kwargs: dict[str, Any] = {}
    for key in ("initial", "max_delay", "multiplier", "jitter"):
        if key in value:
            kwargs[key] = _number(check, value[key], join_path(path, key), minimum=0)
    retries = value.get("max_retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        check.add(join_path(path, "max_retries"), "must be a whole number >= 0 or null, not %r" % (retries,))
    else:
        kwargs["max_retries"] = retries
    if any(v is None for k, v in kwargs.items() if k != "max_retries"):
        return None
    try:
        return Backoff(**kwargs)
    except ConfigError as err:
        check.add(path, str(err))
        return None


def substitute(check: Checker, value: Any, path: str, environ: Mapping[str, str]) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string, recursively."""
    if isinstance(value, dict):
        return {k: substitute(check, v, join_path(path, str(k)), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(check, v, "%s[%d]" % (path, i), environ) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        check.add(path, "environment variable %s is not set" % name)
        return ""

    return _ENV.sub(replace, value)


def check_feed(check: Checker, item: Any, path: str) -> FeedConfig | None:
    """The feed at *path* (``feeds[2]``), or None when it has problems."""
    if not isinstance(item, dict):
        check.add(path, "a feed must be a mapping, not %s" % kind_of(item))
        return None
    venue = item.get("venue")
    if venue is None:
        check.add(path, "missing key 'venue' (one of %s)" % ", ".join(sorted(REGISTRY)))
        every = sorted({p for cls in REGISTRY.values() for p in cls.params + cls.auth_params})
        check.keys(item, _FEED_COMMON + tuple(every), path, "a feed")
        return None
    if venue not in REGISTRY:
        close = difflib.get_close_matches(str(venue), sorted(REGISTRY), n=1)
        hint = "did you mean %r?" % close[0] if close else "known venues: %s" % ", ".join(sorted(REGISTRY))
        check.add(join_path(path, "venue"), "unknown venue %r; %s" % (venue, hint))
        return None
    cls = REGISTRY[venue]
    before = len(check.problems)
    check.keys(item, _FEED_COMMON + cls.params + cls.auth_params, path, "a feed")
    name, url = item.get("name"), item.get("url")
    if name is not None and (not isinstance(name, str) or not name):
        check.add(join_path(path, "name"), "must be a non-empty string")
    if url is not None and (not isinstance(url, str) or not url.startswith(("ws://", "wss://"))):
        check.add(join_path(path, "url"), "must start with ws:// or wss://, not %r" % (url,))
    backoff = _backoff(check, item["backoff"], join_path(path, "backoff")) if "backoff" in item else None
    params = {k: v for k, v in item.items() if k in cls.params}
    credentials = {k: v for k, v in item.items() if k in cls.auth_params}
    keyed = any(k in item for k in ("api_key", "api_secret"))
    if cls.needs_token and (keyed or _requires_credentials(cls, params)):
        for key in ("api_key", "api_secret"):
            reported = any(p[0] == join_path(path, key) for p in check.problems)  # e.g. its ${VAR} is unset
            if not reported and credentials.get(key) is None:  # a wrong one: auth_problems below
                check.add(join_path(path, key), "%s needs %s (use ${ENV_VAR})" % (venue, key))
    if "private_key" in cls.auth_params and _requires_credentials(cls, params):
        reported = any(p[0] == join_path(path, "private_key") for p in check.problems)
        wallet_key = credentials.get("private_key")
        if not reported and (not isinstance(wallet_key, str) or not wallet_key):
            check.add(join_path(path, "private_key"), "%s stream 'user' needs private_key (use ${ENV_VAR})" % venue)
        elif not reported:
            try:
                Eip712Signer(str(wallet_key))  # a key that is not one, or eth-account missing: said now
            except ConfigError as err:
                check.add(join_path(path, "private_key"), str(err))
    elif "private_key" in credentials:
        check.add(join_path(path, "private_key"), "private_key is for %s feeds with stream: user" % venue)
    for problem in cls.auth_problems({k: v for k, v in credentials.items() if not _reported(check, join_path(path, k))}):
        if not _reported(check, join_path(path, problem.param or "")):
            check.add(join_path(path, problem.param or ""), str(problem))
    # a value already found wrong (an unset ${VAR}) is not judged again as empty: the
    # venue's example stands in for it, so the other parameters are still checked
    trial = {k: v for k, v in params.items() if not _reported(check, join_path(path, k))}
    trial.update({k: cls.examples[k] for k in params if k not in trial and k in cls.examples})
    for wrong in cls.param_problems(trial):
        check.add(join_path(path, wrong.param) if wrong.param else path, str(wrong))
    if len(check.problems) > before:
        return None
    return FeedConfig(venue=venue, params={**params, **credentials}, name=name, url=url, backoff=backoff)


def _requires_credentials(cls: Any, params: dict[str, Any]) -> bool:
    """Does this feed need credentials?  While the parameters that decide it are wrong
    it cannot be told: no (their own problem is reported, not a guessed second one)."""
    try:
        return bool(cls.requires_credentials(params))
    except ConfigError:
        return False


def _reported(check: Checker, path: str) -> bool:
    """Is a problem at *path* (or inside it) already on the list?"""
    return any(p[0] == path or p[0].startswith((path + ".", path + "[")) for p in check.problems)


def check_outputs(check: Checker, value: Any) -> tuple[OutputConfig, ...]:
    """``outputs``: the outputs without problems."""
    if not isinstance(value, list):
        check.add("outputs", "must be a list, not %s" % kind_of(value))
        return ()
    outputs = []
    for index, item in enumerate(value):
        path = "outputs[%d]" % index
        kind = item.get("type", "stdout") if isinstance(item, dict) else None
        if kind not in _OUTPUT:
            check.add(
                join_path(path, "type") if isinstance(item, dict) else path,
                "type must be one of %s, not %r" % (", ".join(_OUTPUT), kind),
            )
            continue
        check.keys(item, _OUTPUT[kind], path, "an output")
        fmt = item.get("format", "table" if kind == "stdout" else "jsonl")
        formats = FORMATS if kind == "stdout" else ("jsonl", "csv")
        if fmt not in formats:
            check.add(join_path(path, "format"), "format must be one of %s, not %r" % (", ".join(formats), fmt))
        target = item.get("path")
        if kind in ("file", "sqlite") and (not isinstance(target, str) or not target):
            check.add(join_path(path, "path"), "a %s output needs a path" % kind)
        if kind == "redis" and not isinstance(item.get("url"), str):
            check.add(join_path(path, "url"), "a redis output needs a url (redis://host:port/db or unix://...)")
        if "maxlen" in item and (isinstance(item["maxlen"], bool) or not isinstance(item["maxlen"], int) or item["maxlen"] < 1):
            check.add(join_path(path, "maxlen"), "must be a whole number >= 1, not %r" % (item["maxlen"],))
        limit = item.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            check.add(join_path(path, "limit"), "must be a whole number >= 1 (trades kept for the sink), not %r" % (limit,))
        if "overflow" in item and item["overflow"] not in _OVERFLOW:
            check.add(join_path(path, "overflow"), "must be one of %s, not %r" % (", ".join(_OVERFLOW), item["overflow"]))
        options = {k: v for k, v in item.items() if k not in ("type", "format", "path")}
        outputs.append(OutputConfig(type=kind, format=fmt, path=target, options=options))
    return tuple(outputs)


def check_settings(check: Checker, value: Any) -> dict[str, Any]:
    """``settings``: FeedManager's keyword arguments (``metrics`` is :func:`check_metrics`'s)."""
    if not check.keys(value, _SETTINGS, "settings", "settings"):
        return {}
    out: dict[str, Any] = {}
    if "dispatch" in value:
        if value["dispatch"] not in ("thread", "manual"):
            check.add("settings.dispatch", "must be thread or manual, not %r" % (value["dispatch"],))
        out["dispatch"] = value["dispatch"]
    if "backoff" in value:
        out["backoff"] = _backoff(check, value["backoff"], "settings.backoff")
    for key, minimum, strict in (("ping_interval", 0, False), ("ping_timeout", 0, True), ("connect_timeout", 0, True)):
        if key in value:
            out[key] = _number(check, value[key], "settings." + key, minimum=minimum, strict=strict)
    if "dedup_window" in value:
        window = value["dedup_window"]
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 10_000_000:
            check.add("settings.dedup_window", "must be a whole number within 1..10000000, not %r" % (window,))
        out["dedup_window"] = window
    if value.get("stale_after") is not None:
        out["stale_after"] = _number(check, value["stale_after"], "settings.stale_after", minimum=0, strict=True)
    if "join_timeout" in value:
        out["join_timeout"] = _number(check, value["join_timeout"], "settings.join_timeout", minimum=0, strict=True)
    interval, timeout = out.get("ping_interval", 20.0), out.get("ping_timeout", 10.0)
    if interval and timeout and timeout >= interval:
        check.add("settings.ping_timeout", "must be below ping_interval (%g s)" % interval)
    return out


def check_metrics(check: Checker, value: Any) -> dict[str, Any] | None:
    """``settings.metrics``: serve_metrics' keyword arguments."""
    path = "settings.metrics"
    if not check.keys(value, _METRICS, path, "metrics"):
        return None
    out: dict[str, Any] = {}
    port = value.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        check.add(join_path(path, "port"), "needs a port: a whole number within 0..65535 (0: any free port), not %r" % (port,))
    out["port"] = port
    if "host" in value:
        if not isinstance(value["host"], str) or not value["host"]:
            check.add(join_path(path, "host"), "must be an address or host name, not %r" % (value["host"],))
        out["host"] = value["host"]
    if "reconnect_grace" in value:
        out["reconnect_grace"] = _number(check, value["reconnect_grace"], join_path(path, "reconnect_grace"), minimum=0)
    if "sink_pending_limit" in value:
        limit = value["sink_pending_limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            check.add(join_path(path, "sink_pending_limit"), "must be a whole number >= 0, not %r" % (limit,))
        out["sink_pending_limit"] = limit
    return out
