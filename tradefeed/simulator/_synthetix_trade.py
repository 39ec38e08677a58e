"""Synthetix's private Trade WebSocket (``/v1/ws/trade``), as ``docs/venues/synthetix-private.md``
specifies it: EIP-712 ``auth``, ``subAccountUpdates`` pushes and signed ``getTrades``.

One simulated wallet owns one subaccount (:data:`SIM_PRIVATE_KEY`, :data:`SIM_SUBACCOUNT`;
a well-known test key, never a real one).  Its fills come from the public tape: every
``fill_every``-th public trade also fills one of its orders, and :meth:`TradeSocket.fill`
makes fills on demand.  Each fill is kept in the subaccount's history (served by
``getTrades``) and pushed to subscribed sessions as a ``trade`` event, between an
``orderFilled`` and a ``marginUpdate`` event that the client must ignore.

How the "Unknown / assumed" table (section 6) is served: 2, 3 and 20: the reply bodies
shown there (``error.code`` the integer status); 4: after a failed auth the socket stays
open until the auth window (``auth_timeout``, 30 s) ends, then close 1008
``authentication timeout``; 5: strict about the domain, the types, ``primaryType`` and
the action; 6: subscribe accepts ``sub_account_id``, ``subAccountId`` and
``subaccountId`` and both ``type`` spellings; 7: the acks shown; 8 and 12: another
subaccount is 403 ``FORBIDDEN``; 9: pushes are ``{"method": "subAccountEvent", "data"}``;
10: trade events carry ``tradeId``, ``fee``, ``feeRate``, ``realizedPnl``; 11:
``getTrades`` newest first; 13: ``expiresAfter`` in ms, below 10^12 taken as seconds;
14: 30-day range and 30 days back; 15: fees positive, USDT; 16: ``direction`` Title
Case; 17: each push carries ``seq`` (+1 per subaccount event) and ``prevSeq``; 18:
liquidation fills are ``trade`` events with ``triggeredByLiquidation`` plus a
``liquidation`` event; 19: idle timeout as the info socket's.

eth-account (in the ``sim`` extra) is imported when the first trade-socket request
needs it, so the public socket runs without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode

from ._base import Outbox
from ._json import dumps

__all__ = ["TRADE_PATH", "SIM_PRIVATE_KEY", "SIM_SUBACCOUNT", "TradeSocket"]

logger = logging.getLogger(__name__)

TRADE_PATH = "/v1/ws/trade"
#: the simulated wallet: account 1 of the public Hardhat/Anvil test mnemonic
SIM_PRIVATE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
SIM_SUBACCOUNT = "1867542890123456789"
AUTH_ACTION = "websocket_auth"
_DOMAIN = {
    "name": "Synthetix",
    "version": "1",
    "chainId": 1,
    "verifyingContract": "0x0000000000000000000000000000000000000000",
}
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_AUTH_TYPE = [
    {"name": "subAccountId", "type": "uint256"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "action", "type": "string"},
]
_ACTION_TYPE = [
    {"name": "subAccountId", "type": "uint256"},
    {"name": "action", "type": "string"},
    {"name": "nonce", "type": "uint256"},
    {"name": "expiresAfter", "type": "uint256"},
]
SKEW_MS = 60_000
MAX_RANGE_MS = 2_592_000_000  # 30 days
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
SUBSCRIBE_TYPES = frozenset({"subAccountUpdates", "subAccountUpdate"})
ID_KEYS = ("sub_account_id", "subAccountId", "subaccountId")
FEE_RATES = {True: Decimal("0.0002"), False: Decimal("0.0007")}  # maker, taker


class _Refused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class _TradeSession:
    outbox: Outbox
    opened: float
    last_seen: float
    address: str | None = None
    subscribed: bool = False


def _uint(value: Any) -> int:
    """A typed-data uint from an int or a (hex or decimal) string."""
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    raise ValueError("not a number")


class TradeSocket:
    """The subaccount, its fill history and the sessions of ``/v1/ws/trade``.

    :param seed: seeds the fills' own sides, roles and order ids.
    :param fill_every: every this many public trades one is also a fill of the
        subaccount (0: only :meth:`fill` makes fills).
    :param history_limit: fills kept for ``getTrades`` (None: all); a small limit
        makes a long outage lose fills, which the client must report as a Gap.
    :param auth_timeout: seconds a connection has to authenticate (close 1008 after).
    :param idle_timeout: seconds without a client frame before close 1000; None never.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        fill_every: int = 4,
        history_limit: int | None = None,
        auth_timeout: float = 30.0,
        idle_timeout: float | None = 60.0,
        private_key: str = SIM_PRIVATE_KEY,
        subaccount_id: str = SIM_SUBACCOUNT,
    ) -> None:
        if fill_every < 0 or (history_limit is not None and history_limit < 1) or auth_timeout <= 0:
            raise ValueError("fill_every must be >= 0, history_limit >= 1 or None, auth_timeout > 0")
        self.fill_every = fill_every
        self.history_limit = history_limit
        self.auth_timeout = auth_timeout
        self.idle_timeout = idle_timeout
        #: the wallet key and subaccount a client needs (``Simulator.credentials``)
        self.private_key = private_key
        self.subaccount_id = subaccount_id
        self._owner: str | None = None  # the key's address, once eth-account is loaded
        self._rng = random.Random(seed * 7919 + 1)
        self._lock = threading.Lock()  # guards history, counters and the fault queues
        self._cond = threading.Condition(self._lock)
        self._history: deque[dict[str, Any]] = deque(maxlen=history_limit)
        self._seen = 0  # public trades seen (fill_every)
        self._seq = 0
        self._order_id = 1948058938469519355
        self._trade_id = 4_000_000_000  # above the public tape's ids: fresh fills never reuse one
        self._used: dict[str, set[int]] = {}  # address -> auth timestamps used
        self._auth_failures: deque[str] = deque()
        self._get_trades_failures: deque[tuple[int, str]] = deque()
        self._sessions: dict[Outbox, _TradeSession] = {}
        #: auth requests answered (ok or refused), for tests
        self.auth_attempts = 0
        #: getTrades requests answered, for tests
        self.get_trades_requests: list[dict[str, Any]] = []

    # -- helpers for tests (any thread) ----------------------------------------------

    @property
    def credentials(self) -> tuple[str, str]:
        """``(private_key, subaccount_id)`` of the simulated wallet."""
        return self.private_key, self.subaccount_id

    def fills(self) -> list[dict[str, Any]]:
        """The subaccount's fill history still kept, oldest first (getTrades items)."""
        with self._lock:
            return [dict(fill) for fill in self._history]

    def refuse_next_auth(self, message: str = "Invalid signature", count: int = 1) -> None:
        """Answer the next ``count`` auth requests with 401 ``message``, whatever they carry."""
        with self._lock:
            self._auth_failures.extend([message] * count)

    def fail_next_get_trades(self, status: int = 500, message: str = "Failed to retrieve trade history", count: int = 1) -> None:
        """Answer the next ``count`` getTrades requests with an error reply."""
        with self._lock:
            self._get_trades_failures.extend([(status, message)] * count)

    def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``n`` authenticated sessions are subscribed to the subaccount."""
        with self._cond:
            return self._cond.wait_for(lambda: sum(s.subscribed for s in self._sessions.values()) >= n, timeout)

    # -- fills (loop thread, or any thread while the simulator is stopped) -----------

    def on_public_trades(self, trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every ``fill_every``-th public trade also fills the subaccount."""
        if not self.fill_every:
            return []
        made = []
        for trade in trades:
            self._seen += 1
            if self._seen % self.fill_every == 0:
                made.append(
                    self._fill(trade["symbol"], Decimal(trade["price"]), Decimal(trade["quantity"]), trade["timestamp"], trade["tradeId"])
                )
        self._push(made)
        return made

    def fill(self, count: int, symbol: str = "BTC-USDT", *, liquidation: bool = False) -> list[dict[str, Any]]:
        """Make ``count`` fills of the subaccount now (history and pushes); loop thread."""
        now = time.time_ns() // 1_000_000
        made = []
        for _ in range(count):
            price = Decimal(90_000 + self._rng.randint(0, 400)) + Decimal(self._rng.randint(0, 9)) / 10
            quantity = Decimal(self._rng.randint(1, 500)) / 1000
            made.append(self._fill(symbol, price, quantity, now, liquidation=liquidation))
        self._push(made)
        return made

    def _fill(
        self, symbol: str, price: Decimal, quantity: Decimal, timestamp: int, trade_id: str | None = None, *, liquidation: bool = False
    ) -> dict[str, Any]:
        """One fill of the subaccount: the public trade's id when it comes from the tape
        (ids are global), else a fresh one above every id used so far."""
        rng = self._rng
        maker = False if liquidation else rng.random() < 0.4
        opening = rng.random() < 0.5
        side = rng.choice(("buy", "sell"))
        direction = ("Open " if opening else "Close ") + ("Long" if (side == "buy") == opening else "Short")
        fee_rate = FEE_RATES[maker]
        fee = (price * quantity * fee_rate).quantize(Decimal("0.000001"))
        with self._lock:
            self._order_id += rng.randint(1, 5)
            if trade_id is None:
                self._trade_id += rng.randint(1, 3)  # ids are global: the gaps are other accounts' fills
                trade_id = str(self._trade_id)
            else:
                self._trade_id = max(self._trade_id, int(trade_id))
            fill: dict[str, Any] = {
                "tradeId": trade_id,
                "order": {"venueId": str(self._order_id)},
                "orderId": str(self._order_id),
                "symbol": symbol,
                "orderType": "limitGtc" if maker else "market",
                "side": side,
                "price": format(price, "f"),
                "quantity": format(quantity, "f"),
                "realizedPnl": "0" if opening else format((Decimal(rng.randint(-5000, 5000)) / 100), "f"),
                "fee": format(fee, "f"),
                "feeRate": format(fee_rate, "f"),
                "timestamp": max(timestamp, self._history[-1]["timestamp"] if self._history else 0),
                "maker": maker,
                "reduceOnly": not opening,
                "markPrice": format(price, "f"),
                "entryPrice": format(price, "f"),
                "triggeredByLiquidation": liquidation,
                "direction": direction,
                "postOnly": maker,
            }
            if rng.random() < 0.3:
                fill["order"]["clientId"] = "0x%032x" % rng.getrandbits(128)
            self._history.append(fill)
        return fill

    def _push(self, fills: list[dict[str, Any]]) -> None:
        for fill in fills:
            events = [
                {"eventType": "orderFilled", "orderId": fill["orderId"], "symbol": fill["symbol"]},
                {**fill, "eventType": "trade", "subAccountId": self.subaccount_id},
                {"eventType": "marginUpdate", "subAccountId": self.subaccount_id, "availableMargin": "1000.00"},
            ]
            if fill["triggeredByLiquidation"]:
                events.append({"eventType": "liquidation", "subAccountId": self.subaccount_id, "symbol": fill["symbol"]})
            for event in events:
                with self._lock:
                    self._seq += 1
                    frame = dumps({"method": "subAccountEvent", "data": event, "seq": self._seq, "prevSeq": self._seq - 1})
                for session in list(self._sessions.values()):
                    if session.subscribed:
                        session.outbox.push(frame)

    # -- the connection (loop thread) ------------------------------------------------

    async def handler(self, connection: ServerConnection, outboxes: set[Outbox]) -> None:
        now = asyncio.get_running_loop().time()
        session = _TradeSession(Outbox(connection), opened=now, last_seen=now)
        with self._cond:
            self._sessions[session.outbox] = session
        outboxes.add(session.outbox)
        watchdog = asyncio.create_task(self._watch(connection, session))

        async def on_message(message: str | bytes) -> None:
            try:
                self._on_message(session, message)
            except Exception:
                logger.exception("synthetix: failed on a trade-socket frame from %s", connection.remote_address)
                await connection.close(CloseCode.INTERNAL_ERROR, "internal error")

        try:
            await session.outbox.pump(on_message)
        finally:
            watchdog.cancel()
            outboxes.discard(session.outbox)
            with self._cond:
                del self._sessions[session.outbox]
                self._cond.notify_all()

    async def _watch(self, connection: ServerConnection, session: _TradeSession) -> None:
        """Close 1008 when the auth window ends unauthenticated, 1000 when idle."""
        loop = asyncio.get_running_loop()
        while True:
            auth_at = math.inf if session.address else session.opened + self.auth_timeout
            idle_at = math.inf if self.idle_timeout is None else session.last_seen + self.idle_timeout
            now = loop.time()
            if now >= auth_at:
                code, reason = CloseCode.POLICY_VIOLATION, "authentication timeout"
                break
            if now >= idle_at:
                code, reason = CloseCode.NORMAL_CLOSURE, "idle timeout"
                break
            await asyncio.sleep(min(auth_at, idle_at) - now)
        logger.info("synthetix: closing trade socket %s: %s", connection.remote_address, reason)
        await connection.close(code, reason)

    def _on_message(self, session: _TradeSession, message: str | bytes) -> None:
        session.last_seen = asyncio.get_running_loop().time()
        try:
            request = json.loads(message, parse_float=Decimal)
        except ValueError:
            logger.info("synthetix: ignoring a trade-socket frame that is not JSON: %.80r", message)
            return
        if not isinstance(request, dict):
            return
        if request.get("method") is None and request.get("type") == "ping":
            session.outbox.pong(dumps({"type": "pong", "timestamp": request.get("timestamp", _now_ms())}))
            return
        request_id, method, params = request.get("id"), request.get("method"), request.get("params")
        if request_id is None:
            logger.info("synthetix: ignoring a trade-socket frame without id: %.80r", message)
            return
        reply: dict[str, Any] = {"id": request_id, "requestId": request_id}
        try:
            if not isinstance(params, dict):
                raise _Refused("Invalid request format")
            if method == "ping":
                session.outbox.pong(dumps({**reply, "status": 200, "result": "pong"}))
                return
            if method == "auth":
                result: Any = self._auth(session, params)
            elif session.address is None:
                raise _Refused("not authenticated", HTTPStatus.UNAUTHORIZED)
            elif method in ("subscribe", "unsubscribe"):
                result = self._subscribe(session, method, params)
            elif method == "post" and params.get("action") == "getTrades":
                result = self._get_trades(session, params)
            else:
                raise _Refused("Unsupported method")
            reply.update(status=200, result=result)
        except _Refused as err:
            reply.update(status=err.status, result=None, error={"code": err.status, "message": str(err)})
        session.outbox.put(dumps(reply))

    def _recover(self, typed: Any, signature: bytes) -> str:
        from eth_account import Account
        from eth_account.messages import encode_typed_data

        try:
            return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
        except Exception as err:  # noqa: BLE001 - any failure to recover is a bad signature
            raise _Refused("Invalid signature", HTTPStatus.UNAUTHORIZED) from err

    def _owner_address(self) -> str:
        if self._owner is None:
            from eth_account import Account

            self._owner = str(Account.from_key(self.private_key).address)
        return self._owner

    def _auth(self, session: _TradeSession, params: dict[str, Any]) -> dict[str, Any]:
        self.auth_attempts += 1
        with self._lock:
            refused = self._auth_failures.popleft() if self._auth_failures else None
        if refused is not None:
            raise _Refused(refused, HTTPStatus.UNAUTHORIZED)
        try:
            typed = json.loads(params["message"])
            message = typed["message"]
            subaccount, timestamp = _uint(message["subAccountId"]), _uint(message["timestamp"])
        except (KeyError, TypeError, ValueError):
            raise _Refused("failed to parse typed data") from None
        now = _now_ms()
        stamp_ms = timestamp if timestamp > 2**31 - 1 else timestamp * 1000
        if stamp_ms < now - SKEW_MS:
            raise _Refused("timestamp validation failed: request too old", HTTPStatus.UNAUTHORIZED)
        if stamp_ms > now + SKEW_MS:
            raise _Refused("timestamp validation failed: timestamp from future", HTTPStatus.UNAUTHORIZED)
        strict = (
            typed.get("domain") == _DOMAIN
            and typed.get("primaryType") == "AuthMessage"
            and typed.get("types") == {"EIP712Domain": _DOMAIN_TYPE, "AuthMessage": _AUTH_TYPE}
            and message.get("action") == AUTH_ACTION
        )
        signature = params.get("signature")
        if not strict or not isinstance(signature, str) or len(signature) != 132 or not signature.startswith("0x"):
            raise _Refused("Invalid signature", HTTPStatus.UNAUTHORIZED)
        try:
            raw = bytes.fromhex(signature[2:])
        except ValueError:
            raise _Refused("Invalid signature", HTTPStatus.UNAUTHORIZED) from None
        if raw[64] not in (0, 1, 27, 28):
            raise _Refused("Invalid signature", HTTPStatus.UNAUTHORIZED)
        address = self._recover(typed, raw)
        with self._lock:
            used = self._used.setdefault(address, set())
            if timestamp in used:
                raise _Refused("timestamp already used", HTTPStatus.UNAUTHORIZED)
            used.add(timestamp)
        if address != self._owner_address() or str(subaccount) != self.subaccount_id:
            raise _Refused("address does not own the specified account", HTTPStatus.UNAUTHORIZED)
        session.address = address
        return {
            "status": "ok",
            "response": {"authenticated": True, "address": address, "subAccountId": self.subaccount_id},
            "timestamp": _now_ms(),
        }

    def _subscribe(self, session: _TradeSession, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("type") not in SUBSCRIBE_TYPES:
            raise _Refused("Unsupported subscription type")
        given = next((params[key] for key in ID_KEYS if key in params), None)
        if given is None or str(given) != self.subaccount_id:
            raise _Refused("FORBIDDEN", HTTPStatus.FORBIDDEN)
        with self._cond:
            session.subscribed = method == "subscribe"
            self._cond.notify_all()
        status = "subscribed" if method == "subscribe" else "unsubscribed"
        return {"type": "subAccountUpdates", "status": status, "subAccountId": self.subaccount_id}

    def _get_trades(self, session: _TradeSession, params: dict[str, Any]) -> dict[str, Any]:
        given = params.get("subaccountId", params.get("subAccountId"))
        if given is None or str(given) != self.subaccount_id:
            raise _Refused("FORBIDDEN", HTTPStatus.FORBIDDEN)
        try:
            nonce, expires = _uint(params["nonce"]), _uint(params["expiresAfter"])
            signature = params["signature"]
            raw = bytes.fromhex(signature["r"][2:].rjust(64, "0") + signature["s"][2:].rjust(64, "0")) + bytes([int(signature["v"])])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _Refused("Invalid request format") from None
        expires_ms = expires if expires >= 10**12 else expires * 1000
        if expires_ms < _now_ms():
            raise _Refused("request expired", HTTPStatus.UNAUTHORIZED)
        typed = {
            "types": {"EIP712Domain": _DOMAIN_TYPE, "SubAccountAction": _ACTION_TYPE},
            "primaryType": "SubAccountAction",
            "domain": _DOMAIN,
            "message": {"subAccountId": int(self.subaccount_id), "action": "getTrades", "nonce": nonce, "expiresAfter": expires},
        }
        if self._recover(typed, raw) != session.address:
            raise _Refused("Invalid signature", HTTPStatus.UNAUTHORIZED)
        limit, offset = params.get("limit"), params.get("offset", 0)
        start, end, symbol = params.get("startTime"), params.get("endTime"), params.get("symbol")
        for value in (limit, offset, start, end):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise _Refused("Invalid request format")
        limit = limit or DEFAULT_LIMIT
        if limit > MAX_LIMIT:
            raise _Refused("limit cannot exceed 1000")
        if offset < 0:
            raise _Refused("offset must be non-negative")
        now = _now_ms()
        end = now if end is None else min(end, now)
        if start is not None and start > end:
            raise _Refused("trades startTime must be before endTime")
        if start is not None and (end - start > MAX_RANGE_MS or start < now - MAX_RANGE_MS):
            raise _Refused("trades time range cannot exceed 2592000 seconds")
        with self._lock:
            self.get_trades_requests.append({k: v for k, v in params.items() if k != "signature"})
            if self._get_trades_failures:
                status, message = self._get_trades_failures.popleft()
                raise _Refused(message, status)
            rows = [
                fill
                for fill in reversed(self._history)  # newest first
                if fill["timestamp"] <= end
                and (start is None or fill["timestamp"] >= start)
                and (symbol is None or fill["symbol"] == str(symbol).upper())
            ]
        page = rows[offset : offset + limit]
        return {
            "status": "ok",
            "timestamp": now,
            "response": {"hasMore": offset + len(page) < len(rows), "total": len(rows), "trades": page},
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
