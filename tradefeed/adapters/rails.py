"""Rails WebSocket API v2: public and private trades, authenticated by a JWT in
``Sec-WebSocket-Protocol`` (``docs/venues/rails.md``).

Streams are chosen by the ``subscriptions`` query at connect time and changed with
``subscribe``/``unsubscribe`` messages (``clientRequestId`` correlates replies).  Public
trades arrive as ``publicCompletedOrdersDelta``; after each connect the adapter asks for
the recent ones with ``emitPublicCompletedOrders`` (v2 sends no snapshot by itself).  The
deltas flow from the connect on, so a market's deltas that arrive before its snapshot
reply are held back until it, then follow the snapshot's older trades: each market's
trades come out oldest first, each once.  The account's own fills arrive
as ``completedOrdersDelta`` with ``data`` a list.  Both carry ``raw["stream"]``
(``"publicTrades"``/``"trades"``), so a match seen on both is delivered on both.
Heartbeat: ``{"message": "ping"}`` every 30 seconds.  The token itself is fetched by
:mod:`tradefeed.auth`; the adapter only puts it in the handshake.  A feed of public
trades alone may go without credentials (rails.md row 3, resolved 2026-12-06): its
handshake then carries no token.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar, Literal, Mapping, Sequence

import msgspec
from urllib.parse import urlencode

from ..exceptions import ConfigError, ParseError, TradefeedError, VenueError
from ..models import PUBLIC, USER, LazyRaw, Liquidity, RawFrame, Side, Trade, new_trade
from .base import (
    NO_DROP,
    TYPED_ERRORS,
    exact_decimal,
    UNSET,
    RECORD_ERRORS,
    Adapter,
    CloseAction,
    dumps,
    Handshake,
    fast_loads,
    loads,
    Parsed,
    new_parsed,
    record_error,
    require_str,
    to_decimal,
    to_ms,
)

__all__ = ["RailsAdapter", "TRADE_STREAMS"]

log = logging.getLogger(__name__)

#: deltas held per market while its snapshot reply is awaited; past this they are released
MAX_HELD = 10_000

#: the subscriptions that carry trades: the public tape and the account's own fills
TRADE_STREAMS = ("publicTrades", "trades")
#: every stream name the venue knows (the others carry no trades)
_ALL_STREAMS = ("orders", "trades", "publicTrades", "publicOrderBook")

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_OPPOSITE = {Side.BUY: Side.SELL, Side.SELL: Side.BUY}
_EXECUTION = {"taker": Liquidity.TAKER, "maker": Liquidity.MAKER}
_PUBLIC = frozenset(("publicCompletedOrdersDelta", "publicCompletedOrders", "completedOrders"))
#: the replies to a snapshot request (emitPublicCompletedOrders; legacy emitCompletedOrders)
_SNAPSHOTS = frozenset(("publicCompletedOrders", "completedOrders"))
_PUBLIC_MAPPED = frozenset(("matchId", "price", "quantity", "updatedAt"))
_PRIVATE_MAPPED = frozenset(("market", "matchId", "price", "quantity", "orderFilledAt", "fees"))


def _stream_list(items: Any) -> list[str]:
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(
            "rails: subscriptions must be a non-empty list of %s" % " and/or ".join(TRADE_STREAMS), param="subscriptions"
        )
    out: list[str] = []
    for index, item in enumerate(items):
        if item not in TRADE_STREAMS:
            hint = " (it carries no trades)" if item in _ALL_STREAMS else ""
            raise ConfigError(
                "rails: unknown subscription %r%s; use %s" % (item, hint, " and/or ".join(TRADE_STREAMS)),
                param="subscriptions[%d]" % index,
            )
        if item not in out:
            out.append(item)
    return out


def _market(value: Any, param: str = "market") -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ConfigError(
            "rails: %s must be a market name such as 'BTC-USDT' (or 'ALL'), not %r" % (param, value), param=param
        )
    return value


class RailsAdapter(Adapter):
    """Rails public trades and/or the account's own fills, for one market or ``ALL``.

    :param market: a market such as ``"BTC-USDT"``, or ``"ALL"``.
    :param subscriptions: ``"publicTrades"`` and/or ``"trades"`` (the account's fills).
    :param snapshot_markets: with ``market="ALL"``, the markets whose recent public trades
        are requested after each connect (rails.md row 12); otherwise none is requested.
    """

    venue: ClassVar[str] = "rails"
    default_url: ClassVar[str] = "wss://ws.trade.rails.xyz"
    default_auth_url: ClassVar[str | None] = "https://api-auth.trade.rails.xyz/api/v1/token"
    needs_token: ClassVar[bool] = True
    tick_interval = 30.0
    params: ClassVar[tuple[str, ...]] = ("market", "subscriptions", "snapshot_markets")
    auth_params: ClassVar[tuple[str, ...]] = ("api_key", "api_secret", "auth_url")
    subscription_param: ClassVar[str | None] = "subscriptions"
    #: "ALL" rather than one market: as a stand-in it lets snapshot_markets be checked too
    examples: ClassVar[Mapping[str, Any]] = {"market": "ALL"}
    param_notes: ClassVar[Mapping[str, str]] = {"market": "required (no default): a market such as 'BTC-USDT', or 'ALL'"}

    def __init__(
        self,
        market: str,
        subscriptions: Sequence[str] = ("publicTrades",),
        snapshot_markets: Sequence[str] = (),
    ) -> None:
        self.market = _market(market)
        self.subscriptions = _stream_list(subscriptions)
        if isinstance(snapshot_markets, str) or not isinstance(snapshot_markets, (list, tuple)):
            raise ConfigError("rails: snapshot_markets must be a list of market names", param="snapshot_markets")
        self.snapshot_markets = [_market(m, "snapshot_markets[%d]" % i) for i, m in enumerate(snapshot_markets)]
        if self.snapshot_markets and self.market != "ALL":
            raise ConfigError("rails: snapshot_markets only applies with market='ALL'", param="snapshot_markets")
        self._requests: dict[str, str] = {}  # clientRequestId -> what it asked
        self._snapshots: dict[str, str] = {}  # clientRequestId of a snapshot request -> its market
        self._held: dict[str, list[Trade]] = {}  # market -> public deltas awaiting its snapshot

    def asked_for(self) -> str | None:
        """The market and streams: what a 400 upgrade or a 1008 close refuses."""
        return "market %r (subscriptions %s)" % (self.market, ", ".join(self.subscriptions))

    @classmethod
    def requires_credentials(cls, params: Mapping[str, Any]) -> bool:
        """The account's own fills (``trades``) need credentials; the public tape does not."""
        return "trades" in _stream_list(params.get("subscriptions", ("publicTrades",)))

    def handshake(self, base_url: str | None = None, token: str | None = None) -> Handshake:
        """The market and subscriptions go in the query, the JWT (if any) in the subprotocol."""
        if not token and "trades" in self.subscriptions:
            raise ConfigError("rails: the 'trades' stream (the account's own fills) needs api_key and api_secret")
        base = (base_url or self.default_url).rstrip("/")
        query = urlencode({"market": self.market, "subscriptions": ",".join(self.subscriptions)})
        subprotocols = ("authorization#" + token,) if token else ()
        return Handshake(url="%s/?%s" % (base, query), subprotocols=subprotocols)

    def on_open(self, now_ns: int = 0) -> list[str]:
        return self._snapshot_requests() if "publicTrades" in self.subscriptions else []

    def subscribe(self, items: Sequence[str]) -> list[str]:
        new = [s for s in _stream_list(items) if s not in self.subscriptions]
        if not new:
            return []
        self.subscriptions.extend(new)
        frames = [self._message("subscribe", {"subscriptions": new})]
        if "publicTrades" in new:
            frames.extend(self._snapshot_requests())
        return frames

    def unsubscribe(self, items: Sequence[str]) -> list[str]:
        gone = [s for s in _stream_list(items) if s in self.subscriptions]
        if not gone:
            return []
        self.subscriptions = [s for s in self.subscriptions if s not in gone]
        if "publicTrades" in gone:
            self._snapshots.clear()
            self._held.clear()
        return [self._message("unsubscribe", {"subscriptions": gone})]

    def tick(self, now_ns: int) -> list[str]:
        return [self._message("ping", {})]

    def on_close(self, code: int | None, reason: str) -> CloseAction:
        """1008 "token expired": fetch a new token and reconnect; any other 1008 (a
        forbidden subscription, say) ends the feed; everything else reconnects."""
        if code == 1008:
            return CloseAction.REFRESH_TOKEN if "token expired" in reason.lower() else CloseAction.STOP
        return CloseAction.RECONNECT

    def _snapshot_requests(self) -> list[str]:
        """Ask for each market's recent trades; its deltas are held until the reply."""
        markets = [self.market] if self.market != "ALL" else self.snapshot_markets
        frames = []
        for market in markets:
            frame, request_id = self._request("emitPublicCompletedOrders", {"market": market})
            self._snapshots[request_id] = market
            self._held.setdefault(market, [])
            frames.append(frame)
        return frames

    def _message(self, message: str, content: dict[str, Any]) -> str:
        return self._request(message, content)[0]

    def _request(self, message: str, content: dict[str, Any]) -> tuple[str, str]:
        request_id = str(uuid.uuid4())
        self._requests[request_id] = message
        return dumps({"message": message, "content": {"clientRequestId": request_id, **content}}), request_id

    # -- parsing ------------------------------------------------------------------------

    def parse(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Parse one server message (trimmed sample; full ones in ``tests/fixtures/rails/``)::

            {"resultType": "publicCompletedOrdersDelta", "market": "BTC-USDT",
             "data": {"orders": [{"executionType": "taker", "matchId": "9eb783a6-...",
             "orderType": "buy", "price": "90125.5", "quantity": "0.042",
             "updatedAt": 1767225600500}], "statusCode": 200}}

        :raises ParseError: not JSON, or not a message of this protocol.
        """
        typed = self._parse_typed(frame, received_ns)
        if typed is not None:
            return typed
        doc = loads(frame, self.venue)
        if type(doc) is not dict or type(doc.get("resultType")) is not str:
            raise ParseError("expected an object with a resultType string", raw=frame, venue=self.venue)
        kind = doc["resultType"]
        data = doc.get("data")
        if kind == "error" or (type(data) is dict and type(data.get("statusCode")) is int and data["statusCode"] >= 400):
            return Parsed(trades=self._failed(_request_id(data)), errors=[self._error(doc)])
        if kind == "pong":
            self._requests.pop(_request_id(data), None)
            return Parsed(heartbeat=True)
        if kind in ("subscribed", "unsubscribed"):
            self._requests.pop(_request_id(data), None)
            return Parsed()
        if kind == "completedOrdersDelta" and type(data) is list:
            return self._orders(data, frame, received_ns, private=True, market=None)
        if kind in _PUBLIC or kind == "completedOrdersDelta":
            if type(data) is not dict or type(data.get("orders")) is not list:
                raise ParseError("%s without data.orders" % kind, raw=frame, venue=self.venue)
            self._requests.pop(_request_id(data), None)
            parsed = self._orders(data["orders"], frame, received_ns, private=False, market=doc.get("market"))
            if self._held:
                snapshot = kind in _SNAPSHOTS
                return self._merge_held(parsed, (doc.get("market") or self.market) if snapshot else None)
            return parsed
        return Parsed()  # other streams (orders, order book) carry no trades

    def _failed(self, request_id: str) -> list[Trade]:
        """An error reply: if it answers a snapshot request (or cannot be told apart from
        one), no snapshot is coming: the deltas held for it go."""
        market = self._snapshots.pop(request_id, None)
        if market is not None:
            return self._held.pop(market, [])
        if request_id in self._requests or not self._held:
            return []
        held = [t for trades in self._held.values() for t in trades]
        self._held.clear()
        self._snapshots.clear()
        return held

    def _merge_held(self, parsed: Parsed, snapshot_of: str | None) -> Parsed:
        """A delta of a market awaiting its snapshot is held; the snapshot reply lets the
        held deltas follow its trades older than them (the deltas began before the
        request, so its others are in the deltas too: each trade once, oldest first).
        Replies are told by their name and market, not by request id, so a recording
        replays the same (its request ids are not the replaying adapter's)."""
        if snapshot_of is not None:
            answered = next((r for r, m in self._snapshots.items() if m == snapshot_of), None)
            if answered is not None:
                del self._snapshots[answered]
            held = self._held.pop(snapshot_of, [])
            live = {t.trade_id for t in held}
            return Parsed(trades=[t for t in parsed.trades if t.trade_id not in live] + held, errors=parsed.errors)
        trades = []
        for trade in parsed.trades:
            waiting = self._held.get(trade.symbol)
            if waiting is None:
                trades.append(trade)
                continue
            waiting.append(trade)
            if len(waiting) >= MAX_HELD:
                log.warning("rails: no snapshot reply for %s; releasing %d held trades", trade.symbol, len(waiting))
                trades.extend(self._held.pop(trade.symbol))
        return new_parsed(trades, (), parsed.errors, False)

    def _error(self, doc: dict[str, Any]) -> VenueError:
        data: dict[str, Any] = doc["data"] if type(doc.get("data")) is dict else {}
        request_id = _request_id(data)
        asked = self._requests.pop(request_id, None) if request_id else None
        return VenueError(
            "rails: %s%s failed with %s: %s"
            % (asked or "request", " %s" % request_id if request_id else "", data.get("statusCode"), data.get("message")),
            payload=doc,
            venue=self.venue,
        )

    def _orders(self, records: list[Any], frame: str | bytes, received_ns: int, *, private: bool, market: Any) -> Parsed:
        stream = "trades" if private else "publicTrades"
        if stream not in self.subscriptions:
            return Parsed()  # in flight after an unsubscribe
        trades: list[Trade] = []
        errors: list[TradefeedError] = []
        for record in records:
            try:
                trade = self._private(record, received_ns) if private else self._public(record, market, received_ns)
            except RECORD_ERRORS as err:
                errors.append(record_error(self.venue, err, record))
            else:
                trades.append(trade)
        if len(trades) > 1:
            trades.sort(key=_timestamp)  # stable: the venue's order within one millisecond stays
        return new_parsed(trades, (), errors, False)

    def _public(self, record: dict[str, Any], market: Any, received_ns: int) -> Trade:
        return self._public_trade(
            record["orderType"], record["executionType"], record["matchId"], record["price"], record["quantity"],
            record["updatedAt"], market, _public_raw(record), received_ns,
        )  # fmt: skip

    def _public_trade(
        self, order_type: Any, execution_type: Any, match_id: Any, price: Any, quantity: Any, updated_at: Any,
        market: Any, raw: Any, received_ns: int,
    ) -> Trade:  # fmt: skip
        """One public trade from its values; both parse paths end here."""
        own_side = _SIDES.get(order_type)
        if own_side is None:
            raise ValueError("unknown orderType %r" % (order_type,))
        role = _EXECUTION.get(execution_type)
        if role is None:
            raise ValueError("unknown executionType %r" % (execution_type,))
        symbol = market if market is not None else (None if self.market == "ALL" else self.market)
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("no market on the message (connected with market=ALL)")
        return new_trade(
            "rails",
            symbol,
            match_id if type(match_id) is str and match_id else require_str({"matchId": match_id}, "matchId"),
            to_decimal(price, "price"),
            _positive(quantity),
            # the aggressor's side: a maker record's orderType is the resting side
            own_side if role is Liquidity.TAKER else _OPPOSITE[own_side],
            to_ms(updated_at, "updatedAt"),
            received_ns,
            None,  # no sequence
            None,  # no fee on the public tape
            None,
            Liquidity.TAKER,  # the public tape reports the aggressor
            PUBLIC,
            raw,
        )

    def _parse_typed(self, frame: str | bytes, received_ns: int) -> Parsed | None:
        """A ``publicCompletedOrdersDelta`` (the public tape's pushes) decoded straight
        into records; ``raw`` is a :class:`LazyRaw` the generic path's decoder fills on
        first access.  None for anything else or anything odd (an error status, a
        request id, a bad value): the generic path then parses it as it always does."""
        try:
            message = _TYPED.decode(frame)
            data = message.data
            status = data.statusCode
            if (type(status) is int and status >= 400) or data.clientRequestId is not UNSET:
                return None  # an error, or a reply to a request: the generic path's bookkeeping
            if "publicTrades" not in self.subscriptions:
                return None
            shared = RawFrame(frame, _delta_raws)
            market = message.market
            trades = [
                self._public_trade(
                    r.orderType, r.executionType, r.matchId, r.price, r.quantity, r.updatedAt, market,
                    LazyRaw(shared, index, NO_DROP), received_ns,
                )  # fmt: skip
                for index, r in enumerate(data.orders)
            ]
        except TYPED_ERRORS:
            return None
        if len(trades) > 1:
            trades.sort(key=_timestamp)  # stable: the venue's order within one millisecond stays
        parsed = new_parsed(trades, (), (), False)
        return self._merge_held(parsed, None) if self._held else parsed

    def _private(self, record: dict[str, Any], received_ns: int) -> Trade:
        side = _SIDES.get(record["orderType"])
        if side is None:
            raise ValueError("unknown orderType %r" % (record["orderType"],))
        liquidity = _EXECUTION.get(record["executionType"])
        if liquidity is None:
            raise ValueError("unknown executionType %r" % (record["executionType"],))
        symbol = require_str(record, "market")
        fees = record.get("fees")
        raw = {k: v for k, v in record.items() if k not in _PRIVATE_MAPPED}
        raw["stream"] = "trades"
        return new_trade(
            "rails",
            symbol,
            require_str(record, "matchId"),
            to_decimal(record["price"], "price"),
            _positive(record["quantity"]),
            side,
            to_ms(record["orderFilledAt"], "orderFilledAt"),
            received_ns,
            None,  # no sequence
            None if fees is None else to_decimal(fees, "fees"),
            symbol.rsplit("-", 1)[-1] if "-" in symbol else None,  # quote currency (row 15)
            liquidity,
            USER,  # the account's own fills
            raw,
        )


def _public_raw(record: dict[str, Any]) -> dict[str, Any]:
    """A public trade's ``raw``: the record's unmapped fields and the stream's name."""
    raw = {k: v for k, v in record.items() if k not in _PUBLIC_MAPPED}
    raw["stream"] = "publicTrades"
    return raw


# -- the typed fast path: public deltas ---------------------------------------------------


class _PublicRecord(msgspec.Struct, gc=False):
    """The mapped fields of a public trade (rails.md); the rest stays in the frame."""

    executionType: Any
    matchId: Any
    orderType: Any
    price: Any
    quantity: Any
    updatedAt: Any


class _PublicData(msgspec.Struct, gc=False):
    orders: list[_PublicRecord]
    statusCode: Any = None
    clientRequestId: Any = msgspec.UNSET


class _PublicDelta(msgspec.Struct, gc=False):
    resultType: Literal["publicCompletedOrdersDelta"]
    data: _PublicData
    market: Any = None


_TYPED = msgspec.json.Decoder(_PublicDelta, float_hook=exact_decimal)


def _delta_raws(frame: Any) -> list[dict[str, Any]]:
    """The ``raw`` of each trade of a delta the typed path took, as the generic path builds it."""
    return [_public_raw(record) for record in fast_loads(frame)["data"]["orders"]]


def _positive(value: Any) -> Any:
    amount = to_decimal(value, "quantity")
    if amount <= 0:
        raise ValueError("quantity must be positive, not %s" % amount)
    return amount


def _timestamp(trade: Trade) -> int:
    return trade.timestamp_ms


def _request_id(data: Any) -> str:
    """The ``clientRequestId`` a reply echoes, or "" if none."""
    value = data.get("clientRequestId") if type(data) is dict else None
    return value if isinstance(value, str) else ""


