"""The sockets under a connection: opening them, guarding the handshake, redacting logs.

Owned here, because websocket-client cannot be told to do it:

- a TCP (+TLS) connect with a per-feed timeout that ``stop()`` can interrupt, using
  ``poll`` (not ``select``, which fails once descriptors pass 1024);
- refusing HTTP redirects during the WebSocket handshake: websocket-client follows
  them itself, re-sending the request's headers and subprotocols (a bearer token) to
  whatever host ``Location`` names.  It closes our socket just before it does, so a
  socket whose ``close()`` raises while the handshake is running stops the redirect;
- a filter on the ``websocket`` logger that blanks bearer tokens, which websocket-client
  would otherwise log (it logs a refused subprotocol list verbatim).

Nothing here knows about venues, threads or trades.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import socket
import ssl
import sys
import time
from typing import Any

__all__ = ["open_socket", "writable", "shutdown", "RedirectRefused", "end_handshake"]

_POLL_ERRORS = select.POLLERR | select.POLLHUP | select.POLLNVAL


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
    wake_fd: int | None,
    ssl_context: ssl.SSLContext | None,
    register: Any,
) -> socket.socket | None:
    """A connected TCP socket (TLS-wrapped when *secure*), with *timeout* set for the
    handshake and reads; None if *wake_fd* became readable (the feed is stopping).

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
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise OSError(code, os.strerror(code))
            if code:
                if not _wait_writable(sock, wake_fd, deadline):
                    if wake_fd is not None and _readable(wake_fd):
                        _quiet_close(sock)
                        return None
                    raise TimeoutError("connect timed out after %gs" % timeout)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
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


def _wait_writable(sock: socket.socket, wake_fd: int | None, deadline: float) -> bool:
    """Wait until *sock* connects (writable) or fails; False on wake-up or timeout."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    if wake_fd is not None:
        poller.register(wake_fd, select.POLLIN)
    remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
    events = poller.poll(remaining_ms)
    return bool(events) and not any(fd == wake_fd for fd, _ in events)


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def writable(sock: socket.socket | None) -> bool:
    """Could a small frame be sent now without blocking (the peer is reading)?"""
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return bool(events) and not events[0][1] & _POLL_ERRORS


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
