"""YAML configuration: a file (or dict) in, a checked :class:`Config` and a ready
:class:`~tradefeed.FeedManager` out.

:func:`from_dict` is pure; :func:`load` reads a file with ``yaml.safe_load`` semantics
(``yaml.compose`` with the safe loader, never a full loader) and keeps each value's line
so that every problem can be reported as ``file:line: feeds[2].symbols[0]: message``.
All problems are collected and raised together in one :class:`ConfigError`.  Secrets come
from the environment as ``${VAR}`` or ``${VAR:-default}``; an unset variable is an error,
never an empty credential.  Venue parameters are checked by the venue's own adapter.
:func:`split_feeds` and :func:`shard` cut a checked configuration into the disjoint
shares that N processes run (``tradefeed run CONFIG --shard I/N``).

The document::

    feeds:                        # required: one entry per feed
      - venue: synthetix          # a registry key
        symbols: [BTC-USDT]       # venue parameters (see ``tradefeed venues``)
        name: snx                 # optional feed name
        url: wss://...            # optional base URL override
        backoff: {initial: 1, max_delay: 30, jitter: 0.25, max_retries: null}
    settings:                     # optional FeedManager settings
      dispatch: thread            # thread | manual
      backoff: {...}
      ping_interval: 20
      ping_timeout: 10
      connect_timeout: 10
      dedup_window: 4096
      stale_after: 300            # seconds without trades: a ``stale`` event, and /healthz 503
      join_timeout: 10            # redundancy/rotation: seconds before a line counts as stalled
      metrics:                    # serve /metrics and /healthz (extra ``metrics``)
        port: 9870                # 0: any free port
        host: 127.0.0.1           # loopback unless told otherwise
        reconnect_grace: 60       # seconds a feed may be down before /healthz says so
        sink_pending_limit: 10000 # unwritten trades a sink may hold before it says so
    outputs:                      # optional; default: the table on stdout
      - {type: stdout, format: table}                  # the command line writes this one
      - {type: file, path: trades-{date}.csv, format: csv, fsync: false}   # sinks:
      - {type: sqlite, path: trades.db, table: trades}
      - {type: redis, url: "redis://localhost:6379/0", stream: "tradefeed:{venue}:{symbol}", maxlen: 1000000}
        # any sink may add limit: N (most trades kept for it; default: every one) and
        # overflow: drop_oldest | drop_newest (what goes at the limit)
    logging: {level: INFO, format: json}   # format: text (default) or json lines
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from .adapters import REGISTRY
from .backoff import Backoff
from .exceptions import ConfigError
from .logs import LOG_FORMATS, redact
from .signing import Eip712Signer

if TYPE_CHECKING:
    from .manager import FeedManager
    from .sinks import Sink

__all__ = [
    "Config",
    "FeedConfig",
    "OutputConfig",
    "from_dict",
    "load",
    "FORMATS",
    "shard",
    "parse_shard",
    "split_feeds",
    "feed_key",
    "SUBSCRIPTION_LIMITS",
]

#: output formats
FORMATS = ("table", "jsonl", "csv")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_TOP = ("feeds", "settings", "outputs", "logging")
_SETTINGS = (
    "dispatch", "backoff", "ping_interval", "ping_timeout", "connect_timeout", "dedup_window", "stale_after", "join_timeout",
    "metrics",
)  # fmt: skip
_METRICS = ("port", "host", "reconnect_grace", "sink_pending_limit")
_LOGGING = ("level", "format")
_BACKOFF = ("initial", "max_delay", "multiplier", "jitter", "max_retries")
_FEED_COMMON = ("venue", "name", "url", "backoff")
#: keys of every sink output: its queue (FeedManager.add_sink's limit and overflow)
_SINK_QUEUE = ("limit", "overflow")
_OVERFLOW = ("drop_oldest", "drop_newest")
_OUTPUT = {
    "stdout": ("type", "format"),
    "file": ("type", "path", "format", "fsync") + _SINK_QUEUE,
    "sqlite": ("type", "path", "table") + _SINK_QUEUE,
    "redis": ("type", "url", "stream", "maxlen") + _SINK_QUEUE,
}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
@dataclass(frozen=True)
class FeedConfig:
    """One feed of the file.  Its ``repr`` hides credentials."""

    venue: str
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    name: str | None = None
    url: str | None = None
    backoff: Backoff | None = None

    def __repr__(self) -> str:
        return "FeedConfig(venue=%r, name=%r, url=%r, params=%r)" % (self.venue, self.name, self.url, redact(self.params))


@dataclass(frozen=True)
class OutputConfig:
    """One output: ``stdout`` (for the command line) or a sink (``file``, ``sqlite``,
    ``redis``) that :meth:`Config.create_manager` attaches."""

    #: ``stdout``, ``file``, ``sqlite`` or ``redis``
    type: str
    #: ``table``, ``jsonl`` or ``csv`` (stdout and file)
    format: str = "jsonl"
    #: the file (file, sqlite)
    path: str | None = None
    #: the remaining keys of the output (``fsync``, ``table``, ``url``, ``stream``,
    #: ``maxlen``; ``limit`` and ``overflow`` are the sink queue's)
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # a redis url may carry a password
        options = {k: ("***" if k == "url" else v) for k, v in self.options.items()}
        return "OutputConfig(type=%r, format=%r, path=%r, options=%r)" % (self.type, self.format, self.path, options)

    def create_sink(self) -> "Sink":
        """The sink for this output (not for ``stdout``, which the command line writes)."""
        options = {k: v for k, v in self.options.items() if k not in _SINK_QUEUE}
        if self.type == "file":
            from .sinks.files import FileSink

            return FileSink(self.path or "", format=self.format, fsync=bool(options.get("fsync", False)))
        if self.type == "sqlite":
            from .sinks.sqlite import SQLiteSink

            return SQLiteSink(self.path or "", **options)
        if self.type == "redis":
            from .sinks.redis import RedisSink

            return RedisSink(**options)
        raise ConfigError("a %s output is not a sink" % self.type)

    def queue_options(self) -> dict[str, Any]:
        """:meth:`FeedManager.add_sink`'s keyword arguments for this output's queue."""
        return {k: v for k, v in self.options.items() if k in _SINK_QUEUE}


@dataclass(frozen=True)
class Config:
    """A checked configuration.  :meth:`create_manager` builds the manager it describes."""

    feeds: tuple[FeedConfig, ...]
    #: keyword arguments for :class:`FeedManager`
    settings: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[OutputConfig, ...] = ()
    #: ``logging.level``: DEBUG, INFO, WARNING (the default), ERROR or CRITICAL
    log_level: str = "WARNING"
    #: where it came from (a file name or ``<dict>``)
    source: str = "<dict>"
    #: ``text`` or ``json`` (``logging.format``), None when not given
    log_format: str | None = None
    #: keyword arguments for :meth:`FeedManager.serve_metrics` (``settings.metrics``), or
    #: None: no metrics endpoint
    metrics: dict[str, Any] | None = None

    def create_manager(self, *, sinks: bool = True, serve_metrics: bool = True, **overrides: Any) -> "FeedManager":
        """A new :class:`FeedManager` with every feed added (not started), with
        *sinks* a sink for every output other than ``stdout``, and with *serve_metrics*
        its metrics endpoint serving if ``settings.metrics`` is given (closed by the
        manager's ``stop()``).

        :param overrides: FeedManager settings that win over the file's (``dispatch=...``).
        :raises ConfigError: also when the metrics port cannot be bound, or the
            ``metrics`` extra is not installed.
        """
        from .manager import FeedManager

        manager = FeedManager(**{**self.settings, **overrides})
        for feed in self.feeds:
            manager.add_feed(feed.venue, feed.url, name=feed.name, backoff=feed.backoff, **feed.params)
        if sinks:
            for output in self.outputs:
                if output.type != "stdout":
                    manager.add_sink(output.create_sink(), **output.queue_options())
        if serve_metrics and self.metrics is not None:
            manager.serve_metrics(**self.metrics)
        return manager


class _Checker:
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
            self.add(path, "%s must be a mapping, not %s" % (what, _kind(mapping)))
            return False
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = "; did you mean %r?" % close[0] if close else "; expected one of %s" % ", ".join(allowed)
                self.add(_join(path, str(key)), "unknown key %r%s" % (key, hint))
        return True


def _format(source: str, problem: tuple[str, int | None, str]) -> str:
    path, line, message = problem
    where = "%s:%d" % (source, line) if line else source
    return "%s: %s: %s" % (where, path or "(top)", message)


def _join(path: str, key: str) -> str:
    return "%s.%s" % (path, key) if path else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a " + type(value).__name__
    )


def _number(check: _Checker, value: Any, path: str, *, minimum: float, strict: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check.add(path, "must be a number, not %s" % _kind(value))
        return None
    if not math.isfinite(value) or value > 1e9:
        check.add(path, "must be a finite number of reasonable size, not %r" % (value,))
        return None
    if value < minimum or (strict and value == minimum):
        check.add(path, "must be %s %g, not %r" % (">" if strict else ">=", minimum, value))
        return None
    return float(value)


def _backoff(check: _Checker, value: Any, path: str) -> Backoff | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"max_retries": value}
    if not check.keys(value, _BACKOFF, path, "backoff"):
        return None
    kwargs: dict[str, Any] = {}
    for key in ("initial", "max_delay", "multiplier", "jitter"):
        if key in value:
            kwargs[key] = _number(check, value[key], _join(path, key), minimum=0)
    retries = value.get("max_retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        check.add(_join(path, "max_retries"), "must be a whole number >= 0 or null, not %r" % (retries,))
    else:
        kwargs["max_retries"] = retries
    if any(v is None for k, v in kwargs.items() if k != "max_retries"):
        return None
    try:
        return Backoff(**kwargs)
    except ConfigError as err:
        check.add(path, str(err))
        return None


def _substitute(check: _Checker, value: Any, path: str, environ: Mapping[str, str]) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string, recursively."""
    if isinstance(value, dict):
        return {k: _substitute(check, v, _join(path, str(k)), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(check, v, "%s[%d]" % (path, i), environ) for i, v in enumerate(value)]
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


def _feed(check: _Checker, item: Any, path: str) -> FeedConfig | None:
    if not isinstance(item, dict):
        check.add(path, "a feed must be a mapping, not %s" % _kind(item))
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
        check.add(_join(path, "venue"), "unknown venue %r; %s" % (venue, hint))
        return None
    cls = REGISTRY[venue]
    before = len(check.problems)
    check.keys(item, _FEED_COMMON + cls.params + cls.auth_params, path, "a feed")
    name, url = item.get("name"), item.get("url")
    if name is not None and (not isinstance(name, str) or not name):
        check.add(_join(path, "name"), "must be a non-empty string")
    if url is not None and (not isinstance(url, str) or not url.startswith(("ws://", "wss://"))):
        check.add(_join(path, "url"), "must start with ws:// or wss://, not %r" % (url,))
    backoff = _backoff(check, item["backoff"], _join(path, "backoff")) if "backoff" in item else None
    params = {k: v for k, v in item.items() if k in cls.params}
    credentials = {k: v for k, v in item.items() if k in cls.auth_params}
    keyed = any(k in item for k in ("api_key", "api_secret"))
    if cls.needs_token and (keyed or _requires_credentials(cls, params)):
        for key in ("api_key", "api_secret"):
            reported = any(p[0] == _join(path, key) for p in check.problems)  # e.g. its ${VAR} is unset
            if not reported and credentials.get(key) is None:  # a wrong one: auth_problems below
                check.add(_join(path, key), "%s needs %s (use ${ENV_VAR})" % (venue, key))
    if "private_key" in cls.auth_params and _requires_credentials(cls, params):
        reported = any(p[0] == _join(path, "private_key") for p in check.problems)
        wallet_key = credentials.get("private_key")
        if not reported and (not isinstance(wallet_key, str) or not wallet_key):
            check.add(_join(path, "private_key"), "%s stream 'user' needs private_key (use ${ENV_VAR})" % venue)
        elif not reported:
            try:
                Eip712Signer(str(wallet_key))  # a key that is not one, or eth-account missing: said now
            except ConfigError as err:
                check.add(_join(path, "private_key"), str(err))
    elif "private_key" in credentials:
        check.add(_join(path, "private_key"), "private_key is for %s feeds with stream: user" % venue)
    for problem in cls.auth_problems({k: v for k, v in credentials.items() if not _reported(check, _join(path, k))}):
        if not _reported(check, _join(path, problem.param or "")):
            check.add(_join(path, problem.param or ""), str(problem))
    # a value already found wrong (an unset ${VAR}) is not judged again as empty: the
    # venue's example stands in for it, so the other parameters are still checked
    trial = {k: v for k, v in params.items() if not _reported(check, _join(path, k))}
    trial.update({k: cls.examples[k] for k in params if k not in trial and k in cls.examples})
    for wrong in cls.param_problems(trial):
        check.add(_join(path, wrong.param) if wrong.param else path, str(wrong))
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


def _reported(check: _Checker, path: str) -> bool:
    """Is a problem at *path* (or inside it) already on the list?"""
    return any(p[0] == path or p[0].startswith((path + ".", path + "[")) for p in check.problems)


def _outputs(check: _Checker, value: Any) -> tuple[OutputConfig, ...]:
    if not isinstance(value, list):
        check.add("outputs", "must be a list, not %s" % _kind(value))
        return ()
    outputs = []
    for index, item in enumerate(value):
        path = "outputs[%d]" % index
        kind = item.get("type", "stdout") if isinstance(item, dict) else None
        if kind not in _OUTPUT:
            check.add(
                _join(path, "type") if isinstance(item, dict) else path,
                "type must be one of %s, not %r" % (", ".join(_OUTPUT), kind),
            )
            continue
        check.keys(item, _OUTPUT[kind], path, "an output")
        fmt = item.get("format", "table" if kind == "stdout" else "jsonl")
        formats = FORMATS if kind == "stdout" else ("jsonl", "csv")
        if fmt not in formats:
            check.add(_join(path, "format"), "format must be one of %s, not %r" % (", ".join(formats), fmt))
        target = item.get("path")
        if kind in ("file", "sqlite") and (not isinstance(target, str) or not target):
            check.add(_join(path, "path"), "a %s output needs a path" % kind)
        if kind == "redis" and not isinstance(item.get("url"), str):
            check.add(_join(path, "url"), "a redis output needs a url (redis://host:port/db or unix://...)")
        if "maxlen" in item and (isinstance(item["maxlen"], bool) or not isinstance(item["maxlen"], int) or item["maxlen"] < 1):
            check.add(_join(path, "maxlen"), "must be a whole number >= 1, not %r" % (item["maxlen"],))
        limit = item.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            check.add(_join(path, "limit"), "must be a whole number >= 1 (trades kept for the sink), not %r" % (limit,))
        if "overflow" in item and item["overflow"] not in _OVERFLOW:
            check.add(_join(path, "overflow"), "must be one of %s, not %r" % (", ".join(_OVERFLOW), item["overflow"]))
        options = {k: v for k, v in item.items() if k not in ("type", "format", "path")}
        outputs.append(OutputConfig(type=kind, format=fmt, path=target, options=options))
    return tuple(outputs)


def _settings(check: _Checker, value: Any) -> dict[str, Any]:
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


def _metrics(check: _Checker, value: Any) -> dict[str, Any] | None:
    """``settings.metrics``: serve_metrics' keyword arguments."""
    path = "settings.metrics"
    if not check.keys(value, _METRICS, path, "metrics"):
        return None
    out: dict[str, Any] = {}
    port = value.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        check.add(_join(path, "port"), "needs a port: a whole number within 0..65535 (0: any free port), not %r" % (port,))
    out["port"] = port
    if "host" in value:
        if not isinstance(value["host"], str) or not value["host"]:
            check.add(_join(path, "host"), "must be an address or host name, not %r" % (value["host"],))
        out["host"] = value["host"]
    if "reconnect_grace" in value:
        out["reconnect_grace"] = _number(check, value["reconnect_grace"], _join(path, "reconnect_grace"), minimum=0)
    if "sink_pending_limit" in value:
        limit = value["sink_pending_limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            check.add(_join(path, "sink_pending_limit"), "must be a whole number >= 0, not %r" % (limit,))
        out["sink_pending_limit"] = limit
    return out


def from_dict(
    data: Any,
    *,
    source: str = "<dict>",
    lines: Mapping[str, int] | None = None,
    environ: Mapping[str, str] | None = None,
    _problems: tuple[tuple[str, int | None, str], ...] = (),
) -> Config:
    """Check a parsed document and return its :class:`Config`.

    :param source: named in problem reports (a file name).
    :param lines: document path -> line number, for reports (see :func:`load`).
    :param environ: where ``${VAR}`` is looked up (default ``os.environ``).
    :raises ConfigError: every problem found, one per line, also in ``.problems``.
    """
    check = _Checker(source, lines or {})
    check.problems.extend(_problems)  # found in the text (a key given twice), by load()
    if not check.keys(data, _TOP, "", "the document"):
        check.raise_if_any()
    data = _substitute(check, data, "", os.environ if environ is None else environ)
    feeds_value = data.get("feeds")
    feeds: list[FeedConfig] = []
    if not isinstance(feeds_value, list) or not feeds_value:
        check.add("feeds", "feeds must be a non-empty list" + ("" if feeds_value is None else ", not %s" % _kind(feeds_value)))
    else:
        names: set[str] = set()
        for index, item in enumerate(feeds_value):
            feed = _feed(check, item, "feeds[%d]" % index)
            if feed is not None:
                if feed.name is not None and feed.name in names:
                    check.add("feeds[%d].name" % index, "name %r is used twice" % feed.name)
                names.add(feed.name or "")
                feeds.append(feed)
    settings = _settings(check, data["settings"]) if "settings" in data else {}
    metrics = None
    if isinstance(data.get("settings"), dict) and "metrics" in data["settings"]:
        metrics = _metrics(check, data["settings"]["metrics"])
    outputs = _outputs(check, data["outputs"]) if "outputs" in data else ()
    level = "WARNING"
    log_format = None
    if "logging" in data and check.keys(data["logging"], _LOGGING, "logging", "logging"):
        level = str(data["logging"].get("level", "WARNING")).upper()
        if level not in LOG_LEVELS:
            check.add("logging.level", "must be one of %s, not %r" % (", ".join(LOG_LEVELS), data["logging"]["level"]))
        if "format" in data["logging"]:
            log_format = data["logging"]["format"]
            if log_format not in LOG_FORMATS:
                check.add("logging.format", "must be one of %s, not %r" % (", ".join(LOG_FORMATS), log_format))
    check.raise_if_any()
    return Config(
        feeds=tuple(feeds),
        settings=settings,
        outputs=outputs,
        log_level=level,
        source=source,
        log_format=log_format,
        metrics=metrics,
    )


def load(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, check and return a YAML configuration file.

    :raises ConfigError: the file cannot be read, is not YAML, or has problems (all of them).
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError("cannot read %s: %s" % (name, err.strerror or err)) from err
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = "%s:%d" % (name, mark.line + 1) if mark is not None else name
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError("%s: not valid YAML: %s" % (where, problem)) from None
    lines: dict[str, int] = {}
    twice: list[tuple[str, int | None, str]] = []
    if node is not None:
        _collect_lines(node, "", lines, twice)
    return from_dict({} if data is None else data, source=name, lines=lines, environ=environ, _problems=tuple(twice))


def _collect_lines(node: yaml.Node, path: str, lines: dict[str, int], twice: list[tuple[str, int | None, str]]) -> None:
    """Each document path's line, into *lines*; a key written twice in one mapping
    (YAML would keep the later value without a word) into *twice*, as a problem."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = _join(path, key)
            line = key_node.start_mark.line + 1
            if key in first:
                twice.append(
                    (child, line, "key %r is given twice (also on line %d); keep one of them" % (key, first[key]))
                )
            else:
                first[key] = line
                lines[child] = line
            _collect_lines(value_node, child, lines, twice)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, "%s[%d]" % (path, index), lines, twice)


# -- sharding: N processes, one config, disjoint shares ------------------------------------

#: most subscription items (``REGISTRY[venue].subscription_param``) one connection should
#: carry, where the venue documents a limit: SynFutures takes 100 pairs per SUBSCRIBE
#: (synfutures.md row 13; the adapter already sends one request per 100, a feed per 100
#: also spreads them over connections and shards).  Synthetix counts subscriptions per
#: IP, not per connection; Rails carries one market per connection (a feed per market
#: already) and at most its four stream names; Dopp has one filter set per connection
#: (nothing to split).
SUBSCRIPTION_LIMITS: dict[str, int] = {"synfutures": 100}


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1-based: ``1/3``, ``2/3``, ``3/3``) as ``(I, N)``.

    :raises ConfigError: not of that form, N below 1, or I outside 1..N.
    """
    match = re.fullmatch(r"\s*(-?\d+)\s*/\s*(-?\d+)\s*", text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError("a shard is I/N with whole numbers, 1-based (1/3 is the first of three), not %r" % (text,))
    index, count = int(match.group(1)), int(match.group(2))
    _check_shard(index, count)
    return index, count


def _check_shard(index: int, count: int) -> None:
    for value in (index, count):
        if isinstance(value, bool) or not isinstance(value, int):  # from Python callers
            raise ConfigError("shard index and count must be whole numbers, not %r" % (value,))
    if count < 1:
        raise ConfigError("the shard count must be at least 1, not %d" % count)
    if not 1 <= index <= count:
        hint = " (shards are numbered from 1)" if index == 0 else ""
        raise ConfigError("shard %d/%d: the index must be within 1..%d%s" % (index, count, count, hint))


def feed_key(feed: FeedConfig) -> str:
    """A digest of the feed's identity: venue, name and parameters (keys sorted;
    credentials and ``url`` left out, since hosts may use their own keys or proxies).

    SHA-256 of canonical JSON, never Python's ``hash()`` (salted per process): the same
    feed gets the same key on every host, run and Python version.
    """
    cls = REGISTRY.get(feed.venue)
    secret = set(cls.auth_params) if cls is not None else set()
    identity = {
        "venue": feed.venue,
        "name": feed.name,
        "params": {k: v for k, v in feed.params.items() if k not in secret},
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard(config: Config, index: int, count: int) -> Config:
    """The feeds of shard *index* of *count* (1-based), in their order in *config*.

    Feeds are ranked by :func:`feed_key` and dealt out in turn, so every feed is in
    exactly one shard, shard sizes differ by at most one, and the result depends only
    on the feed list: every process must be given the same configuration (then N
    processes, on one host or many, cover it all, each feed once).  Adding or removing
    a feed may move others to another shard: restart every shard with the new file.
    A shard may be empty when there are fewer feeds than shards.  Split long
    subscription lists first (:func:`split_feeds`) to spread a big feed's load.

    >>> [len(shard(config, i, 3).feeds) for i in (1, 2, 3)]  # doctest: +SKIP
    [2, 2, 1]

    :raises ConfigError: *count* below 1 or *index* outside 1..count.
    """
    _check_shard(index, count)
    ranked = sorted(range(len(config.feeds)), key=lambda i: (feed_key(config.feeds[i]), i))
    mine = sorted(i for rank, i in enumerate(ranked) if rank % count == index - 1)
    return dataclasses.replace(config, feeds=tuple(config.feeds[i] for i in mine))


def split_feeds(config: Config, max_items_per_feed: int | None = None) -> Config:
    """*config* with long subscription lists split over several feeds (connections).

    A feed whose venue has a subscription list (``pairs``, ``symbols``,
    ``subscriptions``) longer than the limit becomes ``ceil(len / limit)`` feeds
    with consecutive, equal-sized chunks of it (101 pairs at 100 make 50 + 51) and the
    feed's other parameters; a named feed's parts are named ``<name>.1``,
    ``<name>.2``...  Feeds without such a list (Dopp) are kept as they are.

    :param max_items_per_feed: the limit for every venue with a subscription list
        (never above the venue's own limit); None: only the venues' documented limits
        (:data:`SUBSCRIPTION_LIMITS`).
    :raises ConfigError: a limit below 1, a part the venue refuses, or a part's
        name already used by another feed.
    """
    if max_items_per_feed is not None and (
        isinstance(max_items_per_feed, bool) or not isinstance(max_items_per_feed, int) or max_items_per_feed < 1
    ):
        raise ConfigError("max_items_per_feed must be a whole number >= 1, not %r" % (max_items_per_feed,))
    feeds: list[FeedConfig] = []
    for feed in config.feeds:
        cls = REGISTRY[feed.venue]
        param = cls.subscription_param
        items = feed.params.get(param) if param is not None else None
        limits = [n for n in (SUBSCRIPTION_LIMITS.get(feed.venue), max_items_per_feed) if n is not None]
        if param is None or not limits or not isinstance(items, (list, tuple)) or len(items) <= min(limits):
            feeds.append(feed)
            continue
        parts = -(-len(items) // min(limits))
        bounds = [number * len(items) // parts for number in range(parts + 1)]  # sizes differ by 1 at most
        for number in range(parts):
            params = {**feed.params, param: list(items[bounds[number] : bounds[number + 1]])}
            cls.from_params(**{k: v for k, v in params.items() if k not in cls.auth_params})  # still valid?
            name = None if feed.name is None else "%s.%d" % (feed.name, number + 1)
            feeds.append(dataclasses.replace(feed, params=params, name=name))
    names = [f.name for f in feeds if f.name is not None]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError("split_feeds: feed name(s) %s would be used twice; rename the feeds" % ", ".join(clash))
    return dataclasses.replace(config, feeds=tuple(feeds))
