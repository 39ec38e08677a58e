"""Replaying a recording as if it arrived now: :func:`replay`.

Each recorded feed gets fresh venue adapters at its recorded connections and one
de-duplication window, and the results join a :class:`~tradefeed.FeedManager`'s queue
(its callbacks and sinks run as for live data) or go to a trade callback on the calling
thread.  What must not go here: the file format (``_recording_format.py``) or a socket,
a thread or command-line code (``_record_cli.py``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection

from ._recording_format import Entry, RecordingError, read
from .adapters import REGISTRY, Adapter
from .dedup import Deduplicator
from .dispatcher import Dispatcher
from .exceptions import AuthError, ConfigError, FeedError, ParseError, TradefeedError
from .manager import FeedManager
from .models import Trade

__all__ = ["ReplayStats", "replay"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayStats:
    """What :func:`replay` did."""

    #: the feeds replayed, in order of appearance
    feeds: tuple[str, ...]
    #: frames parsed
    frames: int
    #: trades handed over (after de-duplication)
    trades: int
    #: trades dropped as repeats
    duplicates: int
    #: errors handed over (unparsable frames, bad records, venue errors)
    errors: int
    #: True if ``stop`` ended the replay before the end of the file
    stopped: bool


class _Feed:
    """One replayed feed: its current adapter and its de-duplication window."""

    __slots__ = ("name", "adapter", "connection", "opened", "dedup", "last_seen")

    def __init__(self, name: str, adapter: Adapter, connection: int, window: int) -> None:
        self.name = name
        self.adapter = adapter
        self.connection = connection
        #: the adapter's on_open() has run (it runs before its connection's first frame,
        #: tick or opened subscription change, as live: on open, before anything is read)
        self.opened = False
        self.dedup = Deduplicator(window)
        #: (stream, symbol) -> (timestamp_ms, sequence) of the newest trade delivered,
        #: told to each new adapter as the live connection tells it (Adapter.resume)
        self.last_seen: dict[tuple[Any, str], tuple[int, int | None]] = {}


def replay(
    path: str | os.PathLike[str],
    target: FeedManager | Callable[[Trade], Any],
    *,
    on_error: Callable[[TradefeedError], Any] | None = None,
    speed: float | None = None,
    feeds: Collection[str] | None = None,
    dedup_window: int = 4096,
    batch_frames: int = 256,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], bool] | None = None,
) -> ReplayStats:
    """Push a recording through the venues' adapters as if it arrived now.

    Each feed gets a fresh adapter (``REGISTRY[venue].from_params(**params)``, then
    ``on_open()`` before the connection's first frame) at each of its recorded
    connections, ``tick()`` where it ticked, ``subscribe()``/``unsubscribe()`` where the
    feed's subscriptions changed, and one :class:`~tradefeed.dedup.Deduplicator` for the
    whole replay, as live.
    Trades keep the recorded receive times, so replaying a file twice gives equal
    trades, ``received_ns`` included.  Feeds interleave in the recorded order.

    Where the results go:

    - a :class:`~tradefeed.FeedManager`: batches join its queue as its connections'
      do, so its trade callbacks (with their venue/symbol filters), ``on_error`` and
      sinks run as for live data, on its dispatcher thread.  Start it first (or call
      ``pump()`` in ``dispatch="manual"`` mode); ``stop()`` delivers what is queued.
    - a callable: it is the trade callback (*on_error* the error callback), run on
      *this* thread before ``replay`` returns, with the dispatcher's rules (a raising
      callback becomes a :class:`CallbackError` for *on_error*).

    ::

        trades = []
        replay("session.jsonl", trades.append)            # as fast as possible
        with FeedManager() as manager:                     # or live-like, into sinks
            manager.add_sink(SQLiteSink("trades.db"))
            replay("session.jsonl", manager, speed=1.0)

    :param speed: None: as fast as possible; 1.0: at the recorded pace; 2.0: twice
        as fast (waits follow the recorded receive times).
    :param feeds: replay only the feeds of these names.
    :param dedup_window: trade ids remembered per symbol (the manager's default).
    :param batch_frames: most frames per handed-over batch.
    :param stop: set it (from any thread) to end the replay early.
    :param clock: seconds, monotonic (tests inject their own).
    :param wait: ``wait(seconds) -> stopped?`` (default: ``stop.wait``).
    :raises RecordingError: a bad line (what came before it has been delivered), an
        unknown venue or parameters the adapter refuses.
    :raises ConfigError: a bad *speed*, or *on_error* with a manager.
    """
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed < math.inf):
        raise ConfigError("speed must be a number > 0 (or None: as fast as possible), not %r" % (speed,))
    if isinstance(target, FeedManager):
        if on_error is not None:
            raise ConfigError("replay into a FeedManager reports errors to its own on_error callbacks")
        put = target._dispatcher.put  # the hand-over the manager's connections use
        pump: Callable[[], int] | None = None
    elif callable(target):
        dispatcher = Dispatcher()
        dispatcher.add_trade_callback(target, None, None)
        if on_error is not None:
            dispatcher.add_error_callback(on_error)
        put, pump = dispatcher.put, dispatcher.pump
    else:
        raise ConfigError("replay target must be a FeedManager or a trade callback, not %r" % (target,))
    stop_event = stop if stop is not None else threading.Event()
    wait_for = wait if wait is not None else stop_event.wait
    name = str(path)
    states: dict[str, _Feed] = {}
    pending: list[Any] = []
    frames_pending = frames = trades = errors = 0
    stopped = False
    start: tuple[int, float] | None = None  # (first t_ns, clock() then)

    def flush() -> None:
        nonlocal pending, frames_pending
        if pending:
            batch, pending = pending, []
            put(batch)
            if pump is not None:
                pump()
        frames_pending = 0

    entries = read(path)
    while True:
        try:
            entry = next(entries, None)
        except RecordingError:
            flush()  # deliver what came before the bad line
            raise
        if entry is None:
            break
        if feeds is not None and entry.feed not in feeds:
            continue
        if stop_event.is_set():
            stopped = True
            break
        if speed is not None:
            if start is None:
                start = (entry.t_ns, clock())
            delay = start[1] + (entry.t_ns - start[0]) / 1e9 / speed - clock()
            if delay > 0:
                flush()  # what is due now must not wait for the next frame
                if wait_for(delay):
                    stopped = True
                    break
        state = states.get(entry.feed)
        if entry.kind == "feed":
            states[entry.feed] = _connect(name, entry, state, dedup_window)
            continue
        assert state is not None  # read() puts a feed line before a feed's first frame
        if entry.kind == "subscription":
            _change(name, entry, state)
            continue
        if not state.opened:
            _open(state, entry.t_ns)
        if entry.kind == "tick":
            state.adapter.tick(entry.t_ns)  # the requests it makes are not sent anywhere
            continue
        frames += 1
        frames_pending += 1
        before = len(pending)
        _parse(state, entry, pending)
        for item in pending[before:]:
            if type(item) is Trade:
                trades += 1
            else:
                errors += 1
        if frames_pending >= batch_frames:
            flush()
    flush()
    return ReplayStats(
        feeds=tuple(states),
        frames=frames,
        trades=trades,
        duplicates=sum(s.dedup.dropped for s in states.values()),
        errors=errors,
        stopped=stopped,
    )


def _connect(name: str, entry: Entry, state: _Feed | None, window: int) -> _Feed:
    """A feed line: a fresh adapter for a new connection, or the subscription change
    made on the current one."""
    cls = REGISTRY.get(entry.venue)
    if cls is None:
        raise RecordingError(name, entry.line, "unknown venue %r; known: %s" % (entry.venue, ", ".join(sorted(REGISTRY))))
    assert entry.params is not None and entry.connection is not None
    try:
        adapter = cls.from_params(**entry.params)
    except ConfigError as err:
        raise RecordingError(name, entry.line, "feed %r: %s" % (entry.feed, err)) from err
    if state is not None and state.connection == entry.connection:
        param = cls.subscription_param
        if param is not None:  # as Connection.change_subscription did on the live adapter
            old, new = list(getattr(state.adapter, param)), list(getattr(adapter, param))
            added, gone = [i for i in new if i not in old], [i for i in old if i not in new]
            try:
                if added:
                    state.adapter.subscribe(added)
                if gone:
                    state.adapter.unsubscribe(gone)
            except ConfigError as err:
                raise RecordingError(name, entry.line, "feed %r: %s" % (entry.feed, err)) from err
        return state
    if state is not None:
        adapter.resume(dict(state.last_seen))
    if state is None:
        return _Feed(entry.feed, adapter, entry.connection, window)
    state.adapter, state.connection, state.opened = adapter, entry.connection, False
    return state


def _open(state: _Feed, t_ns: int) -> None:
    """The connection opened: the adapter's requests, so its request ids and
    per-connection state are the live adapter's."""
    state.adapter.on_open(t_ns)
    state.opened = True


def _change(name: str, entry: Entry, state: _Feed) -> None:
    """A run-time subscribe/unsubscribe, made on the adapter where the live one took it."""
    if entry.opened and not state.opened:
        _open(state, entry.t_ns)
    adapter = state.adapter
    try:
        (adapter.subscribe if entry.action == "subscribe" else adapter.unsubscribe)(list(entry.items))
    except ConfigError as err:
        raise RecordingError(name, entry.line, "feed %r: %s" % (entry.feed, err)) from err


def _parse(state: _Feed, entry: Entry, pending: list[Any]) -> None:
    """One frame, as ``Connection._received`` handles it: trades de-duplicated, errors
    tagged with the feed."""
    assert entry.frame is not None
    try:
        parsed = state.adapter.parse(entry.frame, entry.t_ns)
    except ParseError as err:
        err.feed = state.name
        pending.append(err)
        return
    except (AuthError, FeedError) as err:  # the live connection ended here (a refusal)
        if isinstance(err, FeedError):
            err.feed = state.name
        pending.append(err)
        return
    except Exception as err:  # noqa: BLE001 - an adapter bug: reported, the replay goes on
        log.exception("%s: adapter failed on the frame of line %d", state.name, entry.line)
        wrapped = ParseError("%s: adapter failed: %r" % (state.name, err), raw=entry.frame, venue=entry.venue, feed=state.name)
        wrapped.__cause__ = err
        pending.append(wrapped)
        return
    if parsed.trades:
        fresh = state.dedup.fresh(parsed.trades)
        for trade in fresh:
            key = (trade.stream, trade.symbol)
            if key not in state.last_seen or trade.timestamp_ms >= state.last_seen[key][0]:
                state.last_seen[key] = (trade.timestamp_ms, trade.sequence)
        pending.extend(fresh)
    for error in parsed.errors:
        if isinstance(error, FeedError):
            error.feed = state.name
        pending.append(error)
