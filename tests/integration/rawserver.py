"""A scripted loopback server for byte-level behaviour the simulator does not produce:
an HTTP redirect on upgrade, a control frame glued to a data frame in one write, or
replies in an exact order relative to pushed data.

It is a real TCP server on an OS-chosen port; each accepted connection gets the
script's ``respond(request) -> bytes`` written in one ``sendall`` and is closed when the
client sends a close frame or goes away (pongs are read and ignored).  Requests are
recorded.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
from typing import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def upgrade_response(request: bytes) -> bytes:
    """The 101 answer to a WebSocket upgrade request."""
    key = next(
        line.split(b":", 1)[1].strip() for line in request.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def text_frame(payload: bytes) -> bytes:
    assert len(payload) < 1 << 16
    if len(payload) < 126:
        return bytes((0x81, len(payload))) + payload
    return bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload


def close_frame(code: int) -> bytes:
    return bytes((0x88, 2)) + code.to_bytes(2, "big")


def ping_frame(payload: bytes = b"") -> bytes:
    return bytes((0x89, len(payload))) + payload


class RawServer:
    """``with RawServer(respond) as server:`` serves ``server.url``; ``server.requests``
    holds every request received, ``server.connected`` is set at the first one."""

    def __init__(self, respond: Callable[[bytes], bytes], ssl_context: "ssl.SSLContext | None" = None) -> None:
        self._respond = respond
        self._ssl = ssl_context
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = "%s://127.0.0.1:%d" % ("wss" if ssl_context else "ws", self.port)
        self.requests: list[bytes] = []
        self.connected = threading.Event()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, name="rawserver-accept", daemon=True)

    def __enter__(self) -> "RawServer":
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        except OSError:
            pass
        self._sock.close()
        for client in list(self._clients):
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self._clients.append(client)
            thread = threading.Thread(target=self._client, args=(client,), name="rawserver-client", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _client(self, client: socket.socket) -> None:
        if self._ssl is not None:
            try:
                client = self._ssl.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused our certificate
                client.close()
                return
        with client:
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = client.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                self.requests.append(request)
                self.connected.set()
                client.sendall(self._respond(request))
                while True:  # until the client's close frame (opcode 8) or EOF, then hang up
                    data = client.recv(4096)
                    if not data or data[0] & 0x0F == 0x8:
                        return
            except OSError:
                return
