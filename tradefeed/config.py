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

This module reads the file and checks the document's top level and ``logging``; the
other sections are checked in ``_config_check.py``, the checked values (:class:`Config`,
:class:`FeedConfig`, :class:`OutputConfig`) are ``_config_types.py``'s and sharding is
``_sharding.py``'s.  Every public name is imported from here.

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

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from ._public import document_in
from ._config_check import (
    Checker,
    check_feed,
    check_metrics,
    check_outputs,
    check_settings,
    join_path,
    kind_of,
    substitute,
)
from ._config_types import FORMATS, Config, FeedConfig, OutputConfig
from ._sharding import SUBSCRIPTION_LIMITS, feed_key, parse_shard, shard, split_feeds
from .exceptions import ConfigError
from .logs import LOG_FORMATS

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

# documented here: their reprs, tracebacks and pickles name this module
document_in(__name__, Config, FeedConfig, OutputConfig)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_TOP = ("feeds", "settings", "outputs", "logging")
_LOGGING = ("level", "format")


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
    check = Checker(source, lines or {})
    check.problems.extend(_problems)  # found in the text (a key given twice), by load()
    if not check.keys(data, _TOP, "", "the document"):
        check.raise_if_any()
    data = substitute(check, data, "", os.environ if environ is None else environ)
    feeds_value = data.get("feeds")
    feeds: list[FeedConfig] = []
    if not isinstance(feeds_value, list) or not feeds_value:
        check.add("feeds", "feeds must be a non-empty list" + ("" if feeds_value is None else ", not %s" % kind_of(feeds_value)))
    else:
        names: set[str] = set()
        for index, item in enumerate(feeds_value):
            feed = check_feed(check, item, "feeds[%d]" % index)
            if feed is not None:
                if feed.name is not None and feed.name in names:
                    check.add("feeds[%d].name" % index, "name %r is used twice" % feed.name)
                names.add(feed.name or "")
                feeds.append(feed)
    settings = check_settings(check, data["settings"]) if "settings" in data else {}
    metrics = None
    if isinstance(data.get("settings"), dict) and "metrics" in data["settings"]:
        metrics = check_metrics(check, data["settings"]["metrics"])
    outputs = check_outputs(check, data["outputs"]) if "outputs" in data else ()
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
            child = join_path(path, key)
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
