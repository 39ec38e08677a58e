"""The timed jobs of one connection attempt: WebSocket pings and the pong deadline, the
adapter's ``tick()``, the stale-data watchdog, the watch for stalled lines of a
redundant feed, and the reconnect before a token expires.

:func:`schedule` (and :func:`watch_join`, for a connection that joins a live feed) adds
them to the shared :class:`~tradefeed.scheduler.Scheduler` when an attempt opens; the
attempt's end cancels them (``attempt.jobs``).  They run on the scheduler's one thread,
so a job is quick and never blocks: it sends a small frame only when the socket can take
it, or shuts the socket down and lets the connection's thread see the end.  A job ends
itself (returns None) as soon as its attempt is no longer the current one.

What a job needs of its connection is :class:`Host`, which
:class:`~tradefeed.connection.Connection` is; this module must not import
``tradefeed.connection`` (which imports it), not even for type checking.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable, Protocol

import websocket

from ._attempt import Attempt
from ._settings import Recorder
from ._transport import writable
from .exceptions import StaleFeedError, TransportError
from .feedstate import FeedState, Line
from .pipeline import Pipeline
from .scheduler import Job, Scheduler

__all__ = ["Host", "Timing", "schedule", "watch_join"]

# the connection's logger: these lines were always its own (the CLI quiets its INFO)
log = logging.getLogger("tradefeed.connection")


class Timing(Protocol):
    """The settings the jobs read (of :class:`~tradefeed.connection.ConnectionSettings`)."""

    @property
    def ping_interval(self) -> float: ...
    @property
    def ping_timeout(self) -> float: ...
    @property
    def stale_after(self) -> float | None: ...
    @property
    def reconnect_on_stale(self) -> bool: ...


class Host(Protocol):
    """What a job needs of its connection (:class:`~tradefeed.connection.Connection`).

    The jobs only read these; they write to the :class:`~tradefeed._attempt.Attempt`
    they belong to (its error, ``rotating``, ``jobs``).
    """

    name: str
    venue: str
    #: 1-based number of the connection within its feed
    index: int
    state: FeedState
    #: attempts so far (the recorder numbers them)
    reconnects: int
    #: the attempt now running (None between attempts): a job of another one ends
    _current: Attempt | None
    #: every frame received, pongs included: the liveness counter
    _rx_frames: int
    #: serializes calls into the adapter (and the recorder)
    _lock: threading.Lock
    _record: Recorder | None
    _params: dict[str, Any]
    _pipe: Pipeline
    _line: Line
    _put: Callable[[list[Any], str], None]
    _scheduler: Scheduler

    @property
    def settings(self) -> Timing: ...
    def _interrupt(self, sock: socket.socket | None) -> None: ...
    def _close(self, attempt: Attempt, reason: bytes) -> bool: ...
    def _send(self, attempt: Attempt, frames: Any) -> None: ...


def schedule(host: Host, attempt: Attempt) -> None:
    """*attempt* opened: add its pings, ticks, stale watchdog and token rotation."""
    settings = host.settings
    scheduler = host._scheduler
    if settings.ping_interval > 0:
        attempt.jobs.append(scheduler.add(settings.ping_interval, _heartbeat_job(host, attempt)))
    interval = attempt.adapter.tick_interval
    if interval:
        attempt.jobs.append(scheduler.add(interval, _tick_job(host, attempt, interval)))
    stale_after = settings.stale_after
    if stale_after:
        attempt.jobs.append(scheduler.add(max(0.05, stale_after / 4), _stale_job(host, attempt, stale_after)))
    refresh_at = attempt.token.refresh_at() if attempt.token is not None else None
    if refresh_at is not None:
        delay = max(0.0, refresh_at - time.time())
        attempt.jobs.append(scheduler.add(delay, _rotate_job(host, attempt)))


def watch_join(host: Host, attempt: Attempt) -> None:
    """*attempt* joins a feed another connection is live on: watch for the connections
    that fail to catch up (see :func:`_join_job`)."""
    every = max(0.05, host.state.join_timeout / 4)
    attempt.jobs.append(host._scheduler.add(every, _join_job(host, attempt, every)))


def _heartbeat_job(host: Host, attempt: Attempt) -> Job:
    """Ping every ``ping_interval``; abort when nothing arrived ``ping_timeout`` after."""
    interval, timeout = host.settings.ping_interval, host.settings.ping_timeout
    sent_at_frame: list[int | None] = [None]

    def job(now: float) -> float | None:
        if host._current is not attempt:
            return None
        if sent_at_frame[0] is not None:  # the check, ping_timeout after the ping
            if host._rx_frames == sent_at_frame[0]:
                attempt.error = TransportError(
                    "%s: no pong or data within %gs of a ping" % (host.name, timeout), venue=host.venue, feed=host.name
                )
                log.warning("%s", attempt.error)
                host._interrupt(attempt.sock)
                return None
            sent_at_frame[0] = None
            return max(interval - timeout, 0.001)
        ws = attempt.app.sock if attempt.app is not None else None
        if ws is None:
            return None
        sent_at_frame[0] = host._rx_frames
        if writable(attempt.sock):  # never block the shared scheduler on a stuck peer
            try:
                ws.ping()
            except (websocket.WebSocketException, OSError):
                return None  # the reader thread sees the failure
        return timeout

    return job


def _tick_job(host: Host, attempt: Attempt, interval: float) -> Job:
    """The adapter's ``tick()`` every *interval* seconds, its frames sent (and the tick
    recorded, so that a replay ticks at the same place)."""

    def job(now: float) -> float | None:
        if host._current is not attempt:
            return None
        with host._lock:
            now_ns = time.time_ns()
            if host._record is not None and host._current is attempt:
                host._record(host.name, host.venue, host._params, host.reconnects, now_ns, None)
            frames = attempt.adapter.tick(now_ns)
        host._send(attempt, frames)
        return interval

    return job


def _stale_job(host: Host, attempt: Attempt, stale_after: float) -> Job:
    """Watchdog: report symbols (and the feed) without data for *stale_after* seconds."""
    limit_ns = int(stale_after * 1e9)
    opened_ns = time.time_ns()

    def job(now: float) -> float | None:
        if host._current is not attempt:
            return None
        events = host._pipe.stale(time.time_ns(), limit_ns, opened_ns)
        if events:
            host._put(events, host.name)  # from this thread straight to the queue (thread-safe)
        if host.settings.reconnect_on_stale and any(e.detail["symbol"] is None for e in events):
            attempt.error = StaleFeedError(
                "%s: no data for %gs; reconnecting" % (host.name, stale_after), venue=host.venue, feed=host.name
            )
            host._interrupt(attempt.sock)
            return None
        return max(0.05, stale_after / 4)

    return job


def _join_job(host: Host, attempt: Attempt, every: float) -> Job:
    """While joining: reconnect the connections that should deliver what this one
    holds but have brought no trades for ``join_timeout`` (their end releases it)."""

    def job(now: float) -> float | None:
        if host._current is not attempt:
            return None
        with host.state.lock:
            late = host.state.overdue(host._line, now)
        for other in late:
            _lagging(other, host)
        return every

    return job


def _lagging(host: Host, ahead: Host) -> None:
    """Another connection of this feed (*ahead*) holds trades back for *host* to
    deliver, and *host* has brought no trades for ``join_timeout``: it is stalled;
    reconnect it."""
    attempt = host._current
    if attempt is None:
        return
    if attempt.error is None:
        attempt.error = StaleFeedError(
            "%s: connection #%d brought no trades for %gs while connection #%d waits for it; reconnecting"
            % (host.name, host.index, host.state.join_timeout, ahead.index),
            venue=host.venue,
            feed=host.name,
        )
    log.warning("%s", attempt.error)
    host._interrupt(attempt.sock)


def _rotate_job(host: Host, attempt: Attempt) -> Job:
    """Before the token expires, close (1000) and reconnect at once with a new one.

    The venue's snapshot on reconnect and the de-duplication window cover the seam.
    """

    def job(now: float) -> float | None:
        if host._current is not attempt:
            return None
        log.info("%s: token expires soon; reconnecting with a fresh one", host.name)
        attempt.rotating = True
        if not host._close(attempt, b"token refresh"):
            host._interrupt(attempt.sock)
        return None

    return job
