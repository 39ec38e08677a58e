"""The sockets under a connection: opening them, guarding the handshake, redacting logs.

Owned here, because websocket-client cannot be told to do it:

- a TCP (+TLS) connect with a per-feed timeout that ``stop()`` can interrupt;
- refusing HTTP redirects during the WebSocket handshake: websocket-client follows
  them itself, re-sending the request's headers and subprotocols (a bearer token) to
  whatever host ``Location`` names.  It closes our socket just before it does, so a
  socket whose ``close()`` raises while the handshake is running stops the redirect;
- a filter on the ``websocket`` logger that blanks bearer tokens, which websocket-client
  would otherwise log (it logs a refused subprotocol list verbatim);
- waits that another thread can end at once (:func:`wake`).

Reading frames off the connected socket is :mod:`tradefeed._framing`'s job.

Every wait on a socket goes through :mod:`selectors` (``poll`` on Linux and macOS,
``select`` on Windows; see :data:`Selector`): no descriptor limit of 1024 where the
platform has none, and no POSIX-only call.  A connection thread's waits include a *wake*
socket (one end of a ``socket.socketpair()``): another thread writes a byte to it, with
:func:`wake`, to end a wait at once, whatever the platform does for a socket that is shut
down under a waiting ``select``.

Nothing here knows about venues, threads or trades.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import socket
import ssl
import sys
import time
from typing import Any

__all__ = [
    "open_socket", "writable", "shutdown", "wake", "drain", "RedirectRefused", "end_handshake", "Selector",
]  # fmt: skip

#: the selector of every wait here: ``poll`` where the platform has it (Linux, macOS:
#: any descriptor number, and no descriptor of its own, unlike ``epoll``/``kqueue``, which
#: pay off only for many descriptors per wait; ours have one or two), else ``select``
#: (Windows, where sockets are handles and a ``select`` set has no 1024 limit on values)
Selector: type[selectors.BaseSelector] = getattr(selectors, "PollSelector", selectors.SelectSelector)


class RedirectRefused(Exception):
    """The server answered the WebSocket upgrade with a redirect, which is not followed."""


class _HandshakeGuard:
    """Mixin: while ``_guarding``, a ``close()`` outside exception handling (that is,
    websocket-client about to follow a redirect) raises :class:`RedirectRefused`."""

    _guarding = True

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        if self._guarding and sys.exc_info()[1] is None:
            self._guarding = False
            raise RedirectRefused("the server answered the WebSocket upgrade with a redirect; not followed")


class _GuardedSocket(_HandshakeGuard, socket.socket):
    pass


class _GuardedSSLSocket(_HandshakeGuard, ssl.SSLSocket):
    pass


def end_handshake(sock: socket.socket | None) -> None:
    """The upgrade succeeded: ``close()`` is an ordinary close again."""
    if isinstance(sock, _HandshakeGuard):
        sock._guarding = False


def open_socket(
    host: str,
    port: int,
    *,
    secure: bool,
    timeout: float,
    wake: socket.socket | None,
    ssl_context: ssl.SSLContext | None,
    register: Any,
) -> socket.socket | None:
    """A connected TCP socket (TLS-wrapped when *secure*), with *timeout* set for the
    handshake and reads; None if *wake* became readable (the feed is stopping).

    :param register: called with each socket as soon as it exists, so another thread
        can shut it down (``stop()``).
    :raises OSError: no address could be connected (``TimeoutError`` after *timeout*).
    """
    deadline = time.monotonic() + timeout
    last_error: OSError = OSError("no address for %s" % host)
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock: socket.socket = _GuardedSocket(family, kind, proto)
        register(sock)
        try:
            sock.setblocking(False)
            try:
                sock.connect(address)
            except BlockingIOError:  # in progress: EINPROGRESS (POSIX), WSAEWOULDBLOCK (Windows)
                ready = _wait_connected(sock, wake, deadline)
                if ready is None:
                    _quiet_close(sock)
                    return None
                if not ready:
                    raise TimeoutError("connect timed out after %gs" % timeout) from None
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, strerror(code)) from None
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if secure:
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=host)
                sock.__class__ = _GuardedSSLSocket  # same layout; adds the redirect guard
                register(sock)
            return sock
        except Exception as err:
            _quiet_close(sock)
            if not isinstance(err, OSError):
                raise
            last_error = err
    raise last_error


def _wait_connected(sock: socket.socket, wake: socket.socket | None, deadline: float) -> bool | None:
    """Wait until *sock*'s connect ends (it is writable: connected or failed; Windows
    reports a failure as an exception, which ``selectors`` counts as writable).

    :returns: True when it ended, False on timeout, None when *wake* became readable.
    """
    with Selector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        if wake is not None:
            selector.register(wake, selectors.EVENT_READ, "wake")
        ready = selector.select(max(0.0, deadline - time.monotonic()))
    if any(key.data == "wake" for key, _ in ready):
        return None
    return bool(ready)


def strerror(code: int) -> str:
    """The text of a socket error number (``SO_ERROR``): Winsock's numbers (10061...)
    are not C library errors, and ``os.strerror`` calls them all "Unknown error"."""
    if sys.platform == "win32":
        import ctypes

        return ctypes.FormatError(code).strip()
    return os.strerror(code)


def writable(sock: socket.socket | None) -> bool:
    """Could a small frame be sent now without blocking (the peer is reading)?

    A socket in error counts as writable: the send then fails, and says why."""
    if sock is None:
        return False
    try:
        with Selector() as selector:
            selector.register(sock, selectors.EVENT_WRITE)
            return bool(selector.select(0))
    except (OSError, ValueError):  # closed: no descriptor any more
        return False


def wake(end: socket.socket | None) -> None:
    """Write a byte to *end* (a wake socket's write end, non-blocking): a wait that
    includes the read end returns at once.  Safe from any thread, and after the close."""
    if end is None:
        return
    try:
        end.send(b"x")
    except OSError:
        pass  # full (a wake-up is pending anyway) or closed (the thread has ended)


def drain(end: socket.socket | None) -> None:
    """Read every pending wake-up byte from *end* (a wake socket's read end, non-blocking)."""
    if end is None:
        return
    try:
        while end.recv(4096):
            pass
    except OSError:
        pass  # empty (BlockingIOError) or closed: nothing more to read


def shutdown(sock: socket.socket | None) -> None:
    """Shut *sock* down in both directions; its reader wakes up at once."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (yet, or any more): nothing to interrupt


def _quiet_close(sock: socket.socket) -> None:
    end_handshake(sock)
    try:
        sock.close()
    except OSError:
        pass  # closing is best effort here


class _RedactTokens(logging.Filter):
    """Blanks bearer tokens in the ``websocket`` logger's records."""

    _TOKEN = re.compile(r"(authorization#|Bearer\s+|Authorization:\s*\S+\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._TOKEN.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_websocket_logger = logging.getLogger("websocket")
if not any(isinstance(f, _RedactTokens) for f in _websocket_logger.filters):
    _websocket_logger.addFilter(_RedactTokens())
