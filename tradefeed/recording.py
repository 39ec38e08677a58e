"""Recording every raw frame, and replaying a recording as if it were live.

This module owns the recording file format, :class:`Recorder` (the hook that
``FeedManager(recorder=...)`` calls with each raw frame) and :func:`replay`, which
pushes a recording through fresh venue adapters, the per-feed de-duplication and the
dispatcher, so callbacks and sinks get what they got live, stamped with the recorded
receive times.  It writes the format here; reading it (:func:`read`, :class:`Entry`,
:class:`RecordingError`) is ``_recording_format.py``'s job and replaying is
``_replay.py``'s, both re-exported from here.  No socket, no thread and no command-line
code goes in any of them (that is in ``tradefeed._record_cli``); the simulator reads the
same format on its own (``tradefeed.simulator.replay``) because it must not import the
client.

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
import json
import logging
import os
import threading
import time
from typing import IO, Any

from ._public import document_in
from . import __version__
from ._recording_format import FORMAT, VERSION, Entry, RecordingError, read
from ._replay import ReplayStats, replay
from .exceptions import ConfigError
from .models import SubscriptionChange

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

# documented here: their reprs, tracebacks and pickles name this module
document_in(__name__, Entry, RecordingError, ReplayStats)

log = logging.getLogger(__name__)


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
