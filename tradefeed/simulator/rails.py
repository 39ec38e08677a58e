"""Rails' WebSocket API v2 and its token endpoint, as specified in ``docs/venues/rails.md``.

This module owns what is Rails-specific on the WebSocket side: the handshake
(JWT in ``Sec-WebSocket-Protocol``, ``market`` and ``subscriptions`` query),
the request/reply messages, the public and private trade frames, and the tape
kept for snapshots. The token endpoint and JWT checks live in
:mod:`tradefeed.simulator._rails_auth`, the drawing of matches in
:mod:`tradefeed.simulator._rails_tape`; loop, servers and the HTTP side-server
are generic (:mod:`tradefeed.simulator.server`, :mod:`tradefeed.simulator._http`).

How each row of the spec's "Unknown / assumed" table is served (the table
numbers 12 and 13 twice; both pairs are listed):

1. Sandbox URL: none; the venue is ``ws://host:port/?market=...`` and the
   token URL ``http://host:<http port>/api/v1/token`` (``Simulator.auth_url``).
2. Token request: credentials only in ``X-Api-Key`` / ``X-Api-Secret``; a body
   is ignored. 401 for a bad pair, 429 + ``Retry-After`` past ``token_rate_limit``
   requests per key per minute, 200 ``{"access_token", "token_type": "Bearer",
   "expires_in"}`` with an HS256 JWT (``accountType``, ``iss``, ``sub``, ``aud``,
   ``exp``, ``iat``; ``exp - iat == expires_in == token_lifetime``).
3. Every connection needs a token, public-only ones too, unless
   ``public_without_token=True`` (resolved 2026-12-06: a v1 client streamed public
   data key-less): then a handshake without a token whose subscriptions are all
   public (``publicTrades``, ``publicOrderBook``) is accepted, and one asking for a
   private stream (``trades``, ``orders``, the default) gets 401.  A key-less
   connection may not subscribe to a private stream later (1008, as for a read-only
   key) and is not closed by :meth:`RailsVenue.expire_tokens`.
4. Handshake rejections: HTTP 401 for a missing, malformed, badly signed,
   expired or revoked token (checked first); HTTP 400 for a missing or unknown
   ``market`` and for an unknown name in ``subscriptions``.
5. Token expiry mid-session: the socket stays open by default; with
   ``strict=True`` it is closed with 1008 ``"token expired"`` at the token's ``exp``.
6. The offered ``authorization#<token>`` subprotocol is echoed.
7. ``emitPublicCompletedOrders``: ``content.clientRequestId`` optional,
   ``content.market`` required with ``market=ALL`` (else it must be absent or
   equal to the connection's market).
8. Snapshot reply: echoes ``clientRequestId`` when sent; the up to
   ``snapshot_limit`` (50) most recent public records of the market, oldest first.
9. ``market`` is in the envelope of public deltas only on ``market=ALL``
   connections (resolved 2026-12-06: "present when connected with market=ALL");
   ``delta_market="always"`` puts it on every delta.  Snapshot replies always carry it.
10. Names: ``publicCompletedOrdersDelta`` / ``publicCompletedOrders`` /
    ``emitPublicCompletedOrders``; with ``legacy_names=True`` the frames are
    ``completedOrdersDelta`` (with ``data.orders``) / ``completedOrders`` and
    ``emitCompletedOrders`` is accepted as well as the new request name.
11. One taker record per match by default; with ``maker_records=True`` one
    match in six shows only a maker record and one in six a maker record then
    the taker record (same ``matchId``, same frame).
12. (first) With ``market=ALL`` a snapshot request without ``content.market``
    gets an error frame (400); deltas come for every market, one frame per market.
13. (first) Expiry closes (strict mode, :meth:`RailsVenue.expire_tokens`) use
    1008 with reason exactly ``"token expired"``; the only other 1008 is
    ``"forbidden subscription: trades"`` for a read-only key.
12. (second) Error frames: ``{"resultType": "error", "data": {"clientRequestId",
    "statusCode": 400, "message"}}`` for an unknown message, an unknown
    subscription, a missing market on ``ALL``, a malformed request; malformed
    JSON (and any request without one) omits ``clientRequestId``.
13. (second) Close codes: 1001 when the simulator stops, 1008 as above, 1011
    (or any) through ``Simulator.drop_connections``; the venue itself never sends 1000.
14. Ping: ``ping`` is answered with ``pong`` (``statusCode`` 200) at any time,
    without subscriptions; nothing is required, a quiet client is never dropped.
15. Fees of private fills are in the market's quote currency (USDT); no field says so.
16. No snapshot of private fills.
17. No WebSocket rate limit: the Simulator's connection limit (429) is off for
    Rails (:attr:`RailsVenue.connect_limit`), and messages are not limited.
18. No sequence numbers; records are in ``updatedAt`` order within a frame.

``orders`` and ``publicOrderBook`` are valid subscriptions that carry nothing:
only trades are simulated. A read-only key may not subscribe to ``trades``.

Trade faults (:meth:`~tradefeed.simulator.Venue.fault`): ``duplicate`` and
``reorder``; Rails has no sequence numbers (row 18), so no ``skip_sequence``.
The unit faulted is a match (its public records and, if any, the account's
fill) and a batch is the matches of one :meth:`RailsVenue.generate`:

- ``duplicate``: the match's records (and fill) are sent again at the front
  of the next batch's frames (a market's delta holds only the duplicates when
  the batch has no new record of that market).
- ``reorder``: the match trades places with the one before it in its batch,
  within the delta (and fills) frames; ``updatedAt`` is the same for a whole
  batch, so only ``matchId`` order shows it.

Stall (``Simulator.stall``) drops the deltas and fill frames only: replies,
snapshot replies included, still flow. Muted pings (``Simulator.mute_pings``)
leave the ``ping`` message unanswered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from ._base import Outbox, Venue, call_on_loop
from ._http import HttpRequest, HttpResponse
from ._json import Raw, dumps
from ._rails_auth import TOKEN_EXPIRED, TOKEN_PATH, AuthError, Grant, TokenIssuer
from ._rails_session import (
    ALL,
    LEGACY_NAMES,
    NAMES,
    READ_ONLY_FORBIDDEN,
    SUBSCRIPTIONS,
    Session,
    forbidden_reason,
    orders_data,
    wire,
)
from ._rails_tape import MARKETS, Tape

__all__ = ["ALL", "MARKETS", "SUBSCRIPTIONS", "TOKEN_EXPIRED", "TOKEN_PATH", "RailsVenue"]

logger = logging.getLogger(__name__)

DEFAULT_SUBSCRIPTIONS = frozenset({"orders"})
#: the streams a key-less connection may ask for (``public_without_token=True``)
PUBLIC_SUBSCRIPTIONS = frozenset({"publicTrades", "publicOrderBook"})
#: the grant of a key-less connection: read-only (no private stream), never expiring
KEYLESS = Grant("", True, 2**62, -1)
PROTOCOL_PREFIX = "authorization#"
TAPE_LIMIT = 200_000  # public records and private fills kept in memory, each
FILLS = "completedOrdersDelta"  # resultType of private fills, in both naming modes


class _Entry(NamedTuple):
    record: dict[str, Any]  # as on the tape: Decimals, and "market" for public records
    text: str  # the wire item, encoded once and spliced into every frame that carries it


@dataclass(frozen=True)
class _Handshake:
    """What process_request validated, for the handler."""

    market: str
    subscriptions: frozenset[str]
    grant: Grant


class RailsVenue(Venue):
    """The simulated Rails venue: WebSocket v2 at ``/`` plus its token endpoint over HTTP.

    ::

        with Simulator(seed=1, rate=0, options={"rails": {"token_lifetime": 5}}) as sim:
            key, secret = sim.credentials("rails")
            token = requests.post(sim.auth_url("rails"), headers={"X-Api-Key": key,
                                  "X-Api-Secret": secret}).json()["access_token"]
            ws = websocket.create_connection(sim.url("rails") + "/?market=BTC-USDT&subscriptions=publicTrades",
                                             subprotocols=["authorization#" + token])
            rails = sim.venue("rails")
            rails.emit(3)  # publicCompletedOrdersDelta frames; rails.trades(), rails.fills()

    Records from :meth:`trades` / :meth:`emit` are dicts with ``market`` plus
    the wire item's keys; fills from :meth:`fills` have the private item's
    keys. Money values are :class:`~decimal.Decimal` (decimal strings on the wire).

    :param token_lifetime: seconds a token is valid (``expires_in``), default 1800.
    :param token_rate_limit: token requests per API key per minute before 429, default 20.
    :param strict: close a connection with 1008 ``"token expired"`` at its token's ``exp``.
    :param maker_records: show maker records for some matches (spec row 11).
    :param legacy_names: use the legacy message names (spec row 10).
    :param own_fill_share: probability that a match is also the account's own fill.
    :param snapshot_limit: most records in a snapshot reply (spec row 8: 50).
    The base parameters are :class:`~tradefeed.simulator.Venue`'s;
    ``snapshot_size`` does not apply (Rails sends no snapshot on connect).
    """

    name = "rails"
    paths = frozenset({"/"})
    #: the Simulator's connection-rate limit does not apply (spec row 17)
    connect_limit = False
    fault_knobs = frozenset({"duplicate", "reorder"})
    auth_path = TOKEN_PATH

    def demo_params(self) -> dict[str, Any]:
        """Every market's public trades, with a snapshot of each."""
        return {"market": ALL, "subscriptions": ["publicTrades"], "snapshot_markets": list(MARKETS)}

    def __init__(
        self,
        *,
        seed: int = 1,
        rate: float = 200.0,
        history: int = 100,
        snapshot_size: int = 20,
        token_lifetime: int = 1800,
        token_rate_limit: int = 20,
        strict: bool = False,
        maker_records: bool = False,
        legacy_names: bool = False,
        own_fill_share: float = 0.1,
        snapshot_limit: int = 50,
        public_without_token: bool = False,
        delta_market: str = "all-only",
    ) -> None:
        super().__init__(seed=seed, rate=rate, history=history, snapshot_size=snapshot_size)
        if snapshot_limit < 0:
            raise ValueError(f"snapshot_limit must not be negative, not {snapshot_limit}")
        if delta_market not in ("all-only", "always"):
            raise ValueError(f"delta_market must be 'all-only' or 'always', not {delta_market!r}")
        self.strict = strict
        self.public_without_token = public_without_token
        self.delta_market = delta_market
        self.maker_records = maker_records
        self.names = LEGACY_NAMES if legacy_names else NAMES
        self._auth = TokenIssuer(seed, token_lifetime, token_rate_limit)
        self._tape = Tape(seed, own_fill_share)
        self._lock = threading.Lock()  # guards the tape and the deques below
        self._records: deque[_Entry] = deque(maxlen=TAPE_LIMIT)
        self._recent = {market: deque[_Entry](maxlen=snapshot_limit) for market in MARKETS}
        self._fills: deque[_Entry] = deque(maxlen=TAPE_LIMIT)
        self._sessions: dict[Outbox, Session] = {}  # loop thread only
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, _Handshake] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()  # closes in flight
        # History: spaced as the live rate would space it, ending now.
        spacing = round(1000 / rate) if rate > 0 else 1000
        now = _now_ms()
        with self._lock:
            for age in range(history, 0, -1):
                self._add(now - age * spacing)

    # -- auth side (HttpVenue) -------------------------------------------------

    def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Answer a request to the token side-server. Loop thread."""
        return self._auth.handle(request)

    def credentials(self, *, read_only: bool = False) -> tuple[str, str]:
        """Return ``(api_key, api_secret)``: the trading pair, or the read-only one."""
        return self._auth.credentials(read_only=read_only)

    @property
    def token_requests(self) -> int:
        """Requests to the token endpoint so far (refused and failed ones included)."""
        return self._auth.requests

    @property
    def signing_key(self) -> bytes:
        """The HMAC-SHA256 secret that signs new tokens."""
        return self._auth.signing_key

    def fail_token_requests(self, count: int, status: int = 503) -> None:
        """Fault injection: the next ``count`` token requests get ``status`` (e.g. 503, 500)."""
        self._auth.fail_next(count, status)

    def expire_tokens(self) -> int:
        """Fault injection: invalidate every token issued so far; safe from any thread.

        Handshakes with them get 401 from now on, and every open connection
        (all use such a token) is closed with 1008 ``"token expired"``.

        :return: the number of connections closed.
        """

        def expire() -> int:
            self._auth.revoke_all()
            sessions = [session for session in self._sessions.values() if session.grant is not KEYLESS]
            for session in sessions:
                session.close(TOKEN_EXPIRED)
            return len(sessions)

        return call_on_loop(self._loop, expire)

    # -- the tape --------------------------------------------------------------

    def trades(self, market: str | None = None) -> list[dict[str, Any]]:
        """Return the public records still on the tape (of ``market``, if given), oldest first."""
        with self._lock:
            return [dict(e.record) for e in self._records if market is None or e.record["market"] == market]

    def fills(self, market: str | None = None) -> list[dict[str, Any]]:
        """Return the account's own fills still on the tape (of ``market``, if given), oldest first."""
        with self._lock:
            return [dict(e.record) for e in self._fills if market is None or e.record["market"] == market]

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Draw ``count`` matches, keep them and broadcast them; return their public records."""
        marks = self._fault_marks(count)
        with self._lock:
            timestamp = _now_ms()
            added = [self._add(timestamp) for _ in range(count)]
        records = [entry for entry_records, _ in added for entry in entry_records]
        sent = self._arrange(added, marks)
        fills = [fill for _, fill in sent if fill is not None]
        by_market: dict[str, list[Raw]] = {}
        for entry in (entry for entry_records, _ in sent for entry in entry_records):
            by_market.setdefault(entry.record["market"], []).append(Raw(entry.text))
        # each market's delta with "market" (ALL connections) and without (single-market ones)
        deltas = {
            market: (
                dumps({"resultType": self.names.delta, "market": market, "data": orders_data(orders)}),
                dumps({"resultType": self.names.delta, "data": orders_data(orders)}),
            )
            for market, orders in by_market.items()
        }
        marked = 0 if self.delta_market == "always" else 1
        fills_frame = dumps({"resultType": FILLS, "data": [Raw(fill.text) for fill in fills]}) if fills else None
        for session in self._sessions.values():
            form = 0 if session.market == ALL else marked
            for market, frames in deltas.items():
                if session.wants_public(market):
                    session.outbox.push(frames[form])
            if fills_frame is not None and "trades" in session.subscriptions:
                session.outbox.push(fills_frame)
        return [dict(entry.record) for entry in records]

    def _add(self, timestamp: int) -> tuple[list[_Entry], _Entry | None]:
        """Draw one match and put its records and fill on the tape. Holds the lock."""
        match = self._tape.next_match(timestamp)
        records = [
            _Entry(record, dumps(wire(record, drop_market=True)))
            for record in (match.maker_mode_records if self.maker_records else match.taker_records)
        ]
        self._records.extend(records)
        self._recent[match.market].extend(records)
        fill = None if match.fill is None else _Entry(match.fill, dumps(wire(match.fill)))
        if fill is not None:
            self._fills.append(fill)
        return records, fill

    # -- the handshake ---------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """401 without a valid token, 400 for a bad query; otherwise accept. Loop thread."""
        token = _offered_token(request.headers.get_all("Sec-WebSocket-Protocol"))
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True)
        if token is None:
            public = frozenset(name for name in query.get("subscriptions", [""])[0].split(",") if name)
            if not self.public_without_token or not public or not public <= PUBLIC_SUBSCRIPTIONS:
                return _refuse(connection, 401, f"missing Sec-WebSocket-Protocol: {PROTOCOL_PREFIX}<token>")
            grant = KEYLESS
        else:
            try:
                grant = self._auth.verify(token)
            except AuthError as err:
                return _refuse(connection, 401, str(err))
        market = query.get("market", [""])[0]
        if not market:
            return _refuse(connection, 400, "market is required")
        if market != ALL and market not in MARKETS:
            return _refuse(connection, 400, f"unknown market: {market}")
        names = [name for name in query.get("subscriptions", [""])[0].split(",") if name]
        unknown = [name for name in names if name not in SUBSCRIPTIONS]
        if unknown:
            return _refuse(connection, 400, f"unknown subscription: {unknown[0]}")
        self._handshakes[connection] = _Handshake(market, frozenset(names) or DEFAULT_SUBSCRIPTIONS, grant)
        return None

    def select_subprotocol(self, connection: ServerConnection, offered: Sequence[str]) -> str | None:
        """Echo the offered ``authorization#<token>`` subprotocol (spec row 6). Loop thread."""
        return next((protocol for protocol in offered if protocol.startswith(PROTOCOL_PREFIX)), None)

    async def handler(self, connection: ServerConnection) -> None:
        """Serve one connection: requests, replies and subscribed streams, until it closes."""
        handshake = self._handshakes.pop(connection)
        grant = handshake.grant
        if grant is not KEYLESS and grant.epoch != self._auth.epoch:  # expire_tokens() ran during the handshake
            await connection.close(CloseCode.POLICY_VIOLATION, TOKEN_EXPIRED)
            return
        if grant.read_only and (forbidden := handshake.subscriptions & READ_ONLY_FORBIDDEN):
            await connection.close(CloseCode.POLICY_VIOLATION, forbidden_reason(forbidden))
            return
        outbox = Outbox(connection)
        session = Session(
            outbox,
            handshake.market,
            set(handshake.subscriptions),
            grant,
            self.names,
            self._recent_texts,
            functools.partial(self._close, connection),
        )
        if self.strict and grant is not KEYLESS:
            delay = max(0.0, grant.expires_at - time.time())
            session.timer = asyncio.get_running_loop().call_later(delay, session.close, TOKEN_EXPIRED)
        self._sessions[outbox] = session
        self.outboxes.add(outbox)
        try:
            await outbox.pump(session.on_message)
        finally:
            del self._sessions[outbox]
            self.outboxes.discard(outbox)
            if session.timer is not None:
                session.timer.cancel()

    def _close(self, connection: ServerConnection, reason: str) -> None:
        """Start closing ``connection`` with 1008 ``reason``, without waiting. Loop thread."""
        logger.info("rails: closing %s: %s", connection.remote_address, reason)
        task = asyncio.create_task(connection.close(CloseCode.POLICY_VIOLATION, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _recent_texts(self, market: str) -> list[str]:
        """The encoded records of ``market``'s snapshot, oldest first. Loop thread."""
        with self._lock:
            return [entry.text for entry in self._recent[market]]


def _offered_token(values: list[str]) -> str | None:
    """The token of the first ``authorization#<token>`` subprotocol offered, if any."""
    for value in values:
        for protocol in value.split(","):
            if (protocol := protocol.strip()).startswith(PROTOCOL_PREFIX):
                return protocol[len(PROTOCOL_PREFIX) :]
    return None


def _refuse(connection: ServerConnection, status: int, message: str) -> Response:
    logger.info("rails: %d for %s: %s", status, connection.remote_address, message)
    return connection.respond(status, message + "\n")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
