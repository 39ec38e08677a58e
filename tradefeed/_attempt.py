"""One connection attempt: what it learned while it ran (:class:`Attempt`, written by
websocket-client's callbacks on the connection's thread), and what its end means
(:func:`classify`: the error to report and whether to reconnect, refresh the token or
stop).  Pure bookkeeping: no socket is touched here.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import websocket

from ._framing import FrameLoop
from ._transport import RedirectRefused
from .adapters.base import Adapter, CloseAction
from .auth import Token
from .exceptions import AuthError, FeedClosedError, FeedError, HandshakeError, TradefeedError, TransportError

__all__ = ["Attempt", "Outcome", "classify", "retry_after", "FATAL_HTTP"]

#: handshake statuses that end a feed (retrying the same request cannot succeed)
FATAL_HTTP = frozenset((400, 401, 403, 404, 405, 410))


class Attempt:
    """What one connection attempt learned (written by WebSocketApp callbacks)."""

    __slots__ = (
        "app", "adapter", "sock", "token", "error", "close_code", "close_reason",
        "opened", "opened_at", "healthy", "rotating", "jobs", "loop",
    )  # fmt: skip

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.app: websocket.WebSocketApp | None = None
        self.sock: socket.socket | None = None
        self.token: Token | None = None
        self.error: BaseException | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.opened = False
        self.opened_at = 0.0  # time.monotonic() at open
        self.healthy = False  # data (not just heartbeats) arrived
        self.rotating = False  # we closed it on purpose, to reconnect at once
        self.jobs: list[int] = []
        self.loop: FrameLoop | None = None


@dataclass
class Outcome:
    """How an attempt ended and what to do next."""

    error: TradefeedError | None
    action: CloseAction
    #: data arrived on the connection
    healthy: bool = False
    #: ...and it stayed up for ``healthy_after`` seconds: the backoff starts over
    stable: bool = False
    retry_after: float | None = None
    #: reconnect at once, without backoff (a planned rotation)
    immediate: bool = False
    token: Token | None = None


def classify(attempt: Attempt, name: str, venue: str, stable: bool) -> Outcome:
    """What the end of *attempt* of feed *name* means: the error to report and what to do
    next (reconnect, refresh the token, or stop), from what the attempt recorded: an
    error of ours, a refused handshake (status, ``Retry-After``), a close frame (the
    adapter's :meth:`~tradefeed.adapters.base.Adapter.on_close` decides), or a transport
    failure.  The caller holds the adapter lock."""
    err = attempt.error
    outcome = Outcome(None, CloseAction.RECONNECT, attempt.healthy, stable, token=attempt.token)
    error: TradefeedError
    if isinstance(err, AuthError):  # refused credentials, read from a reply: final
        error = err
        err = None
        outcome.action = CloseAction.STOP
    elif isinstance(err, FeedError):  # one of ours (no pong, a failing callback): as is
        error = err
        err = None
    elif isinstance(err, RedirectRefused):
        error = HandshakeError("%s: %s" % (name, err), venue=venue, feed=name)
        outcome.action = CloseAction.STOP  # a moved endpoint needs a new URL, not retries
    elif isinstance(err, websocket.WebSocketBadStatusException):
        headers = getattr(err, "resp_headers", None) or {}
        outcome.retry_after = retry_after(headers.get("retry-after") or headers.get("Retry-After"))
        status = getattr(err, "status_code", None)
        refused = _refused(attempt.adapter) if status in (400, 404, 410) else ""  # the feed's ask, named
        error = HandshakeError(
            "%s: handshake refused with HTTP %s%s" % (name, status, refused),
            status_code=status,
            retry_after=outcome.retry_after,
            venue=venue,
            feed=name,
        )
        if status in (401, 403) and attempt.token is not None:
            outcome.action = CloseAction.REFRESH_TOKEN  # once; a repeat ends the feed
        elif status in (401, 403) and attempt.adapter.needs_token:  # connected without credentials
            error = AuthError(
                "%s: %s refused the connection without credentials (HTTP %s): this stream needs API "
                "credentials; pass api_key and api_secret to add_feed (or in the feed's YAML)" % (name, venue, status),
                venue=venue,
                status_code=status,
            )
            outcome.action = CloseAction.STOP
        elif status in FATAL_HTTP:
            outcome.action = CloseAction.STOP
    elif attempt.close_code is not None:
        code, reason = attempt.close_code, attempt.close_reason
        outcome.action = attempt.adapter.on_close(code, reason)
        refused = _refused(attempt.adapter) if outcome.action is CloseAction.STOP else ""
        error = FeedClosedError(
            "%s: closed by the venue with code %d%s%s" % (name, code, " (%s)" % reason if reason else "", refused),
            code=code,
            reason=reason,
            venue=venue,
            feed=name,
        )
    elif err is not None and not isinstance(err, websocket.WebSocketConnectionClosedException):
        error = TransportError("%s: %s" % (name, err or type(err).__name__), venue=venue, feed=name)
    else:
        error = FeedClosedError("%s: connection lost without a close frame" % name, code=1006, venue=venue, feed=name)
    if err is not None:
        error.__cause__ = err
    outcome.error = error
    return outcome


def _refused(adapter: Adapter) -> str:
    """``": check this feed's instrument_name 'X'"``: what a venue that ends a feed
    most likely refused, for the error's message (empty when the adapter names nothing)."""
    asked = adapter.asked_for()
    return ": check this feed's %s" % asked if asked else ""


def retry_after(value: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
