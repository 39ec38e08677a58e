"""Recording every raw frame, and replaying a recording as if it were live.

This module owns the recording file format, :class:`Recorder` (the hook that
``FeedManager(recorder=...)`` calls with each raw frame) and :func:`replay`, which
pushes a recording through fresh venue adapters, the per-feed de-duplication and the
dispatcher, so callbacks and sinks get what they got live, stamped with the recorded
receive times.  No socket, no thread and no command-line code goes here (that is in
``tradefeed._record_cli``); the simulator reads the same format on its own
(``tradefeed.simulator.replay``) because it must not import the client.

The format: JSON lines, one JSON object per line (``json.dumps``, so ASCII).  Line 1
is the header::

    {"format": "tradefeed-recording", "version": 2, "created_ns": 1767225600000000000,
     "tradefeed": "0.1.0"}

Then one line per event, in the order the recorder saw them (feeds interleave)::

    {"kind": "feed", "t_ns": 1767225600001000000, "feed": "dopp-1", "venue": "dopp",
     "connection": 0, "params": {"instrument_name": "BTC-PERPETUAL"}}
    {"kind": "frame", "t_ns": 1767225600001000000, "feed": "dopp-1", "venue": "dopp",
     "frame": "[{\\"last_trades\\": []}]", "encoding": "utf-8"}
    {"kind": "tick", "t_ns": 1767225630001000000, "feed": "snx", "venue": "synthetix"}
    {"kind": "subscription", "t_ns": 1767225640001000000, "feed": "snx", "venue": "synthetix",
     "action": "unsubscribe", "items": ["ETH-USDT"], "opened": true,
     "params": {"symbols": ["BTC-USDT"]}}

- ``feed`` comes before the first event of each connection of a feed (``connection``
  numbers them from 0: a replay starts a fresh adapter there, as the live feed did),
  with the parameters that connection's adapter was made from; credentials never
  reach them.  (Version 1 also wrote one when the parameters changed on the same
  connection, and a replay still reads that as the change.)
- ``frame`` is one data frame as received, before parsing; ``t_ns`` is its receive
  time (``Trade.received_ns``).  No ``encoding``: the frame was a ``str``;
  ``"utf-8"``: it was ``bytes`` (websocket-client hands text frames over as bytes)
  and ``frame`` is their text; ``"base64"``: bytes that are not UTF-8.
- ``tick`` marks a call of the adapter's ``tick()``, which may send requests whose
  replies the adapter matches by id (Synthetix polling).
- ``subscription`` (version 2) is a run-time ``Feed.subscribe``/``unsubscribe``
  (``action``) of ``items``, where the live adapter took it among the frames: a replay
  makes the same call there, so request ids (Synthetix, SynFutures) and dropped
  in-flight trades match the live run however changes and frames interleave.
  ``opened`` false: the change came before the connection opened, so the adapter's
  ``on_open`` (which a replay calls before the connection's first frame, tick or opened
  change) already included it.  ``params`` are the parameters after it.

Every other key is ignored, so a version may grow fields; a reader refuses a higher
version.  A line that breaks these rules raises :class:`RecordingError` naming the file
and line.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Callable, Collection, Iterator

from . import __version__
from .adapters import REGISTRY, Adapter
from .dedup import Deduplicator
from .dispatcher import Dispatcher
from .exceptions import AuthError, ConfigError, FeedError, ParseError, TradefeedError
from .manager import FeedManager
from .models import SubscriptionChange, Trade

__all__ = [
    "FORMAT",
    "VERSION",
    "Entry",
    "Recorder",
    "RecordingError",
    "ReplayStats",
    "read",
    "replay",
]

log = logging.getLogger(__name__)

#: the header's ``format`` value
FORMAT = "tradefeed-recording"
#: the format version written; readers accept it and older ones (2: subscription lines)
VERSION = 2
_KINDS = ("feed", "frame", "tick", "subscription")
_ACTIONS = ("subscribe", "unsubscribe")


class RecordingError(ConfigError):
    """A recording file cannot be used: unreadable, not a recording, or a bad line.

    The message reads ``path:line: problem``.
    """

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__("%s:%d: %s" % (path, line, message), problems=[("", line, message)])
        #: the file
        self.path = path
        #: the 1-based line at fault
        self.line = line


# -- writing ------------------------------------------------------------------------------


class Recorder:
    """Writes every raw frame a :class:`~tradefeed.FeedManager` receives to a recording.

    ::

        with Recorder("session.jsonl") as recorder:
            manager = FeedManager(recorder=recorder)
            manager.add_feed("dopp", instrument_name="BTC-PERPETUAL")
            ...                                    # start, run, stop

    Called on the connection threads (and the scheduler thread, for ticks): it is
    thread-safe and never raises there.  The first failure (a full disk, a parameter
    JSON cannot hold) is logged and kept in :attr:`error`; later events are dropped.

    :param target: a path (created, or truncated) or an open text stream (left open).
    :param limit: record this many frames, then set :attr:`full` and drop the rest.
    :param full: the event to set at *limit* (default: a new one).
    :raises OSError: the file cannot be created.
    :raises ConfigError: *limit* is not a whole number >= 1.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        limit: int | None = None,
        full: threading.Event | None = None,
    ) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError("limit must be a whole number >= 1, not %r" % (limit,))
        if isinstance(target, (str, os.PathLike)):
            self._stream: IO[str] = open(target, "w", encoding="utf-8")
            self._owned = True
            #: where it writes (a path, or the stream's name)
            self.name = str(target)
        else:
            self._stream = target
            self._owned = False
            self.name = str(getattr(target, "name", "<stream>"))
        self._lock = threading.Lock()
        self._limit = limit
        self._closed = False
        self._feeds: dict[str, tuple[int, dict[str, Any]]] = {}  # feed -> (connection, params) last written
        #: frames written so far
        self.frames = 0
        #: set once *limit* frames are written
        self.full = full if full is not None else threading.Event()
        #: the failure that stopped the recording, if one did
        self.error: BaseException | None = None
        header = {"format": FORMAT, "version": VERSION, "created_ns": time.time_ns(), "tradefeed": __version__}
        self._stream.write(_dumps(header))

    def __call__(
        self,
        feed: str,
        venue: str,
        params: dict[str, Any],
        connection: int,
        time_ns: int,
        frame: "str | bytes | SubscriptionChange | None",
    ) -> None:
        """Record one frame (``frame=None``: a ``tick()``; a :class:`SubscriptionChange`:
        a run-time subscribe or unsubscribe) of *feed*'s *connection*."""
        with self._lock:
            if self._closed or self.error is not None or self.full.is_set():
                return
            try:
                last = self._feeds.get(feed)
                if isinstance(frame, SubscriptionChange):
                    self._change(feed, venue, params, connection, time_ns, frame, last)
                    return
                if last is None or last[0] != connection or (last[1] is not params and last[1] != params):
                    line = {"kind": "feed", "t_ns": time_ns, "feed": feed, "venue": venue}
                    line.update(connection=connection, params=params)
                    self._stream.write(_dumps(line))
                    self._feeds[feed] = (connection, params)
                if frame is None:
                    self._stream.write(_dumps({"kind": "tick", "t_ns": time_ns, "feed": feed, "venue": venue}))
                    return
                line = {"kind": "frame", "t_ns": time_ns, "feed": feed, "venue": venue}
                if isinstance(frame, str):
                    line["frame"] = frame
                else:
                    try:
                        line["frame"], line["encoding"] = bytes(frame).decode("utf-8"), "utf-8"
                    except UnicodeDecodeError:
                        line["frame"], line["encoding"] = base64.b64encode(frame).decode("ascii"), "base64"
                self._stream.write(_dumps(line))
                self.frames += 1
                if self._limit is not None and self.frames >= self._limit:
                    self.full.set()
            except Exception as err:  # noqa: BLE001 - never raise into a connection thread
                self.error = err
                log.error("recording to %s failed, recording stopped: %s", self.name, err)

    def _change(
        self,
        feed: str,
        venue: str,
        params: dict[str, Any],
        connection: int,
        time_ns: int,
        change: SubscriptionChange,
        last: tuple[int, dict[str, Any]] | None,
    ) -> None:
        """A subscription line (after the connection's feed line, with the parameters its
        adapter was made from, if it is the connection's first event); holds the lock."""
        if last is None or last[0] != connection:
            line = {"kind": "feed", "t_ns": time_ns, "feed": feed, "venue": venue}
            line.update(connection=connection, params=dict(change.before))
            self._stream.write(_dumps(line))
        line = {"kind": "subscription", "t_ns": time_ns, "feed": feed, "venue": venue}
        line.update(
            action="subscribe" if change.subscribe else "unsubscribe",
            items=list(change.items),
            opened=change.opened,
            params=params,
        )
        self._stream.write(_dumps(line))
        self._feeds[feed] = (connection, params)

    def flush(self) -> None:
        """Push what is written so far to the file."""
        with self._lock:
            if not self._closed:
                self._stream.flush()

    def close(self) -> None:
        """Flush, and close the file if the recorder opened it.  Idempotent; frames
        arriving later are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._stream.flush()
            finally:
                if self._owned:
                    self._stream.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<Recorder %s, %d frames%s>" % (self.name, self.frames, ", failed" if self.error else "")


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError("a %s cannot be recorded as JSON" % type(value).__name__)


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One checked line of a recording (after the header)."""

    #: ``"feed"``, ``"frame"``, ``"tick"`` or ``"subscription"``
    kind: str
    #: its line number, from 1
    line: int
    #: receive time of the frame (the event's time for feed and tick lines), epoch ns
    t_ns: int
    feed: str
    venue: str
    #: feed lines: the connection number, from 0
    connection: int | None = None
    #: feed lines: the venue parameters
    params: dict[str, Any] | None = None
    #: frame lines: the frame as received (``str`` or ``bytes``)
    frame: str | bytes | None = None
    #: subscription lines: ``"subscribe"`` or ``"unsubscribe"``
    action: str | None = None
    #: subscription lines: the items
    items: tuple[str, ...] = ()
    #: subscription lines: the connection was open (its on_open requests sent)
    opened: bool = True


def read(path: str | os.PathLike[str]) -> Iterator[Entry]:
    """The entries of a recording, checked line by line as they are read.

    Checks: the header and its version; every line a JSON object of a known kind with
    its fields and types; a feed's frames, ticks and subscription changes after its
    first feed line, with the same venue.  Blank lines are skipped.

    :raises RecordingError: the file cannot be read, or the first line breaking a
        rule (lines before it have been yielded).
    """
    name = str(path)
    try:
        stream = open(path, "rb")
    except OSError as err:
        raise RecordingError(name, 0, "cannot read: %s" % (err.strerror or err)) from err
    venues: dict[str, str] = {}  # feed -> venue, from its feed lines
    number = 0
    with stream:
        for number, raw in enumerate(stream, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise RecordingError(name, number, "not UTF-8: %s" % err) from None
            if number == 1:
                _header(name, text)
            elif text.strip():
                yield _entry(name, number, text, venues)
    if number == 0:
        raise RecordingError(name, 1, "empty file; not a tradefeed recording")


def _header(name: str, text: str) -> None:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise RecordingError(name, 1, "not a tradefeed recording (no %r header)" % FORMAT)
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordingError(name, 1, "the header's version must be a whole number >= 1, not %r" % (version,))
    if version > VERSION:
        raise RecordingError(
            name, 1, "written in format version %d by a newer tradefeed; this one reads up to %d" % (version, VERSION)
        )


def _entry(name: str, number: int, text: str, venues: dict[str, str]) -> Entry:
    def bad(message: str) -> RecordingError:
        return RecordingError(name, number, message)

    try:
        doc = json.loads(text)
    except ValueError as err:
        raise bad("not valid JSON: %s" % err) from None
    if type(doc) is not dict:
        raise bad("a line must be a JSON object")
    kind = doc.get("kind")
    if kind not in _KINDS:
        raise bad("unknown kind %r; expected feed, frame, tick or subscription" % (kind,))
    t_ns = doc.get("t_ns")
    if isinstance(t_ns, bool) or not isinstance(t_ns, int) or t_ns < 0:
        raise bad("t_ns must be a whole number of nanoseconds >= 0, not %r" % (t_ns,))
    feed, venue = doc.get("feed"), doc.get("venue")
    for key, value in (("feed", feed), ("venue", venue)):
        if not isinstance(value, str) or not value:
            raise bad("%s must be a non-empty string, not %r" % (key, value))
    assert isinstance(feed, str) and isinstance(venue, str)
    known = venues.get(feed)
    if known is not None and known != venue:
        raise bad("feed %r is venue %r, not %r" % (feed, known, venue))
    if kind == "feed":
        connection, params = doc.get("connection"), doc.get("params")
        if isinstance(connection, bool) or not isinstance(connection, int) or connection < 0:
            raise bad("connection must be a whole number >= 0, not %r" % (connection,))
        if type(params) is not dict:
            raise bad("params must be an object, not %r" % (params,))
        venues[feed] = venue
        return Entry(kind, number, t_ns, feed, venue, connection=connection, params=params)
    if known is None:
        raise bad("a %s of feed %r before its feed line" % (kind, feed))
    if kind == "tick":
        return Entry(kind, number, t_ns, feed, venue)
    if kind == "subscription":
        action, items, opened, params = doc.get("action"), doc.get("items"), doc.get("opened", True), doc.get("params")
        if action not in _ACTIONS:
            raise bad("action must be subscribe or unsubscribe, not %r" % (action,))
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise bad("items must be a non-empty list of strings, not %r" % (items,))
        if not isinstance(opened, bool):
            raise bad("opened must be true or false, not %r" % (opened,))
        if params is not None and type(params) is not dict:
            raise bad("params must be an object, not %r" % (params,))
        return Entry(kind, number, t_ns, feed, venue, params=params, action=action, items=tuple(items), opened=opened)
    frame, encoding = doc.get("frame"), doc.get("encoding")
    if not isinstance(frame, str):
        raise bad("frame must be a string, not %r" % (frame,))
    data: str | bytes
    try:
        if encoding is None:
            data = frame
        elif encoding == "utf-8":
            data = frame.encode("utf-8")
        elif encoding == "base64":
            data = base64.b64decode(frame, validate=True)
        else:
            raise bad("unknown encoding %r; expected utf-8 or base64" % (encoding,))
    except (UnicodeEncodeError, binascii.Error) as err:
        raise bad("frame is not valid %s: %s" % (encoding, err)) from None
    return Entry(kind, number, t_ns, feed, venue, frame=data)


# -- replaying ----------------------------------------------------------------------------


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
