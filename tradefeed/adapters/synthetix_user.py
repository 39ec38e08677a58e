"""Synthetix: one subaccount's own fills over the Trade WebSocket
(``docs/venues/synthetix-private.md``).

Authenticate-then-stream on ``/v1/ws/trade``.  Per connection (section 4, steps 1-6):

1. ``on_open`` sends only the EIP-712 signed ``auth`` request (a fresh timestamp each
   time); nothing else goes out before its reply says ok.
2. Then ``subscribe`` to ``subAccountUpdates``; on its acknowledgement (``t_sub``) live
   ``trade`` events are buffered.
3. A signed ``getTrades`` back-fill follows: on a first connect the newest ``limit``
   fills; after a reconnect every fill since ``hw - 5 s`` (``hw``: the newest fill
   delivered before, told by the connection through :meth:`resume`), capped at 30 days
   back, in windows of at most 7 days, paged with ``offset`` while ``hasMore``, each up
   to a fixed ``endTime = t_sub + 2 s`` so pages stay stable.
4. The back-fill comes out oldest first (ties by numeric ``tradeId``), then the
   buffered live fills, then live fills as they come; the connection's de-duplication
   by ``(stream, symbol, trade_id)`` drops every second copy (first seen wins).
5. A push with ``needsResync`` or a ``prevSeq`` that does not follow the last ``seq``
   starts step 3 again, without reconnecting.

Only ``eventType: "trade"`` events are fills (a liquidation fill is one, with
``triggeredByLiquidation``); every other subaccount event is ignored.  A refused auth
or subscription raises :class:`~tradefeed.exceptions.AuthError` (the feed ends after
that one attempt); a refused ``getTrades`` is a :class:`VenueError` and the live fills
go on.  Heartbeat: ``{"id", "method": "ping"}`` every 30 seconds once authenticated.

Signing needs a key, which this module never sees: the connection sets :attr:`signer`
(a :class:`tradefeed.signing.Eip712Signer`) on each new adapter.  Without one (replaying
a recording) the requests go out unsigned, so replies still match their requests.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, ClassVar, Mapping, Sequence

from ..exceptions import AuthError, ConfigError, FeedError, ParseError, TradefeedError, VenueError
from ..models import USER, Liquidity, Side, Trade, new_trade
from .base import (
    DEFAULT_USER_AGENT,
    RECORD_ERRORS,
    Adapter,
    CloseAction,
    Handshake,
    Parsed,
    dumps,
    loads,
    new_parsed,
    record_error,
    require_str,
    rfc3339_to_ms,
    to_decimal,
    to_ms,
)

__all__ = ["SynthetixUserAdapter", "PATH"]

log = logging.getLogger(__name__)

PATH = "/v1/ws/trade"
MAX_SYMBOL_LENGTH = 20
PING_INTERVAL = 30.0  # seconds
#: getTrades: the venue's largest page
PAGE = 1000
#: section 4 step 3: how far before the newest delivered fill a back-fill starts
OVERLAP_MS = 5_000
#: ...and how far past the subscription it ends
END_SLACK_MS = 2_000
#: the venue's limit on how far back getTrades reaches (30 days)
MAX_BACK_MS = 30 * 86_400_000
#: the widest window one getTrades asks for (row 14: 7 days, the narrowest documented)
WINDOW_MS = 7 * 86_400_000
#: signed requests expire this long after their nonce (SDK default)
EXPIRY_MS = 60_000
#: live fills buffered while a back-fill is in progress; past this they are released
MAX_BUFFERED = 100_000
FEE_CURRENCY = "USDT"  # row 15

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
#: section 3b ``direction`` (and the plain forms the server also maps), case-insensitive
_DIRECTIONS = {
    "open long": Side.BUY,
    "close short": Side.BUY,
    "long": Side.BUY,
    "buy": Side.BUY,
    "open short": Side.SELL,
    "close long": Side.SELL,
    "short": Side.SELL,
    "sell": Side.SELL,
}
_MAPPED = frozenset(("tradeId", "symbol", "side", "price", "quantity", "timestamp", "fee", "maker", "isMaker"))
_OK_STATUS = ("ok", "success")
_PUSH_CHANNELS = ("subAccountUpdate", "subAccountUpdates")


def subaccount(value: Any) -> int:
    """A subaccount id as an int, from a decimal string or an int.

    :raises ConfigError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError("synthetix: subaccount_id must be a decimal string such as '1867542890123456789'", param="subaccount_id")
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0 or int(text) >= 2**256:
        raise ConfigError("synthetix: subaccount_id must be a positive whole number, not %r" % (value,), param="subaccount_id")
    return int(text)


def symbol_list(symbols: Any) -> list[str]:
    """Synthetix markets as given to a feed: upper-cased, each once, in order (both feeds).

    :raises ConfigError: not a non-empty list of symbols of at most 20 characters.
    """
    if isinstance(symbols, str) or not isinstance(symbols, (list, tuple)) or not symbols:
        raise ConfigError("synthetix: symbols must be a non-empty list such as ['BTC-USDT']", param="symbols")
    out: list[str] = []
    for index, symbol in enumerate(symbols):
        param = "symbols[%d]" % index
        if not isinstance(symbol, str) or not symbol.strip() or " " in symbol.strip():
            raise ConfigError("synthetix: invalid symbol %r" % (symbol,), param=param)
        key = symbol.strip().upper()
        if len(key) > MAX_SYMBOL_LENGTH:
            raise ConfigError(
                "synthetix: symbol %r is longer than %d characters" % (symbol, MAX_SYMBOL_LENGTH), param=param
            )
        if key not in out:
            out.append(key)
    return out


def _symbols(value: Any) -> list[str] | None:
    """The user feed's optional filter: None for every market."""
    return None if value is None else symbol_list(value)


def _trade_order(trade: Trade) -> tuple[int, int, str]:
    """Oldest first; ties by numeric ``tradeId`` (section 4 step 4)."""
    tid = trade.trade_id
    return (trade.timestamp_ms, int(tid) if tid.isdigit() else 0, tid)


class SynthetixUserAdapter(Adapter):
    """One Synthetix subaccount's own fills (``add_feed("synthetix", stream="user", ...)``).

    :param subaccount_id: the subaccount, a decimal string (or int).
    :param symbols: only these markets (upper-cased); None (default) for every market.
    :param limit: fills back-filled on the first connect (1..1000, default 100); after a
        reconnect the back-fill reaches back to the last fill delivered instead.
    :param user_agent: ``User-Agent`` header; the venue requires a descriptive one.
    """

    venue: ClassVar[str] = "synthetix"
    default_url: ClassVar[str] = "wss://papi.synthetix.io"
    params: ClassVar[tuple[str, ...]] = ("subaccount_id", "symbols", "limit", "user_agent")
    subscription_param: ClassVar[str | None] = None
    tick_interval = PING_INTERVAL

    def __init__(
        self,
        subaccount_id: str | int,
        symbols: Sequence[str] | None = None,
        limit: int = 100,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.subaccount_id = subaccount(subaccount_id)
        self.symbols = _symbols(symbols)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= PAGE:
            raise ConfigError("synthetix: limit must be an integer within 1..%d, not %r" % (PAGE, limit), param="limit")
        if not isinstance(user_agent, str) or not user_agent.strip():
            raise ConfigError("synthetix: user_agent must be a non-empty string", param="user_agent")
        self.limit = limit
        self.user_agent = user_agent
        #: the request signer, set by the connection (None: requests go out unsigned)
        self.signer: Any = None
        self._ids = itertools.count(1)
        self._requests: dict[str, str] = {}  # request id -> kind
        self._authenticated = False
        self._hw: int | None = None  # newest fill delivered (this feed, any connection), ms
        self._last_seq: int | None = None
        # the back-fill in progress: None when live fills pass straight through
        self._buffer: list[Trade] | None = None
        self._rows: list[Any] = []
        self._windows: list[tuple[int | None, int]] = []  # (startTime, endTime) still to ask for
        self._offset = 0
        self._last_ping_ns: int | None = None

    # -- requests -------------------------------------------------------------------------

    def handshake(self, base_url: str | None = None, token: str | None = None) -> Handshake:
        return Handshake(url=self.endpoint(base_url, PATH), headers={"User-Agent": self.user_agent})

    def resume(self, last_seen: Mapping[tuple[Any, str], tuple[int, int | None]]) -> set[tuple[Any, str]]:
        """Start the back-fill from the newest own fill delivered; the key of that fill is
        the one whose continuity the connection checks (the back-fill is account-wide and
        reaches back to it, so it proves every other symbol's too)."""
        own = [(seen[0], key) for key, seen in last_seen.items() if key[0] == USER]
        if not own:
            return set()
        self._hw, key = max(own)
        return {key}

    def on_open(self, now_ns: int = 0) -> list[str]:
        now_ms = now_ns // 1_000_000
        timestamp = self.signer.next_ms(now_ms) if self.signer is not None else now_ms
        params: dict[str, Any] = {}
        if self.signer is not None:
            params["message"], params["signature"] = self.signer.sign_auth(self.subaccount_id, timestamp)
        return [self._request("auth", "auth", params)]

    def tick(self, now_ns: int) -> list[str]:
        if not self._authenticated:
            return []  # the socket carries nothing before the auth reply
        if self._last_ping_ns is None or now_ns - self._last_ping_ns >= PING_INTERVAL * 1e9 * 0.999:
            self._last_ping_ns = now_ns
            return [self._request("ping", "ping", {})]
        return []

    def on_close(self, code: int | None, reason: str) -> CloseAction:
        """Section 5: reconnect on every close, 1008 included (a connection limit, or the
        auth window of a session that lost its auth); a refused auth has already ended
        the feed with AuthError, so a 1008 cannot repeat after one."""
        return CloseAction.RECONNECT

    def _request(self, method: str, kind: str, params: dict[str, Any]) -> str:
        request_id = "%s-%d" % (kind, next(self._ids))
        self._requests[request_id] = kind
        return dumps({"id": request_id, "method": method, "params": params})

    def _subscribe(self) -> str:
        params = {"type": "subAccountUpdates", "sub_account_id": str(self.subaccount_id)}
        return self._request("subscribe", "subscribe", params)

    def _start_backfill(self, now_ms: int) -> list[str]:
        """Step 3: plan the windows from the newest fill delivered, and ask for the first."""
        end = now_ms + END_SLACK_MS
        if self._buffer is None:
            self._buffer = []
        self._rows = []
        self._offset = 0
        if self._hw is None:
            self._windows = [(None, end)]  # the newest `limit` fills
        else:
            start = max(self._hw - OVERLAP_MS, now_ms - MAX_BACK_MS)
            self._windows = []
            while start <= end:
                self._windows.append((start, min(end, start + WINDOW_MS - 1)))
                start += WINDOW_MS
            if not self._windows:
                self._windows = [(end, end)]
        return [self._get_trades(now_ms)]

    def _get_trades(self, now_ms: int) -> str:
        start, end = self._windows[0]
        first = self._hw is None
        params: dict[str, Any] = {
            "action": "getTrades",
            "subaccountId": str(self.subaccount_id),
            "limit": self.limit if first else PAGE,
            "offset": self._offset,
            "endTime": end,
        }
        if start is not None:
            params["startTime"] = start
        if self.symbols is not None and len(self.symbols) == 1:
            params["symbol"] = self.symbols[0]
        if self.signer is not None:
            nonce = self.signer.next_ms(now_ms)
            params["walletAddress"] = self.signer.address
            params["signature"] = self.signer.sign_action(self.subaccount_id, "getTrades", nonce, nonce + EXPIRY_MS)
            params["nonce"] = nonce
            params["expiresAfter"] = nonce + EXPIRY_MS
        return self._request("post", "getTrades", params)

    # -- parsing --------------------------------------------------------------------------

    def parse(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Parse a ``subAccountEvent`` push, a reply, or a pong::

            {"method": "subAccountEvent", "data": {"eventType": "trade", "tradeId": "1950384714",
             "symbol": "BTC-USDT", "side": "sell", "price": "90127.0", "quantity": "0.010",
             "fee": "0.630889", "maker": false, "timestamp": 1767225602010, ...}}

        :raises ParseError: not JSON, or not a frame of this protocol.
        :raises AuthError: the venue refused the authentication or the subscription.
        :raises FeedError: the venue lost the session (reconnect and authenticate again).
        """
        doc = loads(frame, self.venue)
        if type(doc) is not dict:
            raise ParseError("expected a JSON object", raw=frame, venue=self.venue)
        if doc.get("method") == "subAccountEvent" or doc.get("channel") in _PUSH_CHANNELS:
            return self._push(doc, frame, received_ns)
        if doc.get("type") == "pong":
            return Parsed(heartbeat=True)
        request_id = doc.get("requestId", doc.get("id"))
        if request_id is not None:
            return self._reply(str(request_id), doc, frame, received_ns)
        raise ParseError("neither a subaccount event nor a reply", raw=frame, venue=self.venue)

    def _push(self, doc: dict[str, Any], frame: str | bytes, received_ns: int) -> Parsed:
        data = doc.get("data")
        events = data if type(data) is list else [data] if type(data) is dict else None
        if events is None:
            raise ParseError("subaccount event without data", raw=frame, venue=self.venue)
        replies = self._check_sequence(doc, received_ns)
        trades: list[Trade] = []
        errors: list[TradefeedError] = []
        for event in events:
            if type(event) is dict and event.get("eventType") != "trade":
                continue  # orders, margin, funding...: not fills (order-level events would double count)
            try:
                trade = self._trade(event, received_ns, "live", doc)
            except RECORD_ERRORS as err:
                errors.append(record_error(self.venue, err, event))
                continue
            if self.symbols is None or trade.symbol in self.symbols:
                trades.append(trade)
        if self._buffer is not None:
            self._buffer.extend(trades)
            if len(self._buffer) >= MAX_BUFFERED:
                log.warning("synthetix: back-fill not answered; releasing %d buffered fills", len(self._buffer))
                trades, self._buffer = self._buffer, []
            else:
                trades = []
        self._note(trades)
        return new_parsed(trades, replies, errors, False)

    def _check_sequence(self, doc: dict[str, Any], received_ns: int) -> list[str]:
        """Step 6: a resync request, or a ``prevSeq`` that does not follow, back-fills again."""
        seq, previous = doc.get("seq"), doc.get("prevSeq")
        last, resync = self._last_seq, doc.get("needsResync") is True
        if type(seq) is int:
            self._last_seq = seq
        if not resync and (type(previous) is not int or last is None or previous == last):
            return []
        if self._buffer is not None or not self._authenticated:
            return []  # a back-fill is under way (or about to start): it covers this
        log.warning("synthetix: subaccount events out of sequence (prevSeq %r after %r); back-filling", previous, last)
        return self._start_backfill(received_ns // 1_000_000)

    def _reply(self, request_id: str, doc: dict[str, Any], frame: str | bytes, received_ns: int) -> Parsed:
        kind = self._requests.pop(request_id, "request")
        status, error, result = doc.get("status"), doc.get("error"), doc.get("result")
        failed = error is not None or (type(status) is int and status >= 400)
        if not failed and type(result) is dict and "status" in result and result["status"] not in _OK_STATUS + ("subscribed",):
            failed = True
        if failed:
            return self._failure(kind, request_id, doc)
        if kind == "ping" or result == "pong":
            return Parsed(heartbeat=True)
        if kind == "auth":
            self._authenticated = True
            return Parsed(replies=[self._subscribe()], heartbeat=True)
        if kind == "subscribe":
            return Parsed(replies=self._start_backfill(received_ns // 1_000_000), heartbeat=True)
        if kind == "getTrades":
            return self._page(result, frame, received_ns)
        return Parsed()

    def _failure(self, kind: str, request_id: str, doc: dict[str, Any]) -> Parsed:
        error: dict[str, Any] = doc["error"] if type(doc.get("error")) is dict else {}
        result = doc.get("result")
        if not error and type(result) is dict and type(result.get("error")) is dict:
            error = result["error"]
        code = error.get("code", doc.get("status"))
        message = str(error.get("message", "status %s" % doc.get("status")))
        text = "synthetix: %s refused (request %s): %s %s" % (kind, request_id, code, message)
        if kind == "auth":
            raise AuthError(
                text + "; check private_key and subaccount_id (the key's wallet must own the subaccount or be its "
                "delegate) and the computer's clock (the venue accepts 60 s of skew)",
                venue=self.venue,
                status_code=doc.get("status") if type(doc.get("status")) is int else None,
            )
        if "not authenticated" in message.lower():
            raise FeedError(text + "; authenticating again on a new connection", venue=self.venue)
        if kind == "subscribe":
            raise AuthError(text, venue=self.venue, status_code=doc.get("status") if type(doc.get("status")) is int else None)
        trades: list[Trade] = []
        if kind == "getTrades" and self._buffer is not None:
            trades, self._buffer = self._buffer, None  # no back-fill: the live fills go on
            self._windows, self._rows = [], []
            self._note(trades)
        return Parsed(trades=trades, errors=[VenueError(text, payload=doc, venue=self.venue)])

    def _page(self, result: Any, frame: str | bytes, received_ns: int) -> Parsed:
        try:
            response = result["response"]
            rows = response["trades"]
            if type(rows) is not list:
                raise TypeError("trades is not a list")
        except (KeyError, TypeError) as err:
            raise ParseError("getTrades reply without result.response.trades", raw=frame, venue=self.venue) from err
        self._rows.extend(rows)
        now_ms = received_ns // 1_000_000
        if self._hw is not None and response.get("hasMore") is True and rows:
            self._offset += len(rows)
            return Parsed(replies=[self._get_trades(now_ms)], heartbeat=True)
        self._windows.pop(0)
        self._offset = 0
        if self._windows and self._hw is not None:
            return Parsed(replies=[self._get_trades(now_ms)], heartbeat=True)
        return self._finish(received_ns)

    def _finish(self, received_ns: int) -> Parsed:
        """Step 4: the back-fill oldest first, then the live fills buffered meanwhile."""
        trades: list[Trade] = []
        errors: list[TradefeedError] = []
        seen: set[str] = set()
        for row in self._rows:
            try:
                trade = self._trade(row, received_ns, "backfill", None)
            except RECORD_ERRORS as err:
                errors.append(record_error(self.venue, err, row))
                continue
            if trade.trade_id not in seen and (self.symbols is None or trade.symbol in self.symbols):
                seen.add(trade.trade_id)
                trades.append(trade)
        trades.sort(key=_trade_order)
        trades.extend(t for t in self._buffer or () if t.trade_id not in seen)
        self._buffer, self._rows, self._windows = None, [], []
        self._note(trades)
        return new_parsed(trades, (), errors, False)

    def _note(self, trades: Sequence[Trade]) -> None:
        for trade in trades:
            if self._hw is None or trade.timestamp_ms > self._hw:
                self._hw = trade.timestamp_ms

    def _trade(self, record: Any, received_ns: int, source: str, envelope: dict[str, Any] | None) -> Trade:
        if type(record) is not dict:
            raise TypeError("not an object")
        side_text = record.get("side")
        if side_text is not None:
            side = _SIDES.get(side_text)
            if side is None:
                raise ValueError("unknown side %r" % (side_text,))
        else:
            direction = record["direction"]
            side = _DIRECTIONS.get(direction.strip().lower()) if type(direction) is str else None
            if side is None:
                raise ValueError("unknown direction %r" % (direction,))
        amount = to_decimal(record["quantity"], "quantity")
        if amount <= 0:
            raise ValueError("quantity must be positive, not %s" % amount)
        stamp = record["timestamp"]
        timestamp_ms = rfc3339_to_ms(stamp) if type(stamp) is str and "T" in stamp.upper() else to_ms(stamp)
        fee = record.get("fee")
        flag = record["maker"] if "maker" in record else record.get("isMaker")
        if flag is not None and type(flag) is not bool:
            raise ValueError("maker must be true or false, not %r" % (flag,))
        raw = {k: v for k, v in record.items() if k not in _MAPPED}
        raw["source"] = source
        sequence = None
        if envelope is not None and type(envelope.get("seq")) is int:
            sequence = envelope["seq"]
        return new_trade(
            "synthetix",
            require_str(record, "symbol"),
            require_str(record, "tradeId"),
            to_decimal(record["price"], "price"),
            amount,
            side,
            timestamp_ms,
            received_ns,
            sequence,
            None if fee is None else to_decimal(fee, "fee"),
            FEE_CURRENCY if fee is not None else None,
            None if flag is None else Liquidity.MAKER if flag else Liquidity.TAKER,
            USER,
            raw,
        )
