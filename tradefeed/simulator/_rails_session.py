"""One Rails WebSocket connection: its subscriptions, and the requests it answers.

This module owns the request/reply half of ``docs/venues/rails.md``:
``subscribe`` / ``unsubscribe`` (``subscribed`` / ``unsubscribed`` replies),
``ping`` / ``pong``, the public-trade snapshot request, and the error frames
for bad requests, plus the message names (new or legacy) and the wire form of
records. The handshake, the tape and broadcasting are
:mod:`tradefeed.simulator.rails`' business; a :class:`Session` only reads
the recent records it is handed and asks its venue to close it.

Loop thread only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from ._base import Outbox
from ._json import Raw, decimal_literal, dumps
from ._rails_auth import Grant
from ._rails_tape import MARKETS

__all__ = ["ALL", "LEGACY_NAMES", "NAMES", "READ_ONLY_FORBIDDEN", "SUBSCRIPTIONS", "Names", "Session"]

ALL = "ALL"
#: valid subscription names, in the order ``activeSubscriptions`` lists them
SUBSCRIPTIONS: tuple[str, ...] = ("orders", "trades", "publicTrades", "publicOrderBook")
READ_ONLY_FORBIDDEN = frozenset({"trades"})  # private fills need a key that may trade
BAD_REQUEST = 400


class Names(NamedTuple):
    """The message names of the public trade stream (spec row 10)."""

    delta: str
    snapshot: str
    #: request names answered with a snapshot
    snapshot_requests: frozenset[str]


NAMES = Names("publicCompletedOrdersDelta", "publicCompletedOrders", frozenset({"emitPublicCompletedOrders"}))
LEGACY_NAMES = Names(
    "completedOrdersDelta", "completedOrders", frozenset({"emitCompletedOrders", "emitPublicCompletedOrders"})
)


@dataclass(eq=False)
class Session:
    """The state of one open connection and its answers to the client's requests.

    :param outbox: where replies go, in order with the venue's broadcasts.
    :param market: the connection's ``market`` (a market name or :data:`ALL`).
    :param subscriptions: the active subscription names; updated by requests.
    :param grant: what the connection's token allows.
    :param names: the venue's message names.
    :param recent: returns the encoded records a snapshot of a market holds, oldest first.
    :param close: closes the connection with 1008 and the given reason, without waiting.
    """

    outbox: Outbox
    market: str
    subscriptions: set[str]
    grant: Grant
    names: Names
    recent: Callable[[str], list[str]]
    close: Callable[[str], None]
    #: whatever must be cancelled when the connection ends (strict mode's expiry timer)
    timer: asyncio.TimerHandle | None = field(default=None)

    def wants_public(self, market: str) -> bool:
        """Whether public deltas of ``market`` go to this connection."""
        return "publicTrades" in self.subscriptions and self.market in (ALL, market)

    async def on_message(self, message: str | bytes) -> None:
        """Answer one client frame (an async callback for :meth:`Outbox.pump`)."""
        try:
            request = json.loads(message)
        except ValueError:  # also bytes that are not UTF-8
            self._error({}, "malformed JSON")
            return
        content = request.get("content", {}) if isinstance(request, dict) else None
        if not isinstance(content, dict) or not isinstance(request.get("message"), str):
            self._error({}, 'malformed request: expected {"message": <str>, "content": {...}}')
            return
        kind = request["message"]
        request_id = {"clientRequestId": content["clientRequestId"]} if "clientRequestId" in content else {}
        if kind in ("subscribe", "unsubscribe"):
            self._subscribe(content, request_id, kind == "subscribe")
        elif kind == "ping":
            self.outbox.pong(dumps({"resultType": "pong", "data": {**request_id, "statusCode": 200}}))
        elif kind in self.names.snapshot_requests:
            self._snapshot(content, request_id)
        else:
            self._error(request_id, f"unknown message: {kind}")

    def _subscribe(self, content: dict[str, Any], request_id: dict[str, Any], subscribe: bool) -> None:
        names = content.get("subscriptions")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            self._error(request_id, "content.subscriptions must be a list of subscription names")
            return
        unknown = [name for name in names if name not in SUBSCRIPTIONS]
        if unknown:
            self._error(request_id, f"unknown subscription: {unknown[0]}")
            return
        if subscribe and self.grant.read_only and (forbidden := READ_ONLY_FORBIDDEN.intersection(names)):
            self.close(forbidden_reason(forbidden))
            return
        if subscribe:
            self.subscriptions.update(names)
        else:
            self.subscriptions.difference_update(names)
        data = {
            "activeSubscriptions": [name for name in SUBSCRIPTIONS if name in self.subscriptions],
            **request_id,
            "requestedSubscriptions" if subscribe else "requestedUnsubscriptions": names,
        }
        self.outbox.put(dumps({"resultType": "subscribed" if subscribe else "unsubscribed", "data": data}))

    def _snapshot(self, content: dict[str, Any], request_id: dict[str, Any]) -> None:
        market = content.get("market")
        if self.market == ALL:
            if market is None:
                self._error(request_id, "content.market is required on a market=ALL connection")
                return
            if market not in MARKETS:
                self._error(request_id, f"unknown market: {market}")
                return
        elif market is not None and market != self.market:
            self._error(request_id, f"market {market} is not this connection's market")
            return
        market = market or self.market
        data = {**request_id, **orders_data([Raw(text) for text in self.recent(market)])}
        self.outbox.put(dumps({"resultType": self.names.snapshot, "market": market, "data": data}))

    def _error(self, request_id: dict[str, Any], message: str) -> None:
        data = {**request_id, "statusCode": BAD_REQUEST, "message": message}
        self.outbox.put(dumps({"resultType": "error", "data": data}))


def orders_data(orders: list[Raw]) -> dict[str, Any]:
    """The ``data`` of a public delta or snapshot (without ``clientRequestId``)."""
    return {"orders": orders, "statusCode": 200}


def wire(record: dict[str, Any], drop_market: bool = False) -> dict[str, Any]:
    """A tape record as a wire item: Decimals as exact decimal strings."""
    return {
        key: decimal_literal(value) if isinstance(value, Decimal) else value
        for key, value in record.items()
        if not (drop_market and key == "market")
    }


def forbidden_reason(names: frozenset[str] | set[str]) -> str:
    """The 1008 close reason for subscriptions a read-only key may not have."""
    return "forbidden subscription: " + ", ".join(sorted(names))
