"""The normalized values tradefeed hands to user code.

This module owns :class:`Trade` (the contract in ``shared/venues/README.md``),
:class:`Side`, :class:`Liquidity` and :class:`StatusEvent`.  It holds plain
values only: no parsing of venue formats (that is ``adapters/``), no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping

__all__ = [
    "PUBLIC", "USER", "STREAMS", "Side", "Liquidity", "Trade", "Status", "StatusEvent", "FeedStats", "Gap", "SubscriptionChange"
]  # fmt: skip


class Side(str, enum.Enum):
    """Which side of the trade: the aggressor on public tapes, the account's own side on
    private/user feeds.  Members are ``str``, so ``trade.side == "buy"`` holds."""

    BUY = "buy"
    SELL = "sell"

    def __str__(self) -> str:
        return self.value


class Liquidity(str, enum.Enum):
    """Whether the (own or aggressing) order added or took liquidity."""

    MAKER = "maker"
    TAKER = "taker"

    def __str__(self) -> str:
        return self.value


#: ``Trade.stream`` of a venue's public tape: every participant's trades, ``side`` the aggressor's
PUBLIC = "public"
#: ``Trade.stream`` of an account's or wallet's own fills: ``side`` is the account's own side
USER = "user"
#: the values ``Trade.stream`` takes
STREAMS = (PUBLIC, USER)


def decimal_text(value: Decimal) -> str:
    """Every digit of *value*, in plain notation (``0.000000001``, never ``1E-9``)."""
    return format(value, "f")


def _jsonable(value: Any) -> Any:
    """Return *value* with Decimals as strings, recursively (for ``raw``)."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Trade:
    """One executed trade, the same shape for every venue.

    Money is :class:`~decimal.Decimal`, exactly as the venue sent it; instants carry
    their unit in the name.  Equality and hashing are by value, except that
    ``received_ns`` (when *this process* saw the trade) is ignored, so the same
    venue trade seen on two connections compares equal; ``raw`` takes part in
    equality but not in the hash (a dict is not hashable).

    >>> t = Trade("dopp", "BTC-PERPETUAL", "771204", Decimal("90125.5"),
    ...           Decimal("0.25"), Side.BUY, 1767225600123)
    >>> t.to_dict()["price"]
    '90125.5'
    """

    #: venue registry key: ``"dopp"``, ``"synfutures"``, ``"synthetix"``, ``"rails"``
    venue: str
    #: venue-native symbol, unmodified (``BTC-PERPETUAL``, ``BTC-USDT``, ...)
    symbol: str
    #: the venue's trade id, as a string
    trade_id: str
    #: execution price, exact
    price: Decimal
    #: base-asset quantity, always positive
    amount: Decimal
    #: aggressor side on public feeds, own side on user feeds
    side: Side
    #: venue time of the trade, Unix epoch milliseconds
    timestamp_ms: int
    #: local receive time, Unix epoch nanoseconds (``time.time_ns()``); not compared
    received_ns: int = field(default=0, compare=False)
    #: venue sequence number where the venue sends one, else None
    sequence: int | None = None
    #: fee charged, where the venue reports it
    fee: Decimal | None = None
    #: currency of ``fee``
    fee_currency: str | None = None
    #: maker/taker where known
    liquidity: Liquidity | None = None
    #: :data:`PUBLIC` (a venue's public tape; ``side`` is the aggressor's) or :data:`USER`
    #: (one account's or wallet's own fills; ``side`` is its own)
    stream: str = "public"
    #: every venue field not mapped above, unchanged
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def notional(self) -> Decimal:
        """``price * amount`` (in the quote currency of the symbol)."""
        return self.price * self.amount

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: Decimals become strings with every digit, in plain
        notation; enums become their values."""
        return {
            "venue": self.venue,
            "symbol": self.symbol,
            "trade_id": self.trade_id,
            "price": decimal_text(self.price),
            "amount": decimal_text(self.amount),
            "side": self.side.value,
            "timestamp_ms": self.timestamp_ms,
            "received_ns": self.received_ns,
            "sequence": self.sequence,
            "fee": None if self.fee is None else decimal_text(self.fee),
            "fee_currency": self.fee_currency,
            "liquidity": None if self.liquidity is None else self.liquidity.value,
            "stream": self.stream,
            "raw": _jsonable(self.raw),
        }

    def replace(self, **changes: Any) -> "Trade":
        """A copy with *changes* applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def fast_constructor(cls: type) -> type:
    """A class whose ``__init__(*every_field)`` builds a *cls*, four times faster than
    the frozen dataclass's own ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``: for a
    :class:`Trade` about 4 µs, more than parsing the trade.  The class made here has
    the same slots in the same order, sets them with plain assignments, then becomes a
    *cls* (CPython allows ``__class__`` assignment between classes of identical layout,
    and checks that; a test pins the field lists together).  Its ``__init__`` is
    generated from the field names, as ``dataclasses`` generates its own.
    """
    names = tuple(f.name for f in dataclasses.fields(cls))
    source = "def __init__(self, %s):\n%s    self.__class__ = cls\n" % (
        ", ".join(names),
        "".join("    self.%s = %s\n" % (name, name) for name in names),
    )
    namespace: dict[str, Any] = {}
    exec(source, {"cls": cls}, namespace)  # noqa: S102 - field names of our own dataclass
    return type("_%sBuilder" % cls.__name__, (), {"__slots__": names, "__init__": namespace["__init__"], "__module__": cls.__module__})


_TradeBuilder = fast_constructor(Trade)

#: ``new_trade(venue, symbol, trade_id, price, amount, side, timestamp_ms, received_ns,
#: sequence, fee, fee_currency, liquidity, stream, raw)``: ``Trade(...)`` with every field given
#: positionally, for the adapters' hot path; the same value, built without the frozen
#: dataclass's per-field cost (the builder class itself: no wrapper call per trade)
new_trade: Callable[
    [str, str, str, Decimal, Decimal, Side, int, int, int | None, Decimal | None, str | None, Liquidity | None, str, Mapping[str, Any]],
    Trade,
] = _TradeBuilder

#: ``blank_trade()``: an empty builder, for a parser that sets all 14 fields itself and
#: then assigns ``__class__ = Trade`` (no ``__init__`` call at all: the cheapest build)
blank_trade = functools.partial(object.__new__, _TradeBuilder)


class Status(str, enum.Enum):
    """Lifecycle states reported through :meth:`FeedManager.on_status`."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    #: a symbol (``detail["symbol"]``; None: the whole feed) sent no data for ``stale_after``
    STALE = "stale"
    #: data came back for a stale symbol (or feed)
    FRESH = "fresh"
    #: the hand-off queue is behind (``detail``: ``queued``, and ``dropped`` in bounded
    #: modes); ``feed`` and ``venue`` are "" because it concerns every feed
    LAGGING = "lagging"
    #: the queue is back under half its high-water mark / limit
    CAUGHT_UP = "caught_up"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One change in a feed's connection state; ``on_status`` callbacks get one of these.

    ``detail`` carries what is known about the event: for ``disconnected`` the close
    ``code``/``reason`` or ``error``; for ``reconnecting`` the ``delay`` in seconds and
    the ``attempt`` number; for ``stopped`` the fatal ``error`` if the feed ended on one.
    """

    #: the feed's name, e.g. ``"dopp-1"``
    feed: str
    #: venue registry key
    venue: str
    #: the new state
    status: Status
    #: local time of the event, Unix epoch nanoseconds
    time_ns: int
    #: event-specific facts (see the class docstring)
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Counters of one feed at the moment :meth:`FeedManager.stats` was called."""

    #: the feed's name
    feed: str
    #: venue registry key
    venue: str
    #: current state
    status: Status
    #: frames received
    messages: int
    #: trades handed to the dispatcher (after de-duplication)
    trades: int
    #: trades dropped as already seen (snapshot/window overlap)
    duplicates: int
    #: frames or records that could not be parsed
    errors: int
    #: reconnect attempts scheduled
    reconnects: int
    #: possible losses reported (Gap events)
    gaps: int
    #: trades dropped because the queue was full (``queue_limit``)
    dropped: int
    #: seconds since the last trade arrived, None before the first
    last_trade_age: float | None


@dataclass(frozen=True, slots=True)
class Gap:
    """Trades of one symbol may be missing between two instants: loss is never silent.

    ``reason`` is ``"sequence"`` (the venue's sequence jumped from ``last_sequence`` to
    ``next_sequence``) or ``"reconnect"`` (after a reconnect the venue's back-fill did not
    reach back to the last trade seen, so trades between ``from_ms`` and ``to_ms`` may
    be lost).  ``on_gap`` callbacks get one of these.
    """

    #: the feed's name
    feed: str
    #: venue registry key
    venue: str
    #: the symbol with the hole
    symbol: str
    #: ``"sequence"`` or ``"reconnect"``
    reason: str
    #: venue time of the last trade before the hole, Unix ms
    from_ms: int
    #: venue time of the first trade after it, Unix ms
    to_ms: int
    #: the sequence before the jump (``reason="sequence"``)
    last_sequence: int | None = None
    #: the sequence after it
    next_sequence: int | None = None
    #: the ``Trade.stream`` of the hole: ``"public"`` or ``"user"``
    stream: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """A run-time ``Feed.subscribe``/``unsubscribe`` as a recorder sees it: handed to
    ``FeedManager(recorder=...)`` in place of a frame, at the moment the live adapter
    took it (under the adapter lock, so in order with the frames), and replayed there
    (:mod:`tradefeed.recording`).
    """

    #: True: subscribe; False: unsubscribe
    subscribe: bool
    #: the items as given (symbols, pairs or streams)
    items: tuple[str, ...]
    #: the connection was open (its adapter had sent its ``on_open`` requests); False:
    #: the change came between connect and open, and ``on_open`` will include it
    opened: bool
    #: the feed's parameters before the change (the new ones are the recorder's ``params``)
    before: Mapping[str, Any] = field(default_factory=dict)
