"""Synthetix's public Info WebSocket, as specified in ``docs/venues/synthetix.md``.

This module owns what is Synthetix-specific: the ``/v1/ws/info`` path, the
``User-Agent`` check, the seeded tape of ``BTC-USDT``/``ETH-USDT``/``SOL-USDT``
trades, the ``getLastTrades``/``subscribe``/``unsubscribe``/``ping`` requests,
the trade notifications, idle and max-age closes and the per-IP token bucket.
Loop, servers, connect-rate limit (HTTP 429) and 404s live in
:mod:`tradefeed.simulator.server`; nothing here imports the client library.

How each row of the spec's "Unknown / assumed" table is served:

1., 2. Host, testnet: the production path is served under ``ws://host:port``.
3. ``type`` ``"trades"`` and ``"trade"`` are both accepted; acks echo the one received.
4. Acks: ``{"id", "requestId", "status": 200, "result": {"type", "symbol"}}`` for
   subscribe and unsubscribe; ``symbol`` is upper-cased, ``"ALL"`` when omitted.
5. Ping ``{"type": "ping", "timestamp": T}`` -> ``{"type": "pong", "timestamp": T}``.
6. Ping ``{"id", "method": "ping"}`` -> ``{"id", "requestId", "status": 200, "result": "pong"}``.
7. ``error.code`` is the integer status; 8. ``result.status`` is ``"success"``.
9. ``data.timestamp`` is RFC 3339 with milliseconds and ``Z``; option
   ``push_time="tsMs"`` sends the Go SDK form (``tsMs`` and ``isTaker``) instead.
   ``push_envelope`` picks the envelope of trade pushes (synthetix.md, resolved
   2026-12-06): ``"channel"`` (the docs' ``{"channel": "trade", "data": {...}}``,
   default), ``"method"`` (the official SDK's ``{"method": "trade", "data": {...}}``) or
   ``"method-list"`` (``{"method": "trade", "data": [{...}, ...]}``: each subscriber's
   trades of one :meth:`generate` in one push, in order).
10. Each notification carries ``meseq`` (+1 per trade of its symbol, from 1) and
    ``prevMeseq`` (``meseq - 1``).
11. No snapshot on subscribe. 12. Close codes: 1000 idle, 1001 shutdown and max
    age, 1008 over ``max_connections`` per IP, 1011 simulator bug.
13. Idle timeout: ``idle_timeout`` seconds (60) without a client data frame
    (protocol-level pings do not count). 14. Token costs: getLastTrades 10, ping 0,
    any other request 1. 15. ``"ALL"`` streams every market. 16. Unknown symbol on
    subscribe: status 400 ``"Invalid symbol"``.

Other choices: requests without an ``id`` (other than the ``type`` ping),
malformed JSON and non-objects are logged and ignored; a request with an ``id``
and an unknown method or action gets a 400 reply. Unsubscribing what the
connection has not subscribed (``type`` compared as sent) gets 400 ``"Not
subscribed"``. A connection gets each trade once, even when two of its
subscriptions match it. Client frames are never answered by a close.

Trade faults (:meth:`~tradefeed.simulator.Venue.fault`), all three supported;
each trade is one notification, so the unit faulted is the notification frame
and a batch is the notifications of one :meth:`SynthetixVenue.generate`:

- ``duplicate``: the notification is sent again (same ``meseq``) before the
  next batch's.
- ``reorder``: it goes out before the notification that precedes it, so
  ``meseq`` arrives out of order.
- ``skip_sequence``: its ``meseq`` is the symbol's previous + 2 (``prevMeseq``
  stays ``meseq - 1``, naming the number never sent), on the tape too.

Stall (``Simulator.stall``) drops notifications only: replies (acks, both
pings, ``getLastTrades``) still flow, so a client can back-fill by request.
Muted pings (``Simulator.mute_pings``) leave both application pings unanswered.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from ._base import Outbox, Venue, call_on_loop
from ._json import Raw, dumps
from ._synthetix_trade import SIM_PRIVATE_KEY, SIM_SUBACCOUNT, TRADE_PATH, TradeSocket

__all__ = [
    "INFO_PATH", "TRADE_PATH", "PUSH_ENVELOPES", "SYMBOLS", "SIM_PRIVATE_KEY", "SIM_SUBACCOUNT", "SynthetixVenue", "rfc3339"
]  # fmt: skip

logger = logging.getLogger(__name__)

INFO_PATH = "/v1/ws/info"
#: the envelopes of trade pushes (``push_envelope``): the docs' form first, the default
PUSH_ENVELOPES = ("channel", "method", "method-list")
TAPE_LIMIT = 100_000  # trades kept in memory (getLastTrades needs 100 per market)
FIRST_TRADE_ID = 1950384712
ALL = "ALL"
TRADE_TYPES = frozenset({"trades", "trade"})
MAX_SYMBOL_LENGTH = 20
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
COSTS = {"getLastTrades": 10, "ping": 0}  # tokens per request; any other method costs 1
INTERNAL_ERROR = "Internal error: unrecognized trade direction"
_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)  # whatever the calling thread's context


class _Market(NamedTuple):
    symbol: str
    start_ticks: int  # first price, in ticks
    tick: Decimal
    walk: int  # largest price move per trade, in ticks
    step: Decimal  # quantity step
    max_steps: int
    weight: int


_MARKETS = (
    _Market("BTC-USDT", 180_000, Decimal("0.5"), 4, Decimal("0.001"), 2000, 50),
    _Market("ETH-USDT", 300_000, Decimal("0.01"), 30, Decimal("0.01"), 500, 30),
    _Market("SOL-USDT", 135_000, Decimal("0.001"), 15, Decimal("0.1"), 1000, 20),
)
_WEIGHTS = [market.weight for market in _MARKETS]
#: markets listed on the simulated venue
SYMBOLS: tuple[str, ...] = tuple(market.symbol for market in _MARKETS)


class _Entry(NamedTuple):
    trade: dict[str, Any]  # the getLastTrades item
    meseq: int
    item: str  # ``trade`` encoded once
    push: str  # the notification's ``data``, encoded once


class _RequestError(Exception):
    """A request refused with an error reply."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class _Session:
    """One connection: its outbox, client IP, subscriptions and activity (loop time)."""

    outbox: Outbox
    ip: str
    opened: float
    last_seen: float
    subscriptions: set[tuple[str, str]] = field(default_factory=set)  # (type as sent, symbol or ALL)

    def wants(self, symbol: str) -> bool:
        return any(subscribed in (ALL, symbol) for _, subscribed in self.subscriptions)


class SynthetixVenue(Venue):
    """The simulated Synthetix Info WebSocket over one seeded tape.

    ::

        with Simulator(seed=1, rate=0, options={"synthetix": {"idle_timeout": 0.5}}) as sim:
            url = sim.url("synthetix") + INFO_PATH
            snx = sim.venue("synthetix")
            new = snx.emit(3)                   # pushed to matching subscriptions
            btc = snx.trades("BTC-USDT")        # the tape so far, oldest first
            snx.fail_next_get_last_trades()     # the next getLastTrades gets a 500

    Trades are dicts shaped as ``getLastTrades`` items: ``tradeId``, ``price``
    and ``quantity`` strings, ``timestamp`` integer ms. ``snapshot_size`` is
    accepted and unused (no snapshot on subscribe).

    :param strict_user_agent: refuse a handshake without ``User-Agent`` with HTTP 400.
    :param push_time: ``"rfc3339"`` (documented notification) or ``"tsMs"``
        (Go SDK form: ``tsMs`` integer ms and ``isTaker`` replace
        ``timestamp`` and ``isMaker`` in ``data``).
    :param push_envelope: ``"channel"``, ``"method"`` or ``"method-list"`` (row 9).
    :param idle_timeout: seconds without a client data frame before a close
        1000; ``None`` never.
    :param max_age: seconds after which a connection is closed with 1001; ``None`` never.
    :param max_connections: open connections per client IP; one more is
        accepted, then closed with 1008. ``None`` disables the check.
    :param bucket_tokens: per-IP token bucket size (refilled evenly over
        ``bucket_window`` seconds); a request it cannot pay for gets status
        429. ``None`` disables it.
    :param bucket_window: seconds to refill the whole bucket.
    :param fill_every: every this many public trades one also fills the simulated
        subaccount (pushed on ``/v1/ws/trade``); 0: only :meth:`fill` makes fills.
    :param fill_history: fills the subaccount's ``getTrades`` history keeps (None: all).
    :param auth_timeout: seconds a trade-socket connection has to authenticate.

    The private Trade WebSocket (``synthetix-private.md``) is :attr:`trade`, a
    :class:`~tradefeed.simulator._synthetix_trade.TradeSocket`:
    ``trade.refuse_next_auth()``, ``trade.fail_next_get_trades()``, ``trade.fills()``.
    """

    name = "synthetix"
    paths = frozenset({INFO_PATH, TRADE_PATH})
    fault_knobs = frozenset({"duplicate", "reorder", "skip_sequence"})

    def demo_params(self) -> dict[str, Any]:
        """Every simulated market."""
        return {"symbols": list(SYMBOLS)}

    def __init__(
        self,
        *,
        seed: int = 1,
        rate: float = 200.0,
        history: int = 100,
        snapshot_size: int = 20,
        strict_user_agent: bool = False,
        push_time: str = "rfc3339",
        push_envelope: str = "channel",
        idle_timeout: float | None = 60.0,
        max_age: float | None = 86_400.0,
        max_connections: int | None = 100,
        bucket_tokens: int | None = 10_000,
        bucket_window: float = 10.0,
        fill_every: int = 4,
        fill_history: int | None = None,
        auth_timeout: float = 30.0,
    ) -> None:
        super().__init__(seed=seed, rate=rate, history=history, snapshot_size=snapshot_size)
        #: the private Trade WebSocket (``/v1/ws/trade``): the simulated subaccount's fills
        self.trade = TradeSocket(
            seed=seed, fill_every=fill_every, history_limit=fill_history, auth_timeout=auth_timeout, idle_timeout=idle_timeout
        )
        if push_time not in ("rfc3339", "tsMs"):
            raise ValueError(f"push_time must be 'rfc3339' or 'tsMs', not {push_time!r}")
        if push_envelope not in PUSH_ENVELOPES:
            raise ValueError(f"push_envelope must be one of {PUSH_ENVELOPES}, not {push_envelope!r}")
        self.push_envelope = push_envelope
        if any(value is not None and value <= 0 for value in (idle_timeout, max_age, max_connections, bucket_tokens)):
            raise ValueError("idle_timeout, max_age, max_connections and bucket_tokens must be positive or None")
        if bucket_window <= 0:
            raise ValueError(f"bucket_window must be positive, not {bucket_window}")
        self.strict_user_agent = strict_user_agent
        self.push_time = push_time
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.max_connections = max_connections
        self.bucket_tokens = bucket_tokens
        self.bucket_window = bucket_window
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # guards the tape, the generator state and _failures
        self._cond = threading.Condition()  # notified when subscriptions change
        self._tape: deque[_Entry] = deque(maxlen=TAPE_LIMIT)
        self._ticks = {market.symbol: market.start_ticks for market in _MARKETS}
        self._meseq = dict.fromkeys(SYMBOLS, 0)
        self._next_trade_id = FIRST_TRADE_ID
        self._last_timestamp = 0
        self._failures: deque[tuple[int, str]] = deque()
        # loop thread only:
        self._sessions: dict[Outbox, _Session] = {}
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._buckets: dict[str, list[float]] = {}  # client IP -> [tokens, loop time of last refill]
        spacing = round(1000 / rate) if rate > 0 else 1000
        now = _now_ms()
        for age in range(history, 0, -1):
            self._tape.append(self._next_entry(now - age * spacing))
        self.trade.on_public_trades([entry.trade for entry in self._tape])  # the subaccount's history

    # -- helpers for tests (any thread) ------------------------------------------

    def wallet_credentials(self) -> tuple[str, str]:
        """``(private_key, subaccount_id)`` of the simulated wallet (a public test key)."""
        return self.trade.credentials

    def user_feed_params(self) -> dict[str, Any]:
        """``add_feed`` parameters of the subaccount's own-fills feed."""
        private_key, subaccount_id = self.trade.credentials
        return {"stream": "user", "subaccount_id": subaccount_id, "private_key": private_key}

    def fill(self, count: int, symbol: str = "BTC-USDT", *, liquidation: bool = False) -> list[dict[str, Any]]:
        """Make ``count`` fills of the simulated subaccount now; safe from any thread."""
        return call_on_loop(self._loop, lambda: self.trade.fill(count, symbol, liquidation=liquidation))

    def trades(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Return the trades still on the tape, of ``symbol`` or all, oldest first."""
        with self._lock:
            return [dict(entry.trade) for entry in self._tape if symbol in (None, entry.trade["symbol"])]

    def fail_next_get_last_trades(self, status: int = 500, message: str = INTERNAL_ERROR, count: int = 1) -> None:
        """Answer the next ``count`` valid getLastTrades requests with an error reply.

        :param status: the reply's ``status`` and ``error.code``.
        :param message: the ``error.message`` (default: the handler's 500 message).
        """
        with self._lock:
            self._failures.extend([(status, message)] * count)

    def wait_for_subscriptions(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Wait until the open connections hold at least ``n`` subscriptions.

        :param timeout: seconds to wait.
        :return: whether the count was reached in time.
        """
        with self._cond:
            return self._cond.wait_for(lambda: sum(len(s.subscriptions) for s in self._sessions.values()) >= n, timeout)

    # -- Venue contract ---------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake without ``User-Agent`` with HTTP 400 in strict mode."""
        if self.strict_user_agent and not request.headers.get("User-Agent", "").strip():
            logger.info("synthetix: 400 for %s: no User-Agent", connection.remote_address)
            return connection.respond(HTTPStatus.BAD_REQUEST, "User-Agent header required.\n")
        return None

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Create ``count`` trades, add them to the tape and push one notification per trade."""
        marks = self._fault_marks(count)
        with self._lock:
            timestamp = _now_ms()
            entries = [self._next_entry(timestamp, skip=mark.skip) for mark in marks]
            self._tape.extend(entries)
        self.trade.on_public_trades([entry.trade for entry in entries])
        sent = max(_now_ms(), self._last_timestamp)  # the envelope's send time
        arranged = self._arrange(entries, marks)
        if self.push_envelope == "method-list":  # one push per subscriber, its trades in order
            for outbox, session in self._sessions.items():
                mine = [Raw(entry.push) for entry in arranged if session.wants(entry.trade["symbol"])]
                if mine:
                    outbox.push(dumps({"method": "trade", "data": mine}))
            return [dict(entry.trade) for entry in entries]
        key = "channel" if self.push_envelope == "channel" else "method"
        for entry in arranged:
            frame = dumps(
                {key: "trade", "data": Raw(entry.push), "timestamp": sent, "meseq": entry.meseq,
                 "prevMeseq": entry.meseq - 1}
            )  # fmt: skip
            for outbox, session in self._sessions.items():
                if session.wants(entry.trade["symbol"]):
                    outbox.push(frame)
        return [dict(entry.trade) for entry in entries]

    async def handler(self, connection: ServerConnection) -> None:
        """Answer requests and push subscribed trades until the connection closes."""
        if connection.request is not None and urlsplit(connection.request.path).path == TRADE_PATH:
            await self.trade.handler(connection, self.outboxes)
            return
        ip = connection.remote_address[0]
        if self.max_connections is not None and self._per_ip[ip] >= self.max_connections:
            logger.info("synthetix: closing %s: over %d connections", connection.remote_address, self.max_connections)
            await connection.close(CloseCode.POLICY_VIOLATION, "too many connections")
            return
        now = asyncio.get_running_loop().time()
        session = _Session(Outbox(connection), ip, opened=now, last_seen=now)
        self._per_ip[ip] += 1
        with self._cond:
            self._sessions[session.outbox] = session
        self.outboxes.add(session.outbox)
        watchdog = asyncio.create_task(self._watch(connection, session))

        async def on_message(message: str | bytes) -> None:
            try:
                self._on_message(session, message)
            except Exception:
                logger.exception("synthetix: failed on a frame from %s", connection.remote_address)
                await connection.close(CloseCode.INTERNAL_ERROR, "internal error")

        try:
            await session.outbox.pump(on_message)
        finally:
            watchdog.cancel()
            self.outboxes.discard(session.outbox)
            with self._cond:
                del self._sessions[session.outbox]
                self._cond.notify_all()
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]

    async def _watch(self, connection: ServerConnection, session: _Session) -> None:
        """Close the connection when it has been idle or open too long."""
        loop = asyncio.get_running_loop()
        age_at = math.inf if self.max_age is None else session.opened + self.max_age
        while True:
            idle_at = math.inf if self.idle_timeout is None else session.last_seen + self.idle_timeout
            if min(idle_at, age_at) == math.inf:
                return
            now = loop.time()
            if now >= age_at:
                code, reason = CloseCode.GOING_AWAY, "max age"
                break
            if now >= idle_at:
                code, reason = CloseCode.NORMAL_CLOSURE, "idle timeout"
                break
            await asyncio.sleep(min(idle_at, age_at) - now)
        logger.info("synthetix: closing %s: %s", connection.remote_address, reason)
        await connection.close(code, reason)

    # -- requests (loop thread) ---------------------------------------------------------

    def _on_message(self, session: _Session, message: str | bytes) -> None:
        session.last_seen = asyncio.get_running_loop().time()
        try:
            request = json.loads(message, parse_float=Decimal, parse_constant=_refuse)
        except (ValueError, RecursionError):
            logger.info("synthetix: ignoring a frame that is not JSON: %.80r", message)
            return
        if not isinstance(request, dict):
            logger.info("synthetix: ignoring a frame that is not a JSON object: %.80r", message)
            return
        method = request.get("method")
        if method is None and request.get("type") == "ping":
            session.outbox.pong(dumps({"type": "pong", "timestamp": request.get("timestamp", _now_ms())}))
            return
        request_id = request.get("id")
        if request_id is None:
            logger.info("synthetix: ignoring a frame without id: %.80r", message)
            return
        params = request.get("params")
        # subscribe, unsubscribe and ping answer with requestId (the ack's shape); post does not (the seed's)
        reply: dict[str, Any] = {"id": request_id} if method == "post" else {"id": request_id, "requestId": request_id}
        try:
            action = params.get("action") if method == "post" and isinstance(params, dict) else method
            if not self._pay(session, action if isinstance(action, str) else ""):
                raise _RequestError("Rate limit exceeded", HTTPStatus.TOO_MANY_REQUESTS)
            if method == "ping":
                reply.update(status=200, result="pong")
            elif method == "post":
                reply.update(status=200, result=self._post(params))
            elif method in ("subscribe", "unsubscribe"):
                reply.update(status=200, result=self._subscribe(session, method, params))
            else:
                raise _RequestError("Unsupported method")
        except _RequestError as err:
            reply.update(status=err.status, result=None, error={"code": err.status, "message": str(err)})
        if method == "ping":
            session.outbox.pong(dumps(reply))
        else:
            session.outbox.put(dumps(reply))

    def _pay(self, session: _Session, action: str) -> bool:
        """Take the action's tokens from the client IP's bucket; whether it could pay."""
        cost = COSTS.get(action, 1)
        if self.bucket_tokens is None or cost == 0:
            return True
        now = asyncio.get_running_loop().time()
        bucket = self._buckets.setdefault(session.ip, [float(self.bucket_tokens), now])
        refill = (now - bucket[1]) * self.bucket_tokens / self.bucket_window
        bucket[:] = [min(float(self.bucket_tokens), bucket[0] + refill), now]
        if bucket[0] < cost:
            logger.info("synthetix: 429 for %s (%s)", session.ip, action)
            return False
        bucket[0] -= cost
        return True

    def _post(self, params: Any) -> dict[str, Any]:
        """Run a ``post`` action (only getLastTrades) and return the reply's ``result``."""
        if not isinstance(params, dict) or not isinstance(params.get("action"), str):
            raise _RequestError("Invalid request body")
        if params["action"] != "getLastTrades":
            raise _RequestError("Unsupported action")
        symbol, limit = params.get("symbol"), params.get("limit")
        if (symbol is not None and not isinstance(symbol, str)) or not _is_integer(limit):
            raise _RequestError("Invalid request body")
        symbol = _symbol(symbol)
        limit = DEFAULT_LIMIT if limit is None else int(limit)
        if limit > MAX_LIMIT:
            raise _RequestError(f"Limit cannot exceed {MAX_LIMIT}")
        if limit < 1:
            raise _RequestError("Limit must be at least 1")
        with self._lock:
            if self._failures:
                status, message = self._failures.popleft()
                raise _RequestError(message, status)
            newest = (entry for entry in reversed(self._tape) if entry.trade["symbol"] == symbol)
            items = [Raw(entry.item) for entry in itertools.islice(newest, limit)]
        return {"response": {"trades": items}, "status": "success"}

    def _subscribe(self, session: _Session, method: str, params: Any) -> dict[str, str]:
        """Add or remove a trade subscription and return the ack's ``result``."""
        if not isinstance(params, dict) or not isinstance(params.get("type"), str):
            raise _RequestError("Invalid request body")
        kind, symbol = params["type"], params.get("symbol")
        if kind not in TRADE_TYPES:
            raise _RequestError("Unsupported subscription type")
        if symbol is not None and not isinstance(symbol, str):
            raise _RequestError("Invalid request body")
        symbol = ALL if symbol is None or symbol.upper() == ALL else _symbol(symbol)
        key = (kind, symbol)
        with self._cond:
            if method == "subscribe":
                session.subscriptions.add(key)
            elif key in session.subscriptions:
                session.subscriptions.remove(key)
            else:
                raise _RequestError("Not subscribed")
            self._cond.notify_all()
        return {"type": kind, "symbol": symbol}

    # -- the tape ---------------------------------------------------------------------
    # Every draw comes from self._rng in a fixed order, so the content depends
    # only on the seed; timestamps are the one wall-clock input.

    def _next_entry(self, timestamp: int, skip: bool = False) -> _Entry:
        with localcontext(_CONTEXT):
            return self._draw(timestamp, skip)

    def _draw(self, timestamp: int, skip: bool) -> _Entry:
        rng = self._rng
        market = rng.choices(_MARKETS, weights=_WEIGHTS)[0]
        ticks = self._ticks[market.symbol] + rng.randint(-market.walk, market.walk)
        self._ticks[market.symbol] = ticks = min(max(ticks, market.start_ticks // 2), market.start_ticks * 3 // 2)
        quantity = rng.randint(1, market.max_steps) * market.step
        side = rng.choice(("buy", "sell"))
        self._meseq[market.symbol] += 2 if skip else 1  # skip: decided outside self._rng
        trade_id, self._next_trade_id = self._next_trade_id, self._next_trade_id + 1
        # Wall clocks can step back; the tape's timestamps never do.
        self._last_timestamp = max(timestamp, self._last_timestamp)
        trade: dict[str, Any] = {
            "tradeId": str(trade_id),
            "symbol": market.symbol,
            "side": side,
            "price": format(ticks * market.tick, "f"),
            "quantity": format(quantity, "f"),
            "timestamp": self._last_timestamp,
            "isMaker": False,  # the public record is the taker's
        }
        data = dict(trade)
        if self.push_time == "tsMs":
            del data["timestamp"], data["isMaker"]
            data.update(tsMs=trade["timestamp"], isTaker=not trade["isMaker"])
        else:
            data["timestamp"] = rfc3339(trade["timestamp"])
        return _Entry(trade, self._meseq[market.symbol], dumps(trade), dumps(data))


def rfc3339(timestamp_ms: int) -> str:
    """Format Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. ``2026-01-01T00:00:02.010Z``."""
    seconds, millis = divmod(timestamp_ms, 1000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def _symbol(value: str | None) -> str:
    """The upper-cased listed market ``value`` names.

    :raises _RequestError: ``"Invalid symbol"`` when missing, empty, too long or not listed.
    """
    symbol = (value or "").upper()
    if len(symbol) > MAX_SYMBOL_LENGTH or symbol not in SYMBOLS:
        raise _RequestError("Invalid symbol")
    return symbol


def _is_integer(value: Any) -> bool:
    """Whether ``value`` is absent or a JSON integer (``10.0`` counts, ``true`` does not)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return True
    return isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
