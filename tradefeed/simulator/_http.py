"""A minimal HTTP/1.1 server on the simulator's event loop, for venues' REST side.

This module owns the HTTP side-server that :mod:`tradefeed.simulator.server`
runs next to a venue's WebSocket server (e.g. Rails' token endpoint), and the
contract a venue fulfils to get one (:class:`HttpVenue`). It runs on the
simulator's loop thread (``tradefeed-sim``), so it needs no thread of its own
and a venue's handler shares the loop with its WebSocket handlers.

Scope, on purpose small: one request per connection (every response carries
``Connection: close``), bodies only with ``Content-Length`` (at most
:data:`MAX_BODY` bytes), no ``Expect: 100-continue``. What must not go in here:
any venue's paths, credentials or payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._json import dumps

__all__ = ["HttpRequest", "HttpResponse", "HttpServer", "HttpVenue", "json_response"]

logger = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # bytes of request line plus headers
MAX_BODY = 64 * 1024  # bytes of request body
REQUEST_TIMEOUT = 10.0  # seconds a client has to send its whole request


@dataclass(frozen=True)
class HttpRequest:
    """One parsed HTTP request."""

    method: str
    #: the request target as sent, e.g. ``"/api/v1/token?x=1"``
    target: str
    #: header names in lowercase; repeated headers joined with ``", "``
    headers: Mapping[str, str]
    body: bytes
    #: the client's IP address
    remote: str

    @property
    def path(self) -> str:
        """The target without its query string."""
        return urlsplit(self.target).path


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP response; ``Content-Length`` and ``Connection`` are added when sent."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """Return a response whose body is ``payload`` as JSON (exact decimals, no floats)."""
    return HttpResponse(status, dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


@runtime_checkable
class HttpVenue(Protocol):
    """What a :class:`~tradefeed.simulator.Venue` provides to get an HTTP side-server.

    The simulator serves :meth:`handle_http` on a port of its own while the
    venue's WebSocket server runs, and exposes :attr:`auth_path` and
    :meth:`credentials` through ``Simulator.auth_url()`` and
    ``Simulator.credentials()``.
    """

    #: path of the venue's token endpoint, e.g. ``"/api/v1/token"``
    auth_path: str

    def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Answer one request (any path; 404 is the venue's to send). Loop thread."""
        ...

    def credentials(self, *, read_only: bool = False) -> tuple[str, str]:
        """Return a valid ``(api_key, api_secret)`` pair."""
        ...


class HttpServer:
    """Serves one handler on one port of the running event loop.

    ::

        server = HttpServer(venue.handle_http, name="rails")
        port = await server.start("127.0.0.1", 0)
        ...
        await server.close()

    :param handler: answers each request; runs on the loop thread and must not
        block. An exception becomes a 500 and is logged.
    :param name: used in log messages.
    """

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse], name: str) -> None:
        self._handler = handler
        self._name = name
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = OS-chosen) and return the bound port.

        :raises OSError: if the port cannot be bound.
        """
        self._server = await asyncio.start_server(self._serve_client, host, port, limit=MAX_HEAD)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and cut off clients still being served. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        remote = writer.get_extra_info("peername") or ("?", 0)
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    response = await self._respond(reader, str(remote[0]))
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                return  # the client went away or stalled: nobody to answer
            writer.write(_serialize(response))
            await writer.drain()
        except ConnectionError:
            pass  # the client closed before reading the response
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, remote: str) -> HttpResponse:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return _plain(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        lines = head.decode("latin-1").split("\r\n")[:-2]
        request_line = lines[0].split(" ")
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            return _plain(http.HTTPStatus.BAD_REQUEST)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                return _plain(http.HTTPStatus.BAD_REQUEST)
            name, value = name.lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "transfer-encoding" in headers:
            return _plain(http.HTTPStatus.NOT_IMPLEMENTED)
        length = headers.get("content-length", "0")
        if not length.isdigit():
            return _plain(http.HTTPStatus.BAD_REQUEST)
        if int(length) > MAX_BODY:
            return _plain(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = await reader.readexactly(int(length))
        request = HttpRequest(request_line[0], request_line[1], headers, body, remote)
        try:
            response = self._handler(request)
        except Exception:
            logger.exception("%s: HTTP handler failed on %s %s", self._name, request.method, request.target)
            return _plain(http.HTTPStatus.INTERNAL_SERVER_ERROR)
        logger.debug("%s: %s %s from %s -> %d", self._name, request.method, request.path, remote, response.status)
        return response


def _plain(status: http.HTTPStatus) -> HttpResponse:
    return HttpResponse(status, f"{status.phrase}.\n".encode(), {"Content-Type": "text/plain; charset=utf-8"})


def _serialize(response: HttpResponse) -> bytes:
    try:
        reason = http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + response.body
