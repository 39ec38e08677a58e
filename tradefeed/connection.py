"""One feed's connection: a daemon thread running websocket-client's ``WebSocketApp``
inside our own reconnect loop.

This module owns the connection's life on its thread: the retry loop (attempt, wait,
reconnect), each attempt's fresh adapter and its teardown, websocket-client's callbacks,
and the per-frame hot path (``_received``: parse, then hand to the pipeline).  Its other pieces live below it, and
none of them imports this module:

- :mod:`tradefeed._settings`: :class:`ConnectionSettings`, the per-feed tuning (a
  frozen value, documented here);
- :mod:`tradefeed._controls`: what other threads do with a connection (start, stop,
  abort, join; stats, params, run-time subscription changes), :class:`Connection`'s
  base class;
- :mod:`tradefeed._connect`: one attempt's socket, from token to close (open it,
  handshake, run websocket-client on it) and what its end reports; why the socket is
  ours, not websocket-client's, is told there;
- :mod:`tradefeed._attempt`: what one attempt learned and what its end means
  (:func:`~tradefeed._attempt.classify`; websocket-client's exceptions become
  :mod:`tradefeed.exceptions` there);
- :mod:`tradefeed._retry`: the reconnect policy, what to do after that end (stop with
  which error, or wait how long: backoff, ``Retry-After``, token refreshes), pure
  arithmetic; the loop here does the waiting;
- :mod:`tradefeed._jobs`: the timed jobs of an attempt, run on the shared scheduler
  thread (pings, ticks, staleness, token rotation, stalled lines of a redundant feed);
- :mod:`tradefeed.pipeline`: everything after parsing (de-duplication, seams, gaps,
  the batch);
- :mod:`tradefeed._transport`: opening the sockets, the handshake's guard, waits;
- :mod:`tradefeed._framing`: reading frames off the socket (the buffered socket and
  the frame loop websocket-client runs).

Only this module, ``_connect``, ``_attempt`` and ``_jobs`` import ``websocket``.  Each frame is parsed
by the venue adapter and handed to the connection's
:class:`~tradefeed.pipeline.Pipeline`; everything parsed while the socket still has
bytes pending goes over in one ``put`` (up to ``batch_items``), so under load the
consumer wakes once per batch, not once per frame.  It never runs user code and never
blocks on the queue.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from typing import Any, Callable

import websocket

from ._public import document_in
from .adapters.base import Adapter
from ._transport import end_handshake, writable
from .auth import TokenProvider
from ._attempt import Attempt, Outcome
from ._connect import connect_and_stream
from ._controls import ConnectionControls
from ._jobs import schedule, watch_join
from ._retry import decide
from ._settings import ConnectionSettings
from .feedstate import FeedState, Line
from .exceptions import AuthError, FeedError, ParseError, TradefeedError
from .models import Status, StatusEvent
from .pipeline import Pipeline
from .scheduler import Scheduler

__all__ = ["Connection", "ConnectionSettings"]

# documented here: its repr, tracebacks and pickles name this module
document_in(__name__, ConnectionSettings)

log = logging.getLogger(__name__)


class Connection(ConnectionControls):
    """Runs one feed on thread ``tradefeed-<name>`` until stopped or a fatal error.

    :param name: feed name, e.g. ``"dopp-1"``.
    :param adapter_cls: the venue's adapter; a fresh one is made from *params* per attempt.
    :param params: the feed's venue parameters (validated already).
    :param url: base URL override (None: the adapter's production URL).
    :param token_provider: bearer tokens, for venues whose adapter ``needs_token``.
    :param put: hands a batch (list) to the dispatcher; must not block.
    :param on_end: called on this thread with the fatal error (or None) when it ends.
    """

    def __init__(
        self,
        *,
        name: str,
        venue: str,
        adapter_cls: type[Adapter],
        params: dict[str, Any],
        url: str | None,
        settings: ConnectionSettings,
        token_provider: TokenProvider | None = None,
        signer: Any = None,
        state: FeedState | None = None,
        index: int = 1,
        put: Callable[[list[Any], str], None],
        scheduler: Scheduler,
        on_end: Callable[["Connection", TradefeedError | None], None],
    ) -> None:
        self.name = name
        self.venue = venue
        self.url = url
        self.settings = settings
        self._adapter_cls = adapter_cls
        self._params = dict(params)
        self._tokens = token_provider
        self._signer = signer
        self._put = put
        self._scheduler = scheduler
        self._on_end = on_end
        self._stop = threading.Event()
        self._lock = threading.Lock()  # serializes calls into the adapter
        self.state = state if state is not None else FeedState(settings.dedup_window, settings.join_timeout)
        #: 1-based number of this connection within its feed (redundancy)
        self.index = index
        #: set once this connection delivered data (a rotation's replacement is then ready)
        self.data_seen = threading.Event()
        #: set when the manager retires this connection (rotation): its end is not the feed's
        self.retiring = False
        #: rotation: whether the replacement was in sync when this one was retired (else
        #: it held nothing back once join_timeout had passed); its stopped event says so
        self.retired_in_sync = True
        self._record = settings.recorder
        self._current: Attempt | None = None
        self._raw_sock: socket.socket | None = None
        # a byte written to _wake_w (any thread) ends this thread's socket wait at once
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._rx_frames = 0  # every frame, pongs included: the liveness counter
        self.status = Status.STOPPED
        #: ``time.monotonic()`` when the status last went from connected to anything else
        #: or back (or the thread started): how long a feed has been up, or down (health)
        self.connected_changed = time.monotonic()
        self.messages = 0
        self.errors = 0
        self.reconnects = 0
        #: how many of this feed's trades the queue dropped (set by the manager)
        self.dropped: Callable[[str], int] = lambda name: 0
        # this connection among the feed's (line arbitration, FeedState)
        self._line = Line(self)
        #: parsed trades -> de-duplication, seam, gaps -> the batch handed to the dispatcher
        self._pipe = Pipeline(name, venue, self.state, self._line, put, settings.batch_items)
        #: set while this connection is live and caught up with the feed's other
        #: connections (they may then fail without loss); see FeedState
        self.in_sync = self._line.in_sync
        #: the error that ended the feed, if one did
        self.fatal_error: TradefeedError | None = None
        suffix = "" if index == 1 else "#%d" % index
        self._thread = threading.Thread(target=self._run, name="tradefeed-" + name + suffix, daemon=True)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.settings.backoff
        fatal: TradefeedError | None = None
        refreshes = 0  # token refreshes in a row without a healthy connection
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        try:
            while not self._stop.is_set():
                outcome = self._attempt()
                if self._stop.is_set():
                    break
                step = decide(outcome, backoff, refreshes, random.random(), self.name, self.venue)
                if step.invalidate_token and self._tokens is not None:
                    self._tokens.invalidate(outcome.token)
                if step.stop:
                    fatal = step.fatal
                    break
                backoff, refreshes = step.backoff, step.refreshes
                self.reconnects += 1
                self._emit(Status.RECONNECTING, delay=step.delay, attempt=backoff.retries, error=outcome.error)
                if step.delay and self._stop.wait(step.delay):
                    break
        except Exception as err:  # noqa: BLE001 - a bug of ours ends this feed, loudly, not the process
            log.exception("%s: connection thread failed", self.name)
            fatal = FeedError("%s: internal error: %r" % (self.name, err), venue=self.venue, feed=self.name)
            fatal.__cause__ = err
        finally:
            if isinstance(fatal, AuthError) and fatal.venue is None:
                fatal.venue = self.venue
            self.fatal_error = fatal
            if fatal is not None:
                self._pipe.pending.append(fatal)
            final: dict[str, Any] = {"error": fatal} if fatal is not None else {}
            if self.retiring:
                final["reason"] = "rotated"
                final["in_sync"] = self.retired_in_sync
            self._emit(Status.STOPPED, **final)
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = None
            for end in (wake_r, wake_w):
                end.close()
            self._on_end(self, fatal)

    def _attempt(self) -> Outcome:
        """One cycle: token, connect, stream until closed; says what to do next."""
        with self._lock:  # a subscription change sees either the old adapter or this one
            attempt = Attempt(self._adapter_cls.from_params(**self._params))
            if self._signer is not None:
                attempt.adapter.signer = self._signer
            self._current = attempt
        with self.state.lock:
            last_seen = dict(self.state.last_seen)
        with self._lock:
            checked = attempt.adapter.resume(last_seen)
        if not attempt.adapter.sequenced:  # sequenced venues show holes by their sequence
            self._pipe.seam = set(last_seen) if checked is None else set(checked) & set(last_seen)
        try:
            return connect_and_stream(self, attempt)
        finally:
            self._leave(attempt)
            with self._lock:
                self._current = None
            for job_id in attempt.jobs:
                self._scheduler.cancel(job_id)
            self._raw_sock = None
            if attempt.loop is not None:
                attempt.loop.close()
            if attempt.sock is not None:
                end_handshake(attempt.sock)
                try:
                    attempt.sock.close()
                except OSError:
                    pass  # closing is best effort

    # -- WebSocketApp callbacks (this thread) -------------------------------------------

    def _on_open(self, attempt: Attempt) -> None:
        try:
            self._opened(attempt)
        except Exception as err:  # noqa: BLE001 - websocket-client would swallow it and keep reading
            self._internal_error(attempt, "opening", err)

    def _opened(self, attempt: Attempt) -> None:
        end_handshake(attempt.sock)
        attempt.opened_at = time.monotonic()
        ws = attempt.app.sock if attempt.app is not None else None
        if ws is None or ws.sock is None:
            return
        self._emit(Status.CONNECTED)
        with self._lock:
            attempt.opened = True
            frames = attempt.adapter.on_open(time.time_ns())
        self._join(attempt)
        self._send(attempt, frames)
        schedule(self, attempt)

    def _on_message(self, attempt: Attempt, data: Any) -> None:
        try:
            self._received(attempt, data)
        except Exception as err:  # noqa: BLE001 - a bug of ours: reconnect rather than limp on
            self._internal_error(attempt, "handling a frame", err)

    def _received(self, attempt: Attempt, data: Any) -> None:
        received_ns = time.time_ns()
        self._rx_frames += 1
        self.messages += 1
        pipe = self._pipe
        if len(data) > self.settings.max_frame_bytes:
            self.errors += 1
            pipe.pending.append(
                ParseError(
                    "%s: frame of %d bytes is over max_frame_bytes (%d); not parsed"
                    % (self.name, len(data), self.settings.max_frame_bytes),
                    raw=data[:1024],
                    venue=self.venue,
                    feed=self.name,
                )
            )
            if not self._more_pending(attempt):
                pipe.flush()
            return
        try:
            with self._lock:
                if self._record is not None:  # under the lock: params match the adapter's
                    self._record(self.name, self.venue, self._params, self.reconnects, received_ns, data)
                parsed = attempt.adapter.parse(data, received_ns)
        except ParseError as err:
            err.feed = self.name
            self.errors += 1
            pipe.pending.append(err)
        except (AuthError, FeedError) as err:  # the venue refused us: this connection ends
            self._refused(attempt, err)
        except Exception as err:  # noqa: BLE001 - an adapter bug must not kill the connection
            log.exception("%s: adapter failed on a frame", self.name)
            wrapped = ParseError("%s: adapter failed: %r" % (self.name, err), raw=data, venue=self.venue, feed=self.name)
            wrapped.__cause__ = err
            self.errors += 1
            pipe.pending.append(wrapped)
        else:
            if parsed.trades:
                pipe.trades(parsed.trades, attempt.adapter.sequenced, received_ns)
            if parsed.errors:
                for error in parsed.errors:
                    if isinstance(error, FeedError):
                        error.feed = self.name
                self.errors += len(parsed.errors)
                pipe.pending.extend(parsed.errors)
            if parsed.replies:
                self._send(attempt, parsed.replies)
            if not parsed.heartbeat:
                attempt.healthy = True
                if not self.data_seen.is_set():
                    self.data_seen.set()
        pending = pipe.pending
        if pending and (len(pending) >= self.settings.batch_items or not self._more_pending(attempt)):
            pipe.flush()

    # -- redundancy: line arbitration (FeedState) ---------------------------------------

    def _join(self, attempt: Attempt) -> None:
        """Open: take this connection's place among the feed's; if another is live, this
        one is joining, and a watchdog looks for connections that fail to catch up."""
        if self._pipe.join(time.monotonic()):
            watch_join(self, attempt)

    def _leave(self, attempt: Attempt) -> None:
        """End of an attempt: trades other connections held for this one to deliver are
        released (with the seam's Gap checks) and handed over from this thread."""
        self._pipe.leave(attempt.adapter.sequenced)

    def _on_control_frame(self) -> None:
        """A ping or pong: proof of life, and the end of a burst (a data frame that saw
        these bytes pending must not wait for the next data frame to be handed over)."""
        self._rx_frames += 1
        if self._pipe.pending:
            self._pipe.flush()

    def _on_ws_error(self, attempt: Attempt, err: BaseException) -> None:
        # websocket-client also reports a received close frame here, as an exception
        # carrying status_code (None when the frame had no code: that is 1005, a clean
        # close, not a lost connection).  Keep the first real error.
        if isinstance(err, websocket.WebSocketConnectionClosedException) and hasattr(err, "status_code"):
            if attempt.close_code is None:
                attempt.close_code = err.status_code or 1005
                attempt.close_reason = getattr(err, "reason", None) or ""
        elif attempt.error is None:
            attempt.error = err

    def _on_close(self, attempt: Attempt, code: int | None, reason: str | None) -> None:
        if code is not None:
            attempt.close_code = code
            attempt.close_reason = reason or ""

    def _refused(self, attempt: Attempt, err: AuthError | FeedError) -> None:
        """The adapter read a refusal (a rejected signature, a lost session): close the
        socket and send nothing more on it.  An AuthError then ends the feed."""
        if isinstance(err, FeedError):
            err.feed = self.name
        log.info("%s: %s", self.name, err)
        if attempt.error is None:
            attempt.error = err
        self._close(attempt, b"")
        self._interrupt(attempt.sock)

    def _internal_error(self, attempt: Attempt, doing: str, err: Exception) -> None:
        log.exception("%s: internal error while %s; reconnecting", self.name, doing)
        error = FeedError("%s: internal error while %s: %r" % (self.name, doing, err), venue=self.venue, feed=self.name)
        error.__cause__ = err
        if attempt.error is None:
            attempt.error = error
        self._interrupt(attempt.sock)

    # -- helpers ----------------------------------------------------------------------

    def _more_pending(self, attempt: Attempt) -> bool:
        """Are more bytes waiting on the socket (so more frames will follow at once)?"""
        return attempt.loop is not None and attempt.loop.pending()

    def _emit(self, status: Status, **detail: Any) -> None:
        """Queue a status event behind whatever is pending, and hand both over."""
        if (status is Status.CONNECTED) is not (self.status is Status.CONNECTED):
            self.connected_changed = time.monotonic()
        self.status = status
        if self.redundant:
            detail["connection"] = self.index
        self._pipe.pending.append(StatusEvent(self.name, self.venue, status, time.time_ns(), detail))
        self._pipe.flush()

    def _close(self, attempt: Attempt, reason: bytes) -> bool:
        """Send a close frame (1000) if that cannot block; False if it was not sent."""
        ws = attempt.app.sock if attempt.app is not None else None
        if ws is None or not ws.connected or not writable(attempt.sock):
            return False  # not open, or the peer stopped reading: a send could hang
        try:
            ws.send_close(websocket.STATUS_NORMAL, reason)
        except (websocket.WebSocketException, OSError):
            return False
        return True

    def _send(self, attempt: Attempt, frames: Any) -> None:
        app = attempt.app
        for frame in frames:
            try:
                if app is None:
                    raise websocket.WebSocketConnectionClosedException("not connected")
                app.send(frame)
            except (websocket.WebSocketException, OSError) as err:
                log.debug("%s: send failed (%s); the reader will see the close", self.name, err)
                return
