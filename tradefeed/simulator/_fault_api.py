"""The simulator's fault-injection API: dropping connections with any close code,
refusing handshakes, stalling streams, muting pings, and reading or clearing it all.

:class:`FaultApi` is the base class of :class:`~tradefeed.simulator.Simulator`: these are
its public fault methods, kept apart from serving (``server.py``) so each reads on its
own.  Every method is safe from any thread: the work runs on the simulator's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.frames import Close

from ._base import SimConnection, Venue, call_on_loop
from ._faults import Refusal, check_count
from ._http import HttpServer
from ._ratelimit import ConnectLimiter

__all__ = ["FaultApi", "Slot"]


@dataclass(eq=False)
class Slot:
    """A venue with its server, port and connection bookkeeping."""

    venue: Venue
    port: int
    limiter: ConnectLimiter | None
    server: Server | None = None
    #: connections whose handshake completed and whose handler still runs
    connections: set[ServerConnection] = field(default_factory=set)
    #: handshake requests seen, refused ones included
    handshakes: int = 0
    #: the venue's HTTP side-server while running, if it has one
    http: HttpServer | None = None
    #: its port; 0 until the OS has chosen one, then kept across restarts
    http_port: int = 0
    #: how the next handshakes are refused (refuse_handshakes), oldest first; loop thread
    refusals: deque[Refusal] = field(default_factory=deque)
    #: connections opened from now on start stalled / with muted pings; loop thread
    stall_new: bool = False
    mute_new: bool = False



class FaultApi:
    """Fault injection over the venues' slots (see :class:`~tradefeed.simulator.Simulator`)."""

    _slots: dict[str, Slot]
    _cond: threading.Condition
    _loop: asyncio.AbstractEventLoop | None
    _tasks: set[asyncio.Task[None]]

    def drop_connections(
        self, venue: str | None = None, code: int | None = None, reason: str = "", *, port: int | None = None
    ) -> int:
        """Close every current connection of ``venue`` (of all venues if ``None``), or
        only the one whose client uses ``port``.

        With ``code`` a close frame with that code and ``reason`` is sent (the
        call returns once it is written, without waiting for the client's
        reply). With ``code=None`` the TCP connection is aborted without a close
        frame, so the client sees an abnormal closure (1006).

        :param port: drop only the connection from this client port (the client
            socket's local port, the server's ``remote_address[1]``): one of several
            connections of one client, e.g. one line of a redundant feed.
        :return: the number of connections dropped.
        :raises ValueError: for a code a close frame may not carry (e.g. 1005,
            1006) or a reason longer than 123 bytes.
        """
        slots = self._targets(venue)
        if code is not None:
            _check_close(code, reason)
        if port is not None:
            check_count("port", port)
        if self._loop is None:
            return 0
        return call_on_loop(self._loop, self._drop, slots, code, reason, port)

    # -- faults -------------------------------------------------------------------
    # drop_connections() above closes; Venue.inject() sends malformed frames;
    # Venue.fault() duplicates, reorders and skips trades; RailsVenue.expire_tokens().

    def refuse_handshakes(
        self, n: int, status: int = 429, retry_after: int | None = 1, venue: str | None = None
    ) -> int:
        """Refuse the next ``n`` handshakes of ``venue`` (of each venue if ``None``) with HTTP ``status``.

        A refused handshake gets ``status`` with a short text body and, for 429
        and 503 when ``retry_after`` is not ``None``, ``Retry-After:
        <retry_after>``; it is counted in :meth:`handshakes` but not by the
        connection-rate limit, and is refused before the path is looked at.
        Calls add up: refusals queue in call order. :meth:`clear_faults` cancels
        the ones not used yet. Safe from any thread, also before :meth:`start`.

        :param n: handshakes to refuse; 0 adds none.
        :param status: an HTTP error status, 400-599.
        :param retry_after: whole seconds for ``Retry-After``; ``None``: no header.
        :return: the refusals now pending for ``venue`` (summed over all venues if ``None``).
        :raises ValueError: for a negative ``n``, a status outside 400-599, or a
            negative ``retry_after``.
        """
        check_count("n", n)
        refusal = Refusal(status, retry_after)
        slots = self._targets(venue)

        def refuse() -> int:
            for slot in slots:
                slot.refusals.extend([refusal] * n)
            return sum(len(slot.refusals) for slot in slots)

        return call_on_loop(self._loop, refuse)

    def stall(self, venue: str | None = None, *, new_connections: bool = False) -> int:
        """Stop sending data on the open connections of ``venue`` (of all venues if ``None``).

        A stalled connection stays open and keeps reading: it answers protocol
        pings, application pings and requests, and closes normally. What it no
        longer sends is data, the trades a venue sends unprompted (each venue
        module says which frames those are: live frames, windows, pushes,
        deltas, Dopp's snapshot on connect). Data generated while stalled is
        **dropped** for that connection, never sent late: after :meth:`resume`
        the connection gets only trades generated after it, and the client
        recovers the rest only as the venue allows (a reconnect's snapshot, a
        request). Frames queued before the stall are still sent; injected
        frames (:meth:`Venue.inject`) are always sent.

        Safe from any thread.

        :param new_connections: also stall every connection opened from now on
            (a stalled venue: reconnecting does not help) until :meth:`resume`.
            Without it a reconnect gets a healthy connection.
        :return: the number of open connections now stalled.
        """
        slots = self._targets(venue)

        def stall() -> int:
            for slot in slots:
                slot.stall_new = slot.stall_new or new_connections
            return self._switch(slots, stalled=True)

        return call_on_loop(self._loop, stall)

    def resume(self, venue: str | None = None) -> int:
        """Undo :meth:`stall`: data flows again on every connection of ``venue`` (all if
        ``None``), and new connections start healthy. Safe from any thread.

        :return: the number of open connections of ``venue`` (all if ``None``).
        """
        slots = self._targets(venue)

        def resume() -> int:
            for slot in slots:
                slot.stall_new = False
            return self._switch(slots, stalled=False)

        return call_on_loop(self._loop, resume)

    def mute_pings(self, venue: str | None = None, *, new_connections: bool = False) -> int:
        """Stop answering pings on the open connections of ``venue`` (of all venues if ``None``).

        Protocol pings (PING frames) get no PONG, so a client's ping timeout
        fires; application-level pings (SynFutures' text ``ping``, Synthetix'
        ``{"type": "ping"}`` and ``{"method": "ping"}``, Rails' ``ping``
        message) get no answer either. Everything else goes on: data still flows,
        requests are answered, the close handshake works (a client that gives
        up closes promptly). Pings received while muted are never answered later.

        Safe from any thread.

        :param new_connections: also mute every connection opened from now on,
            until :meth:`unmute_pings`.
        :return: the number of open connections now muted.
        """
        slots = self._targets(venue)

        def mute() -> int:
            for slot in slots:
                slot.mute_new = slot.mute_new or new_connections
            return self._switch(slots, pings_muted=True)

        return call_on_loop(self._loop, mute)

    def unmute_pings(self, venue: str | None = None) -> int:
        """Undo :meth:`mute_pings` for every connection of ``venue`` (all if ``None``) and
        for new ones. Safe from any thread.

        :return: the number of open connections of ``venue`` (all if ``None``).
        """
        slots = self._targets(venue)

        def unmute() -> int:
            for slot in slots:
                slot.mute_new = False
            return self._switch(slots, pings_muted=False)

        return call_on_loop(self._loop, unmute)

    def clear_faults(self, venue: str | None = None) -> None:
        """Undo every fault of ``venue`` (all venues if ``None``): :meth:`resume`,
        :meth:`unmute_pings`, cancel pending :meth:`refuse_handshakes` and turn
        :meth:`Venue.fault` off. Dropped connections stay dropped and revoked
        tokens revoked. Safe from any thread.
        """
        slots = self._targets(venue)

        def clear() -> None:
            for slot in slots:
                slot.refusals.clear()
                slot.stall_new = slot.mute_new = False
                slot.venue.fault()
            self._switch(slots, stalled=False, pings_muted=False)

        call_on_loop(self._loop, clear)

    def fault_status(self, venue: str) -> dict[str, Any]:
        """The faults in force on ``venue``, as plain data (what the admin endpoint reports).

        Keys: ``connections``; ``stalled`` and ``pings_muted`` (open connections
        in that state); ``dropped`` (data frames dropped while stalled) and
        ``unanswered`` (pings left unanswered), summed over the open connections;
        ``refusals`` (pending); ``stall_new`` and ``mute_new`` (whether new
        connections start so); ``trade_faults`` (:meth:`Venue.fault_settings`).
        Safe from any thread.
        """
        slot = self._slot(venue)

        def status() -> dict[str, Any]:
            faults = [c.faults for c in list(slot.connections) if isinstance(c, SimConnection)]
            return {
                "connections": len(slot.connections),
                "stalled": sum(f.stalled for f in faults),
                "pings_muted": sum(f.pings_muted for f in faults),
                "dropped": sum(f.dropped for f in faults),
                "unanswered": sum(f.unanswered for f in faults),
                "refusals": len(slot.refusals),
                "stall_new": slot.stall_new,
                "mute_new": slot.mute_new,
                "trade_faults": slot.venue.fault_settings(),
            }

        return call_on_loop(self._loop, status)

    def _switch(self, slots: list[Slot], **switches: bool) -> int:
        """Set ``switches`` on the open connections of ``slots``; return how many. Loop thread."""
        with self._cond:
            connections = [c for slot in slots for c in slot.connections if isinstance(c, SimConnection)]
        for connection in connections:
            for name, value in switches.items():
                setattr(connection.faults, name, value)
        return len(connections)

    def _targets(self, venue: str | None) -> list[Slot]:
        return list(self._slots.values()) if venue is None else [self._slot(venue)]

    def _slot(self, name: str) -> Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise KeyError(f"venue {name!r} is not served; served: {sorted(self._slots)}") from None

    def _drop(self, slots: list[Slot], code: int | None, reason: str, port: int | None = None) -> int:
        with self._cond:
            victims = [
                connection
                for slot in slots
                for connection in slot.connections
                if port is None or connection.remote_address[1] == port
            ]
        for connection in victims:
            if code is None:
                connection.transport.abort()
            else:
                # close() writes the close frame in its first step, then waits for
                # the client's reply; only the write is worth waiting for here.
                task = asyncio.create_task(connection.close(code, reason))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return len(victims)


def _check_close(code: int, reason: str) -> None:
    """Raise ValueError unless a close frame may carry ``code`` and ``reason``."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise ValueError(f"close code must be an int, not {code!r}")
    try:
        Close(code, reason).check()
    except Exception as err:  # websockets' ProtocolError
        raise ValueError(f"{code} is not a close code a close frame may carry") from err
    if len(reason.encode()) > 123:
        raise ValueError("a close reason may be at most 123 bytes of UTF-8")
