"""SynFutures V3 on Monad, served by Monday Trade: the public ``trades`` stream
(``docs/venues/synfutures.md``).

Subscribe-stream: one ``SUBSCRIBE`` (integer ``id``, ``chainId``, ``pairs``,
``tradesLimit``) acknowledged by ``{"id", "result": "success"}``; pushes carry the
``tradesLimit`` newest trades of a pair, so consecutive pushes overlap and the
connection's de-duplication delivers each trade once.  Money arrives as 18-decimal
fixed-point integer strings (WAD) or as plain decimals, decided per record (see
:func:`record_scale`); time in seconds.  Heartbeat: the bare text frame ``ping`` every 30
seconds, answered by ``pong`` (and a ``ping`` from the server is answered the same way).
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Callable, ClassVar, Literal, Mapping, Sequence

import msgspec

from ..exceptions import ConfigError, ParseError, TradefeedError, VenueError
from ..models import PUBLIC, LazyRaw, Liquidity, RawFrame, Side, Trade, new_trade
from .base import (
    NO_DROP,
    TYPED_ERRORS,
    exact_decimal,
    UNSET,
    DEFAULT_USER_AGENT,
    RECORD_ERRORS,
    Adapter,
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
    wad_to_decimal,
)

__all__ = ["SynfuturesAdapter", "PERPETUAL_EXPIRY", "record_scale"]

log = logging.getLogger(__name__)

PATH = "/v4/public/ws"
#: the expiry that marks a perpetual
PERPETUAL_EXPIRY = 4294967295
#: Monad mainnet
DEFAULT_CHAIN_ID = 143
#: the largest chain id a JSON number carries exactly (EIP-2294 proposes this bound too)
MAX_CHAIN_ID = 2**53 - 1
#: the simulator and the venue accept at most this many pairs per SUBSCRIBE
MAX_PAIRS_PER_REQUEST = 100
DEFAULT_ORIGIN = "https://api.monday.trade"

_PAIR = re.compile(r"0x[0-9a-f]{40}_[0-9]+\Z")
_SIDES = {"long": Side.BUY, "short": Side.SELL}
_LIQUIDITY = {"Market": Liquidity.TAKER, "Limit": Liquidity.MAKER}
_MAPPED = frozenset(("id", "symbol", "price", "size", "side", "timestamp"))
_HIGH_PRECISION = 80  # digits for adding WAD fees exactly
#: a dot-less price is read in the scale (WAD or plain) that lands within this factor of
#: the record's reference price ``baseToken.price / quoteToken.price``
SCALE_TOLERANCE = Decimal(1000)
_WAD = "wad"
_PLAIN = "plain"


def _pair_list(venue: str, pairs: Any) -> list[str]:
    if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)) or not pairs:
        raise ConfigError("%s: pairs must be a non-empty list of '<instrument address>_<expiry>'" % venue, param="pairs")
    out: list[str] = []
    for index, pair in enumerate(pairs):
        key = pair.strip().lower() if isinstance(pair, str) else pair
        if not isinstance(key, str) or not _PAIR.match(key):
            raise ConfigError(
                "%s: invalid pair %r; expected '0x' + 40 hex digits + '_' + expiry, e.g. "
                "'0x73ada1ea346cc3908f41cf67a040f0acd7808be0_%d'" % (venue, pair, PERPETUAL_EXPIRY),
                param="pairs[%d]" % index,
            )
        if key not in out:
            out.append(key)
    return out


class SynfuturesAdapter(Adapter):
    """Trades of SynFutures pairs on one chain.

    >>> a = SynfuturesAdapter(pairs=["0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295"])
    >>> a.handshake("ws://127.0.0.1:9000").url
    'ws://127.0.0.1:9000/v4/public/ws'

    :param pairs: ``"<instrument address>_<expiry>"`` keys (``4294967295`` = perpetual);
        addresses are compared lower-cased.
    :param chain_id: the chain (143 = Monad mainnet).
    :param trades_limit: trades per push, 1..100 (venue default 10).
    :param user_agent: ``User-Agent`` header (the venue asks for one).
    :param origin: ``Origin`` header (some clients need one matching the host).
    """

    venue: ClassVar[str] = "synfutures"
    default_url: ClassVar[str] = "wss://api.monday.trade"
    tick_interval = 30.0
    params: ClassVar[tuple[str, ...]] = ("pairs", "chain_id", "trades_limit", "user_agent", "origin")
    subscription_param: ClassVar[str | None] = "pairs"
    examples: ClassVar[Mapping[str, Any]] = {"pairs": ["0x73ada1ea346cc3908f41cf67a040f0acd7808be0_%d" % PERPETUAL_EXPIRY]}

    def __init__(
        self,
        pairs: Sequence[str],
        chain_id: int = DEFAULT_CHAIN_ID,
        trades_limit: int = 10,
        user_agent: str = DEFAULT_USER_AGENT,
        origin: str | None = DEFAULT_ORIGIN,
    ) -> None:
        self.pairs = _pair_list(self.venue, pairs)
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 1 <= chain_id <= MAX_CHAIN_ID:
            raise ConfigError(
                "synfutures: chain_id must be a whole number within 1..%d (143: Monad), not %r" % (MAX_CHAIN_ID, chain_id),
                param="chain_id",
            )
        if isinstance(trades_limit, bool) or not isinstance(trades_limit, int) or not 1 <= trades_limit <= 100:
            raise ConfigError(
                "synfutures: trades_limit must be an integer within 1..100, not %r" % (trades_limit,), param="trades_limit"
            )
        if not isinstance(user_agent, str) or not user_agent.strip():
            raise ConfigError("synfutures: user_agent must be a non-empty string, not %r" % (user_agent,), param="user_agent")
        if origin is not None and (not isinstance(origin, str) or not origin.startswith(("http://", "https://"))):
            raise ConfigError(
                "synfutures: origin must be an http(s) origin such as %r, or None, not %r" % (DEFAULT_ORIGIN, origin),
                param="origin",
            )
        self.chain_id = chain_id
        self.trades_limit = trades_limit
        self.user_agent = user_agent
        self.origin = origin
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, list[str]]] = {}  # request id -> (method, pairs)
        self._guessed: set[str] = set()  # symbols whose scale was guessed (warned once each)

    def handshake(self, base_url: str | None = None, token: str | None = None) -> Handshake:
        url = self.endpoint(base_url, PATH)
        headers = {"User-Agent": self.user_agent}
        if self.origin:
            headers["Origin"] = self.origin
        return Handshake(url=url, headers=headers)

    def on_open(self, now_ns: int = 0) -> list[str]:
        """One SUBSCRIBE per 100 pairs."""
        return self._requests("SUBSCRIBE", self.pairs)

    def subscribe(self, items: Sequence[str]) -> list[str]:
        new = [p for p in _pair_list(self.venue, items) if p not in self.pairs]
        self.pairs.extend(new)
        return self._requests("SUBSCRIBE", new)

    def unsubscribe(self, items: Sequence[str]) -> list[str]:
        gone = [p for p in _pair_list(self.venue, items) if p in self.pairs]
        self.pairs = [p for p in self.pairs if p not in gone]
        return self._requests("UNSUBSCRIBE", gone)

    def tick(self, now_ns: int) -> list[str]:
        return ["ping"]

    def _requests(self, method: str, pairs: list[str]) -> list[str]:
        frames = []
        for start in range(0, len(pairs), MAX_PAIRS_PER_REQUEST):
            chunk = pairs[start : start + MAX_PAIRS_PER_REQUEST]
            request_id = next(self._ids)
            self._pending[request_id] = (method, chunk)
            params: dict[str, Any] = {"chainId": self.chain_id, "type": "trades", "pairs": chunk}
            if method == "SUBSCRIBE":
                params["tradesLimit"] = self.trades_limit
            frames.append(dumps({"id": request_id, "method": method, "params": params}))
        return frames

    def parse(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Parse a push, an acknowledgement or ``pong`` (trimmed sample; full ones in
        ``tests/fixtures/synfutures/``)::

            {"chainId": 143, "instrument": "0x73ad...", "expiry": 4294967295,
             "stream": "trades", "data": [{"id": "58120394", "symbol": "BTC/USDC",
             "price": "90125500000000000000000", "size": "15000000000000000",
             "side": "long", "timestamp": 1767225601, "tradeFee": "4055...", ...}]}

        Trades come back sorted by ``(timestamp, id)``; trades of pairs no longer
        subscribed (in flight after an UNSUBSCRIBE) are dropped.

        :raises ParseError: not JSON, or not a frame of this protocol.
        """
        if frame == "pong" or frame == b"pong":
            return Parsed(heartbeat=True)
        if frame == "ping" or frame == b"ping":  # the server's own heartbeat
            return Parsed(replies=("pong",), heartbeat=True)
        typed = self._parse_typed(frame, received_ns)
        if typed is not None:
            return typed
        doc = loads(frame, self.venue)
        if type(doc) is not dict:
            raise ParseError("expected a JSON object", raw=frame, venue=self.venue)
        if "stream" in doc:
            if doc["stream"] != "trades":
                return Parsed()  # another stream type on the same socket: not ours
            return self._push(doc, frame, received_ns)
        if type(doc.get("id")) is int and "result" in doc:
            return self._ack(doc)
        raise ParseError("neither a stream push nor an acknowledgement", raw=frame, venue=self.venue)

    def _ack(self, doc: dict[str, Any]) -> Parsed:
        method, pairs = self._pending.pop(doc["id"], ("request", []))
        result = doc["result"]
        if isinstance(result, str) and result.strip().lower().startswith("success"):
            return Parsed()
        error = VenueError(
            "synfutures: %s %s (id %s) failed: %s" % (method, ", ".join(pairs) or "?", doc["id"], result),
            payload=doc,
            venue=self.venue,
        )
        return Parsed(errors=[error])

    def _push(self, doc: dict[str, Any], frame: str | bytes, received_ns: int) -> Parsed:
        data = doc.get("data")
        if type(data) is dict:
            data = [data]  # a single object instead of the array (row 4)
        elif type(data) is not list:
            raise ParseError("trades push without a data array", raw=frame, venue=self.venue)
        envelope = _envelope(doc)
        trades: list[Trade] = []
        errors: list[TradefeedError] = []
        subscribed = self.pairs
        for item in data:
            try:
                pair, trade = self._trade(item, envelope, received_ns)
            except RECORD_ERRORS as err:
                errors.append(record_error(self.venue, err, item))
                continue
            if pair in subscribed:
                trades.append(trade)
        if len(trades) > 1:
            trades.sort(key=_order)
        return new_parsed(trades, (), errors, False)

    def _trade(self, item: dict[str, Any], envelope: dict[str, Any], received_ns: int) -> tuple[str, Trade]:
        get = item.get
        return self._build(
            item["side"], item["size"], item["price"], get("type"), item["symbol"], item["id"], item["timestamp"],
            get("tradeFee"), get("protocolFee"), get("baseToken"), get("quoteToken"),
            item["instrumentAddress"] if "instrumentAddress" in item else envelope["instrumentAddress"],
            item["expiry"] if "expiry" in item else envelope["expiry"],
            item["chainId"] if "chainId" in item else envelope["chainId"],
            lambda guessed: _raw(item, envelope, guessed), received_ns,
        )  # fmt: skip

    def _build(
        self, side_text: Any, size: Any, price: Any, kind: Any, symbol: Any, trade_id: Any, timestamp: Any,
        trade_fee: Any, protocol_fee: Any, base_token: Any, quote_token: Any, instrument: Any, expiry: Any,
        chain_id: Any, raw: Callable[[bool], Any], received_ns: int,
    ) -> tuple[str, Trade]:  # fmt: skip
        """One trade from its values, and its pair; both parse paths end here.  *raw*
        makes the trade's ``raw`` (given whether the scale was guessed)."""
        side = _SIDES.get(side_text)
        if side is None:
            raise ValueError("unknown side %r" % (side_text,))
        scale, guessed = _scale(price, base_token, quote_token)
        number = wad_to_decimal if scale == _WAD else to_decimal
        amount = number(size, "size")
        if amount < 0:
            amount = amount.copy_negate()  # shorts may carry a negative size (row 6); exact (-amount rounds)
        if not amount:
            raise ValueError("size is zero")
        liquidity = None
        if kind is not None:
            liquidity = _LIQUIDITY.get(kind)
            if liquidity is None:
                raise ValueError("unknown type %r" % (kind,))
        if not isinstance(instrument, str):
            raise ValueError("instrumentAddress is missing")
        expiry = _whole(expiry, "expiry")
        _whole(chain_id, "chainId")
        pair = "%s_%s" % (instrument.lower(), expiry)
        if type(symbol) is not str or not symbol:
            symbol = require_str({"symbol": symbol}, "symbol")
        if guessed and symbol not in self._guessed:
            self._guessed.add(symbol)
            log.warning(
                "synfutures: %s: no usable reference price (baseToken.price / quoteToken.price) to tell WAD "
                "from plain numbers; reading dot-less numbers as WAD (raw['scale_guess'] marks such trades)",
                symbol,
            )
        trade = new_trade(
            "synfutures",
            symbol,
            trade_id if type(trade_id) is str and trade_id else require_str({"id": trade_id}, "id"),
            number(price, "price"),
            amount,
            side,
            to_ms(timestamp),
            received_ns,
            None,  # no sequence
            _fee(trade_fee, protocol_fee, number),
            quote_token.get("symbol") if type(quote_token) is dict else None,
            liquidity,
            PUBLIC,
            raw(guessed),
        )
        return pair, trade

    def _parse_typed(self, frame: str | bytes, received_ns: int) -> Parsed | None:
        """A ``trades`` push decoded straight into records; ``raw`` is a :class:`LazyRaw`
        the generic path's code fills on first access.  None for anything else or anything
        odd: the generic path then parses it as it always does."""
        try:
            push = _TYPED.decode(frame)
            env_instrument, env_expiry, env_chain = push.instrument, push.expiry, push.chainId
            shared = RawFrame(frame, _push_raws)
            subscribed = self.pairs
            trades = []
            for index, r in enumerate(push.data):
                pair, trade = self._build(
                    r.side, r.size, r.price, r.type, r.symbol, r.id, r.timestamp, r.tradeFee, r.protocolFee,
                    r.baseToken, r.quoteToken,
                    env_instrument if r.instrumentAddress is UNSET else r.instrumentAddress,
                    env_expiry if r.expiry is UNSET else r.expiry,
                    env_chain if r.chainId is UNSET else r.chainId,
                    functools.partial(_lazy_raw, shared, index),
                    received_ns,
                )  # fmt: skip
                if pair in subscribed:
                    trades.append(trade)
        except TYPED_ERRORS:
            return None
        if len(trades) > 1:
            trades.sort(key=_order)
        return new_parsed(trades, (), (), False)


def record_scale(item: dict[str, Any]) -> tuple[str, bool]:
    """The scale of a trade record's numbers, ``("wad" | "plain", guessed)``, decided by its
    ``price`` (synfutures.md, "Field mapping", resolved 2026-12-06).

    A price with a ``.`` or an exponent is plain.  A dot-less integer is WAD (value
    x 10^-18) or plain, whichever lies within a factor of :data:`SCALE_TOLERANCE` of the
    reference price ``baseToken.price / quoteToken.price``; when neither does, or there
    is no usable reference, WAD with ``guessed`` True.  The scale applies to ``size`` and
    the fees of the same record.

    >>> record_scale({"price": "90136.5"})
    ('plain', False)
    >>> tokens = {"baseToken": {"price": 90110.42}, "quoteToken": {"price": 1.0}}
    >>> record_scale({"price": "90136", **tokens}), record_scale({"price": "90136" + "0" * 18, **tokens})
    (('plain', False), ('wad', False))
    """
    return _scale(item["price"], item.get("baseToken"), item.get("quoteToken"))


def _scale(price: Any, base_token: Any, quote_token: Any) -> tuple[str, bool]:
    """:func:`record_scale` from the record's values."""
    if type(price) is str:
        if "." in price or "e" in price or "E" in price:
            return _PLAIN, False
    elif type(price) is not int:
        return _PLAIN, False  # a JSON number with a fraction (Decimal): plain; to_decimal checks it
    reference = _reference(base_token, quote_token)
    if reference is None:
        return _WAD, True
    try:
        plain = abs(Decimal(price))
    except InvalidOperation:
        raise ValueError("price is not a number: %r" % (price,)) from None
    low, high = reference / SCALE_TOLERANCE, reference * SCALE_TOLERANCE
    if low <= plain.scaleb(-18) <= high:
        return _WAD, False
    if low <= plain <= high:
        return _PLAIN, False
    return _WAD, True


def _reference(base_token: Any, quote_token: Any) -> Decimal | None:
    """``baseToken.price / quoteToken.price``; None if either is missing, not a positive
    finite number (or numeric string), or zero."""
    prices = []
    for key, token in (("baseToken", base_token), ("quoteToken", quote_token)):
        value = token.get("price") if type(token) is dict else None
        try:
            number = to_decimal(value, key + ".price")  # JSON numbers arrive as Decimal/int
        except ValueError:
            return None
        if number <= 0:
            return None
        prices.append(number)
    return prices[0] / prices[1]


def _whole(value: Any, name: str) -> Any:
    """An integer field sent as a number or a numeric string (``expiry``, ``chainId``): the
    int; None stays None."""
    if value is None or type(value) is int:
        return value
    if type(value) is str and value.strip().isdigit():
        return int(value)
    raise ValueError("%s must be a whole number, not %r" % (name, value))


def _fee(trade_fee: Any, protocol_fee: Any, number: Any) -> Decimal | None:
    """``tradeFee + protocolFee`` in the record's scale, exactly; None when neither is sent."""
    parts = [number(v, k) for k, v in (("tradeFee", trade_fee), ("protocolFee", protocol_fee)) if v is not None]
    if not parts:
        return None
    with localcontext() as ctx:
        ctx.prec = _HIGH_PRECISION
        return sum(parts, Decimal(0))


def _order(trade: Trade) -> tuple[int, int, int, str]:
    """``(timestamp, id)``, ids compared as numbers when they are numeric."""
    tid = trade.trade_id
    return (trade.timestamp_ms, 0, int(tid), "") if tid.isdigit() else (trade.timestamp_ms, 1, 0, tid)


def _envelope(doc: dict[str, Any]) -> dict[str, Any]:
    return {"chainId": doc.get("chainId"), "instrumentAddress": doc.get("instrument"), "expiry": doc.get("expiry")}


def _raw(item: dict[str, Any], envelope: dict[str, Any], guessed: bool) -> dict[str, Any]:
    """A trade's ``raw``: the record's unmapped fields, the envelope's where the record
    has none, ``expiry``/``chainId`` as ints, the ``pair`` key and ``scale_guess``."""
    raw = {k: v for k, v in item.items() if k not in _MAPPED}
    for key, value in envelope.items():
        raw.setdefault(key, value)
    raw["expiry"] = expiry = _whole(raw.get("expiry"), "expiry")
    raw["chainId"] = _whole(raw.get("chainId"), "chainId")
    raw["pair"] = "%s_%s" % (str(raw.get("instrumentAddress")).lower(), expiry)
    if guessed:
        raw["scale_guess"] = _WAD
    return raw


# -- the typed fast path: trades pushes ---------------------------------------------------


class _Item(msgspec.Struct, gc=False):
    """The fields of a trade record the mapping reads (synfutures.md); the rest stays in
    the frame for ``raw``."""

    id: Any
    symbol: Any
    price: Any
    size: Any
    side: Any
    timestamp: Any
    type: Any = None
    tradeFee: Any = None
    protocolFee: Any = None
    baseToken: Any = None
    quoteToken: Any = None
    instrumentAddress: Any = msgspec.UNSET
    expiry: Any = msgspec.UNSET
    chainId: Any = msgspec.UNSET


class _Push(msgspec.Struct, gc=False):
    stream: Literal["trades"]
    data: list[_Item]
    instrument: Any = None
    expiry: Any = None
    chainId: Any = None


_TYPED = msgspec.json.Decoder(_Push, float_hook=exact_decimal)


def _lazy_raw(shared: RawFrame, index: int, guessed: bool) -> Any:
    return LazyRaw(shared, index, NO_DROP)  # the decoded raw says scale_guess itself


def _push_raws(frame: Any) -> list[dict[str, Any]]:
    """The ``raw`` of each trade of a push the typed path took, as the generic path builds it."""
    doc = fast_loads(frame)
    envelope = _envelope(doc)
    return [_raw(item, envelope, record_scale(item)[1]) for item in doc["data"]]
