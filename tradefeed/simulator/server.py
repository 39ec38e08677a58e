"""Loopback WebSocket servers for the simulated venues.

This module owns what is not specific to one venue: the event loop and its
thread (``tradefeed-sim``), one :mod:`websockets` server per venue on its own
port (production venues live on different hosts, so their paths could
collide), the connection-rate limit (HTTP 429), unknown paths (HTTP 404),
and connection tracking.  The helpers that tests call come from the base classes
of :class:`Simulator`: fault injection (:mod:`tradefeed.simulator._fault_api`) and
addresses, credentials and connection counts (:mod:`tradefeed.simulator._introspection`).
The venue-side contract (:class:`Venue`, :class:`Outbox`) is in
:mod:`tradefeed.simulator._base` and re-exported here.

Optional venue capabilities, looked up on the venue object so that venues
without them need nothing:

- ``select_subprotocol(connection, offered) -> str | None``: picks the
  ``Sec-WebSocket-Protocol`` to answer the handshake with (default: none).
- ``connect_limit = False``: the venue is exempt from the connection-rate limit.
- an HTTP side (:class:`~tradefeed.simulator._http.HttpVenue`: ``handle_http``,
  ``auth_path``, ``credentials``): served by an HTTP server on a port of its
  own, on the same loop, started and stopped with the WebSocket servers.

Faults: the generic ones are methods of :class:`Simulator` (drop or close
connections, refuse handshakes, stall data, mute pings, clear them all); the
trade-level ones are :meth:`Venue.fault`, whose effect each venue module
documents. ``Simulator(admin_port=...)`` serves them over HTTP for the CLI
(:mod:`tradefeed.simulator.admin`), on the same loop as everything else.

What must not go in here: a venue's paths, filters, messages or tape (those
live in the venue's module, e.g. :mod:`tradefeed.simulator.dopp`). Nothing in
the simulator imports from ``tradefeed`` outside ``tradefeed.simulator``: it is
an independent peer of the client library, not a mirror of it.

Threads: every coroutine runs on the loop thread. The public methods of
:class:`Simulator` may be called from any thread; they schedule their work onto
the loop and wait for it with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from ._base import CALL_TIMEOUT, Outbox, SimConnection, SimulatorError, Venue
from ._http import HttpServer, HttpVenue
from ._ratelimit import ConnectLimiter
from ._fault_api import FaultApi, Slot as _Slot
from ._introspection import IntrospectionApi
from .admin import AdminApi

__all__ = ["Outbox", "Simulator", "SimulatorError", "Venue"]

logger = logging.getLogger(__name__)

THREAD_NAME = "tradefeed-sim"
START_TIMEOUT = 10.0  # seconds start() waits for every server to listen
CLOSE_TIMEOUT = 2.0  # seconds a closing handshake may take before the TCP connection is aborted


class Simulator(FaultApi, IntrospectionApi):
    """Serves every simulated venue on loopback, one port per venue.

    ::

        with Simulator(seed=1, rate=200) as sim:
            base = sim.url("dopp")  # "ws://127.0.0.1:<port>"; venue paths go under it
            sim.venue("dopp").emit(5)

    The tape's content (ids, prices, amounts, wallets...) depends only on
    ``seed``; timestamps are wall-clock milliseconds. After :meth:`stop`,
    :meth:`start` binds the same ports again and the tapes continue.
    A venue with an HTTP side (Rails' token endpoint) gets a second port:
    :meth:`auth_url` and :meth:`credentials` are how a client logs in there.
    Servers send no keepalive pings (``ping_interval=None``) and answer the
    client's pings, so the simulator never drops a quiet client.

    :param seed: seeds every venue's tape.
    :param rate: trades per second per venue (all instruments); 0 = only :meth:`Venue.emit`.
    :param host: address to bind and to put in :meth:`url`.
    :param venues: registry names to serve; ``None`` serves all of them.
    :param ports: port per venue name; missing names get an OS-chosen port.
    :param max_connects: handshakes one client IP may open per
        ``connect_window``; more are refused with HTTP 429. ``None`` disables it
        (as does a venue's ``connect_limit = False``).
    :param connect_window: the rate limit's window, in seconds.
    :param history: trades generated up front so snapshots are not empty.
    :param snapshot_size: most recent trades sent on connect.
    :param options: venue-specific keyword arguments by venue name, e.g.
        ``{"rails": {"strict": True}}`` (see each venue class).
    :param custom_venues: venue objects built by the caller, served in addition
        under their keys (which ``ports`` may name), e.g. the
        :class:`~tradefeed.simulator.replay.ReplayVenue` of each feed of a
        recording; ``venues=[]`` serves only them.
    :param admin_port: serve the fault-injection admin endpoint
        (:mod:`tradefeed.simulator.admin`, :meth:`admin_url`) on this port of
        ``host``; 0 = OS-chosen (then kept across restarts); ``None`` = no endpoint.
    """

    def __init__(
        self,
        seed: int = 1,
        rate: float = 200.0,
        *,
        host: str = "127.0.0.1",
        venues: Iterable[str] | None = None,
        ports: Mapping[str, int] | None = None,
        max_connects: int | None = 10,
        connect_window: float = 10.0,
        history: int = 100,
        snapshot_size: int = 20,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        custom_venues: Mapping[str, Venue] | None = None,
        admin_port: int | None = None,
    ) -> None:
        if admin_port is not None and (
            isinstance(admin_port, bool) or not isinstance(admin_port, int) or admin_port < 0
        ):
            raise ValueError(f"admin_port must be a port number >= 0 or None, not {admin_port!r}")
        registry = _registry()
        names = list(registry) if venues is None else list(dict.fromkeys(venues))
        ports = dict(ports or {})
        options = dict(options or {})
        custom = dict(custom_venues or {})
        unknown = sorted(((set(names) | set(ports)) - set(custom) | set(options)) - set(registry))
        if unknown:
            raise ValueError(f"unknown venue(s) {unknown}; known: {sorted(registry)}")
        if set(names) & set(custom):
            raise ValueError(f"custom venue name(s) {sorted(set(names) & set(custom))} are also registry venues served")
        self.host = host
        self._slots = {
            name: _Slot(
                venue=registry[name](
                    seed=seed, rate=rate, history=history, snapshot_size=snapshot_size, **options.get(name, {})
                ),
                port=ports.get(name, 0),
                limiter=(
                    ConnectLimiter(max_connects, connect_window)
                    if max_connects is not None and getattr(registry[name], "connect_limit", True)
                    else None
                ),
            )
            for name in names
        }
        for name, venue in custom.items():
            limiter = None
            if max_connects is not None and getattr(venue, "connect_limit", True):
                limiter = ConnectLimiter(max_connects, connect_window)
            self._slots[name] = _Slot(venue=venue, port=ports.get(name, 0), limiter=limiter)
        self._cond = threading.Condition()  # guards every _Slot's connections and handshakes
        self._lifecycle = threading.Lock()  # serializes start() and stop()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: SimulatorError | None = None
        self._grace = CLOSE_TIMEOUT
        self._tasks: set[asyncio.Task[None]] = set()
        self._admin_port = admin_port  # None: no admin endpoint; 0 until the OS has chosen one
        self._admin: HttpServer | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Simulator:
        """Start serving; return once every venue's server is listening.

        Does nothing if already running.

        :raises SimulatorError: if a port cannot be bound or the loop does not
            come up within ``START_TIMEOUT`` seconds.
        """
        with self._lifecycle:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._startup_error = None
            thread = threading.Thread(target=self._run, args=(ready,), name=THREAD_NAME, daemon=True)
            thread.start()
            if not ready.wait(START_TIMEOUT):
                self._thread = thread
                self._stop_locked(CALL_TIMEOUT)
                raise SimulatorError(f"the simulator did not start within {START_TIMEOUT} s")
            if self._startup_error is not None:
                thread.join(START_TIMEOUT)
                raise self._startup_error
            self._thread = thread
        logger.info("simulator serving %s", ", ".join(f"{name} on {self.url(name)}" for name in self._slots))
        if self._admin_port is not None:
            logger.info("simulator admin endpoint on %s/faults", self.admin_url())
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection (1001 going away) and server; join the thread.

        Idempotent. When called on the loop thread itself it only requests the
        stop (a thread cannot join itself).

        :param timeout: seconds for the whole shutdown; connections still open
            after most of it are aborted.
        :raises SimulatorError: if the thread is still alive after ``timeout``.
        """
        with self._lifecycle:
            self._stop_locked(timeout)

    def _stop_locked(self, timeout: float) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        # A client that reads answers the close at once, one that does not is cut
        # off by close_timeout; only a client whose buffers are full needs the abort.
        self._grace = min(timeout * 0.8, CLOSE_TIMEOUT + 0.5)
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stopping.set)
        if threading.current_thread() is thread:
            return
        thread.join(timeout)
        if thread.is_alive():
            raise SimulatorError(f"the simulator thread did not stop within {timeout} s")
        logger.info("simulator stopped")

    @property
    def running(self) -> bool:
        """Whether the servers are up (between :meth:`start` and :meth:`stop`)."""
        return self._thread is not None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- loop thread ---------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except Exception as err:
            logger.exception("simulator loop failed")
            if not ready.is_set():
                self._startup_error = SimulatorError(f"the simulator loop failed while starting: {err!r}")
        finally:
            ready.set()  # never leave start() waiting on a loop that died

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._bind()
        except SimulatorError as err:
            self._startup_error = err
            await self._close_servers()
            self._loop = self._stopping = None
            return
        for slot in self._slots.values():
            slot.venue.attach(self._loop)
        producers = []
        for name, slot in self._slots.items():
            producers.append(asyncio.create_task(slot.venue.produce(), name=f"{name}-produce"))
            producers[-1].add_done_callback(_log_failure)
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            for task in producers:
                task.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            await self._close_servers()
            for slot in self._slots.values():
                slot.venue.attach(None)
            self._loop = self._stopping = None

    async def _bind(self) -> None:
        for name, slot in self._slots.items():
            select_subprotocol = getattr(slot.venue, "select_subprotocol", None)
            try:
                slot.server = await serve(
                    functools.partial(self._handle, slot),
                    self.host,
                    slot.port,
                    process_request=functools.partial(self._process_request, slot),
                    select_subprotocol=select_subprotocol,
                    ping_interval=None,  # the simulator never drops a client for not answering pings
                    close_timeout=CLOSE_TIMEOUT,
                    create_connection=SimConnection,  # its pongs can be muted
                )
            except OSError as err:
                raise SimulatorError(f"cannot listen for venue {name!r} on {self.host}:{slot.port}: {_reason(err)}") from err
            # Remember the OS-chosen port so a restart binds the same one.
            slot.port = slot.server.sockets[0].getsockname()[1]
            if isinstance(slot.venue, HttpVenue):
                slot.http = HttpServer(slot.venue.handle_http, name)
                try:
                    slot.http_port = await slot.http.start(self.host, slot.http_port)
                except OSError as err:
                    slot.http = None
                    raise SimulatorError(
                        f"cannot listen for venue {name!r}'s HTTP on {self.host}:{slot.http_port}: {_reason(err)}"
                    ) from err
        if self._admin_port is not None:
            self._admin = HttpServer(AdminApi(self).handle, "admin")
            try:
                self._admin_port = await self._admin.start(self.host, self._admin_port)
            except OSError as err:
                self._admin = None
                raise SimulatorError(
                    f"cannot listen for the admin endpoint on {self.host}:{self._admin_port}: {_reason(err)}"
                ) from err

    async def _close_servers(self) -> None:
        # HTTP first: its requests are short, and a token must not be issued after stop().
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()
        await asyncio.gather(*(slot.http.close() for slot in self._slots.values() if slot.http is not None))
        for slot in self._slots.values():
            slot.http = None
        servers = [slot.server for slot in self._slots.values() if slot.server is not None]
        for server in servers:
            server.close()  # closes open connections with 1001 going away
        try:
            async with asyncio.timeout(self._grace):
                await asyncio.gather(*(server.wait_closed() for server in servers))
        except TimeoutError:
            logger.warning("connections did not close within %.1f s; aborting them", self._grace)
            self._drop(list(self._slots.values()), None, "")
        for slot in self._slots.values():
            slot.server = None

    def _process_request(self, slot: _Slot, connection: ServerConnection, request: Request) -> Response | None:
        with self._cond:
            slot.handshakes += 1
        # Injected refusals come first and do not count for the limit (they are
        # the simulator's doing, not the client's).
        if slot.refusals:
            refusal = slot.refusals.popleft()
            logger.info("%s: injected %d for %s", slot.venue.name, refusal.status, connection.remote_address)
            response = connection.respond(refusal.status, f"{_phrase(refusal.status)} (injected fault).\n")
            for name, value in refusal.headers.items():
                response.headers[name] = value
            return response
        if isinstance(connection, SimConnection):
            connection.faults.stalled, connection.faults.pings_muted = slot.stall_new, slot.mute_new
        # The limit comes next and counts every admitted attempt, whatever its
        # path: the venue limits connection attempts at its edge.
        if slot.limiter is not None:
            retry_after = slot.limiter.admit(connection.remote_address[0], time.monotonic())
            if retry_after is not None:
                logger.info("%s: 429 for %s, retry after %d s", slot.venue.name, connection.remote_address, retry_after)
                response = connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "Too many connections.\n")
                response.headers["Retry-After"] = str(retry_after)
                return response
        if urlsplit(request.path).path not in slot.venue.paths:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found.\n")
        return slot.venue.process_request(connection, request)

    async def _handle(self, slot: _Slot, connection: ServerConnection) -> None:
        logger.debug("%s: %s connected", slot.venue.name, connection.remote_address)
        with self._cond:
            slot.connections.add(connection)
            self._cond.notify_all()
        try:
            await slot.venue.handler(connection)
        finally:
            with self._cond:
                slot.connections.discard(connection)
                self._cond.notify_all()

def _reason(err: OSError) -> str:
    """The operating system's words for *err* ("Address already in use"), without the
    address that asyncio repeats."""
    return os.strerror(err.errno) if err.errno else str(err)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("task %s failed", task.get_name(), exc_info=task.exception())


def _registry() -> Mapping[str, type[Venue]]:
    # The registry lives in the package's __init__, which imports this module
    # first; importing it when a Simulator is built avoids the import cycle.
    from . import VENUES

    return VENUES
