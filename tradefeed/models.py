"""The normalized values tradefeed hands to user code.

This module owns :class:`Trade` (the contract in ``shared/venues/README.md``),
:class:`Side`, :class:`Liquidity` and :class:`StatusEvent`.  It holds plain
values only: no parsing of venue formats (that is ``adapters/``), no I/O.
"""

from __future__ import annotations

import copy
import enum
from collections import abc
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException
from typing import Any, Callable, Iterator, Mapping

import msgspec

from ._exact import EXACT
from .exceptions import ParseError

__all__ = [
    "PUBLIC", "USER", "STREAMS", "Side", "Liquidity", "Trade", "LazyRaw", "Status", "StatusEvent", "FeedStats", "Gap",
    "SubscriptionChange",
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


class RawFrame:
    """One received frame, shared by the :class:`LazyRaw` of each trade parsed from it:
    decoded (once, by the generic path's decoder) only when one of them is read.

    :param text: the frame as received.
    :param records: ``records(text)``: every trade record of the frame as a dict, in
        the order the fast path numbered them.

    A field only ``raw`` holds is not decoded by the fast path, so a JSON number there
    that no ``Decimal`` can hold (an exponent of 10**18 or more, which the generic path
    refuses with the frame) is met only here: reading ``raw`` then raises
    :class:`~tradefeed.exceptions.ParseError` naming it (the trade's own fields are exact).
    """

    __slots__ = ("_text", "_records", "_decoded")

    def __init__(self, text: Any, records: Callable[[Any], list[dict[str, Any]]]) -> None:
        self._text = text
        self._records = records
        self._decoded: list[dict[str, Any]] | None = None

    def record(self, index: int) -> dict[str, Any]:
        decoded = self._decoded
        if decoded is None:
            try:
                decoded = self._decoded = self._records(self._text)
            except DecimalException as err:
                raise ParseError(
                    "trade.raw cannot be built: the frame holds a number beyond Decimal's range (%s)" % type(err).__name__,
                    raw=self._text,
                ) from err
            self._text = None  # the bytes can go
        return decoded[index]


class LazyRaw(msgspec.Struct, gc=False):
    """``Trade.raw`` of a trade parsed on the fast path: record *index* of a
    :class:`RawFrame`, without the keys in *drop*, plus *extra*; decoded on first access
    and then kept.

    It is a read-only mapping equal to the dict the generic path builds: ``[k]``,
    ``get``, ``in``, iteration, ``len``, ``keys``/``values``/``items``, ``dict(raw)``,
    ``==`` against a dict, ``repr``, pickling and copying behave as for that dict (a
    pickled or copied trade carries a plain dict).  ``json.dumps`` wants a real dict:
    ``json.dumps(dict(trade.raw))``, or ``trade.to_dict()``.  A msgspec Struct (built
    in C, not tracked by the cyclic GC): one is made per trade.
    """

    frame: RawFrame
    index: int
    drop: frozenset[str]
    extra: Mapping[str, Any] | None = None
    cache: dict[str, Any] | None = None

    def _items(self) -> dict[str, Any]:
        items = self.cache
        if items is None:
            drop = self.drop
            items = {k: v for k, v in self.frame.record(self.index).items() if k not in drop}
            if self.extra:
                items.update(self.extra)
            self.cache = items
        return items

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, key: object) -> bool:
        return key in self._items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items().get(key, default)

    def keys(self) -> Any:
        return self._items().keys()

    def values(self) -> Any:
        return self._items().values()

    def items(self) -> Any:
        return self._items().items()

    def __eq__(self, other: object) -> bool:
        if type(other) is LazyRaw:
            other = other._items()
        return self._items() == other

    def __repr__(self) -> str:
        return repr(self._items())

    def __reduce__(self) -> Any:
        return (dict, (self._items(),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self._items())

    def __deepcopy__(self, memo: Any) -> dict[str, Any]:
        return copy.deepcopy(self._items(), memo)


abc.Mapping.register(LazyRaw)


def _exact(value: Any, name: str, positive: bool = False) -> Decimal:
    """*value* as an exact, finite Decimal: a Decimal, an int or a numeric string."""
    kind = type(value)
    if kind is not Decimal:
        if kind is int or kind is str:
            try:
                value = Decimal(value)
            except ArithmeticError:
                raise ValueError("Trade.%s is not a number: %r" % (name, value)) from None
        else:
            raise TypeError(
                "Trade.%s must be a Decimal (or an int or numeric string), not %s%s"
                % (name, kind.__name__, ": floats are inexact" if kind is float else "")
            )
    if not value.is_finite():
        raise ValueError("Trade.%s must be finite, not %s" % (name, value))
    if positive and value <= 0:
        raise ValueError("Trade.%s must be positive, not %s" % (name, value))
    return value  # type: ignore[no-any-return]


def _text(value: Any, name: str) -> None:
    if type(value) is not str or not value:
        raise TypeError("Trade.%s must be a non-empty string, not %r" % (name, value))


def _whole(value: Any, name: str, optional: bool = False) -> None:
    if type(value) is not int and not (optional and value is None):
        raise TypeError("Trade.%s must be an int%s, not %r" % (name, " or None" if optional else "", value))
    if value is not None and value < 0:
        raise ValueError("Trade.%s must not be negative, not %r" % (name, value))


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One executed trade, the same shape for every venue.

    Money is :class:`~decimal.Decimal`, exactly as the venue sent it; instants carry
    their unit in the name.  Equality and hashing are by value, except that
    ``received_ns`` (when *this process* saw the trade) is ignored, so the same
    venue trade seen on two connections compares equal; ``raw`` takes part in
    equality but not in the hash (a dict is not hashable).

    The constructor checks every field and raises ``TypeError``/``ValueError`` naming
    it: a float price, a negative amount or an unknown side never become a Trade.
    ``"buy"``/``"sell"``, ``"maker"``/``"taker"``, ints and numeric strings for the
    Decimals are taken exactly (``"buy"`` becomes ``Side.BUY``).  A frozen
    ``msgspec.Struct`` (not tracked by the cyclic garbage collector).

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
    received_ns: int = 0
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
    #: every venue field not mapped above, unchanged (a dict, or a :class:`LazyRaw`
    #: equal to one)
    raw: Mapping[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # The hot path: the exact types an adapter passes, each checked once, in one
        # expression (a Python call per trade is what this costs; no attribute is read
        # twice).  Anything else is converted exactly or refused by _check, naming the field.
        price, amount, fee, sequence, received_ns = self.price, self.amount, self.fee, self.sequence, self.received_ns
        timestamp, liquidity, stream = self.timestamp_ms, self.liquidity, self.stream
        raw: Any = self.raw
        if not (
            type(price) is Decimal
            and price.is_finite()
            and type(amount) is Decimal
            and amount.is_finite()
            and amount  # not zero, and not signed: positive
            and not amount.is_signed()
            and type(self.side) is Side
            and type(self.venue) is str
            and type(self.symbol) is str
            and type(self.trade_id) is str
            and self.venue
            and self.symbol
            and self.trade_id
            and type(timestamp) is int
            and timestamp >= 0
            and type(received_ns) is int
            and received_ns >= 0
            and (sequence is None or type(sequence) is int)
            and (fee is None or (type(fee) is Decimal and fee.is_finite()))
            and (self.fee_currency is None or type(self.fee_currency) is str)
            and (liquidity is None or type(liquidity) is Liquidity)
            and (stream is USER or stream is PUBLIC)
            and (type(raw) is LazyRaw or type(raw) is dict)
        ):
            _check(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Trade:
            return NotImplemented
        return (
            self.trade_id == other.trade_id
            and self.symbol == other.symbol
            and self.venue == other.venue
            and self.price == other.price
            and self.amount == other.amount
            and self.side is other.side
            and self.timestamp_ms == other.timestamp_ms
            and self.sequence == other.sequence
            and self.fee == other.fee
            and self.fee_currency == other.fee_currency
            and self.liquidity is other.liquidity
            and self.stream == other.stream
            and self.raw == other.raw
        )

    def __hash__(self) -> int:
        return hash(
            (self.venue, self.symbol, self.trade_id, self.price, self.amount, self.side, self.timestamp_ms,
             self.sequence, self.fee, self.fee_currency, self.liquidity, self.stream)
        )  # fmt: skip

    @property
    def notional(self) -> Decimal:
        """``price * amount`` (in the quote currency of the symbol), exactly: every
        digit of the product, whatever the thread's decimal context (whose 28 digits
        would round it)."""
        return EXACT.multiply(self.price, self.amount)

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
        """A copy with *changes* applied (checked as the constructor checks)."""
        values = {name: getattr(self, name) for name in self.__struct_fields__}
        values.update(changes)
        return Trade(**values)


_force = msgspec.structs.force_setattr


def _check(self: Trade) -> None:
    """Every field of *self* that is not of the exact type the hot path checks: converted
    exactly (an int, a numeric string, ``"buy"``) or refused with an error naming it."""
    if type(self.price) is not Decimal or not self.price.is_finite():
        _force(self, "price", _exact(self.price, "price"))
    amount = self.amount
    if type(amount) is not Decimal or not amount.is_finite() or amount <= 0:
        _force(self, "amount", _exact(amount, "amount", positive=True))
    if type(self.side) is not Side:
        try:
            _force(self, "side", Side(self.side))
        except ValueError:
            raise ValueError("Trade.side must be 'buy' or 'sell', not %r" % (self.side,)) from None
    venue, symbol, trade_id = self.venue, self.symbol, self.trade_id
    if type(venue) is not str or type(symbol) is not str or type(trade_id) is not str or not (venue and symbol and trade_id):
        for name in ("venue", "symbol", "trade_id"):
            _text(getattr(self, name), name)
    if type(self.timestamp_ms) is not int or self.timestamp_ms < 0:
        _whole(self.timestamp_ms, "timestamp_ms")
    if type(self.received_ns) is not int or self.received_ns < 0:
        _whole(self.received_ns, "received_ns")
    if self.sequence is not None and type(self.sequence) is not int:
        _whole(self.sequence, "sequence", optional=True)
    fee = self.fee
    if fee is not None and (type(fee) is not Decimal or not fee.is_finite()):
        _force(self, "fee", _exact(fee, "fee"))
    if self.fee_currency is not None and type(self.fee_currency) is not str:
        raise TypeError("Trade.fee_currency must be a string or None, not %r" % (self.fee_currency,))
    liquidity = self.liquidity
    if liquidity is not None and type(liquidity) is not Liquidity:
        try:
            _force(self, "liquidity", Liquidity(liquidity))
        except ValueError:
            raise ValueError("Trade.liquidity must be 'maker', 'taker' or None, not %r" % (liquidity,)) from None
    if self.stream is not PUBLIC and self.stream is not USER and self.stream not in STREAMS:
        raise ValueError("Trade.stream must be 'public' or 'user', not %r" % (self.stream,))
    raw: Any = self.raw
    if type(raw) is not dict and type(raw) is not LazyRaw and not isinstance(raw, abc.Mapping):
        raise TypeError("Trade.raw must be a mapping, not %s" % type(self.raw).__name__)


#: ``new_trade(venue, symbol, trade_id, price, amount, side, timestamp_ms, received_ns,
#: sequence, fee, fee_currency, liquidity, stream, raw)``: the adapters' name for the
#: constructor with every field given positionally
new_trade = Trade


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
