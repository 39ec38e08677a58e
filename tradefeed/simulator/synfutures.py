"""SynFutures / Monday Trade public "trades" WebSocket, as in ``docs/venues/synfutures.md``.

This module owns what is SynFutures-specific: the path, the listed pairs, the
seeded tape, SUBSCRIBE/UNSUBSCRIBE and their acks, the overlapping trade
windows, the text ``ping`` heartbeat and the idle timeout. Loop, servers, 404,
rate limit and connection tracking are generic (:mod:`tradefeed.simulator.server`).

The spec's "Unknown / assumed" rows, as served:

1. Host: only the path counts; ``ws://host:port/v4/public/ws``.  2. No testnet.
3. Acks ``{"id": n, "result": "success"}``; failures, same shape:
   ``"error: invalid pairs"`` for ``params`` missing, ``type`` not ``"trades"``,
   ``chainId`` not the integer 143, ``pairs`` empty, not a list, or holding a
   non-string or unlisted pair (the whole request is refused);
   ``"error: too many pairs"`` past 100 entries (counted before they are
   checked); ``"error: unknown method"`` for any ``method`` but upper-case
   ``SUBSCRIBE``/``UNSUBSCRIBE``. Without an integer ``id`` (``bool`` is not
   one) a request is ignored; malformed or non-object JSON too, never closed.
4. ``data`` is an array; ``data_form="object"`` sends each trade alone as an object,
   a window then going out as one frame per trade, oldest first.
5. ``price``, ``size``, ``balance``, ``tradeFee``, ``protocolFee``, ``markPrice``
   and ``fairPrice`` are 18-decimal integer strings (:func:`to_wad` of exact
   Decimals); token ``decimals`` never scale them; token ``price`` is a JSON number.
   ``number_form="plain"`` sends them as plain decimals instead (:func:`to_plain`:
   integer values without a dot, ``"90136"``, size ``"1"``), the contested form the
   client tells apart by the record's reference price.
6. ``size`` is negative for shorts unless ``signed_size=False``.
7. ``tradeFee`` is 3 bp of notional, ``protocolFee`` 10 % of it (the spec
   example's ratios), in USDC.
8. After a SUBSCRIBE ack, one frame per distinct requested pair (already
   subscribed ones too) with its up to ``tradesLimit`` newest trades, newest
   first (array form: ``"data": []`` if none); then per new trade one frame
   holding that trade alone (resolved 2026-12-06: the SDK's "batch of recent
   historical trades, before streaming new trade events").  With
   ``push_mode="window"`` each new trade instead pushes the pair's newest
   ``tradesLimit`` trades, the new one first (overlapping windows). Object
   form: the first window as one frame per trade, oldest first, then each new
   trade alone.
9. An integer ``tradesLimit`` is clamped to 1..100; absent or not an integer
   it is 10. Re-subscribing a pair replaces its limit.
10. No liquidity flag: ``type`` and ``typeString`` are always ``"Market"``.
11. ``id``: opaque string, unique per chain (increasing 8-digit numbers).
12. Close 1000 ``"idle timeout"`` after ``idle_timeout`` s (60) without a
    client message (text or binary, valid or not; protocol pings do not count,
    so a client must send the text ``ping``); 1001 on shutdown (server); 1011
    on a fault while handling a message.
13. At most 100 pairs per request; no connection limit of its own.
14. ``balance``: the trader's USDC margin after the trade (fees paid, a seeded
    PnL added, topped up when low).  15. ``trader`` unless ``include_trader=False``.

``event`` is ``"sweep"`` for every fill of a multi-fill order (2-4 consecutive
fills sharing pair, trader, side, ``txHash`` and ``timestamp``, one tick apart),
else ``"trade"``. ``timestamp`` is wall-clock Unix seconds, never decreasing
(the only non-seeded field). UNSUBSCRIBE is validated like SUBSCRIBE
(``tradesLimit`` ignored); unsubscribing a listed, unsubscribed pair succeeds.
The tape keeps the last :data:`TAPE_LIMIT` trades.

Trade faults (:meth:`~tradefeed.simulator.Venue.fault`): ``duplicate`` and
``reorder``; there are no sequence numbers, so no ``skip_sequence``. The unit
faulted is a trade's push (to each subscriber, the window, or in object form
the single-trade frame, sent because of that trade) and a batch is the pushes
of one :meth:`SynfuturesVenue.generate`:

- ``duplicate``: the push is sent again, unchanged, before the next batch's:
  a stale window (or trade) after newer ones.
- ``reorder``: it goes out before the push of the trade before it: windows (or
  single trades) out of order. Trades within a window are never reordered.

Stall (``Simulator.stall``) drops pushes only: a SUBSCRIBE is still acked and
answered with its window. Muted pings (``Simulator.mute_pings``) leave the text
``ping`` unanswered (it still counts as client activity for the idle timeout).
:meth:`SynfuturesVenue.ping_clients` sends the text ``ping`` the other way and
counts the ``pong`` replies (:attr:`SynfuturesVenue.pongs`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, NamedTuple

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode

from ._base import Outbox, Venue, call_on_loop
from ._json import Raw, dumps

__all__ = [
    "CHAIN_ID", "PAIRS", "PATH", "PERPETUAL", "TRADERS", "WAD_FIELDS", "SynfuturesVenue", "from_wad", "to_wad",
    "to_plain", "PUSH_MODES", "NUMBER_FORMS",
    "DEFAULT_TRADES_LIMIT", "IDLE_TIMEOUT", "MAX_PAIRS", "MAX_TRADES_LIMIT",
    "INVALID_PAIRS", "SUCCESS", "TOO_MANY_PAIRS", "UNKNOWN_METHOD",
]  # fmt: skip

logger = logging.getLogger(__name__)

PATH = "/v4/public/ws"
CHAIN_ID = 143  # Monad mainnet
PERPETUAL = 4294967295  # the perpetual expiry
DEFAULT_TRADES_LIMIT = 10
MAX_TRADES_LIMIT = 100
MAX_PAIRS = 100  # per SUBSCRIBE / UNSUBSCRIBE
IDLE_TIMEOUT = 60.0  # seconds without a client message before close 1000
SUCCESS = "success"
INVALID_PAIRS = "error: invalid pairs"
TOO_MANY_PAIRS = "error: too many pairs"
UNKNOWN_METHOD = "error: unknown method"
IDLE_REASON = "idle timeout"
TAPE_LIMIT = 50_000  # trades kept in memory
FIRST_TRADE_ID = 58_120_000
SWEEP_SHARE = 0.15  # share of orders that sweep several fills

#: wallets trading on the simulated venue (the first is the spec's example)
TRADERS: tuple[str, ...] = (
    "0x8bcef483f1c9226c192430b8f5191ee801601480",
    "0x2d7a61c0e94b3f58a1c6e0d29b7f4a3c85e1d9b2",
    "0xc4e19a7b35d2f806e1a9c3b7d5f0e2a48b6c1d73",
)
#: fields decoded from WAD strings; the keys of ``trades(exact=True)[i]["exact"]``
WAD_FIELDS: tuple[str, ...] = ("size", "balance", "price", "tradeFee", "protocolFee", "fairPrice", "markPrice")

#: ``push_mode``: new trades alone after the first window (default), or overlapping windows
PUSH_MODES = ("new", "window")
#: ``number_form``: WAD integer strings (default), or plain decimal strings
NUMBER_FORMS = ("wad", "plain")

_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)  # whatever the calling thread's context
_WAD_EXPONENT = 18
_TRADE_FEE = Decimal("0.0003")  # of notional
_PROTOCOL_SHARE = Decimal("0.1")  # of the trade fee
_QUOTE = {"address": "0x0000000000000000000000000000000000005dc1", "symbol": "USDC", "decimals": 6}


@dataclass(frozen=True)
class _Market:
    """A listed perpetual and how its trades are drawn; prices are in units of 10**exponent."""

    symbol: str
    instrument: str  # lowercase
    token_address: str
    token_decimals: int
    exponent: int
    tick: int  # price step, in units
    start: int  # first mark price, in units
    size_step: Decimal
    max_steps: int  # largest size, in size steps
    weight: int

    @property
    def pair(self) -> str:
        return f"{self.instrument}_{PERPETUAL}"


_MARKETS = (
    _Market("BTC/USDC", "0x73ada1ea346cc3908f41cf67a040f0acd7808be0", "0x00000000000000000000000000000000000b7c01",
            8, -2, 10, 9_000_000, Decimal("0.001"), 2000, 50),
    _Market("ETH/USDC", "0x44b60b6af9b615a5cf2d366e2143582557cff711", "0x0000000000000000000000000000000000e7e401",
            18, -2, 1, 300_000, Decimal("0.01"), 5000, 35),
    _Market("MON/USDC", "0x5f0a9c3e7b21d84e6c19a0b3f7d2e8c4a1b6d950", "0x00000000000000000000000000000000000a0a01",
            18, -5, 1, 3_500, Decimal("1"), 100_000, 15),
)  # fmt: skip
_WEIGHTS = [market.weight for market in _MARKETS]

#: pair key ``"<instrument lowercase>_<expiry>"`` -> symbol
PAIRS: dict[str, str] = {market.pair: market.symbol for market in _MARKETS}


def to_wad(value: Decimal) -> str:
    """Return ``value`` as an 18-decimal fixed-point integer string (``1.5`` -> ``"1500000000000000000"``).

    :raises ValueError: if ``value`` has more than 18 decimals.
    """
    with localcontext(_CONTEXT):
        scaled = value.scaleb(_WAD_EXPONENT)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {_WAD_EXPONENT} decimals")
        return str(int(scaled))


def to_plain(value: Decimal) -> str:
    """Return ``value`` as a plain decimal string, integer values without a dot
    (``90136.00`` -> ``"90136"``, ``0.0350`` -> ``"0.035"``)."""
    with localcontext(_CONTEXT):
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")


def from_wad(text: str) -> Decimal:
    """Return the exact Decimal of a WAD integer string (inverse of :func:`to_wad`)."""
    with localcontext(_CONTEXT):
        return Decimal(int(text)).scaleb(-_WAD_EXPONENT)


@dataclass
class _Order:
    """The fills of one order still to be generated (sweeps have several)."""

    market: _Market
    trader: str
    side: str
    tx_hash: str
    timestamp: int
    event: str
    remaining: int
    price: int | None = None  # last fill's price, in units


class _Entry(NamedTuple):
    pair: str
    text: str  # the trade encoded once, spliced into every frame carrying it
    exact: dict[str, Decimal]  # the WAD fields' values before encoding


@dataclass(eq=False)
class _Session:
    """One connection: its outbox, subscriptions (pair -> tradesLimit) and last message time."""

    outbox: Outbox
    last_seen: float
    subscriptions: dict[str, int] = field(default_factory=dict)
    closing: bool = False


class SynfuturesVenue(Venue):
    """The simulated SynFutures (Monday Trade) venue: ``trades`` streams over one seeded tape.

    ::

        with Simulator(seed=1, rate=0, options={"synfutures": {"idle_timeout": 0.5}}) as sim:
            url = sim.url("synfutures") + PATH
            venue = sim.venue("synfutures")
            new = venue.emit(3)                       # pushed as windows to subscribers
            btc = venue.trades("0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295")

    Besides the base options (``seed``, ``rate``, ``history``; ``snapshot_size``
    is unused, windows follow each subscription's ``tradesLimit``):

    :param data_form: ``"array"`` (``data`` is a list) or ``"object"`` (one trade per frame).
    :param idle_timeout: seconds without a client message before close 1000
        ``"idle timeout"``; ``None`` disables it.
    :param mixed_case_envelope: write the envelope's ``instrument`` in mixed
        case (items keep lowercase ``instrumentAddress``).
    :param signed_size: send ``size`` negative for shorts.
    :param include_trader: send the optional ``trader`` field.
    :param push_mode: ``"new"``: after a subscription's first window, each new trade
        alone; ``"window"``: each new trade pushes the overlapping window.
    :param number_form: ``"wad"`` (18-decimal integer strings) or ``"plain"``.
    :raises ValueError: for a bad ``data_form``, ``push_mode`` or ``number_form``, or a
        non-positive ``idle_timeout``.
    """

    name = "synfutures"
    paths = frozenset({PATH})
    fault_knobs = frozenset({"duplicate", "reorder"})

    def demo_params(self) -> dict[str, Any]:
        """Every simulated pair."""
        return {"pairs": list(PAIRS), "chain_id": CHAIN_ID}

    def __init__(
        self, *, seed: int = 1, rate: float = 200.0, history: int = 100, snapshot_size: int = 20,
        data_form: str = "array", idle_timeout: float | None = IDLE_TIMEOUT, mixed_case_envelope: bool = False,
        signed_size: bool = True, include_trader: bool = True, push_mode: str = "new", number_form: str = "wad",
    ) -> None:  # fmt: skip
        super().__init__(seed=seed, rate=rate, history=history, snapshot_size=snapshot_size)
        if data_form not in ("array", "object"):
            raise ValueError(f"data_form must be 'array' or 'object', not {data_form!r}")
        if push_mode not in PUSH_MODES:
            raise ValueError(f"push_mode must be one of {PUSH_MODES}, not {push_mode!r}")
        if number_form not in NUMBER_FORMS:
            raise ValueError(f"number_form must be one of {NUMBER_FORMS}, not {number_form!r}")
        self.push_mode = push_mode
        self._encode = to_wad if number_form == "wad" else to_plain
        #: text ``pong`` replies received to :meth:`ping_clients`
        self.pongs = 0
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive seconds or None, not {idle_timeout!r}")
        self.data_form = data_form
        self.idle_timeout = idle_timeout
        self.signed_size = signed_size
        self.include_trader = include_trader
        self._heads: dict[str, dict[str, Any]] = {  # each pair's envelope, without "data"
            market.pair: {"chainId": CHAIN_ID, "instrument": market.instrument, "expiry": PERPETUAL, "stream": "trades"}
            for market in _MARKETS
        }
        if mixed_case_envelope:
            for head in self._heads.values():
                head["instrument"] = _mixed_case(head["instrument"])
        self._rng = random.Random(seed)
        self._lock = threading.RLock()  # guards the tape and the generator state
        self._tape: deque[_Entry] = deque(maxlen=TAPE_LIMIT)
        self._recent: dict[str, deque[_Entry]] = {pair: deque(maxlen=MAX_TRADES_LIMIT) for pair in PAIRS}
        self._sessions: dict[Outbox, _Session] = {}  # loop thread only
        self._marks = {market.pair: market.start for market in _MARKETS}
        self._balances = {trader: Decimal(self._rng.randint(100_000, 2_000_000)).scaleb(-2) for trader in TRADERS}
        self._order: _Order | None = None
        self._next_id = FIRST_TRADE_ID
        self._last_timestamp = 0
        spacing_ns = round(1e9 / rate) if rate > 0 else 1_000_000_000  # as the live rate would space them
        now_ns = time.time_ns()
        with self._lock, localcontext(_CONTEXT):
            for age in range(history, 0, -1):
                self._append(self._next_entry((now_ns - age * spacing_ns) // 1_000_000_000))

    def trades(self, pair: str | None = None, *, exact: bool = False) -> list[dict[str, Any]]:
        """Return every trade still on the tape, oldest first, as decoded from the wire.

        Each dict equals what a client gets from ``json.loads(item, parse_float=Decimal)``.
        With ``exact=True`` each also has the key ``"exact"`` (never sent): the
        Decimal of every WAD field (:data:`WAD_FIELDS`) before encoding, ``size``
        signed as on the wire. Safe from any thread.

        :param pair: a pair key (any case); ``None`` for every pair.
        :raises ValueError: for a pair that is not listed.
        """
        key = None if pair is None else pair.lower()
        if key is not None and key not in PAIRS:
            raise ValueError(f"unknown pair {pair!r}; listed: {sorted(PAIRS)}")
        with self._lock:
            entries = [entry for entry in self._tape if key is None or entry.pair == key]
        return [_decode(entry, exact) for entry in entries]

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Create ``count`` trades; after each, push its pair's window to the subscribers."""
        marks = self._fault_marks(count)
        with self._lock, localcontext(_CONTEXT):
            now = time.time_ns() // 1_000_000_000
            entries = [self._next_entry(now) for _ in range(count)]
            pushes: list[list[tuple[Outbox, str]]] = []
            for entry in entries:
                self._append(entry)
                pushes.append(self._pushes(entry))  # the window as of this trade
        for push in self._arrange(pushes, marks):
            for outbox, frame in push:
                if outbox in self._sessions:  # a duplicate may outlive its connection
                    outbox.push(frame)
        return [_decode(entry, False) for entry in entries]

    def ping_clients(self) -> int:
        """Send the text ``ping`` to every connected client (the server's own heartbeat);
        returns how many were pinged.  Their ``pong`` replies count in :attr:`pongs`.
        Safe from any thread."""

        def ping() -> int:
            for outbox in self._sessions:
                outbox.push("ping")
            return len(self._sessions)

        return call_on_loop(self._loop, ping)

    async def handler(self, connection: ServerConnection) -> None:
        """Answer requests and pings, push subscribed windows, close when idle."""
        loop = asyncio.get_running_loop()
        session = _Session(Outbox(connection), loop.time())
        self._sessions[session.outbox] = session
        self.outboxes.add(session.outbox)
        watchdog = asyncio.create_task(self._watch_idle(connection, session)) if self.idle_timeout else None

        async def on_message(message: str | bytes) -> None:
            session.last_seen = loop.time()
            try:
                self._on_message(session, message)
            except Exception:
                logger.exception("synfutures: fault handling %.200r from %s", message, connection.remote_address)
                await connection.close(CloseCode.INTERNAL_ERROR, "internal error")

        try:
            await session.outbox.pump(on_message)
        finally:
            self._sessions.pop(session.outbox, None)
            self.outboxes.discard(session.outbox)
            if watchdog is not None:
                if not session.closing:
                    watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)

    # -- requests (loop thread) ------------------------------------------------

    async def _watch_idle(self, connection: ServerConnection, session: _Session) -> None:
        assert self.idle_timeout is not None
        loop = asyncio.get_running_loop()
        while (remaining := session.last_seen + self.idle_timeout - loop.time()) > 0:
            await asyncio.sleep(remaining)
        session.closing = True
        logger.info("synfutures: closing %s: idle for %.1f s", connection.remote_address, self.idle_timeout)
        await connection.close(CloseCode.NORMAL_CLOSURE, IDLE_REASON)

    def _on_message(self, session: _Session, message: str | bytes) -> None:
        outbox = session.outbox
        if message == "ping":
            outbox.pong("pong")
            return
        if message == "pong":  # a reply to ping_clients()
            self.pongs += 1
            return
        if isinstance(message, bytes):
            return
        try:
            request = json.loads(message, parse_float=Decimal)
        except (ValueError, RecursionError):
            logger.debug("synfutures: ignoring malformed frame %.80r", message)
            return
        request_id = request.get("id") if isinstance(request, dict) else None
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return
        if (method := request.get("method")) not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            outbox.put(_ack(request_id, UNKNOWN_METHOD))
            return
        result, pairs, limit = _parse_params(request.get("params"))
        outbox.put(_ack(request_id, result))
        for pair in pairs:  # none unless the request succeeded
            if method == "UNSUBSCRIBE":
                session.subscriptions.pop(pair, None)
                continue
            # Window and subscription in one loop step: later trades follow the window.
            session.subscriptions[pair] = limit
            for frame in self._frames(pair, self._window(pair, limit)):
                outbox.put(frame)

    # -- frames ------------------------------------------------------------------

    def _pushes(self, entry: _Entry) -> list[tuple[Outbox, str]]:
        """The frames that ``entry``, just appended, sends to each subscriber of its pair, in order."""
        frames: dict[int, list[str]] = {}  # by window size, shared by subscribers
        pushes: list[tuple[Outbox, str]] = []
        for session in self._sessions.values():
            limit = session.subscriptions.get(entry.pair)
            if limit is None:
                continue
            if self.data_form == "object" or self.push_mode == "new":
                limit = 1  # the new trade alone
            if limit not in frames:
                frames[limit] = self._frames(entry.pair, self._window(entry.pair, limit))
            pushes.extend((session.outbox, frame) for frame in frames[limit])
        return pushes

    def _window(self, pair: str, limit: int) -> list[_Entry]:
        """The up to ``limit`` newest trades of ``pair``, newest first."""
        with self._lock:
            return list(itertools.islice(reversed(self._recent[pair]), limit))

    def _frames(self, pair: str, entries: list[_Entry]) -> list[str]:
        head = self._heads[pair]
        if self.data_form == "object":
            # one trade per frame is a stream of single trades, so in time order: a
            # window split newest first could not be delivered oldest first without
            # the client buffering an unknown number of frames
            return [dumps({**head, "data": Raw(entry.text)}) for entry in reversed(entries)]
        return [dumps({**head, "data": [Raw(entry.text) for entry in entries]})]

    # -- the tape ------------------------------------------------------------------
    # Every draw comes from self._rng in a fixed order, so the content depends
    # only on the seed (not on how generate() calls are chunked).

    def _append(self, entry: _Entry) -> None:
        self._tape.append(entry)
        self._recent[entry.pair].append(entry)

    def _next_entry(self, now: int) -> _Entry:
        rng = self._rng
        order = self._order
        if order is None:
            market = rng.choices(_MARKETS, weights=_WEIGHTS)[0]
            fills = rng.randint(2, 4) if rng.random() < SWEEP_SHARE else 1
            # Wall clocks can step back; the tape's timestamps never do.
            self._last_timestamp = max(now, self._last_timestamp)
            order = _Order(
                market=market,
                trader=rng.choice(TRADERS),
                side=rng.choice(("long", "short")),
                tx_hash=f"0x{rng.getrandbits(256):064x}",
                timestamp=self._last_timestamp,
                event="sweep" if fills > 1 else "trade",
                remaining=fills,
            )
        market = order.market
        step = max(1, market.start // 10_000)
        mark = self._marks[market.pair] + rng.randint(-step, step)
        self._marks[market.pair] = mark = min(max(mark, market.start // 2), market.start * 3 // 2)
        fair = mark + rng.randint(-step, step)
        if order.price is None:
            price = (fair // market.tick + rng.randint(-2, 2)) * market.tick
        else:  # a sweep walks the book one tick per fill
            price = order.price + (market.tick if order.side == "long" else -market.tick)
        order.price = price = max(price, market.tick)
        size = rng.randint(1, market.max_steps) * market.size_step
        pnl = Decimal(rng.randint(-5_000, 5_000)).scaleb(-2)
        price_value = Decimal(price).scaleb(market.exponent)
        trade_fee = price_value * size * _TRADE_FEE
        protocol_fee = trade_fee * _PROTOCOL_SHARE
        balance = self._balances[order.trader] + pnl - trade_fee - protocol_fee
        if balance < 100:
            balance += 10_000  # the trader tops up the margin
        self._balances[order.trader] = balance
        mark_value = Decimal(mark).scaleb(market.exponent)
        signed = -size if order.side == "short" and self.signed_size else size
        exact = dict(zip(WAD_FIELDS, (signed, balance, price_value, trade_fee, protocol_fee,
                                      Decimal(fair).scaleb(market.exponent), mark_value)))  # fmt: skip
        wad = {key: self._encode(value) for key, value in exact.items()}
        base = {"address": market.token_address, "symbol": market.symbol.split("/")[0], "decimals": market.token_decimals}
        trade: dict[str, Any] = {
            "id": str(self._next_id), "instrumentAddress": market.instrument, "expiry": PERPETUAL,
            "size": wad["size"], "balance": wad["balance"], "price": wad["price"], "tradeFee": wad["tradeFee"],
            "protocolFee": wad["protocolFee"], "timestamp": order.timestamp, "txHash": order.tx_hash,
            "type": "Market", "symbol": market.symbol,
            "baseToken": _token(base, mark_value), "quoteToken": _token(_QUOTE, Decimal("1.0")),
            "typeString": "Market", "side": order.side, "event": order.event,
            "fairPrice": wad["fairPrice"], "markPrice": wad["markPrice"],
        }  # fmt: skip
        if self.include_trader:
            trade["trader"] = order.trader
        self._next_id += 1
        order.remaining -= 1
        self._order = order if order.remaining else None
        return _Entry(market.pair, dumps(trade), exact)


def _parse_params(params: Any) -> tuple[str, list[str], int]:
    """A request's ``(result, distinct lowercase pairs, tradesLimit)``."""
    if (
        not isinstance(params, dict)
        or params.get("type") != "trades"
        or not _is_int(params.get("chainId"))
        or params["chainId"] != CHAIN_ID
        or not isinstance(pairs := params.get("pairs"), list)
        or not pairs
    ):
        return INVALID_PAIRS, [], 0
    if len(pairs) > MAX_PAIRS:
        return TOO_MANY_PAIRS, [], 0
    if not all(isinstance(pair, str) and pair.lower() in PAIRS for pair in pairs):
        return INVALID_PAIRS, [], 0
    limit = DEFAULT_TRADES_LIMIT
    if isinstance(value := params.get("tradesLimit"), int) and not isinstance(value, bool):
        limit = min(max(value, 1), MAX_TRADES_LIMIT)
    return SUCCESS, list(dict.fromkeys(pair.lower() for pair in pairs)), limit


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ack(request_id: int, result: str) -> str:
    return dumps({"id": request_id, "result": result})


def _token(token: dict[str, Any], price: Decimal) -> dict[str, Any]:
    image = f"https://assets.example/tokens/{token['symbol'].lower()}.png"
    return {**token, "image": image, "price": price}


def _decode(entry: _Entry, exact: bool) -> dict[str, Any]:
    trade: dict[str, Any] = json.loads(entry.text, parse_float=Decimal)
    if exact:
        trade["exact"] = dict(entry.exact)
    return trade


def _mixed_case(address: str) -> str:
    """``0x`` then the hex digits with every other one upper-cased (not EIP-55, just mixed)."""
    return "0x" + "".join(c.upper() if i % 2 == 0 else c for i, c in enumerate(address[2:]))
