"""FeedManager: the public entry point that owns feeds, threads and callbacks.

Who runs what:

- the caller: ``add_feed``, ``start``, ``stop``, ``join``, ``run_forever``, ``pump``;
  configuration mistakes raise here, synchronously (:class:`ConfigError`);
- one daemon thread per feed (``tradefeed-<venue>-<n>``): connect, parse, hand over;
- one scheduler thread (``tradefeed-scheduler``): pings and venue heartbeats;
- one dispatcher thread (``tradefeed-dispatcher``), or the thread calling ``pump()`` in
  ``dispatch="manual"`` mode: every user callback, in registration order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import logging
import os
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, TypeVar, overload

from .adapters import Adapter, get_adapter_class
from .auth import TokenProvider
from .signing import Eip712Signer
from .backoff import Backoff
from .logs import redact
from .connection import Connection, ConnectionSettings
from .feedstate import FeedState
from .health import RECONNECT_GRACE, SINK_PENDING_LIMIT, FeedSnapshot, Health, evaluate
from ._queue import OVERFLOW_MODES
from .dispatcher import Dispatcher
from .exceptions import ConfigError, TradefeedError
from .models import FeedStats, Status, SubscriptionChange
from .scheduler import Scheduler
from .sinks import Sink, SinkStats

if TYPE_CHECKING:
    from .metrics import MetricsServer

__all__ = ["FeedManager", "Feed"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=Sink)



class Feed:
    """A handle on one feed, returned by :meth:`FeedManager.add_feed`.

    ``repr`` never shows credentials (any parameter named like a key, secret or token).
    """

    def __init__(self, name: str, venue: str, url: str | None, connections: list[Connection]):
        #: unique name within the manager, e.g. ``"dopp-1"``
        self.name = name
        #: venue registry key
        self.venue = venue
        #: base URL override, or None for the venue's production URL
        self.url = url
        self._connections = connections
        self._make_connection: Callable[[int, dict[str, Any]], Connection] = lambda index, params: connections[0]
        self._rotate_after: float | None = None

    @property
    def _connection(self) -> Connection:
        return self._connections[0]

    @property
    def redundancy(self) -> int:
        """How many identical connections the feed runs."""
        return len(self._connections)

    @property
    def params(self) -> dict[str, Any]:
        """The venue parameters now (run-time subscription changes included).
        Credentials are never among them: they live in the token provider."""
        return redact(self._connection.params)

    @property
    def error(self) -> TradefeedError | None:
        """The error that ended this feed, if it ended on one."""
        return next((c.fatal_error for c in self._connections if c.fatal_error is not None), None)

    def subscribe(self, *items: str) -> None:
        """Add subscription items at run time: SynFutures pairs, Synthetix symbols,
        Rails streams.  Sent at once if connected, and on every reconnect.  Safe from
        any thread, callbacks included.

        :raises ConfigError: an invalid item, or a venue whose subscriptions are fixed
            at connect time (Dopp: add another feed).
        """
        for connection in self._connections:
            connection.change_subscription(True, list(items))

    def unsubscribe(self, *items: str) -> None:
        """Remove subscription items at run time; their trades stop arriving (ones
        already in flight are dropped).

        :raises ConfigError: as :meth:`subscribe`, or when nothing would be left.
        """
        for connection in self._connections:
            connection.change_subscription(False, list(items))

    def is_alive(self) -> bool:
        """True while any of the feed's threads runs."""
        return any(c.is_alive() for c in self._connections)

    def stats(self) -> FeedStats:
        """This feed's counters (summed over its connections)."""
        parts = [c.stats() for c in self._connections]
        first = parts[0]
        if len(parts) == 1:
            return first
        order = [Status.CONNECTED, Status.CONNECTING, Status.RECONNECTING, Status.DISCONNECTED, Status.STOPPED]
        best = min((p.status for p in parts), key=lambda s: order.index(s) if s in order else len(order))
        return dataclasses.replace(
            first,
            status=best,
            messages=sum(p.messages for p in parts),
            errors=sum(p.errors for p in parts),
            reconnects=sum(p.reconnects for p in parts),
        )

    def __repr__(self) -> str:
        return "<Feed %s %s url=%r params=%r>" % (self.name, self.stats().status.value, self.url, self.params)

    def _status_for(self, now: float) -> float:
        """Seconds (to monotonic *now*) since the feed last went up or down: up since its
        longest-connected connection connected, down since the last one went down."""
        connections = self._connections
        up = [c.connected_changed for c in connections if c.status is Status.CONNECTED]
        since = min(up) if up else max(c.connected_changed for c in connections)
        return max(0.0, now - since)


class FeedManager:
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
        if not all(math.isfinite(v) for v in (ping_interval, ping_timeout, connect_timeout)):
            raise ConfigError("ping_interval, ping_timeout and connect_timeout must be finite")
        if ping_interval < 0 or ping_timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("ping_interval must be >= 0; ping_timeout and connect_timeout > 0")
        if ping_interval and ping_timeout >= ping_interval:
            raise ConfigError("ping_timeout (%g s) must be below ping_interval (%g s)" % (ping_timeout, ping_interval))
        if dedup_window < 1:
            raise ConfigError("dedup_window must be >= 1")
        if stale_after is not None and stale_after <= 0:
            raise ConfigError("stale_after must be > 0 seconds or None")
        if isinstance(join_timeout, bool) or not isinstance(join_timeout, (int, float)) or not 0 < join_timeout < math.inf:
            raise ConfigError("join_timeout must be a number of seconds > 0, not %r" % (join_timeout,))
        if ca_file is not None:
            if ssl_context is not None:
                raise ConfigError("give ssl_context or ca_file, not both")
            try:
                ssl_context = ssl.create_default_context(cafile=os.fspath(ca_file))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError("cannot use ca_file %s: %s" % (ca_file, err)) from err
        self.dispatch = dispatch
        self._settings = ConnectionSettings(
            backoff=Backoff.from_value(backoff),
            ping_interval=float(ping_interval),
            ping_timeout=float(ping_timeout),
            connect_timeout=float(connect_timeout),
            dedup_window=dedup_window,
            max_frame_bytes=max_frame_bytes,
            stale_after=None if stale_after is None else float(stale_after),
            reconnect_on_stale=bool(reconnect_on_stale),
            join_timeout=float(join_timeout),
            ssl_context=ssl_context,
            recorder=recorder,
        )
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
        self._providers: dict[str, TokenProvider] = {}  # digest of (auth_url, key, secret) -> provider
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
        adapter_cls = get_adapter_class(venue)
        if isinstance(redundancy, bool) or not isinstance(redundancy, int) or not 1 <= redundancy <= 8:
            raise ConfigError("redundancy must be a whole number within 1..8, not %r" % (redundancy,))
        if rotate_after is not None and (isinstance(rotate_after, bool) or not isinstance(rotate_after, (int, float)) or rotate_after <= 0):
            raise ConfigError("rotate_after must be a positive number of seconds or None, not %r" % (rotate_after,))
        if rotate_after is not None and redundancy != 1:
            raise ConfigError("rotate_after works on single-connection feeds (redundancy=1)")
        credentials = {k: params.pop(k) for k in adapter_cls.auth_params if k in params}
        adapter_cls.from_params(**params)  # validate now, synchronously
        for problem in adapter_cls.auth_problems(credentials):  # a key of the wrong type, say
            raise problem
        keyed = any(credentials.get(k) for k in ("api_key", "api_secret"))
        needed = adapter_cls.needs_token and (keyed or adapter_cls.requires_credentials(params))
        provider = self._token_provider(adapter_cls, credentials) if needed else None
        signer = _signer(adapter_cls, params, credentials.pop("private_key", None))
        del credentials
        if url is not None and (not isinstance(url, str) or not url.startswith(("ws://", "wss://"))):
            raise ConfigError("%s: url must start with ws:// or wss://, not %r" % (venue, url))
        settings = self._settings
        if backoff is not None:
            settings = ConnectionSettings(**{**settings.__dict__, "backoff": Backoff.from_value(backoff)})
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
            state = FeedState(settings.dedup_window, settings.join_timeout)

            def make(index: int, current_params: dict[str, Any]) -> Connection:
                connection = Connection(
                    name=name,
                    venue=venue,
                    adapter_cls=adapter_cls,
                    params=current_params,
                    url=url,
                    settings=settings,
                    token_provider=provider,
                    signer=signer,
                    put=self._dispatcher.put,
                    scheduler=self._scheduler,
                    on_end=self._feed_ended,
                    state=state,
                    index=index,
                )
                connection.redundant = redundancy > 1
                connection.dropped = lambda feed_name: self._dispatcher.dropped().get(feed_name, 0)
                return connection

            connections = [make(index, params) for index in range(1, redundancy + 1)]
            feed = Feed(name, venue, url, connections)
            feed._make_connection = make
            feed._rotate_after = rotate_after
            self._feeds[name] = feed
            if self._state == "running":
                # started under the lock, so a concurrent stop() sees running threads
                for connection in connections:
                    self._start_connection(connection)
                self._schedule_rotation(feed)
        log.debug("added feed %r", feed)
        return feed

    def _token_provider(self, adapter_cls: type[Adapter], credentials: dict[str, Any]) -> TokenProvider:
        """One provider per (endpoint, key, secret): feeds of one account share a token,
        which keeps them under the token endpoint's rate limit."""
        missing = [k for k in ("api_key", "api_secret") if not credentials.get(k)]
        if missing:
            if len(missing) == 1:  # one of the pair given
                reason = "api_key and api_secret go together"
            else:
                reason = "its parameters ask for the account's own data"
            raise ConfigError(
                "%s: this feed needs %s (%s)" % (adapter_cls.venue, " and ".join(missing), reason), param=missing[0]
            )
        url = credentials.get("auth_url") or adapter_cls.default_auth_url
        if not isinstance(url, str):
            raise ConfigError("%s: needs auth_url (the token endpoint)" % adapter_cls.venue)
        # looked up by a digest, never by the secret itself: the dict is an attribute, and
        # debuggers, crash reporters and repr(vars(manager)) show attributes
        key = hashlib.sha256(json.dumps([url, credentials["api_key"], credentials["api_secret"]]).encode()).hexdigest()
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = self._providers[key] = TokenProvider(url, credentials["api_key"], credentials["api_secret"])
        return provider

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
        for connection in removed._connections:
            connection.stop()
        clean = True
        for connection in removed._connections:
            if not connection.join(min(2.0, timeout / 2)):
                connection.abort()
            clean &= connection.join(timeout / 2)
        return clean

    @property
    def feeds(self) -> list[Feed]:
        """Every feed added, in order."""
        with self._lock:
            return list(self._feeds.values())

    # -- callbacks ---------------------------------------------------------------------

    @overload
    def on_trade(self, cb: F, venue: str | None = None, symbol: str | None = None) -> F: ...

    @overload
    def on_trade(self, cb: None = None, venue: str | None = None, symbol: str | None = None) -> Callable[[F], F]: ...

    def on_trade(self, cb: Any = None, venue: str | None = None, symbol: str | None = None) -> Any:
        """Call ``cb(trade: Trade)`` for every trade, optionally only for one venue
        and/or symbol.  Runs on the dispatcher thread (or the ``pump()`` caller).

        Returns *cb*; works as ``@manager.on_trade`` and ``@manager.on_trade(venue=...)``.

        :raises ConfigError: unknown venue.
        """
        if venue is not None:
            get_adapter_class(venue)
        if cb is None:
            return lambda f: self.on_trade(f, venue, symbol)
        self._dispatcher.add_trade_callback(cb, venue, symbol)
        return cb

    def on_error(self, cb: F) -> F:
        """Call ``cb(error: TradefeedError)`` for every reported problem: unparsable
        frames (:class:`ParseError`), raising callbacks (:class:`CallbackError`) and the
        error that ends a feed.  Runs on the dispatcher thread.  Returns *cb*."""
        self._dispatcher.add_error_callback(cb)
        return cb

    def on_status(self, cb: F) -> F:
        """Call ``cb(event: StatusEvent)`` on every connection state change
        (connecting, connected, disconnected, reconnecting, stopped).  Runs on the
        dispatcher thread.  Returns *cb*."""
        self._dispatcher.add_status_callback(cb)
        return cb

    def add_sink(
        self,
        sink: S,
        *,
        limit: int | None = None,
        overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        high_water: int | None = None,
    ) -> S:
        """Write every trade to *sink* (a :class:`tradefeed.sinks.Sink`), batched, after
        the callbacks, from the sink's own queue on its own thread
        (``tradefeed-sink-<name>``): neither the callbacks nor the other sinks ever wait
        for it.  It is opened on that thread before its first batch and closed when the
        manager stops.  A failing sink keeps its trades, in order, and is retried; the
        failure reaches ``on_error`` as :class:`SinkError`.  Returns *sink*.

        :param limit: most trades kept for the sink (None: every one, the default); at
            the limit trades are dropped, counted in ``sink_stats()`` (``dropped``) and
            announced by a ``lagging`` status event.
        :param overflow: what goes at the limit: the oldest waiting trades
            (``drop_oldest``) or the incoming ones (``drop_newest``).
        :param high_water: pending trades past which a ``lagging`` status event (detail
            ``sink``) says the sink is behind, and ``caught_up`` follows under half of it
            (default: the manager's ``high_water``).
        :raises ConfigError: a bad *limit*, *overflow* or *high_water*.
        """
        self._dispatcher.add_sink(sink, limit, overflow, high_water)
        return sink

    def sink_stats(self) -> dict[str, SinkStats]:
        """Per sink: trades written, pending (not written yet; after :meth:`stop`: not
        written at all), failures, rejected, dropped and the oldest pending trade's age."""
        return {w.sink.name: w.stats() for w in self._dispatcher.sink_writers()}

    def on_gap(self, cb: F) -> F:
        """Call ``cb(gap: Gap)`` when trades of a symbol may be missing: the venue's
        sequence jumped, or a reconnect's back-fill did not reach back to the last trade
        seen.  Runs on the dispatcher thread.  Without any on_gap callback, gaps are
        logged as warnings.  Returns *cb*."""
        self._dispatcher.add_gap_callback(cb)
        return cb

    def remove_callback(self, cb: Callable[..., Any]) -> bool:
        """Unregister *cb* wherever it is registered; True if it was."""
        return self._dispatcher.remove_callback(cb)

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
        if was_running:
            for conn in connections:
                conn.stop()
            # a close handshake takes one round trip; past this grace, cut the sockets
            grace = time.monotonic() + min(2.0, timeout / 2)
            for conn in connections:
                if not conn.join(max(0.0, grace - time.monotonic())):
                    conn.abort()
            for conn in connections:
                clean &= conn.join(max(0.0, deadline - time.monotonic()))
            clean &= self._scheduler.stop(max(0.0, deadline - time.monotonic()))
            if not drain:
                self._dispatcher.discard()
            if self.dispatch == "thread":
                clean &= self._dispatcher.stop_thread(max(0.0, deadline - time.monotonic()))
            else:
                self._dispatcher.stop_manual(max(0.0, deadline - time.monotonic()))
            if self._dispatcher.sinks_closed.is_set():
                clean &= not self._dispatcher.sinks_busy()  # a sink stuck in a write it did not abort
        with self._lock:
            self._state = "stopped"
            providers = list(self._providers.values())
            metrics = self._metrics
        for provider in providers:
            provider.close()
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
        """Make-before-break replacement of the feed's connection every rotate_after s.

        The new connection opens next to the old one and joins it as a redundant line
        does (:mod:`tradefeed.feedstate`); the old one is retired only once the new one
        is in sync, holding nothing back and caught up on every symbol the feed knew, so
        the handover opens no hole (its first data, an ack or a small back-fill, proves
        nothing).  A symbol the new connection never sees (a quiet one, or one no longer
        subscribed) would keep it out of sync forever: once it has been connected for
        ``join_timeout``, it is enough that it holds nothing back and that no connection
        delivered a trade of such a symbol since it connected; that symbol's next trade
        gets the seam checks.  A symbol the old connection still delivers and the new
        one does not (a refused subscription) keeps the old one going.
        """
        every = feed._rotate_after
        if not every:
            return
        replacement: list[Connection] = []

        def job(now: float) -> float | None:
            with self._lock:
                if self._state != "running" or self._feeds.get(feed.name) is not feed:
                    return None
                if not replacement:  # open the new connection next to the old one
                    old = feed._connections[0]
                    if not old.is_alive():
                        return None
                    new = feed._make_connection(old.index + 1, old.params)
                    old.redundant = new.redundant = True  # both deliver: keep one order
                    feed._connections = [old, new]
                    replacement.append(new)
                    self._start_connection(new)
                    return 0.02
                new = replacement[0]
                old = feed._connections[0]
                in_sync = new.in_sync.is_set()
                up_for = now - new.connected_changed
                settled = in_sync or (
                    new.status is Status.CONNECTED
                    and up_for >= new.state.join_timeout
                    and new.settled(time.time_ns() - int(up_for * 1e9))
                )
                if new.is_alive() and (settled or not old.is_alive()):  # retire the old one
                    old.retiring = True
                    old.retired_in_sync = in_sync
                    feed._connections = [new]
                elif new.is_alive():
                    return 0.02  # not in sync yet; the old one keeps streaming
                else:  # the replacement failed: keep the old one, try again later
                    feed._connections = [old]
                    old.redundant = False
                    replacement.clear()
                    return every
            if not in_sync:
                log.info(
                    "%s: rotation: connection #%d holds nothing back after %g s; symbols it has not seen had "
                    "no trades since it connected; retiring #%d",
                    feed.name, new.index, new.state.join_timeout, old.index,
                    extra={"feed": feed.name, "venue": feed.venue},
                )  # fmt: skip
            old.stop()
            replacement.clear()
            return every

        self._scheduler.add(every, job)

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


def _signer(adapter_cls: type[Adapter], params: Mapping[str, Any], private_key: Any) -> Eip712Signer | None:
    """The request signer of a feed that signs with a wallet key (the Synthetix user
    feed), made here and held only by the feed's connections; None for other feeds.

    :raises ConfigError: the key is missing, not a key, given to a feed that does not
        sign, or eth-account is not installed (the message never shows the key).
    """
    if "private_key" not in adapter_cls.auth_params:
        return None
    if not adapter_cls.requires_credentials(params):
        if private_key is not None:
            raise ConfigError("%s: private_key is for stream='user' feeds only" % adapter_cls.venue, param="private_key")
        return None
    if not private_key:
        raise ConfigError(
            "%s: stream='user' needs private_key, the wallet key that owns the subaccount "
            "(in YAML: private_key: ${SYNTHETIX_PRIVATE_KEY})" % adapter_cls.venue,
            param="private_key",
        )
    return Eip712Signer(private_key)
