"""What other threads do with a connection: :class:`ConnectionControls`, the base class
of :class:`~tradefeed.connection.Connection`.

Its public methods are what the manager, the feed handle, the rotation job and the
metrics call (``start``, ``stop``, ``abort``, ``join``, ``is_alive``, ``redundant``; a
rotation's ``settled``; ``stats``, ``params``; run-time subscription changes), safe from
any thread, a user callback included.  They read the connection's state and, to end it,
shut its socket down and wake its thread (``_interrupt``, which the thread and its jobs
use too); only ``join`` waits for that thread.  What must not go here: the retry loop,
websocket-client's callbacks and the per-frame path (:mod:`tradefeed.connection`), and
any import of ``websocket``: frames go out through the connection's ``_send`` and
``_close``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ._attempt import Attempt
from ._settings import Recorder
from ._transport import shutdown, wake
from .adapters.base import Adapter
from .auth import TokenProvider
from .exceptions import ConfigError
from .feedstate import FeedState, Line
from .models import FeedStats, Status, SubscriptionChange
from .pipeline import Pipeline

__all__ = ["ConnectionControls"]


class ConnectionControls:
    """The calls other threads make on a :class:`~tradefeed.connection.Connection`."""

    # set by Connection.__init__, which documents them
    name: str
    venue: str
    state: FeedState
    status: Status
    connected_changed: float
    messages: int
    errors: int
    reconnects: int
    dropped: Callable[[str], int]
    _adapter_cls: type[Adapter]
    _params: dict[str, Any]
    _tokens: TokenProvider | None
    _record: Recorder | None
    _lock: threading.Lock
    _stop: threading.Event
    _thread: threading.Thread
    _line: Line
    _pipe: Pipeline
    _current: Attempt | None
    _raw_sock: socket.socket | None
    _wake_w: socket.socket | None

    if TYPE_CHECKING:  # Connection's: they send on the socket (websocket-client)

        def _close(self, attempt: Attempt, reason: bytes) -> bool: ...
        def _send(self, attempt: Attempt, frames: Any) -> None: ...

    @property
    def redundant(self) -> bool:
        """The feed has several connections: status events name theirs, and trades go
        through the feed's line arbitration."""
        return self._pipe.redundant

    @redundant.setter
    def redundant(self, value: bool) -> None:
        self._pipe.redundant = value

    def start(self) -> None:
        self.connected_changed = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end: a close frame (1000) if streaming, else abort."""
        self._stop.set()
        wake(self._wake_w)
        attempt = self._current
        if attempt is None or not self._close(attempt, b""):
            self.abort()

    def abort(self) -> None:
        """Shut the current socket down now; the thread notices at once."""
        self._interrupt(self._raw_sock)

    def _interrupt(self, sock: socket.socket | None) -> None:
        """End this connection's socket: shut it down and wake its thread's wait."""
        shutdown(sock)
        attempt = self._current
        if attempt is not None and attempt.loop is not None:
            attempt.loop.interrupted = True
        wake(self._wake_w)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is threading.current_thread() or not self._thread.ident:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def settled(self, since_ns: int) -> bool:
        """Rotation: this connection is live in its feed's arbitration, holds back no trade
        for another connection to deliver first, and every symbol it has not caught up on
        had no trade delivered since *since_ns* (epoch ns): quiet, or no longer subscribed."""
        state = self.state
        with state.lock:
            line = self._line
            if line not in state.lines or line.held:
                return False
            return all(state.data_ns.get(key, 0) < since_ns for key in line.due)

    def stats(self) -> FeedStats:
        """This connection's counters with its feed's shared ones (trades, gaps...)."""
        state = self.state
        last = state.last_trade_ns
        return FeedStats(
            feed=self.name,
            venue=self.venue,
            status=self.status,
            messages=self.messages,
            trades=state.trades,
            duplicates=state.dedup.dropped,
            errors=self.errors,
            reconnects=self.reconnects,
            gaps=state.gaps,
            dropped=self.dropped(self.name),
            last_trade_age=None if last is None else max(0.0, (time.time_ns() - last) / 1e9),
        )

    @property
    def params(self) -> dict[str, Any]:
        """The current venue parameters (run-time subscription changes included)."""
        return dict(self._params)

    def change_subscription(self, subscribe: bool, items: list[str]) -> None:
        """Add or remove subscription items now and for every later reconnect.

        :raises ConfigError: the venue cannot change subscriptions, an item is invalid,
            or the change would leave the feed with nothing.
        """
        cls = self._adapter_cls
        param = cls.subscription_param
        if param is None:
            raise ConfigError("%s: subscriptions cannot change at run time; add another feed" % self.venue)
        with self._lock:
            probe = cls.from_params(**self._params)
            (probe.subscribe if subscribe else probe.unsubscribe)(items)  # validates the items
            params = {**self._params, param: list(getattr(probe, param))}
            cls.from_params(**params)  # e.g. removing the last pair is refused here
            if self._tokens is None and cls.requires_credentials(params):
                raise ConfigError(
                    "%s: %s need API credentials, and this feed has none; add a feed with api_key and api_secret"
                    % (self.venue, ", ".join(map(repr, items)))
                )
            before, self._params = self._params, params
            attempt = self._current
            if attempt is None:  # between attempts: the next one starts from the new params
                return
            frames = (attempt.adapter.subscribe if subscribe else attempt.adapter.unsubscribe)(items)
            opened = attempt.opened
            if self._record is not None:  # replayed at this place, in order with the frames
                change = SubscriptionChange(subscribe, tuple(items), opened, before)
                self._record(self.name, self.venue, params, self.reconnects, time.time_ns(), change)
        if opened:
            self._send(attempt, frames)  # not yet open: on_open will include them
