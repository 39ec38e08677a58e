"""The checked configuration as values, and what they build.

:class:`Config` (with its :class:`FeedConfig` and :class:`OutputConfig` items) is what
:func:`tradefeed.config.from_dict` and :func:`tradefeed.config.load` return once every
check has passed; :meth:`Config.create_manager` builds the manager it describes and
:meth:`OutputConfig.create_sink` an output's sink.  What must not go here: checking a
document (``_config_check.py``) or reading YAML (``config.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backoff import Backoff
from .exceptions import ConfigError
from .logs import redact

if TYPE_CHECKING:
    from .manager import FeedManager
    from .sinks import Sink

__all__ = ["Config", "FeedConfig", "OutputConfig", "FORMATS", "SINK_QUEUE"]

#: output formats
FORMATS = ("table", "jsonl", "csv")
#: keys of every sink output: its queue (FeedManager.add_sink's limit and overflow)
SINK_QUEUE = ("limit", "overflow")


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
        options = {k: v for k, v in self.options.items() if k not in SINK_QUEUE}
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
        return {k: v for k, v in self.options.items() if k in SINK_QUEUE}


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
