"""One attempt's socket, from token to close: :func:`connect_and_stream`.

Run on the connection's thread by ``Connection._attempt`` (:mod:`tradefeed.connection`)
once it has made the attempt's adapter: fetch a token if the venue needs one, open the
TCP (and TLS) socket, hand it to websocket-client's ``WebSocketApp`` for the handshake,
run that until the socket ends (its callbacks and the per-frame path are the
connection's), then say what the end means (an :class:`~tradefeed._attempt.Outcome`;
:func:`~tradefeed._attempt.classify` decides it).  What must not go here: the retry loop
and its waits, the making of the adapter and the attempt's teardown
(:mod:`tradefeed.connection`), and the reading of frames (:mod:`tradefeed._framing`).

The TCP (and TLS) socket is opened by us (:func:`~tradefeed._transport.open_socket`)
rather than by websocket-client, for three reasons: a connect timeout per feed without
touching websocket-client's process-wide default, a socket that ``stop()`` can shut down
at any moment (connecting, handshaking or streaming), and a cheap "more bytes pending?"
test for batching.

What this needs of its connection is :class:`Host`, which
:class:`~tradefeed.connection.Connection` is; this module must not import
``tradefeed.connection`` (which imports it), not even for type checking.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import websocket

from ._attempt import Attempt, Outcome, classify
from ._framing import BufferedSocket, FrameLoop
from ._settings import ConnectionSettings
from ._transport import drain, open_socket, shutdown
from .adapters.base import CloseAction
from .auth import TokenProvider
from .exceptions import AuthError, ConfigError, FeedClosedError, TransportError
from .models import Status

__all__ = ["Host", "connect_and_stream"]

# the connection's logger: these lines were always its own (the CLI quiets its INFO)
log = logging.getLogger("tradefeed.connection")


class Host(Protocol):
    """What connecting needs of its connection (:class:`~tradefeed.connection.Connection`):
    what to connect to and with, the stop flag, and the callbacks websocket-client runs."""

    name: str
    venue: str
    url: str | None
    settings: ConnectionSettings
    _tokens: TokenProvider | None
    #: set by stop(): no new socket, and an opened one is shut down at once
    _stop: threading.Event
    #: serializes calls into the adapter (its on_close decides a close's meaning)
    _lock: threading.Lock
    #: the end of the wake-up pair that this thread's socket waits watch
    _wake_r: socket.socket | None
    #: the socket being opened or open, for abort() (written here)
    _raw_sock: socket.socket | None

    def _emit(self, status: Status, **detail: Any) -> None: ...
    def _on_open(self, attempt: Attempt) -> None: ...
    def _on_message(self, attempt: Attempt, data: Any) -> None: ...
    def _on_ws_error(self, attempt: Attempt, err: BaseException) -> None: ...
    def _on_close(self, attempt: Attempt, code: int | None, reason: str | None) -> None: ...
    def _on_control_frame(self) -> None: ...


def connect_and_stream(conn: Host, attempt: Attempt) -> Outcome:
    """One attempt's socket: token, connect, handshake, then websocket-client's run
    until the socket ends; says what to do next."""
    adapter = attempt.adapter
    if adapter.needs_token and conn._tokens is not None:  # else a key-less stream (Rails' public tape)
        failure = _fetch_token(conn, attempt)
        if failure is not None:
            return failure
    handshake = adapter.handshake(conn.url, attempt.token.value if attempt.token else None)
    conn._emit(Status.CONNECTING, url=handshake.url)
    parts = urlsplit(handshake.url)
    secure = parts.scheme == "wss"
    drain(conn._wake_r)  # wake-ups meant for an earlier attempt; stop() also sets _stop:
    if conn._stop.is_set():
        return Outcome(None, CloseAction.STOP)
    try:
        sock = open_socket(
            parts.hostname or "",
            parts.port or (443 if secure else 80),
            secure=secure,
            timeout=conn.settings.connect_timeout,
            wake=conn._wake_r,
            ssl_context=conn.settings.ssl_context,
            register=lambda sock: _register_socket(conn, sock),
        )
    except OSError as err:  # ssl.SSLError is one too
        error = TransportError(
            "%s: cannot connect to %s: %s" % (conn.name, _host(handshake.url), err), venue=conn.venue, feed=conn.name
        )
        error.__cause__ = err
        conn._emit(Status.DISCONNECTED, error=error)
        return Outcome(error, CloseAction.RECONNECT)
    if sock is None or conn._stop.is_set():  # stopped while connecting
        return Outcome(None, CloseAction.STOP)
    attempt.sock = sock
    reader = BufferedSocket(sock)
    headers = dict(handshake.headers)
    # websocket-client writes an Origin header of its own: hand ours to it instead
    origin = next((headers.pop(k) for k in list(headers) if k.lower() == "origin"), None)
    app = websocket.WebSocketApp(
        handshake.url,
        header=headers,
        subprotocols=list(handshake.subprotocols) or None,
        on_open=lambda app: conn._on_open(attempt),
        on_message=lambda app, data: conn._on_message(attempt, data),
        on_error=lambda app, err: conn._on_ws_error(attempt, err),
        on_close=lambda app, code, reason: conn._on_close(attempt, code, reason),
        on_ping=lambda app, data: conn._on_control_frame(),
        on_pong=lambda app, data: conn._on_control_frame(),
        socket=reader,  # type: ignore[arg-type]  # a socket in all but class
    )
    attempt.app = app
    attempt.loop = FrameLoop(
        reader,
        lambda: app.keep_running,
        lambda data: conn._on_message(attempt, data),
        lambda: _mid_message(app),
        conn._on_control_frame,
        conn._wake_r,
    )
    # ping_interval=0: pings are sent by the shared scheduler, not a thread per socket
    app.run_forever(skip_utf8_validation=True, ping_interval=0, origin=origin, dispatcher=attempt.loop)
    return _outcome(conn, attempt)


def _fetch_token(conn: Host, attempt: Attempt) -> Outcome | None:
    """Get a valid token for this attempt; an outcome if that failed."""
    if conn._tokens is None:
        raise ConfigError("%s: the venue needs credentials (api_key, api_secret)" % conn.venue)
    try:
        attempt.token = conn._tokens.token(wait=conn._stop.wait)
    except AuthError as err:
        err.venue = conn.venue
        conn._emit(Status.DISCONNECTED, error=err)
        return Outcome(None if conn._stop.is_set() else err, CloseAction.STOP)
    except TransportError as err:
        err.venue, err.feed = conn.venue, conn.name
        if conn._stop.is_set():
            return Outcome(None, CloseAction.STOP)
        conn._emit(Status.DISCONNECTED, error=err)
        return Outcome(err, CloseAction.RECONNECT)
    return None


def _outcome(conn: Host, attempt: Attempt) -> Outcome:
    stable = attempt.healthy and time.monotonic() - attempt.opened_at >= conn.settings.healthy_after
    if conn._stop.is_set():  # our own close: nothing went wrong
        conn._emit(Status.DISCONNECTED, reason="stopped")
        return Outcome(None, CloseAction.STOP, attempt.healthy, stable)
    if attempt.rotating:  # our own close, to reconnect with a fresh token
        conn._emit(Status.DISCONNECTED, reason="token refresh")
        return Outcome(None, CloseAction.RECONNECT, attempt.healthy, stable, immediate=True)
    with conn._lock:  # the adapter's on_close decides a close's meaning
        outcome = classify(attempt, conn.name, conn.venue, stable)
    error = outcome.error
    assert error is not None
    if attempt.opened or not isinstance(error, TransportError):
        log.info("%s", error)
    conn._emit(Status.DISCONNECTED, error=error, **({"code": error.code} if isinstance(error, FeedClosedError) else {}))
    return outcome


def _register_socket(conn: Host, sock: socket.socket) -> None:
    conn._raw_sock = sock
    if conn._stop.is_set():
        shutdown(sock)


def _mid_message(app: websocket.WebSocketApp) -> bool:
    """Is websocket-client inside a fragmented message (``continuous_frame`` state)?"""
    cont = getattr(app.sock, "cont_frame", None)
    return getattr(cont, "recving_frames", None) is not None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return "%s:%s" % (parts.hostname, parts.port or "")

