"""The contract between the simulator's servers and one venue, and its helpers.

This module owns :class:`Venue` (the base class every venue module
subclasses), :class:`Outbox` (the ordered, never-blocking frame queue of one
connection), :class:`SimConnection` and :class:`ConnectionFaults` (one
connection and its fault switches: stalled data, muted pings),
:func:`call_on_loop` (how other threads reach the loop) and
:class:`SimulatorError`. :mod:`tradefeed.simulator.server` runs the loop and
the servers; a venue module (e.g. :mod:`tradefeed.simulator.dopp`) holds that
venue's protocol and tape. No venue-specific code and no socket handling
beyond one connection's send/receive belong here.

Frames a venue queues are of three kinds, and the fault switches treat them
differently: :meth:`Outbox.push` for data (trades the venue sends unprompted:
live broadcasts, Dopp's snapshot on connect), dropped while the connection is
stalled; :meth:`Outbox.pong` for answers to application-level pings, dropped
while its pings are muted; :meth:`Outbox.put` for everything else (replies,
acks, errors, requested snapshots, injected frames), always sent.

Threads: coroutines and the methods marked "loop thread" run on the
simulator's loop thread; :meth:`Venue.emit` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from ._faults import KNOBS, Mark, TradeFaults, check_probability

__all__ = ["ConnectionFaults", "Outbox", "SimConnection", "SimulatorError", "Venue", "call_on_loop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CALL_TIMEOUT = 5.0  # seconds a caller waits for work scheduled onto the loop
OUTBOX_LIMIT = 10_000  # frames queued for one client before it is aborted as stuck


class SimulatorError(RuntimeError):
    """The simulator could not bind, start, stop, or reach its event loop."""


def call_on_loop(
    loop: asyncio.AbstractEventLoop | None, fn: Callable[..., T], *args: Any, timeout: float = CALL_TIMEOUT
) -> T:
    """Run ``fn(*args)`` on ``loop`` and return its result.

    Runs ``fn`` inline when ``loop`` is ``None`` (the simulator is stopped, so
    no other thread touches the venue) or when called on the loop's own thread.

    :param loop: the simulator's running loop, or ``None``.
    :param timeout: seconds to wait for the loop to run ``fn``.
    :raises SimulatorError: when the loop is gone or does not run ``fn`` in time.
    """
    if loop is None or _running_loop() is loop:
        return fn(*args)

    async def call() -> T:
        return fn(*args)

    coroutine = call()
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    except RuntimeError as err:  # the loop has closed meanwhile
        coroutine.close()
        raise SimulatorError("the simulator is not running") from err
    try:
        return future.result(timeout)
    except (TimeoutError, concurrent.futures.CancelledError) as err:
        future.cancel()
        raise SimulatorError(f"the simulator loop did not run {fn.__qualname__} within {timeout} s") from err


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass
class ConnectionFaults:
    """The fault switches of one connection, shared by its :class:`SimConnection`
    and its :class:`Outbox`. Loop thread only."""

    #: data frames (:meth:`Outbox.push`) are dropped instead of sent
    stalled: bool = False
    #: protocol pings get no pong, and :meth:`Outbox.pong` frames are dropped
    pings_muted: bool = False
    #: data frames dropped while stalled, over the connection's life
    dropped: int = 0
    #: protocol pings and application pongs left unanswered while muted
    unanswered: int = 0


class SimConnection(ServerConnection):
    """A websockets server connection whose answer to protocol pings can be switched off.

    The simulator serves every venue with this class (``serve(create_connection=...)``);
    :attr:`faults` holds the connection's switches.

    websockets answers a PING frame inside its sans-I/O protocol, while parsing
    the bytes received (``ServerProtocol.recv_frame`` queues the PONG), before
    any application code sees the frame, and it has no option to turn that
    off. Pausing the transport's reading would also stop the close handshake
    (every close would then wait out its timeout), so instead this connection
    shadows ``recv_frame`` on its own protocol object and drops PING frames
    while :attr:`ConnectionFaults.pings_muted` is set. Everything else is read
    and handled as usual: data frames, close frames, the client's pongs.
    """

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        #: this connection's fault switches
        self.faults = ConnectionFaults()
        answer = type(protocol).recv_frame
        faults = self.faults

        def recv_frame(frame: Frame) -> None:
            if frame.opcode is Opcode.PING and faults.pings_muted:
                faults.unanswered += 1  # neither answered nor passed on (websockets ignores PING events)
                return
            answer(protocol, frame)

        protocol.recv_frame = recv_frame  # type: ignore[method-assign]


class Outbox:
    """The frames waiting to be sent on one connection, in order.

    The producer calls :meth:`put`, which never waits. :meth:`pump`, run by the
    connection's handler, sends the frames one by one; websockets' ``send``
    waits while the socket's write buffer is full, so a slow client delays only
    its own outbox. A client that lets more than ``limit`` frames pile up is
    aborted (it sees 1006 and, like after any abnormal close, reconnects and
    gets a fresh snapshot). Aborting rather than closing: a close frame would
    queue behind the same full buffer, so ``close()`` could wait forever.
    Loop thread only.

    :param connection: the connection the frames are for.
    :param limit: most frames queued before the client counts as stuck.
    """

    def __init__(self, connection: ServerConnection, limit: int = OUTBOX_LIMIT) -> None:
        self._connection = connection
        self._frames: asyncio.Queue[str | bytes | None] = asyncio.Queue()  # None ends pump()
        self._limit = limit
        self._overflowed = False
        #: the connection's fault switches (inert ones for a connection the simulator did not create)
        self.faults = connection.faults if isinstance(connection, SimConnection) else ConnectionFaults()

    def push(self, frame: str | bytes) -> None:
        """Queue a data frame (trades sent unprompted), or drop it while the connection is stalled."""
        if self.faults.stalled:
            self.faults.dropped += 1
            return
        self.put(frame)

    def pong(self, frame: str | bytes) -> None:
        """Queue the answer to an application-level ping, or drop it while pings are muted."""
        if self.faults.pings_muted:
            self.faults.unanswered += 1
            return
        self.put(frame)

    def put(self, frame: str | bytes) -> None:
        """Queue ``frame`` (text; bytes go as a binary frame) for sending, whatever the faults."""
        if self._overflowed:
            return
        if self._frames.qsize() < self._limit:
            self._frames.put_nowait(frame)
            return
        self._overflowed = True
        logger.warning("aborting %s: more than %d frames queued", self._connection.remote_address, self._limit)
        self._connection.transport.abort()

    async def pump(self, on_message: Callable[[str | bytes], Awaitable[None]] | None = None) -> None:
        """Send queued frames until the connection closes.

        Incoming messages are read all the time (so pings and close frames are
        processed promptly) and passed to ``on_message``; with ``None`` they
        are ignored.
        """
        reader = asyncio.create_task(self._read(on_message))
        try:
            while (frame := await self._frames.get()) is not None:
                await self._connection.send(frame)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()

    async def _read(self, on_message: Callable[[str | bytes], Awaitable[None]] | None) -> None:
        try:
            async for message in self._connection:
                if on_message is not None:
                    await on_message(message)
        except ConnectionClosed:
            pass
        finally:
            self._frames.put_nowait(None)


class Venue:
    """One simulated venue: the paths it serves, its connections and its tape.

    A subclass sets :attr:`name` and :attr:`paths` and implements
    :meth:`handler` and :meth:`generate`; it may override
    :meth:`process_request` to answer a handshake at the HTTP level. The
    simulator answers 404 for paths outside :attr:`paths` and applies the
    connection-rate limit before any venue code runs.

    :param seed: seeds the venue's tape content.
    :param rate: trades generated per second by :meth:`produce`; 0 disables it.
    :param history: trades generated before the first connection.
    :param snapshot_size: most recent trades sent on connect, where the venue
        sends a snapshot.
    """

    #: registry key and log name, e.g. ``"dopp"``
    name: ClassVar[str]
    #: URL paths served, e.g. ``frozenset({"/v1/public/ws/..."})``
    paths: ClassVar[frozenset[str]]
    #: seconds between generation ticks of :meth:`produce`
    tick_interval: ClassVar[float] = 0.01
    #: the trade-level faults (:meth:`fault` knobs) this venue can simulate
    fault_knobs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, seed: int = 1, rate: float = 200.0, history: int = 100, snapshot_size: int = 20) -> None:
        if rate < 0 or history < 0 or snapshot_size < 0:
            raise ValueError("rate, history and snapshot_size must not be negative")
        self.seed = seed
        self.rate = rate
        self.history = history
        self.snapshot_size = snapshot_size
        #: the outboxes of the current connections (handlers add and remove theirs)
        self.outboxes: set[Outbox] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._trade_faults: TradeFaults[Any] | None = None  # loop thread (see fault())

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Bind to the simulator's running loop (``None`` when it stops)."""
        self._loop = loop

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer the handshake with an HTTP response, or ``None`` to accept it. Loop thread."""
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """Serve one accepted connection until it closes. Loop thread."""
        raise NotImplementedError

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Create ``count`` trades, add them to the tape and broadcast them.

        Runs on the loop thread, or in the caller's thread while the simulator
        is stopped (then no connection exists).

        :return: the new trades, oldest first.
        """
        raise NotImplementedError

    def emit(self, count: int) -> list[dict[str, Any]]:
        """Generate and broadcast ``count`` trades now; safe from any thread.

        While the simulator runs the work is done on its loop; while it is
        stopped, in the calling thread (not while start() or stop() is running).

        :return: the new trades, oldest first, as plain dicts.
        :raises SimulatorError: if the running loop does not respond in time.
        """
        if count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        return call_on_loop(self._loop, self.generate, count)

    def demo_params(self) -> dict[str, Any]:
        """Venue parameters (as the client's ``add_feed`` takes them) that stream every
        market this venue simulates; see :meth:`Simulator.feed_params`."""
        return {}

    def inject(self, frame: str | bytes) -> int:
        """Fault injection: queue ``frame`` as is (text, or bytes as a binary frame)
        to every current connection, in order with the venue's own frames, stalled
        connections included.  Safe from any thread.

        :return: how many connections it was queued to.
        """

        def put_all() -> int:
            for outbox in self.outboxes:
                outbox.put(frame)
            return len(self.outboxes)

        return call_on_loop(self._loop, put_all)

    def fault(
        self, *, duplicate: float = 0.0, reorder: float = 0.0, skip_sequence: float = 0.0, seed: int | None = None
    ) -> None:
        """Fault injection: duplicate, reorder or skip-sequence the trades generated from now on.

        Safe from any thread. Each call replaces the previous setting (and drops
        duplicates still waiting to be sent); all zeros turn trade faults off.
        Decisions are made per generated trade, for the venue as a whole (every
        connection sees the same faults, within what its filters select), and
        are deterministic: see :mod:`tradefeed.simulator._faults` for the exact
        draws. What each knob does is the venue's to say (its
        module docstring); in short:

        - ``duplicate``: the trade is sent a second time with the next batch
          (the next :meth:`generate`: the next tick at ``rate > 0``, the next
          :meth:`emit` call otherwise), before that batch's own trades.
        - ``reorder``: the trade trades places with the one before it in its
          batch (swaps do not overlap).
        - ``skip_sequence``: the trade's sequence number is its predecessor's
          + 2, on the tape itself (:meth:`trades` shows the gap too).

        :param seed: seeds the decisions; ``None``: the venue's own seed.
        :raises ValueError: for a probability outside [0, 1], or a non-zero knob
            this venue does not simulate (see :attr:`fault_knobs`).
        :raises SimulatorError: if the running loop does not respond in time.
        """
        knobs = {"skip_sequence": skip_sequence, "duplicate": duplicate, "reorder": reorder}
        for name in KNOBS:
            check_probability(name, knobs[name])
        unsupported = sorted(name for name, value in knobs.items() if value and name not in self.fault_knobs)
        if unsupported:
            supported = ", ".join(sorted(self.fault_knobs)) or "none"
            raise ValueError(
                f"venue {self.name!r} does not simulate {', '.join(unsupported)} (it simulates: {supported})"
            )
        faults: TradeFaults[Any] = TradeFaults(
            duplicate=duplicate, reorder=reorder, skip_sequence=skip_sequence, seed=self.seed if seed is None else seed
        )

        def install() -> None:
            self._trade_faults = faults if faults.active else None

        call_on_loop(self._loop, install)

    def fault_settings(self) -> dict[str, Any] | None:
        """The trade faults in force (knobs, seed, trades decided so far), or ``None``. Safe from any thread."""

        def read() -> dict[str, Any] | None:
            return None if self._trade_faults is None else self._trade_faults.describe()

        return call_on_loop(self._loop, read)

    def _fault_marks(self, count: int) -> list[Mark]:
        """The fault decisions for ``count`` new trades (all clear when faults are off).
        Call once per :meth:`generate`, before drawing the trades."""
        if self._trade_faults is None:
            return [Mark()] * count
        return self._trade_faults.marks(count)

    def _arrange(self, units: Sequence[T], marks: Sequence[Mark]) -> list[T]:
        """What to send for one batch: see :meth:`TradeFaults.arrange`; ``units`` as they are
        when faults are off."""
        if self._trade_faults is None:
            return list(units)
        return self._trade_faults.arrange(units, marks)

    async def produce(self) -> None:
        """Generate :attr:`rate` trades per second until cancelled. Loop thread.

        Every :attr:`tick_interval` the elapsed loop time is turned into trade
        credit; whole trades are generated (several per tick at high rates).
        At most one second of credit is kept, so a stalled loop does not burst.
        """
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        last, credit = loop.time(), 0.0
        while True:
            await asyncio.sleep(self.tick_interval)
            now = loop.time()
            credit = min(credit + (now - last) * self.rate, max(self.rate, 1.0))
            last = now
            if (count := int(credit)) > 0:
                credit -= count
                self.generate(count)
