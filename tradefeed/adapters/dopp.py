"""Dopp "last user trades": push-on-connect, filters in the URL (``docs/venues/dopp.md``).

The client sends no application message: the endpoint and its query string choose the
trades, and the server pushes JSON arrays of ``{"last_trades": [...]}`` objects, the
first one a snapshot of recent trades (newest first).  Keepalive is protocol ping/pong
only, so ``tick_interval`` is None.  An invalid filter is answered with close 1008,
which ends the feed (retrying the same URL cannot succeed).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar
from urllib.parse import urlencode

from ..exceptions import ConfigError, ParseError, TradefeedError
from ..models import USER, LazyRaw, Liquidity, RawFrame, Side, Trade
from .base import (
    TYPED_ERRORS,
    exact_decimal,
    RECORD_ERRORS,
    SECONDS_BELOW,
    Adapter,
    Handshake,
    Parsed,
    fast_loads,
    new_parsed,
    loads,
    record_error,
    require_str,
    to_decimal,
    to_ms,
)

import msgspec

__all__ = ["DoppAdapter"]

BY_INSTRUMENT = "/v1/public/ws/get_user_trades_by_instrument"
BY_CURRENCY = "/v1/public/ws/get_user_trades_by_currency"

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
#: ``M``/``T`` (Deribit convention, assumed) and the spelled-out forms
_LIQUIDITY = {
    "M": Liquidity.MAKER,
    "T": Liquidity.TAKER,
    "maker": Liquidity.MAKER,
    "taker": Liquidity.TAKER,
}
#: fields mapped onto Trade; every other field of a record goes to ``raw`` unchanged
_MAPPED = (
    "instrument_name",
    "trade_id",
    "price",
    "amount",
    "direction",
    "timestamp",
    "trade_seq",
    "fee",
    "fee_currency",
    "liquidity",
)


def _filter_value(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ConfigError("dopp: %s must be a non-empty string without spaces, not %r" % (name, value), param=name)
    return value


class DoppAdapter(Adapter):
    """Dopp user trades by instrument or by currency.

    >>> DoppAdapter(instrument_name="BTC-PERPETUAL").handshake("ws://127.0.0.1:9000").url
    'ws://127.0.0.1:9000/v1/public/ws/get_user_trades_by_instrument?instrument_name=BTC-PERPETUAL'

    :param instrument_name: only this instrument (``BTC-PERPETUAL``); selects the
        by-instrument endpoint.
    :param currency: only this base currency (``BTC``); selects the by-currency endpoint.
        Cannot be combined with ``instrument_name``.
    :param wallet_address: only this wallet's trades (a filter, not a credential).

    With no filter at all the by-instrument endpoint streams every trade of the venue.
    """

    venue: ClassVar[str] = "dopp"
    default_url: ClassVar[str] = "wss://api.doppapp.com"
    params: ClassVar[tuple[str, ...]] = ("instrument_name", "currency", "wallet_address")

    def __init__(
        self,
        instrument_name: str | None = None,
        currency: str | None = None,
        wallet_address: str | None = None,
    ) -> None:
        self.instrument_name = _filter_value("instrument_name", instrument_name)
        self.currency = _filter_value("currency", currency)
        self.wallet_address = _filter_value("wallet_address", wallet_address)
        self._snapshot_pending = True  # the first frame of a connection is the snapshot
        # trade_seq counts every trade of an instrument (dopp.md row 11): a jump is a gap,
        # unless a wallet filter shows only some of them
        self.sequenced = self.wallet_address is None
        if self.instrument_name and self.currency:
            raise ConfigError(
                "dopp: give instrument_name or currency, not both "
                "(they are two endpoints; open two feeds for both)",
                param="currency",
            )

    def asked_for(self) -> str | None:
        """The filters: an unknown one is what Dopp's 1008 "invalid filter" refuses."""
        asked = ["%s %r" % (name, value) for name, value in self._filters()]
        return " and ".join(asked) or None

    def _filters(self) -> list[tuple[str, str]]:
        return [(n, v) for n in self.params if (v := getattr(self, n)) is not None]

    def handshake(self, base_url: str | None = None, token: str | None = None) -> Handshake:
        """The endpoint URL with its filters; a *base_url* that already has a path is
        used as the full endpoint (only the query is added)."""
        query: dict[str, str] = {}
        if self.wallet_address:
            query["wallet_address"] = self.wallet_address
        if self.currency:
            path = BY_CURRENCY
            query["currency"] = self.currency
        else:
            path = BY_INSTRUMENT
            if self.instrument_name:
                query["instrument_name"] = self.instrument_name
        url = self.endpoint(base_url, path)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return Handshake(url=url)

    def parse(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Parse one push frame (trimmed sample; full ones in ``tests/fixtures/dopp/``)::

            [{"last_trades": [{"instrument_name": "BTC-PERPETUAL", "trade_id": "771204",
              "trade_seq": 771204, "price": 90125.5, "amount": 0.25, "direction": "buy",
              "timestamp": 1767225600123, "fee": 11.27, "fee_currency": "USDC",
              "liquidity": "T", "order_id": 1048576, ...}]}]

        Trades come back oldest first: the first frame of a connection is the snapshot,
        sent newest first (dopp.md assumption 4), and is reversed, as is any frame whose
        timestamps run backwards.  A bad record is reported in ``Parsed.errors`` and the
        others are still delivered.

        :raises ParseError: the frame is not JSON or not an array of objects.
        """
        trades = _parse_typed(frame, received_ns)
        if trades is None:
            return self._parse_generic(frame, received_ns)
        return new_parsed(self._in_time_order(trades), (), (), False)

    def _parse_generic(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Any frame: records as dicts, each bad one reported on its own."""
        doc = loads(frame, self.venue)
        if type(doc) is dict:  # a bare object instead of a one-element array
            doc = [doc]
        elif type(doc) is not list:
            raise ParseError("expected a JSON array of {last_trades: [...]} objects", raw=frame, venue=self.venue)
        trades: list[Trade] = []
        errors: list[TradefeedError] = []
        for element in doc:
            records = element.get("last_trades") if type(element) is dict else None
            if type(records) is not list:
                errors.append(ParseError("element without a last_trades array", raw=element, venue=self.venue))
                continue
            for record in records:
                try:
                    trades.append(self._trade(record, received_ns))
                except RECORD_ERRORS as err:
                    errors.append(record_error(self.venue, err, record))
        return new_parsed(self._in_time_order(trades), (), errors, False)

    def _in_time_order(self, trades: list[Trade]) -> list[Trade]:
        snapshot, self._snapshot_pending = self._snapshot_pending, False
        if len(trades) > 1 and _newest_first(trades, snapshot):
            trades.reverse()
        return trades

    def _trade(self, record: dict[str, Any], received_ns: int) -> Trade:
        raw = record.copy()
        for key in _MAPPED:
            raw.pop(key, None)
        return _build(
            record["direction"], record["amount"], record["price"], record.get("liquidity"),
            record.get("trade_seq"), record.get("fee"), record.get("fee_currency"),
            record["instrument_name"], record["trade_id"], record["timestamp"], raw, received_ns,
        )  # fmt: skip


def _build(
    direction: Any,
    amount: Any,
    price: Any,
    liquidity: Any,
    seq: Any,
    fee: Any,
    fee_currency: Any,
    symbol: Any,
    trade_id: Any,
    timestamp: Any,
    raw: Any,  # a dict or a LazyRaw (a Mapping at run time; mypy cannot see the registration)
    received_ns: int,
) -> Trade:
    """One record's values (None: absent) as a Trade, on the generic path: anything a
    record may hold is converted (``to_decimal``, ``require_str``, ``to_ms``) or refused
    naming the venue's field.  The typed path does the same mapping inline for records
    whose types msgspec has checked (:func:`_parse_typed`); a property test holds the
    two equal.

    :raises ValueError: a value that cannot be mapped.
    """
    side = _SIDES.get(direction)
    if side is None:
        raise ValueError("unknown direction %r" % (direction,))
    if type(amount) is not Decimal:  # our JSON decoding makes every float a finite Decimal
        amount = to_decimal(amount, "amount")
    if amount.is_signed() or not amount:  # -0 too
        if not amount:
            raise ValueError("amount is zero")
        amount = amount.copy_negate()  # positive, the side says which way; exact (-amount rounds)
    if type(price) is not Decimal:
        price = to_decimal(price, "price")
    if liquidity is not None:
        mapped = _LIQUIDITY.get(liquidity)
        if mapped is None:
            raise ValueError("unknown liquidity %r" % (liquidity,))
        liquidity = mapped
    if seq is not None and type(seq) is not int:
        raise ValueError("trade_seq must be an integer, not %r" % (seq,))
    if fee is not None and type(fee) is not Decimal:
        fee = to_decimal(fee, "fee")
    if fee_currency is not None and type(fee_currency) is not str:
        raise ValueError("fee_currency must be a string, not %r" % (fee_currency,))
    if type(symbol) is not str or not symbol:
        symbol = require_str({"instrument_name": symbol}, "instrument_name")
    if type(trade_id) is not str or not trade_id:
        trade_id = require_str({"trade_id": trade_id}, "trade_id")
    if type(timestamp) is not int or timestamp < SECONDS_BELOW:
        timestamp = to_ms(timestamp)
    return Trade(
        "dopp", symbol, trade_id, price, amount, side, timestamp, received_ns, seq, fee, fee_currency, liquidity,
        USER,  # a wallet's (or the venue's users') own trades: dopp.md
        raw,
    )  # fmt: skip


# -- the typed fast path ------------------------------------------------------------------

#: a non-empty string; an epoch-milliseconds int (anything smaller is taken as seconds)
_Text = Annotated[str, msgspec.Meta(min_length=1)]
_Millis = Annotated[int, msgspec.Meta(ge=SECONDS_BELOW)]


class _Record(msgspec.Struct, gc=False):
    """The fields of a trade record that map onto Trade (dopp.md), typed so that
    msgspec checks them in C: a record they do not fit (an unknown direction, an id
    that is not a non-empty string, a timestamp in seconds...) fails the decode, and
    the frame takes the generic path, which converts or reports it as it always does.
    The others stay in the record's text for ``raw``.  ``gc=False``: decoded JSON
    cannot refer back to a record, and untracked records do not drive the cyclic GC."""

    amount: Any  # a Decimal (float_hook) for a JSON number with a dot or exponent
    direction: Side
    instrument_name: _Text
    price: Any
    timestamp: _Millis
    trade_id: _Text
    fee: Any = None
    fee_currency: str | None = None
    liquidity: str | None = None
    trade_seq: int | None = None


class _Element(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    last_trades: list[_Record]


_TYPED = msgspec.json.Decoder(list[_Element], float_hook=exact_decimal)  # exact, as loads()
_DROP = frozenset(_MAPPED)


def _records(frame: Any) -> list[dict[str, Any]]:
    """Every record of a frame the fast path took, as the generic path decodes it."""
    return [record for element in fast_loads(frame) for record in element["last_trades"]]


def _parse_typed(frame: str | bytes, received_ns: int) -> list[Trade] | None:
    """The frame's trades, the mapped fields decoded straight into records (no dict per
    record, no Decimal for a field only ``raw`` has); ``raw`` is a :class:`LazyRaw`: the
    frame is decoded by the generic path's decoder when a trade's ``raw`` is first read,
    so its value is the generic path's by construction.  None for anything but a clean
    frame of records: a bad or missing value, another shape; the generic path then
    parses it, reporting each problem as it always does."""
    try:
        shared = RawFrame(frame, _records)
        trades = []
        index = 0
        for element in _TYPED.decode(frame):
            for r in element.last_trades:
                # _build's mapping, for what msgspec did not check (the numbers, the
                # sign, liquidity's letters); the rest it did (and Trade checks again)
                amount, price, fee, liquidity = r.amount, r.price, r.fee, r.liquidity
                if type(amount) is not Decimal:
                    amount = to_decimal(amount, "amount")
                if amount.is_signed():
                    amount = amount.copy_negate()  # exact; -0 too: zero is refused by Trade
                if type(price) is not Decimal:
                    price = to_decimal(price, "price")
                if fee is not None and type(fee) is not Decimal:
                    fee = to_decimal(fee, "fee")
                if liquidity is not None:
                    liquidity = _LIQUIDITY[liquidity]
                raw: Any = LazyRaw(shared, index, _DROP)  # a Mapping (registered: mypy cannot see it)
                trades.append(
                    Trade(
                        "dopp", r.instrument_name, r.trade_id, price, amount, r.direction, r.timestamp, received_ns,
                        r.trade_seq, fee, r.fee_currency, liquidity, USER, raw,
                    )  # fmt: skip
                )
                index += 1
    except TYPED_ERRORS:
        return None
    return trades


def _newest_first(trades: list[Trade], snapshot: bool) -> bool:
    """Is this frame newest first?  Its ends' timestamps say so when they differ; when
    they tie, the spec's rule decides: the snapshot (first frame) is newest first, later
    pushes are in time order.  The venue's order is otherwise kept as sent (trades of
    different instruments within one millisecond have no other order)."""
    first, last = trades[0].timestamp_ms, trades[-1].timestamp_ms
    return first > last if first != last else snapshot
