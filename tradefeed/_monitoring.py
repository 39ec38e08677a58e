"""What a manager reports: :class:`MonitoringApi`, a base class of
:class:`~tradefeed.FeedManager`.

Its public methods read a manager's own counters: per-feed ``stats``, the
``queue_depth``, the ``health`` verdict (the rules are :mod:`tradefeed.health`'s) and
``serve_metrics``, which serves them over HTTP (:mod:`tradefeed.metrics`); they are what
:class:`~tradefeed.health.Observed` names.  Kept apart from the feeds and the threads
(``manager.py``) so each reads on its own; safe from any thread.  What must not go here:
adding, removing, starting or stopping feeds (the metrics server started here is closed
by ``stop()``, last).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from ._feed import Feed
from .connection import ConnectionSettings
from .dispatcher import Dispatcher
from .exceptions import ConfigError, TradefeedError
from .health import RECONNECT_GRACE, SINK_PENDING_LIMIT, FeedSnapshot, Health, evaluate
from .models import FeedStats
from .sinks import SinkStats

if TYPE_CHECKING:
    from .metrics import MetricsServer

__all__ = ["MonitoringApi"]

# the manager's logger: its line was always the manager's (tests and log filters name it)
log = logging.getLogger("tradefeed.manager")


class MonitoringApi:
    """Counters, health and metrics of a manager (see :class:`~tradefeed.FeedManager`)."""

    # set by FeedManager.__init__
    _dispatcher: Dispatcher
    _settings: ConnectionSettings
    _lock: threading.Lock
    #: new -> running -> stopping -> stopped
    _state: str

    if TYPE_CHECKING:  # FeedManager's, and CallbackApi's (and a type only the checker imports)
        _metrics: MetricsServer | None

        @property
        def feeds(self) -> list[Feed]: ...
        def sink_stats(self) -> dict[str, SinkStats]: ...

    def stats(self) -> dict[str, FeedStats]:
        """Per-feed counters, by feed name."""
        return {feed.name: feed.stats() for feed in self.feeds}

    def queue_depth(self) -> int:
        """Trades received and not yet handed to the callbacks (approximate)."""
        return self._dispatcher.queued()

    def health(self, *, reconnect_grace: float = RECONNECT_GRACE, sink_pending_limit: int = SINK_PENDING_LIMIT) -> Health:
        """Is the manager healthy now?  The verdict ``/healthz`` serves (see
        :meth:`serve_metrics`): healthy while it runs, every feed is connected, none has
        gone without trades for longer than ``stale_after`` (when set), and no sink holds
        more than *sink_pending_limit* unwritten trades.

        :param reconnect_grace: seconds a feed may be disconnected or reconnecting (a
            routine reconnect) before that is a problem.
        :param sink_pending_limit: most unwritten trades a failing sink may hold.
        """
        now = time.monotonic()
        snapshots = []
        for feed in self.feeds:
            error = feed.error
            snapshots.append(FeedSnapshot(feed.stats(), feed._status_for(now), None if error is None else str(error)))
        return evaluate(
            snapshots,
            self.sink_stats(),
            running=self._state == "running",
            stale_after=self._settings.stale_after,
            reconnect_grace=reconnect_grace,
            sink_pending_limit=sink_pending_limit,
        )

    def serve_metrics(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        reconnect_grace: float = RECONNECT_GRACE,
        sink_pending_limit: int = SINK_PENDING_LIMIT,
    ) -> "MetricsServer":
        """Serve Prometheus metrics at ``/metrics`` and a health check at ``/healthz``
        over HTTP, on a daemon thread (``tradefeed-metrics``), until :meth:`stop` (or the
        returned server's ``close()``).  Callable before or after :meth:`start`.

        Metrics are read from the manager's counters when scraped; the only work added
        to delivery is one histogram observation per batch (``tradefeed_delivery_seconds``).
        ``/healthz`` answers 200 or 503 with a JSON body (see :meth:`health`).  Needs the
        ``metrics`` extra: ``pip install "tradefeed[metrics]"``.

        :param port: TCP port; 0 lets the OS choose (read the server's ``port``).
        :param host: address to bind; loopback unless told otherwise.
        :param reconnect_grace: seconds a feed may be down before ``/healthz`` says so.
        :param sink_pending_limit: unwritten trades a sink may hold before it says so.
        :returns: the :class:`tradefeed.metrics.MetricsServer` (``port``, ``url``, ``close()``).
        :raises ConfigError: a bad value, a port that cannot be bound, metrics already
            served, or prometheus_client not installed.
        :raises TradefeedError: the manager has been stopped.
        """
        from .metrics import MetricsServer

        with self._lock:
            if self._state in ("stopping", "stopped"):
                raise TradefeedError("this FeedManager has been stopped; create a new one")
            if self._metrics is not None:
                raise ConfigError("metrics are served already, at %s" % self._metrics.url)
            server = MetricsServer(
                self,
                port,
                host,
                reconnect_grace=reconnect_grace,
                sink_pending_limit=sink_pending_limit,
                on_close=lambda: self._metrics_closed(server),
            )
            self._metrics = server
            self._dispatcher.observe_delivery = server.delivery.observe
        log.info("serving metrics at %s/metrics and health at %s/healthz", server.url, server.url)
        return server

    def _metrics_closed(self, server: "MetricsServer") -> None:
        with self._lock:
            if self._metrics is server:
                self._metrics = None
                self._dispatcher.observe_delivery = None
