"""FeedManager: the public entry point that owns feeds, threads and callbacks.

Who runs what:

- the caller: ``add_feed``, ``start``, ``stop``, ``join``, ``run_forever``, ``pump``;
  configuration mistakes raise here, synchronously (:class:`ConfigError`);
- one daemon thread per feed (``tradefeed-<venue>-<n>``): connect, parse, hand over;
- one scheduler thread (``tradefeed-scheduler``): pings and venue heartbeats;
- one dispatcher thread (``tradefeed-dispatcher``), or the thread calling ``pump()`` in
  ``dispatch="manual"`` mode: every user callback, in registration order.

What stays here: the feeds by name, the threads that run them, and the order in which
every thread starts and stops.  Built from:

- the :class:`Feed` handle (``_feed.py``);
- the checks of the connection settings (``_settings.py``) and of ``add_feed``'s
  arguments, and the wiring of a feed's connections to the dispatcher and the
  scheduler (``_wiring.py``);
- the methods of its two base classes: callbacks and sinks (``_callbacks.py``);
  counters, health and metrics (``_monitoring.py``);
- how the threads end, in order and each within its time (``_shutdown.py``);
- the token providers and signers of feeds with credentials (``_credentials.py``) and
  the make-before-break rotation job (``_rotation.py``).
"""

from __future__ import annotations

import itertools
import logging
import os
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from ._public import document_in
from .backoff import Backoff
from ._callbacks import CallbackApi
from .connection import Connection
from ._credentials import TokenProviders
from ._feed import Feed
from ._monitoring import MonitoringApi
from ._queue import OVERFLOW_MODES
from ._rotation import rotation_job
from ._settings import checked_settings
from ._shutdown import stop_feed, stop_threads
from ._wiring import check_feed, make_feed
from .dispatcher import Dispatcher
from .exceptions import ConfigError, TradefeedError
from .models import SubscriptionChange
from .scheduler import Scheduler

if TYPE_CHECKING:
    from .metrics import MetricsServer

__all__ = ["FeedManager", "Feed"]

# documented here: its repr, tracebacks and pickles name this module
document_in(__name__, Feed)

log = logging.getLogger(__name__)


class FeedManager(CallbackApi, MonitoringApi):
    """Streams trades from any number of feeds to your callbacks.

    >>> manager = FeedManager()
    >>> feed = manager.add_feed("dopp", instrument_name="BTC-PERPETUAL")
    >>> @manager.on_trade
    ... def show(trade):          # runs on the dispatcher thread
    ...     print(trade.symbol, trade.side, trade.amount, "@", trade.price)
    >>> manager.run_forever()     # doctest: +SKIP  (until Ctrl-C or stop())

    :param dispatch: ``"thread"`` (default): callbacks run on one dispatcher thread.
        ``"manual"``: no dispatcher thread; call :meth:`pump` from your own thread (a
        GUI or COM thread) and the callbacks run there.
    :param backoff: reconnect policy for every feed (a :class:`Backoff`, an int for
        max retries, or None for 1 s doubling to 30 s, +/-25 % jitter, forever).
    :param ping_interval: seconds between WebSocket pings (0 disables).
    :param ping_timeout: seconds after a ping with nothing received before the
        connection is declared dead and re-made; must be below ``ping_interval``.
    :param connect_timeout: seconds allowed for TCP connect, TLS and the HTTP upgrade.
    :param dedup_window: trade ids remembered per symbol to drop resent trades.
    :param max_frame_bytes: a frame longer than this is reported as ParseError (with
        its first KiB) and not parsed.
    :param stale_after: seconds without trades after which a symbol (or a whole feed)
        gets a ``stale`` status event, and ``fresh`` when trades return (None: off).
        Heartbeats are not data.
    :param reconnect_on_stale: also re-make a connection whose whole feed went stale
        (off by default: a quiet market is not a dead connection; pings catch those).
    :param queue_limit: most trades waiting for the callbacks (None: unbounded, with a
        ``lagging`` status event and a warning past *high_water* trades).  When full,
        *overflow* says which trades go: ``drop_oldest`` or ``drop_newest``; drops are
        counted per feed (``stats()``) and announced by a ``lagging`` event.  Status
        events, errors and gaps are never dropped.  The connection threads never wait.
    :param join_timeout: seconds a (re)connected connection of a redundant or rotating
        feed holds a symbol's trades back while the connection that should deliver them
        first brings no trades at all, before that one counts as stalled and is
        reconnected (see :mod:`tradefeed.feedstate`); also how long a rotation waits for
        its new connection to be in sync before it settles for one that holds nothing
        back.
    :param ssl_context: TLS settings for ``wss://`` (default: system CAs, verified).
    :param ca_file: trust the CA certificates in this PEM file instead of the system's
        (a private venue gateway, a test server); certificates are still verified.
    :param recorder: called with every raw frame received, before parsing (a
        :class:`tradefeed.recording.Recorder`; see ``ConnectionSettings.recorder``).
    """

    def __init__(
        self,
        *,
        dispatch: Literal["thread", "manual"] = "thread",
        backoff: Backoff | int | None = None,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        dedup_window: int = 4096,
        max_frame_bytes: int = 16 * 1024 * 1024,
        stale_after: float | None = None,
        reconnect_on_stale: bool = False,
        queue_limit: int | None = None,
        overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        high_water: int = 100_000,
        join_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        recorder: Callable[[str, str, dict[str, Any], int, int, "str | bytes | SubscriptionChange | None"], None] | None = None,
    ) -> None:
        if dispatch not in ("thread", "manual"):
            raise ConfigError("dispatch must be 'thread' or 'manual', not %r" % (dispatch,))
        settings = checked_settings(
            backoff=backoff,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            connect_timeout=connect_timeout,
            dedup_window=dedup_window,
            max_frame_bytes=max_frame_bytes,
            stale_after=stale_after,
            reconnect_on_stale=reconnect_on_stale,
            join_timeout=join_timeout,
            ssl_context=ssl_context,
            ca_file=ca_file,
            recorder=recorder,
        )
        self.dispatch = dispatch
        self._settings = settings
        if queue_limit is not None and (isinstance(queue_limit, bool) or not isinstance(queue_limit, int) or queue_limit < 1):
            raise ConfigError("queue_limit must be a whole number >= 1 or None")
        if overflow not in OVERFLOW_MODES:
            raise ConfigError("overflow must be one of %s, not %r" % (", ".join(OVERFLOW_MODES), overflow))
        if high_water < 1:
            raise ConfigError("high_water must be >= 1")
        self._dispatcher = Dispatcher(queue_limit, overflow, high_water)
        self._scheduler = Scheduler()
        self._lock = threading.Lock()
        self._feeds: dict[str, Feed] = {}
        self._counters: dict[str, itertools.count[int]] = {}
        self._state = "new"  # new -> running -> stopping -> stopped
        self._finished = threading.Event()  # stopped, or every feed has ended
        self._stopped = threading.Event()
        self._fatal: list[TradefeedError] = []
        self._providers = TokenProviders()
        self._live = 0  # feed threads started and not yet ended
        self._metrics: "MetricsServer | None" = None

    @classmethod
    def from_config(cls, config: "str | os.PathLike[str] | Mapping[str, Any]", **overrides: Any) -> "FeedManager":
        """A manager with every feed of a YAML file (a path) or an already parsed
        document (a dict), checked first; not started.

        :param overrides: FeedManager settings that win over the file's.
        :raises ConfigError: every problem of the configuration at once.
        """
        from . import config as config_module

        if isinstance(config, Mapping):
            checked = config_module.from_dict(dict(config))
        else:
            checked = config_module.load(config)
        return checked.create_manager(**overrides)

    # -- feeds -------------------------------------------------------------------------

    def add_feed(
        self,
        venue: str,
        url: str | None = None,
        *,
        name: str | None = None,
        backoff: Backoff | int | None = None,
        redundancy: int = 1,
        rotate_after: float | None = None,
        **params: Any,
    ) -> Feed:
        """Declare a feed; it connects at :meth:`start` (at once if already running).

        :param venue: a registry key: ``"dopp"``.
        :param url: base URL (``ws://127.0.0.1:8765`` for the simulator); None for the
            venue's production URL.
        :param name: the feed's name (default ``<venue>-<n>``).
        :param backoff: this feed's reconnect policy (default: the manager's).
        :param redundancy: run this many identical connections and merge them (each
            trade delivered once): one connection dropping loses nothing.
        :param rotate_after: replace the connection every this many seconds (before a
            venue's own connection age limit, e.g. Synthetix 24 h), make-before-break:
            the new one opens, and the old one closes once the new one is in sync (see
            ``join_timeout``).
        :param params: venue parameters, e.g. ``instrument_name="BTC-PERPETUAL"``.
        :raises ConfigError: unknown venue, unknown parameter, invalid value or URL.
        """
        plan = check_feed(venue, url, backoff, redundancy, rotate_after, params, self._settings, self._providers)
        with self._lock:
            if self._state in ("stopping", "stopped"):
                raise TradefeedError("this FeedManager has been stopped; create a new one")
            if name is None:
                counter = self._counters.setdefault(venue, itertools.count(1))
                name = "%s-%d" % (venue, next(counter))
                while name in self._feeds:
                    name = "%s-%d" % (venue, next(counter))
            elif name in self._feeds:
                raise ConfigError("a feed named %r exists already" % name)
            feed = make_feed(name, plan, self._dispatcher, self._scheduler, self._feed_ended)
            self._feeds[name] = feed
            if self._state == "running":
                # started under the lock, so a concurrent stop() sees running threads
                for connection in feed._connections:
                    self._start_connection(connection)
                self._schedule_rotation(feed)
        log.debug("added feed %r", feed)
        return feed

    def remove_feed(self, feed: "Feed | str", timeout: float = 10.0) -> bool:
        """Stop one feed (close 1000) and forget it; other feeds go on.  Safe from any
        thread, callbacks included (connection threads never wait for callbacks).

        :returns: True if its thread ended within *timeout*.
        :raises ConfigError: no such feed.
        """
        name = feed.name if isinstance(feed, Feed) else feed
        with self._lock:
            removed = self._feeds.pop(name, None)
        if removed is None:
            raise ConfigError("no feed named %r" % (name,))
        return stop_feed(removed._connections, timeout)

    @property
    def feeds(self) -> list[Feed]:
        """Every feed added, in order."""
        with self._lock:
            return list(self._feeds.values())

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "FeedManager":
        """Start every feed (and the dispatcher thread).  Returns self.  Calling it
        again while running does nothing.

        :raises TradefeedError: the manager was stopped (managers are not restartable).
        """
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise TradefeedError("this FeedManager has been stopped; create a new one")
            if self.dispatch == "thread":
                self._dispatcher.start_thread()
            self._scheduler.start()
            self._state = "running"
            for feed in self._feeds.values():
                for connection in feed._connections:
                    self._start_connection(connection)
                self._schedule_rotation(feed)
            count = len(self._feeds)
        log.info("started %d feed(s)", count)
        return self

    def stop(self, timeout: float = 10.0, *, drain: bool = True) -> bool:
        """Stop every feed, deliver what is already queued, and join every thread.

        Idempotent and safe from any thread, including from inside a callback: the
        dispatcher thread then delivers the rest of the queue (trades already received,
        the final status events) after that callback returns, and ends; ``join()``
        waits for that.  In ``dispatch="manual"`` mode, called on the pumping thread,
        it delivers the queue there and closes the sinks; from another thread, queued
        items stay available to :meth:`pump`, which closes the sinks once the queue is
        empty.

        The sinks get until the deadline to write what they were handed (a failing one
        is retried meanwhile); a sink still failing or busy then is given up on: its
        write in progress is aborted (:meth:`Sink.abort`), and what it could not write
        is reported to ``on_error`` as a :class:`SinkError`, logged, and left in
        :meth:`sink_stats` as ``pending``.

        :param timeout: seconds to wait in all.
        :param drain: deliver what is queued (default); False drops it (counted in
            ``stats()`` as ``dropped``) for a prompt stop behind a slow callback, also
            while an earlier, draining ``stop()`` is still delivering (then the sinks
            get only until this call's deadline).  The sinks still get what the
            callbacks got.
        :returns: True if every thread ended within *timeout*.
        """
        deadline = time.monotonic() + timeout
        on_dispatcher = self._dispatcher.on_thread()
        with self._lock:
            if self._state in ("stopping", "stopped"):
                first = False
            else:
                first = True
                was_running = self._state == "running"
                self._state = "stopping"
            connections = [c for f in self._feeds.values() for c in f._connections]
        if not first:
            if not drain:  # asked for while a draining stop() runs: abandon the rest now
                self._dispatcher.discard()
                self._dispatcher.hurry_sinks(deadline)
            if not on_dispatcher:
                self._stopped.wait(max(0.0, deadline - time.monotonic()))
            return self._stopped.is_set()
        clean = True
        if was_running:  # the connections, then the scheduler, then the dispatcher and the sinks
            clean = stop_threads(
                connections, self._scheduler, self._dispatcher, self.dispatch, drain=drain, timeout=timeout, deadline=deadline
            )
        with self._lock:
            self._state = "stopped"
            metrics = self._metrics
        self._providers.close()
        if metrics is not None:  # last: scrapes keep working while the queue drains
            clean &= metrics.close(max(1.0, deadline - time.monotonic()))
        self._stopped.set()
        self._finished.set()
        if not clean:
            log.warning("stop(): some threads did not end within %g s", timeout)
        return clean

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the manager has stopped, or every feed has ended on its own (then
        stop it), and every thread has ended.

        :returns: False if *timeout* seconds passed first.
        :raises TradefeedError: the first error that ended a feed, if one did (a
            :class:`FeedError` or an :class:`AuthError`); or join() was called from a
            callback (it would wait for itself).
        """
        if self._dispatcher.on_thread():
            raise TradefeedError("join() cannot be called from a callback; call stop() there")
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._finished.wait(timeout):
            return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self.stop(10.0 if remaining is None else remaining)
        if self.dispatch == "thread":
            self._dispatcher.join(remaining)
            if self._dispatcher.is_alive():
                return False
        if self._fatal:
            raise self._fatal[0]
        return True

    def run_forever(self) -> None:
        """Start (if needed) and block until :meth:`stop` is called (from a callback or
        another thread), every feed has ended, or Ctrl-C; then stop cleanly.

        :raises FeedError: the first error that ended a feed, if one did.
        """
        self.start()
        try:
            self._finished.wait()
        except KeyboardInterrupt:
            log.info("interrupted; stopping")
        finally:
            self.stop()
        self.join()

    def pump(self, max_items: int | None = None, timeout: float | None = 0) -> int:
        """Run callbacks for queued items on *this* thread (``dispatch="manual"`` only).

        Call it from your GUI timer or COM loop.

        :param max_items: deliver at most this many trades/events (None: all queued).
        :param timeout: seconds to wait for the first item (0: none; None: forever).
        :returns: how many items were delivered.
        :raises TradefeedError: the manager runs its own dispatcher thread.
        """
        if self.dispatch != "manual":
            raise TradefeedError("pump() needs FeedManager(dispatch='manual')")
        return self._dispatcher.pump(max_items, timeout)

    def __enter__(self) -> "FeedManager":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "<FeedManager %s, %d feed(s), dispatch=%s>" % (self._state, len(self._feeds), self.dispatch)

    # -- internal ------------------------------------------------------------------------

    def _start_connection(self, connection: Connection) -> None:
        """Start a feed's thread; the caller holds ``_lock``."""
        self._live += 1
        self._finished.clear()
        connection.start()

    def _schedule_rotation(self, feed: Feed) -> None:
        """Rotate the feed's connection every ``rotate_after`` seconds, if it has that
        setting (see :mod:`tradefeed._rotation`); the caller holds ``_lock``."""
        every = feed._rotate_after
        if not every:
            return

        def current() -> bool:
            return self._state == "running" and self._feeds.get(feed.name) is feed

        self._scheduler.add(every, rotation_job(feed, every, self._lock, current, self._start_connection))

    def _feed_ended(self, connection: Connection, fatal: TradefeedError | None) -> None:
        """Called on a connection thread as it ends."""
        with self._lock:
            self._live -= 1
            if fatal is not None:
                self._fatal.append(fatal)
                # reported once, where it is handled: on_error callbacks, or without any the
                # dispatcher's warning; here only for debugging
                log.debug("feed %s ended: %s", connection.name, fatal, extra={"feed": connection.name, "venue": connection.venue})
            if self._live == 0 and self._state == "running":
                self._finished.set()

