"""Dopp's "Last User Trades" feed, as specified in ``docs/venues/dopp.md``.

This module owns what is Dopp-specific: the two paths and their query filters,
the seeded trade tape, and the frames built from it. Loop, servers, rate limit
and connection tracking are generic and live in :mod:`tradefeed.simulator.server`.

How each row of the spec's "Unknown / assumed" table is served:

1. No testnet: the production paths are served under ``ws://host:port``.
2. No auth: any ``wallet_address`` (or none) is accepted; it is only a filter,
   compared case-insensitively (addresses are hex).
3. No filter: every trade. Empty query values count as absent; query
   parameters of the other endpoint are ignored.
4. Snapshot: right after the handshake one frame with the up to
   ``snapshot_size`` (default 20) most recent matching trades, newest first,
   possibly ``[{"last_trades": []}]``; then each frame carries only trades not
   sent before on that connection, oldest first, one frame per generation tick
   (none when nothing matches). The simulator never resends a trade.
5. ``timestamp`` is wall-clock Unix milliseconds (the only non-seeded field).
6. ``liquidity`` is ``"M"`` or ``"T"``; a ``"market"`` order is always ``"T"``.
7. ``direction`` is the wallet's side, lowercase; ``trade_direction`` is the
   aggressor's side: equal to ``direction`` for ``"T"``, opposite for ``"M"``.
8. ``amount`` is positive, in base-currency units (perpetuals: multiples of
   0.001 BTC / 0.01 ETH; options: multiples of 0.1).
9. Option prices are in base currency (tick 0.0001); perpetuals in USD
   (tick 0.5 BTC, 0.05 ETH).
10. ``fee_currency`` is ``"USDC"`` for perpetuals, the base currency for options.
11. ``trade_seq`` counts per instrument, +1 per trade; ``trade_id`` (a string)
    and ``order_id`` increase across the venue.
12. The outer array always holds exactly one ``{"last_trades": [...]}`` object.
13. Unknown ``instrument_name`` or ``currency``: handshake accepted, then close
    1008 ``"invalid filter"``.
14. Rate limit: the :class:`~tradefeed.simulator.server.Simulator` defaults
    (HTTP 429 after 10 connects per 10 s per IP).
15. Heartbeat: protocol ping/pong only; pings are answered, none are sent or
    required. Client text frames are ignored, never closed.
16. Numbers are JSON numbers whose literal is exactly the ``Decimal``'s digits
    (:mod:`tradefeed.simulator._json`).

The tape keeps the last :data:`TAPE_LIMIT` trades, so a long demo does not grow
memory without bound; older trades leave snapshots and :meth:`DoppVenue.trades`.

Trade faults (:meth:`~tradefeed.simulator.Venue.fault`), all three supported; a
batch is the trades of one :meth:`DoppVenue.generate`, i.e. of one live frame:

- ``duplicate``: the trade is sent again at the front of the next live frame
  (to each connection whose filters match it), same ``trade_id`` and ``trade_seq``.
- ``reorder``: it trades places with the trade before it in its frame.
- ``skip_sequence``: its ``trade_seq`` is its instrument's previous + 2, on
  the tape (``trade_id`` still counts +1: the gap shows in ``trade_seq`` only).

Stall (``Simulator.stall``) drops the snapshot on connect as well as live
frames: Dopp sends nothing but trades.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode

from ._base import Outbox, Venue
from ._json import Raw, dumps

__all__ = ["BY_CURRENCY", "BY_INSTRUMENT", "CURRENCIES", "INSTRUMENTS", "WALLETS", "DoppVenue"]

logger = logging.getLogger(__name__)

BY_INSTRUMENT = "/v1/public/ws/get_user_trades_by_instrument"
BY_CURRENCY = "/v1/public/ws/get_user_trades_by_currency"

#: the fixed wallets trading on the simulated venue (the first is the spec's example)
WALLETS: tuple[str, ...] = (
    "0x9b1e4f0c2a7d3e8b5f6a1c2d3e4f5a6b7c8d9e0f",
    "0x4a7c1e9d2b8f3a6c5e0d7b9a1f2c3e4d5b6a7c8e",
    "0xd1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0",
    "0x07f3e5c1a9b8d6f4e2c0a1b3d5f7e9c2a4b6d8f1",
)

TAPE_LIMIT = 200_000  # trades kept in memory
FIRST_TRADE_ID = 771200
FIRST_ORDER_ID = 1048576
INVALID_FILTER = "invalid filter"

# Fixed precision and rounding, whatever the calling thread's decimal context.
_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_PERP_FEE = {"T": Decimal("0.0005"), "M": Decimal("0.0002")}  # of notional, in USDC
_OPTION_FEE = {"T": Decimal("0.0003"), "M": Decimal("0.0002")}  # per unit, in base currency
_USDC_CENT = Decimal("0.01")
_OPTION_FEE_QUANTUM = Decimal("0.00001")


@dataclass(frozen=True)
class _Spec:
    """A listed instrument and how its trades are drawn."""

    name: str
    base: str
    tick: Decimal  # price step
    amount_step: Decimal
    max_steps: int  # largest amount, in amount steps
    start_ticks: int  # options: first price in ticks; perpetuals follow the index
    weight: int  # relative frequency

    @property
    def perpetual(self) -> bool:
        return self.name.endswith("-PERPETUAL")


_SPECS = (
    _Spec("BTC-PERPETUAL", "BTC", Decimal("0.5"), Decimal("0.001"), 2000, 0, 40),
    _Spec("ETH-PERPETUAL", "ETH", Decimal("0.05"), Decimal("0.01"), 5000, 0, 30),
    _Spec("BTC-27MAR26-95000-C", "BTC", Decimal("0.0001"), Decimal("0.1"), 50, 215, 10),
    _Spec("BTC-27MAR26-80000-P", "BTC", Decimal("0.0001"), Decimal("0.1"), 50, 120, 10),
    _Spec("ETH-27MAR26-3500-C", "ETH", Decimal("0.0001"), Decimal("0.1"), 50, 300, 10),
)
_WEIGHTS = [spec.weight for spec in _SPECS]
_INDEX_START_CENTS = {"BTC": 9_000_000, "ETH": 300_000}  # 90000.00 and 3000.00 USD

#: instrument names listed on the simulated venue
INSTRUMENTS: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
#: base currencies accepted by the ``currency`` filter
CURRENCIES: tuple[str, ...] = tuple(_INDEX_START_CENTS)


@dataclass
class _Book:
    """Generator state of one instrument."""

    price_ticks: int  # options only
    seq: int = 0
    last_price: Decimal | None = None
    last_tick: int = 0
    iv_tenths: int = 485


class _Entry(NamedTuple):
    trade: dict[str, Any]
    text: str  # the trade encoded once, spliced into every frame that carries it


@dataclass(frozen=True)
class _Selection:
    """The filters of one connection (``None`` = any)."""

    instrument_name: str | None = None
    currency: str | None = None
    wallet_address: str | None = None  # lowercase

    def matches(self, trade: dict[str, Any]) -> bool:
        return (
            (self.instrument_name is None or trade["instrument_name"] == self.instrument_name)
            and (self.currency is None or trade["base_currency"] == self.currency)
            and (self.wallet_address is None or trade["wallet_address"] == self.wallet_address)
        )


class DoppVenue(Venue):
    """The simulated Dopp venue: both trade endpoints over one seeded tape.

    ::

        with Simulator(seed=1, rate=0) as sim:
            dopp = sim.venue("dopp")
            new = dopp.emit(3)                 # broadcast to matching connections
            btc = dopp.trades(currency="BTC")  # the tape so far, oldest first

    Trades are dicts with the keys of the spec's example; money values,
    ``index_price``, ``mark_price`` and ``iv`` are :class:`~decimal.Decimal`.
    """

    name = "dopp"
    paths = frozenset({BY_INSTRUMENT, BY_CURRENCY})
    fault_knobs = frozenset({"duplicate", "reorder", "skip_sequence"})

    def __init__(self, *, seed: int = 1, rate: float = 200.0, history: int = 100, snapshot_size: int = 20) -> None:
        super().__init__(seed=seed, rate=rate, history=history, snapshot_size=snapshot_size)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # guards the tape and the generator state
        self._tape: deque[_Entry] = deque(maxlen=TAPE_LIMIT)
        self._subscribers: dict[Outbox, _Selection] = {}  # loop thread only
        self._books = {spec.name: _Book(price_ticks=spec.start_ticks) for spec in _SPECS}
        self._index_cents = dict(_INDEX_START_CENTS)
        self._next_trade_id = FIRST_TRADE_ID
        self._order_id = FIRST_ORDER_ID
        self._last_timestamp = 0
        # History: spaced as the live rate would space it, ending now.
        spacing = round(1000 / rate) if rate > 0 else 1000
        now = _now_ms()
        with localcontext(_CONTEXT):
            for age in range(history, 0, -1):
                self._tape.append(self._next_entry(now - age * spacing))

    def trades(
        self, instrument_name: str | None = None, currency: str | None = None, wallet_address: str | None = None
    ) -> list[dict[str, Any]]:
        """Return every trade still on the tape that matches, oldest first.

        Safe from any thread. Empty strings count as absent, as on the wire.
        """
        selection = _Selection(instrument_name or None, currency or None, _wallet(wallet_address))
        with self._lock:
            return [dict(entry.trade) for entry in self._tape if selection.matches(entry.trade)]

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Create ``count`` trades, append them to the tape and broadcast them as one frame."""
        marks = self._fault_marks(count)
        with self._lock, localcontext(_CONTEXT):
            timestamp = _now_ms()
            entries = [self._next_entry(timestamp, skip=mark.skip) for mark in marks]
            self._tape.extend(entries)
        sent = self._arrange(entries, marks)
        for outbox, selection in self._subscribers.items():
            texts = [entry.text for entry in sent if selection.matches(entry.trade)]
            if texts:
                outbox.push(_frame(texts))
        return [dict(entry.trade) for entry in entries]

    async def handler(self, connection: ServerConnection) -> None:
        """Send the snapshot, then every new matching trade, until the connection closes."""
        assert connection.request is not None  # the handshake has completed
        selection = _parse_selection(connection.request.path)
        if selection is None:
            logger.info("dopp: closing %s: invalid filter in %s", connection.remote_address, connection.request.path)
            await connection.close(CloseCode.POLICY_VIOLATION, INVALID_FILTER)
            return
        outbox = Outbox(connection)
        # Snapshot and subscription happen in one step of the loop (no await in
        # between), so every later trade reaches this outbox exactly once, after
        # the snapshot.
        outbox.push(_frame([entry.text for entry in self._recent(selection)]))
        self._subscribers[outbox] = selection
        self.outboxes.add(outbox)
        try:
            await outbox.pump()  # client frames are read and ignored
        finally:
            del self._subscribers[outbox]
            self.outboxes.discard(outbox)

    def _recent(self, selection: _Selection) -> list[_Entry]:
        """The up to ``snapshot_size`` newest matching trades, newest first."""
        recent: list[_Entry] = []
        with self._lock:
            for entry in reversed(self._tape):
                if len(recent) >= self.snapshot_size:
                    break
                if selection.matches(entry.trade):
                    recent.append(entry)
        return recent

    # -- the tape -------------------------------------------------------------
    # Every draw comes from self._rng in a fixed order, so the content depends
    # only on the seed; timestamps are the one wall-clock input.

    def _next_entry(self, timestamp: int, skip: bool = False) -> _Entry:
        """Draw the next trade; with ``skip`` its ``trade_seq`` leaves one number out
        (decided outside ``self._rng``, so the tape's other fields do not change)."""
        rng = self._rng
        spec = rng.choices(_SPECS, weights=_WEIGHTS)[0]
        book = self._books[spec.name]
        index_cents = self._walk_index(spec.base)
        if spec.perpetual:
            price, mark_price, iv = self._perpetual_prices(spec, index_cents)
        else:
            price, mark_price, iv = self._option_prices(spec, book)
        amount = rng.randint(1, spec.max_steps) * spec.amount_step
        direction = rng.choice(("buy", "sell"))
        liquidity = rng.choice(("M", "T"))
        order_type = rng.choice(("limit", "market")) if liquidity == "T" else "limit"
        wallet = rng.choice(WALLETS)
        self._order_id += rng.randint(1, 4)
        if spec.perpetual:
            fee = (price * amount * _PERP_FEE[liquidity]).quantize(_USDC_CENT)
        else:
            fee = (amount * _OPTION_FEE[liquidity]).quantize(_OPTION_FEE_QUANTUM)
        book.seq += 2 if skip else 1
        trade_id, self._next_trade_id = self._next_trade_id, self._next_trade_id + 1
        # Wall clocks can step back; the tape's timestamps never do.
        self._last_timestamp = max(timestamp, self._last_timestamp)
        trade = {
            "wallet_address": wallet,
            "amount": amount,
            "base_currency": spec.base,
            "direction": direction,
            "fee": fee,
            "fee_currency": "USDC" if spec.perpetual else spec.base,
            "index_price": Decimal(index_cents).scaleb(-2),
            "instrument_name": spec.name,
            "iv": iv,
            "liquidity": liquidity,
            "mark_price": mark_price,
            "order_id": self._order_id,
            "order_type": order_type,
            "price": price,
            "tick_direction": _tick_direction(book, price),
            "timestamp": self._last_timestamp,
            "trade_direction": direction if liquidity == "T" else _opposite(direction),
            "trade_id": str(trade_id),
            "trade_seq": book.seq,
        }
        return _Entry(trade, dumps(trade))

    def _walk_index(self, base: str) -> int:
        """Move the base currency's index by up to 0.01 %, kept within 50-150 % of its start."""
        start = _INDEX_START_CENTS[base]
        step = start // 10_000
        cents = self._index_cents[base] + self._rng.randint(-step, step)
        self._index_cents[base] = cents = min(max(cents, start // 2), start * 3 // 2)
        return cents

    def _perpetual_prices(self, spec: _Spec, index_cents: int) -> tuple[Decimal, Decimal, Decimal]:
        step = index_cents // 10_000
        mark_cents = index_cents + self._rng.randint(-step, step)
        tick_cents = int(spec.tick.scaleb(2))
        price_ticks = (mark_cents + self._rng.randint(-step, step)) // tick_cents
        return price_ticks * spec.tick, Decimal(mark_cents).scaleb(-2), Decimal(0)

    def _option_prices(self, spec: _Spec, book: _Book) -> tuple[Decimal, Decimal, Decimal]:
        rng = self._rng
        book.price_ticks = max(1, book.price_ticks + rng.randint(-3, 3))
        mark_ticks = max(1, book.price_ticks + rng.randint(-2, 2))
        book.iv_tenths = min(max(book.iv_tenths + rng.randint(-5, 5), 200), 1500)
        return book.price_ticks * spec.tick, mark_ticks * spec.tick, Decimal(book.iv_tenths).scaleb(-1)


def _tick_direction(book: _Book, price: Decimal) -> int:
    """Deribit's code against the instrument's previous trade; updates ``book``.

    0 plus, 1 zero-plus, 2 minus, 3 zero-minus; an instrument's first trade is 0.
    """
    if book.last_price is None or price > book.last_price:
        tick = 0
    elif price < book.last_price:
        tick = 2
    else:
        tick = 1 if book.last_tick in (0, 1) else 3
    book.last_price, book.last_tick = price, tick
    return tick


def _parse_selection(path: str) -> _Selection | None:
    """The filters in a request path, or ``None`` if a filter names nothing listed."""
    url = urlsplit(path)
    query = {key: values[0] for key, values in parse_qs(url.query).items()}  # drops empty values
    wallet = _wallet(query.get("wallet_address"))
    if url.path == BY_INSTRUMENT:
        instrument = query.get("instrument_name")
        if instrument is not None and instrument not in INSTRUMENTS:
            return None
        return _Selection(instrument_name=instrument, wallet_address=wallet)
    currency = query.get("currency")
    if currency is not None and currency not in CURRENCIES:
        return None
    return _Selection(currency=currency, wallet_address=wallet)


def _frame(texts: list[str]) -> str:
    return dumps([{"last_trades": [Raw(text) for text in texts]}])


def _wallet(value: str | None) -> str | None:
    return value.lower() if value else None


def _opposite(direction: str) -> str:
    return "sell" if direction == "buy" else "buy"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
