"""Synthetix: the public Info WebSocket (``docs/venues/synthetix.md``).

Two patterns on one socket: ``getLastTrades`` request/response (``method: "post"``) and
the ``trades`` subscription, which pushes one trade per message (``channel: "trade"``; the
official SDK's ``method: "trade"`` envelope with one trade or a list is read too).
On connect the adapter subscribes each symbol and then asks ``getLastTrades`` for it,
as the spec says ("getLastTrades right after subscribing to back-fill"): live trades
of a symbol are held back until its back-fill reply is in, then follow the back-fill
trades older than them (those the live stream also brought are left out), so the
symbol's trades come out oldest first with no gap.
With ``live=False`` there is no subscription: ``getLastTrades`` is repeated every
``poll_interval`` seconds.  Heartbeat: ``{"id", "method": "ping"}`` every 30 seconds.
"""

from __future__ import annotations

import itertools
import logging
from decimal import Decimal
from typing import Any, ClassVar, Literal, Mapping, Sequence

import msgspec

from ..exceptions import ConfigError, ParseError, TradefeedError, VenueError
from ..models import PUBLIC, USER, LazyRaw, Liquidity, RawFrame, Side, Trade, new_trade
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
    loads,
    EMPTY,
    Parsed,
    check_params,
    fast_loads,
    new_parsed,
    record_error,
    require_str,
    rfc3339_to_ms,
    to_decimal,
    to_ms,
)

from .synthetix_user import SynthetixUserAdapter, symbol_list as _symbol_list

__all__ = ["SynthetixAdapter", "SynthetixUserAdapter"]

log = logging.getLogger(__name__)

PATH = "/v1/ws/info"
PING_INTERVAL = 30.0  # seconds
#: the longest poll period taken (a day): a longer one is a mistake, not a plan
MAX_POLL_INTERVAL = 86400
#: live trades held per symbol while its back-fill is awaited; past this they are released
MAX_HELD = 10_000

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_MAPPED = frozenset(("tradeId", "symbol", "side", "price", "quantity", "timestamp", "tsMs", "isMaker", "isTaker"))
_OK_STATUS = ("success", "ok")


class SynthetixAdapter(Adapter):
    """Synthetix trades by symbol: back-fill plus live subscription, or polling.

    :param symbols: markets such as ``"BTC-USDT"`` (upper-cased; at most 20 characters).
    :param limit: trades per ``getLastTrades``, 1..100 (venue default 50).
    :param live: subscribe to live trades (default); False polls ``getLastTrades``.
    :param poll_interval: seconds between polls when ``live=False``.
    :param user_agent: ``User-Agent`` header; the venue requires a descriptive one.
    :param stream: ``"public"`` (this class); ``"user"`` makes :meth:`from_params` build
        the subaccount's own-fills feed instead (``subaccount_id`` and the feed's
        ``private_key`` then apply; ``symbols`` and ``limit`` keep their meaning).
    """

    venue: ClassVar[str] = "synthetix"
    default_url: ClassVar[str] = "wss://papi.synthetix.io"
    params: ClassVar[tuple[str, ...]] = (
        "symbols", "limit", "live", "poll_interval", "user_agent", "stream", "subaccount_id"
    )  # fmt: skip
    subscription_param: ClassVar[str | None] = "symbols"
    examples: ClassVar[Mapping[str, Any]] = {"symbols": ["BTC-USDT"], "subaccount_id": "1867542890123456789"}
    deciding_params: ClassVar[tuple[str, ...]] = ("stream",)
    #: the user feed's wallet key: given to a signer, never to the adapter or a log line
    auth_params: ClassVar[tuple[str, ...]] = ("private_key",)
    param_notes: ClassVar[Mapping[str, str]] = {
        "symbols": "required (stream='user': optional, default every market)",
        "limit": "default 50, 1..100 (stream='user': default 100, 1..1000)",
        "live": "default True (public stream only)",
        "poll_interval": "default 5.0 (public stream only)",
        "stream": "default 'public'; 'user': a subaccount's own fills",
        "subaccount_id": "required with stream='user'",
        "private_key": "required with stream='user' (pip install \"tradefeed[synthetix]\")",
    }

    @classmethod
    def requires_credentials(cls, params: Mapping[str, Any]) -> bool:
        """The user feed (``stream="user"``) needs ``private_key``; the public tape nothing."""
        return bool(params.get("stream", PUBLIC) == USER)

    @classmethod
    def from_params(cls, **params: Any) -> Adapter:
        """The public tape's adapter, or with ``stream="user"`` a
        :class:`~tradefeed.adapters.synthetix_user.SynthetixUserAdapter`."""
        check_params(cls.venue, params, cls.params)
        stream = params.pop("stream", PUBLIC)
        if stream == USER:
            for name in ("live", "poll_interval"):
                if name in params:
                    raise ConfigError("synthetix: %s is for the public feed, not stream='user'" % name, param=name)
            if params.get("limit") is None:
                params.pop("limit", None)
            if "subaccount_id" not in params:
                raise ConfigError("synthetix: stream='user' needs subaccount_id", param="subaccount_id")
            return SynthetixUserAdapter(**params)
        if stream != PUBLIC:
            raise ConfigError("synthetix: stream must be 'public' or 'user', not %r" % (stream,), param="stream")
        if params.get("subaccount_id") is not None:
            raise ConfigError("synthetix: subaccount_id is for stream='user'", param="subaccount_id")
        return cls(**params)

    def __init__(
        self,
        symbols: Sequence[str] | None = None,
        limit: int | None = None,
        live: bool = True,
        poll_interval: float = 5.0,
        user_agent: str = DEFAULT_USER_AGENT,
        stream: str = PUBLIC,
        subaccount_id: str | None = None,
    ) -> None:
        if stream != PUBLIC or subaccount_id is not None:
            raise ConfigError("synthetix: the user feed is made by from_params (add_feed(..., stream='user'))", param="stream")
        self.symbols = _symbol_list(symbols)
        if limit is None:
            limit = 50
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ConfigError("synthetix: limit must be an integer within 1..100, not %r" % (limit,), param="limit")
        if not isinstance(live, bool):
            raise ConfigError("synthetix: live must be true or false, not %r" % (live,), param="live")
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or not 0 < poll_interval <= MAX_POLL_INTERVAL  # NaN fails too
        ):
            raise ConfigError(
                "synthetix: poll_interval must be a number of seconds within 0..%d (not 0), not %r"
                % (MAX_POLL_INTERVAL, poll_interval),
                param="poll_interval",
            )
        if not isinstance(user_agent, str) or not user_agent.strip():
            raise ConfigError("synthetix: user_agent must be a non-empty string", param="user_agent")
        self.limit = limit
        self.live = live
        self.poll_interval = float(poll_interval)
        self.user_agent = user_agent
        #: scheduler period: the ping, or the poll when it is more frequent
        self.tick_interval = PING_INTERVAL if live else min(PING_INTERVAL, self.poll_interval)
        self._ids = itertools.count(1)
        self._requests: dict[str, tuple[str, str]] = {}  # request id -> (kind, symbol)
        self._held: dict[str, list[Trade]] = {}  # symbol -> live trades awaiting its back-fill
        self._meseq: dict[str, int] = {}
        self._last_ping_ns: int | None = None

    def handshake(self, base_url: str | None = None, token: str | None = None) -> Handshake:
        url = self.endpoint(base_url, PATH)
        return Handshake(url=url, headers={"User-Agent": self.user_agent})

    def on_open(self, now_ns: int = 0) -> list[str]:
        frames: list[str] = []
        for symbol in self.symbols:
            frames.extend(self._start(symbol))
        return frames

    def subscribe(self, items: Sequence[str]) -> list[str]:
        frames: list[str] = []
        for symbol in _symbol_list(items):
            if symbol not in self.symbols:
                self.symbols.append(symbol)
                frames.extend(self._start(symbol))
        return frames

    def unsubscribe(self, items: Sequence[str]) -> list[str]:
        frames: list[str] = []
        for symbol in _symbol_list(items):
            if symbol in self.symbols:
                self.symbols.remove(symbol)
                self._held.pop(symbol, None)
                if self.live:
                    frames.append(self._request("unsubscribe", symbol, "subscription", {"type": "trades", "symbol": symbol}))
        return frames

    def tick(self, now_ns: int) -> list[str]:
        frames: list[str] = []
        if self._last_ping_ns is None or now_ns - self._last_ping_ns >= PING_INTERVAL * 1e9 * 0.999:
            self._last_ping_ns = now_ns
            frames.append(self._request("ping", "", "ping", {}))
        if not self.live:
            frames.extend(self._get_last_trades(symbol) for symbol in self.symbols)
        return frames

    def _start(self, symbol: str) -> list[str]:
        """Subscribe (live mode), then back-fill: live trades wait for the back-fill."""
        frames = []
        if self.live:
            self._held[symbol] = []
            frames.append(self._request("subscribe", symbol, "subscription", {"type": "trades", "symbol": symbol}))
        frames.append(self._get_last_trades(symbol))
        return frames

    def _get_last_trades(self, symbol: str) -> str:
        params = {"action": "getLastTrades", "symbol": symbol, "limit": self.limit}
        return self._request("post", symbol, "trades", params)

    def _request(self, method: str, symbol: str, prefix: str, params: dict[str, Any]) -> str:
        request_id = "%s-%d" % (prefix, next(self._ids))
        self._requests[request_id] = (method if method != "post" else "getLastTrades", symbol)
        return dumps({"id": request_id, "method": method, "params": params})

    # -- parsing ------------------------------------------------------------------------

    def parse(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Parse a trade notification, a reply or a pong (trimmed samples; full ones in
        ``tests/fixtures/synthetix/``)::

            {"channel": "trade", "data": {"tradeId": "1950384714", "symbol": "BTC-USDT",
             "side": "buy", "price": "90127.0", "quantity": "0.010",
             "timestamp": "2026-01-01T00:00:02.010Z", "isMaker": false},
             "timestamp": 1767225602012, "meseq": 9}
            {"id": "trades-2", "status": 200, "result": {"response": {"trades": [...]},
             "status": "success"}}

        :raises ParseError: not JSON, or not a frame of this protocol.
        """
        trade = self._parse_typed(frame, received_ns)
        if trade is not None:
            trades = self._live(trade)
            return new_parsed(trades, (), (), False) if trades else EMPTY
        doc = loads(frame, self.venue)
        if type(doc) is not dict:
            raise ParseError("expected a JSON object", raw=frame, venue=self.venue)
        if doc.get("channel") == "trade" or doc.get("method") == "trade":  # docs' envelope, or the SDK's
            return self._notification(doc, frame, received_ns)
        if doc.get("type") == "pong":
            return Parsed(heartbeat=True)
        request_id = doc.get("id", doc.get("requestId"))
        if request_id is not None:
            return self._reply(str(request_id), doc, frame, received_ns)
        raise ParseError("neither a trade notification nor a reply", raw=frame, venue=self.venue)

    def _parse_typed(self, frame: str | bytes, received_ns: int) -> Trade | None:
        """The trade of a documented push (``{"channel": "trade", "data": {...}}``),
        decoded straight into a record; ``raw`` is a :class:`LazyRaw` the generic path's
        decoder fills on first access.  None for anything else (replies, the SDK's
        envelope, a bad value): the generic path then parses it as it always does."""
        try:
            push = _TYPED.decode(frame)
            r = push.data
            if r.timestamp is not UNSET:
                stamp, stamp_name = r.timestamp, "timestamp"
            elif r.tsMs is not UNSET:
                stamp, stamp_name = r.tsMs, "tsMs"
            elif push.timestamp is not UNSET:
                stamp, stamp_name = push.timestamp, "envelope"
            else:
                return None
            if r.isMaker is not UNSET:
                flag, maker_when = r.isMaker, True
            elif r.isTaker is not UNSET:
                flag, maker_when = r.isTaker, False
            else:
                flag, maker_when = None, True
            raw = LazyRaw(RawFrame(frame, _push_raw), 0, NO_DROP)
            return self._build(
                r.side, r.quantity, r.price, r.symbol, r.tradeId, stamp, stamp_name, flag, maker_when,
                push.meseq, push.prevMeseq, raw, received_ns,
            )  # fmt: skip
        except TYPED_ERRORS:
            return None

    def _notification(self, doc: dict[str, Any], frame: str | bytes, received_ns: int) -> Parsed:
        """A live push: ``data`` one trade (the docs), or a list of trades in order (the
        official SDK's ``{"method": "trade", "data": [...]}``; synthetix.md, resolved
        2026-12-06).  The envelope's ``meseq`` is one trade's: a list's trades get none."""
        data = doc.get("data")
        if type(data) is dict:
            try:
                trade = self._trade(data, received_ns, envelope=doc)
            except RECORD_ERRORS as err:
                return Parsed(errors=[record_error(self.venue, err, data)])
            trades = self._live(trade)
            return new_parsed(trades, (), (), False) if trades else Parsed()
        if type(data) is not list:
            raise ParseError("trade push without data (a trade or a list of trades)", raw=frame, venue=self.venue)
        envelope = {k: v for k, v in doc.items() if k not in ("data", "meseq", "prevMeseq")}
        out: list[Trade] = []
        errors: list[TradefeedError] = []
        for record in data:
            try:
                trade = self._trade(record, received_ns, envelope=envelope)
            except RECORD_ERRORS as err:
                errors.append(record_error(self.venue, err, record))
                continue
            out.extend(self._live(trade))
        return new_parsed(out, (), errors, False)

    def _live(self, trade: Trade) -> list[Trade]:
        """What a live trade releases now: itself, nothing (its symbol was unsubscribed, or
        its back-fill is awaited: held), or the held trades when too many wait."""
        symbol = trade.symbol
        if symbol not in self.symbols:
            return []  # in flight after an unsubscribe
        held = self._held.get(symbol)
        if held is None:
            return [trade]
        held.append(trade)
        if len(held) >= MAX_HELD:
            log.warning("synthetix: no back-fill reply for %s; releasing %d live trades", symbol, len(held))
            return self._held.pop(symbol)
        return []

    def _reply(self, request_id: str, doc: dict[str, Any], frame: str | bytes, received_ns: int) -> Parsed:
        kind, symbol = self._requests.pop(request_id, ("request", ""))
        status = doc.get("status")
        error = doc.get("error")
        result = doc.get("result")
        failed = error is not None or (type(status) is int and status >= 400)
        if not failed and type(result) is dict and "status" in result and result["status"] not in _OK_STATUS:
            failed = True
        if failed:
            return self._failure(kind, symbol, request_id, doc)
        if kind == "ping" or result == "pong":
            return Parsed(heartbeat=True)
        if kind != "getLastTrades":
            return Parsed()  # subscribe/unsubscribe acknowledged
        try:
            records = result["response"]["trades"]  # type: ignore[index]
            if type(records) is not list:
                raise TypeError("trades is not a list")
        except (KeyError, TypeError) as err:
            raise ParseError("getLastTrades reply without result.response.trades", raw=frame, venue=self.venue) from err
        trades: list[Trade] = []
        errors: list[TradefeedError] = []
        for record in reversed(records):  # newest first on the wire
            try:
                trades.append(self._trade(record, received_ns))
            except RECORD_ERRORS as err:
                errors.append(record_error(self.venue, err, record))
        if symbol in self.symbols:
            held = self._held.pop(symbol, ())
            if held:
                # The subscription came first, so every trade since then is in `held`, in
                # order: the back-fill's others are exactly the older ones.  Appending the
                # held trades after the whole back-fill would misorder them whenever more
                # than `limit` trades happened between the two requests (the live stream
                # then starts before the back-fill's oldest trade).
                live = {trade.trade_id for trade in held}
                trades = [trade for trade in trades if trade.trade_id not in live]
                trades.extend(held)
        else:
            trades = []  # the symbol was removed meanwhile
        return new_parsed(trades, (), errors, False)

    def _failure(self, kind: str, symbol: str, request_id: str, doc: dict[str, Any]) -> Parsed:
        error: dict[str, Any] = doc["error"] if type(doc.get("error")) is dict else {}
        code = error.get("code", doc.get("status"))
        message = error.get("message", "status %s" % doc.get("status"))
        venue_error = VenueError(
            "synthetix: %s %s failed (request %s): %s %s" % (kind, symbol, request_id, code, message),
            payload=doc,
            venue=self.venue,
        )
        trades: list[Trade] = []
        if kind == "getLastTrades":
            trades = self._held.pop(symbol, [])  # no back-fill: let the live trades go
        return Parsed(trades=trades, errors=[venue_error])

    def _trade(self, record: dict[str, Any], received_ns: int, envelope: dict[str, Any] | None = None) -> Trade:
        if "timestamp" in record:
            stamp, stamp_name = record["timestamp"], "timestamp"
        elif "tsMs" in record:
            stamp, stamp_name = record["tsMs"], "tsMs"
        elif envelope is not None and "timestamp" in envelope:
            stamp, stamp_name = envelope["timestamp"], "envelope"
        else:
            raise KeyError("timestamp")
        if "isMaker" in record:
            flag, maker_when = record["isMaker"], True
        elif "isTaker" in record:
            flag, maker_when = record["isTaker"], False
        else:
            flag, maker_when = None, True
        sequence = previous = None
        if envelope is not None:
            sequence, previous = envelope.get("meseq"), envelope.get("prevMeseq")
        return self._build(
            record["side"], record["quantity"], record["price"], record["symbol"], record["tradeId"], stamp, stamp_name,
            flag, maker_when, sequence, previous, _raw(record, envelope), received_ns,
        )  # fmt: skip

    def _build(
        self, side_text: Any, quantity: Any, price: Any, symbol: Any, trade_id: Any, stamp: Any, stamp_name: str,
        flag: Any, maker_when: bool, sequence: Any, previous: Any, raw: Any, received_ns: int,
    ) -> Trade:  # fmt: skip
        """One trade from its values; both parse paths end here."""
        side = _SIDES.get(side_text)
        if side is None:
            raise ValueError("unknown side %r" % (side_text,))
        amount = quantity if type(quantity) is Decimal else to_decimal(quantity, "quantity")
        if amount <= 0:
            raise ValueError("quantity must be positive, not %s" % amount)
        if stamp_name == "timestamp" and type(stamp) is str and "T" in stamp.upper():
            timestamp_ms = rfc3339_to_ms(stamp)
        else:
            timestamp_ms = to_ms(stamp, "tsMs" if stamp_name == "tsMs" else "timestamp")
        liquidity = None
        if flag is not None:
            if type(flag) is not bool:
                raise ValueError("isMaker/isTaker must be true or false, not %r" % (flag,))
            liquidity = Liquidity.MAKER if flag is maker_when else Liquidity.TAKER
        if sequence is not None:
            if type(sequence) is not int:
                raise ValueError("meseq must be an integer, not %r" % (sequence,))
        if type(symbol) is not str or not symbol:
            symbol = require_str({"symbol": symbol}, "symbol")
        trade = new_trade(
            "synthetix",
            symbol,
            trade_id if type(trade_id) is str and trade_id else require_str({"tradeId": trade_id}, "tradeId"),
            price if type(price) is Decimal else to_decimal(price, "price"),
            amount,
            side,
            timestamp_ms,
            received_ns,
            sequence,
            None,  # no fee on the public tape
            None,
            liquidity,
            PUBLIC,
            raw,
        )
        if sequence is not None:  # once the trade is sure (the typed path may fall back)
            self._check_sequence(symbol, previous, sequence)
        return trade

    def _check_sequence(self, symbol: Any, previous: Any, sequence: int) -> None:
        """Row 10: gap-detect only when both ``meseq`` and ``prevMeseq`` are present, and
        only log (the back-fill on reconnect is what recovers trades)."""
        last = self._meseq.get(symbol)
        self._meseq[symbol] = sequence
        if previous is not None and last is not None and previous != last:
            log.warning("synthetix: %s meseq jumped from %s to %s (prevMeseq %s)", symbol, last, sequence, previous)


def _raw(record: dict[str, Any], envelope: dict[str, Any] | None) -> dict[str, Any]:
    """A trade's ``raw``: the record's unmapped fields, then the envelope's (but its
    ``data`` and ``meseq``); the generic path builds it, the typed path decodes it so."""
    raw = {k: v for k, v in record.items() if k not in _MAPPED}
    if envelope is not None:
        raw.update((k, v) for k, v in envelope.items() if k not in ("data", "meseq"))
    return raw


# -- the typed fast path: the documented push, one trade per frame ------------------------


class _Record(msgspec.Struct, gc=False):
    """The mapped fields of a pushed trade (synthetix.md); the rest stays in the frame."""

    tradeId: Any
    symbol: Any
    side: Any
    price: Any
    quantity: Any
    timestamp: Any = msgspec.UNSET
    tsMs: Any = msgspec.UNSET
    isMaker: Any = msgspec.UNSET
    isTaker: Any = msgspec.UNSET


class _Push(msgspec.Struct, gc=False):
    channel: Literal["trade"]
    data: _Record
    timestamp: Any = msgspec.UNSET
    meseq: Any = None
    prevMeseq: Any = None


_TYPED = msgspec.json.Decoder(_Push, float_hook=exact_decimal)


def _push_raw(frame: Any) -> list[dict[str, Any]]:
    """The ``raw`` of a push the typed path took, as the generic path builds it."""
    doc = fast_loads(frame)
    return [_raw(doc["data"], doc)]
