"""Self-tests of the simulator's Rails venue: token endpoint and WebSocket v2 over loopback.

Peers are real: ``requests`` for the token endpoint, websockets' sync client
for the WebSocket (close codes, receive timeouts, the raw subprotocol echo)
and websocket-client where the client library's own transport matters. JWTs
are decoded and checked here with hmac/base64, independently of the
simulator's encoder. Ports are chosen by the OS; waits are bounded receives,
never sleeps. A ping/pong round trip is the barrier that proves a frame was
*not* sent: replies and broadcasts share one ordered outbox per connection.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import websocket
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tradefeed.simulator import Simulator, SimulatorError
from tradefeed.simulator.rails import RailsVenue
from tradefeed.simulator.server import THREAD_NAME

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0  # seconds for any single wait
MARKETS = ("BTC-USDT", "ETH-USDT")
RECORD_KEYS = ["executionType", "matchId", "orderType", "price", "quantity", "updatedAt"]
FILL_KEYS = [
    "market", "orderId", "matchId", "orderType", "tradeType", "executionType", "fillType", "price", "quantity",
    "leverage", "fees", "orderCreatedAt", "orderFilledAt", "triggerType", "triggerPrice", "triggerCreatedAt",
]  # fmt: skip
FILL_DECIMALS = ["price", "quantity", "leverage", "fees", "triggerPrice"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


# -- helpers -------------------------------------------------------------------


def make(**options: Any) -> Simulator:
    """A Rails-only simulator, not started, with ``options`` for the venue."""
    return Simulator(seed=1, rate=0, history=80, venues=["rails"], options={"rails": options})


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with make() as simulator:
        yield simulator
    assert not sim_threads()


def sim_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(THREAD_NAME)]


def rails(sim: Simulator) -> RailsVenue:
    venue = sim.venue("rails")
    assert isinstance(venue, RailsVenue)
    return venue


def post_token(sim: Simulator, key: str | None = None, secret: str | None = None) -> requests.Response:
    headers = {"X-Api-Key": key, "X-Api-Secret": secret}
    with requests.Session() as session:
        session.trust_env = False  # no proxy for loopback
        return session.post(sim.auth_url("rails"), headers={k: v for k, v in headers.items() if v}, timeout=TIMEOUT)


def get_token(sim: Simulator, read_only: bool = False) -> str:
    response = post_token(sim, *sim.credentials("rails", read_only=read_only))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT built here, to forge expired or foreign tokens."""
    signing_input = b64encode(b'{"alg":"HS256","typ":"JWT"}') + "." + b64encode(json.dumps(claims).encode())
    return signing_input + "." + b64encode(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def claims_of(token: str) -> dict[str, Any]:
    return dict(json.loads(b64decode(token.split(".")[1])))


def ws_url(sim: Simulator, market: str | None = "BTC-USDT", subscriptions: str | None = None) -> str:
    query = {name: value for name, value in [("market", market), ("subscriptions", subscriptions)] if value is not None}
    return sim.url("rails") + "/?" + urlencode(query)


@contextlib.contextmanager
def client(
    sim: Simulator, token: str | None, market: str | None = "BTC-USDT", subscriptions: str | None = None
) -> Iterator[ClientConnection]:
    protocols = None if token is None else [Subprotocol("authorization#" + token)]
    url = ws_url(sim, market, subscriptions)
    with connect(url, subprotocols=protocols, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        yield ws


def send(ws: ClientConnection, message: str, **content: Any) -> None:
    ws.send(json.dumps({"message": message, "content": content}))


def recv(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=TIMEOUT), parse_float=Decimal))


def assert_no_frame(ws: ClientConnection) -> None:
    """Assert that nothing but the pong came back to an application ping."""
    send(ws, "ping", clientRequestId="barrier")
    assert recv(ws) == {"resultType": "pong", "data": {"clientRequestId": "barrier", "statusCode": 200}}


def drain(ws: ClientConnection) -> list[str]:
    """Every frame received before the pong of an application ping."""
    send(ws, "ping", clientRequestId="barrier")
    frames = []
    while '"barrier"' not in (frame := str(ws.recv(timeout=TIMEOUT))):
        frames.append(frame)
    return frames


def recv_close(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosedError) as closed:
        while True:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def wire(record: dict[str, Any]) -> dict[str, Any]:
    """A tape record as the wire carries it: no market, decimal strings."""
    return {
        key: str(value) if isinstance(value, Decimal) else value
        for key, value in record.items()
        if key != "market"
    }


# -- token endpoint ------------------------------------------------------------


def test_token_is_hs256_jwt_with_the_spec_claims(sim: Simulator) -> None:
    """A good key pair gets 200 with a Bearer HS256 JWT whose exp - iat equals expires_in."""
    before = int(time.time())
    response = post_token(sim, *sim.credentials("rails"))
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    header, payload, signature = body["access_token"].split(".")
    assert json.loads(b64decode(header)) == {"alg": "HS256", "typ": "JWT"}
    expected = hmac.new(rails(sim).signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert b64decode(signature) == expected
    claims = claims_of(body["access_token"])
    assert set(claims) == {"accountType", "iss", "sub", "aud", "iat", "exp"}
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert before <= claims["iat"] <= time.time()
    assert UUID.fullmatch(claims["sub"]) and claims["aud"] and claims["iss"]
    assert rails(sim).token_requests == 1


def test_credentials_are_deterministic_per_seed_and_distinct() -> None:
    """The trading and read-only pairs differ, and the same seed gives the same pairs."""
    one, two, other = make(), make(), Simulator(seed=2, rate=0, venues=["rails"])
    assert one.credentials("rails") == two.credentials("rails") != other.credentials("rails")
    assert one.credentials("rails") != one.credentials("rails", read_only=True)
    with pytest.raises(SimulatorError, match="serves no HTTP"):
        Simulator(rate=0, venues=["dopp"]).credentials("dopp")


@pytest.mark.parametrize("which", ["wrong secret", "unknown key", "no headers", "secret of the other key"])
def test_bad_credentials_get_401(sim: Simulator, which: str) -> None:
    """A wrong or missing key or secret gets 401 with a JSON error body."""
    key, secret = sim.credentials("rails")
    other_secret = sim.credentials("rails", read_only=True)[1]
    args = {
        "wrong secret": (key, secret[:-1] + "0"),
        "unknown key": ("3f9a0c1e-6b2d-4e57-9a1c-7d8e2f4b6a90", secret),
        "no headers": (None, None),
        "secret of the other key": (key, other_secret),
    }[which]
    response = post_token(sim, *args)
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401 and response.json()["message"]


def test_token_rate_limit_gives_429_with_retry_after_per_key() -> None:
    """Past token_rate_limit requests a minute one key gets 429 + Retry-After; another key does not."""
    with make(token_rate_limit=3) as sim:
        for _ in range(3):
            get_token(sim)
        refused = post_token(sim, *sim.credentials("rails"))
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
        get_token(sim, read_only=True)
        assert rails(sim).token_requests == 5


@pytest.mark.parametrize("status", [503, 500])
def test_injected_failures_then_recovery(sim: Simulator, status: int) -> None:
    """fail_token_requests(n, status) fails exactly the next n requests, and all are counted."""
    rails(sim).fail_token_requests(2, status)
    assert [post_token(sim, *sim.credentials("rails")).status_code for _ in range(3)] == [status, status, 200]
    assert rails(sim).token_requests == 3


def test_other_methods_and_paths(sim: Simulator) -> None:
    """Only POST on the token path is served: other methods get 405, other paths 404."""
    with requests.Session() as session:
        session.trust_env = False
        assert session.get(sim.auth_url("rails"), timeout=TIMEOUT).status_code == 405
        assert session.post(sim.http_url("rails") + "/api/v1/other", timeout=TIMEOUT).status_code == 404


# -- handshake -----------------------------------------------------------------


def test_subprotocol_is_echoed(sim: Simulator) -> None:
    """The offered authorization#<jwt> is echoed exactly; websocket-client accepts the handshake."""
    token = get_token(sim)
    with client(sim, token) as ws:
        assert ws.subprotocol == "authorization#" + token
        assert ws.response is not None and ws.response.headers["Sec-WebSocket-Protocol"] == "authorization#" + token
    ws2 = websocket.create_connection(ws_url(sim), subprotocols=["authorization#" + token], timeout=TIMEOUT)
    try:
        ws2.send(json.dumps({"message": "ping"}))
        assert json.loads(ws2.recv()) == {"resultType": "pong", "data": {"statusCode": 200}}
    finally:
        ws2.close()


def forged(sim: Simulator, kind: str) -> str | None:
    venue, now, token = rails(sim), int(time.time()), get_token(sim)
    claims = claims_of(token)
    header, _, signature = token.split(".")
    return {
        "missing": None,
        "empty": "",
        "garbage": "not-a-jwt",
        "bad signature": sign(claims, b"another key"),
        "tampered claims": f"{header}.{b64encode(json.dumps({**claims, 'exp': now + 9999}).encode())}.{signature}",
        "expired": sign({**claims, "iat": now - 1800, "exp": now - 1}, venue.signing_key),
        "foreign issuer": sign({**claims, "iss": "evil"}, venue.signing_key),
    }[kind]


@pytest.mark.parametrize(
    "kind", ["missing", "empty", "garbage", "bad signature", "tampered claims", "expired", "foreign issuer"]
)
def test_handshake_without_a_valid_token_is_401(sim: Simulator, kind: str) -> None:
    """A missing, malformed, badly signed, expired or foreign token is refused with HTTP 401."""
    with pytest.raises(InvalidStatus) as refused, client(sim, forged(sim, kind)):
        pass
    assert refused.value.response.status_code == 401
    assert sim.connection_count("rails") == 0


@pytest.mark.parametrize(
    ("market", "subscriptions"), [("DOGE-USDT", None), (None, None), ("", None), ("BTC-USDT", "trades,publicTrade")]
)
def test_bad_query_is_400(sim: Simulator, market: str | None, subscriptions: str | None) -> None:
    """An unknown or missing market, or an unknown subscription name, is refused with HTTP 400."""
    with pytest.raises(InvalidStatus) as refused, client(sim, get_token(sim), market, subscriptions):
        pass
    assert refused.value.response.status_code == 400


def test_connection_rate_limit_does_not_apply() -> None:
    """Rails enforces no WebSocket connection limit, whatever max_connects says (spec row 17)."""
    with Simulator(rate=0, venues=["rails"], max_connects=1) as sim:
        token = get_token(sim)
        for _ in range(3):
            with client(sim, token) as ws:
                assert_no_frame(ws)


# -- requests and replies ------------------------------------------------------


def test_subscribe_and_unsubscribe_replies(sim: Simulator) -> None:
    """subscribed/unsubscribed list the active set in canonical order and echo the request."""
    with client(sim, get_token(sim)) as ws:
        send(ws, "subscribe", clientRequestId="a1", subscriptions=["publicTrades", "trades"])
        assert recv(ws) == {
            "resultType": "subscribed",
            "data": {
                "activeSubscriptions": ["orders", "trades", "publicTrades"],
                "clientRequestId": "a1",
                "requestedSubscriptions": ["publicTrades", "trades"],
            },
        }
        send(ws, "subscribe", subscriptions=["trades"])  # idempotent, no clientRequestId
        assert recv(ws)["data"] == {
            "activeSubscriptions": ["orders", "trades", "publicTrades"],
            "requestedSubscriptions": ["trades"],
        }
        send(ws, "unsubscribe", clientRequestId="a2", subscriptions=["trades", "publicOrderBook"])
        assert recv(ws) == {
            "resultType": "unsubscribed",
            "data": {
                "activeSubscriptions": ["orders", "publicTrades"],
                "clientRequestId": "a2",
                "requestedUnsubscriptions": ["trades", "publicOrderBook"],
            },
        }


def test_default_subscription_is_orders_only(sim: Simulator) -> None:
    """Without the query parameter only orders is active: no public trades or fills arrive."""
    with client(sim, get_token(sim)) as ws:
        rails(sim).emit(50)
        assert_no_frame(ws)
        send(ws, "subscribe", subscriptions=[])
        assert recv(ws)["data"]["activeSubscriptions"] == ["orders"]


def test_ping_pong(sim: Simulator) -> None:
    """ping gets pong with statusCode 200, echoing clientRequestId only when sent."""
    with client(sim, get_token(sim)) as ws:
        send(ws, "ping", clientRequestId="4cc68b60-ed2d-42aa-a21e-cb5486f8fd1a")
        assert recv(ws) == {
            "resultType": "pong",
            "data": {"clientRequestId": "4cc68b60-ed2d-42aa-a21e-cb5486f8fd1a", "statusCode": 200},
        }
        ws.send('{"message": "ping"}')
        assert recv(ws) == {"resultType": "pong", "data": {"statusCode": 200}}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"message": "hello", "content": {"clientRequestId": "r1"}}', "unknown message: hello"),
        ('{"message": "subscribe", "content": {"clientRequestId": "r1", "subscriptions": ["publicTrade"]}}',
         "unknown subscription: publicTrade"),
        ('{"message": "subscribe", "content": {"clientRequestId": "r1", "subscriptions": "trades"}}', None),
        ('{"message": "emitCompletedOrders", "content": {"clientRequestId": "r1"}}',
         "unknown message: emitCompletedOrders"),
        ("{not json", "malformed JSON"),
        ('["subscribe"]', None),
        ('{"message": "ping", "content": 7}', None),
    ],
)  # fmt: skip
def test_error_frames(sim: Simulator, frame: str, message: str | None) -> None:
    """Bad requests get an error frame (400) echoing clientRequestId when one could be read."""
    with client(sim, get_token(sim)) as ws:
        ws.send(frame)
        reply = recv(ws)
        assert reply["resultType"] == "error" and reply["data"]["statusCode"] == 400
        assert message is None or reply["data"]["message"] == message
        assert ("clientRequestId" in reply["data"]) == ('"r1"' in frame)
        if "clientRequestId" in reply["data"]:
            assert reply["data"]["clientRequestId"] == "r1"
        assert_no_frame(ws)  # the connection stays open


def test_snapshot_is_the_50_newest_oldest_first_with_echo(sim: Simulator) -> None:
    """emitPublicCompletedOrders answers with up to 50 recent records of the market, oldest first."""
    rails(sim).emit(100)
    with client(sim, get_token(sim), market="ETH-USDT") as ws:
        send(ws, "emitPublicCompletedOrders", clientRequestId="s1")
        reply = recv(ws)
        tape = rails(sim).trades("ETH-USDT")
        send(ws, "emitPublicCompletedOrders", market="ETH-USDT")
        second = recv(ws)
        send(ws, "emitPublicCompletedOrders", market="BTC-USDT")
        assert recv(ws)["resultType"] == "error"
    assert reply["resultType"] == "publicCompletedOrders" and reply["market"] == "ETH-USDT"
    assert reply["data"]["clientRequestId"] == "s1" and reply["data"]["statusCode"] == 200
    expected = [wire(record) for record in tape[-50:]]
    assert len(tape) > 50 and reply["data"]["orders"] == expected
    timestamps = [order["updatedAt"] for order in expected]
    assert timestamps == sorted(timestamps)
    assert "clientRequestId" not in second["data"] and second["data"]["orders"] == expected


# -- streams -------------------------------------------------------------------


def test_public_deltas_carry_the_tape_with_exact_decimals(sim: Simulator) -> None:
    """publicTrades deltas carry every new record of the market, as decimal strings equal to the tape."""
    with client(sim, get_token(sim), subscriptions="publicTrades") as ws:
        emitted = rails(sim).emit(40)
        raw = str(ws.recv(timeout=TIMEOUT))
        assert_no_frame(ws)  # one frame per emit and market: ETH records were not sent
    frame = json.loads(raw)
    btc = [record for record in emitted if record["market"] == "BTC-USDT"]
    assert frame["resultType"] == "publicCompletedOrdersDelta"
    assert "market" not in frame  # only market=ALL connections get it (spec row 9)
    assert frame["data"]["statusCode"] == 200 and frame["data"]["orders"] == [wire(record) for record in btc]
    for order, record in zip(frame["data"]["orders"], btc, strict=True):
        assert list(order) == RECORD_KEYS and UUID.fullmatch(order["matchId"])
        assert Decimal(order["price"]).as_tuple() == record["price"].as_tuple()
        assert Decimal(order["quantity"]).as_tuple() == record["quantity"].as_tuple()
        assert order["executionType"] == "taker" and order["updatedAt"] > 10**12
    assert re.search(r'"(price|quantity)": "\d+\.\d*0"', raw)  # trailing zeros survive
    assert not re.search(r'"(price|quantity)": \d', raw)  # decimal strings, never JSON numbers


def test_delta_market_always_mode_names_the_market_on_single_market_connections() -> None:
    with make(delta_market="always") as sim, client(sim, get_token(sim), subscriptions="publicTrades") as ws:
        rails(sim).emit(40)
        frame = recv(ws)
    assert frame["resultType"] == "publicCompletedOrdersDelta" and frame["market"] == "BTC-USDT"


def test_key_less_public_streams_only_in_their_mode(sim: Simulator) -> None:
    """Token required by default; with public_without_token=True a key-less handshake for
    public streams is served, and one for a private stream (or the default orders) is 401."""
    with pytest.raises(InvalidStatus) as refused, client(sim, None, subscriptions="publicTrades"):
        pass
    assert refused.value.response.status_code == 401
    with make(public_without_token=True) as keyless:
        with client(keyless, None, subscriptions="publicTrades") as ws:
            emitted = rails(keyless).emit(40)
            frame = recv(ws)
            assert rails(keyless).expire_tokens() == 0  # no token: nothing to expire
            send(ws, "subscribe", clientRequestId="t", subscriptions=["trades"])
            code, reason = recv_close(ws)
        for subscriptions in ("trades", "publicTrades,orders", None):
            with pytest.raises(InvalidStatus) as refused, client(keyless, None, subscriptions=subscriptions):
                pass
            assert refused.value.response.status_code == 401, subscriptions
    assert frame["data"]["orders"] == [wire(r) for r in emitted if r["market"] == "BTC-USDT"]
    assert (code, reason) == (1008, "forbidden subscription: trades")


def test_identical_connections_get_identical_sequences(sim: Simulator) -> None:
    """Connections with the same market and subscriptions receive the same frames (deterministic delivery)."""
    token = get_token(sim)
    both = "publicTrades,trades"
    with client(sim, token, "ALL", both) as one, client(sim, token, "ALL", both) as two:
        assert sim.wait_for_connections(2, "rails", timeout=TIMEOUT)
        for _ in range(5):
            rails(sim).emit(20)
        frames = drain(one)
        assert len(frames) >= 10 and drain(two) == frames


def test_market_all_streams_every_market_and_needs_market_for_snapshots(sim: Simulator) -> None:
    """With market=ALL deltas come for each market; a snapshot needs content.market."""
    with client(sim, get_token(sim), "ALL", "publicTrades") as ws:
        emitted = rails(sim).emit(40)
        deltas = [recv(ws), recv(ws)]
        send(ws, "emitPublicCompletedOrders", clientRequestId="x")
        error = recv(ws)
        send(ws, "emitPublicCompletedOrders", clientRequestId="y", market="BTC-USDT")
        snapshot = recv(ws)
        send(ws, "emitPublicCompletedOrders", clientRequestId="z", market="DOGE-USDT")
        unknown = recv(ws)
    assert {delta["market"] for delta in deltas} == set(MARKETS)
    for delta in deltas:
        assert delta["data"]["orders"] == [wire(r) for r in emitted if r["market"] == delta["market"]]
    assert error == {
        "resultType": "error",
        "data": {"clientRequestId": "x", "statusCode": 400, "message": error["data"]["message"]},
    }
    assert snapshot["market"] == "BTC-USDT" and snapshot["data"]["clientRequestId"] == "y"
    assert snapshot["data"]["orders"] == [wire(r) for r in rails(sim).trades("BTC-USDT")[-50:]]
    assert unknown["resultType"] == "error" and unknown["data"]["clientRequestId"] == "z"


def test_private_fills_cover_every_market(sim: Simulator) -> None:
    """trades streams the account's own fills of all markets as completedOrdersDelta with a data list."""
    venue = rails(sim)
    with client(sim, get_token(sim), "ETH-USDT", "trades") as ws:
        before = len(venue.fills())
        public = venue.emit(200)
        frame = recv(ws)
        assert_no_frame(ws)  # no public deltas without publicTrades
    fills = venue.fills()[before:]
    assert {fill["market"] for fill in fills} == set(MARKETS)
    assert frame["resultType"] == "completedOrdersDelta" and isinstance(frame["data"], list)
    assert "market" not in frame
    match_ids = {record["matchId"]: record for record in public}
    for item, fill in zip(frame["data"], fills, strict=True):
        assert list(item) == FILL_KEYS
        assert item == {key: str(v) if isinstance(v, Decimal) else v for key, v in fill.items()}
        record = match_ids[item["matchId"]]  # the fill shares its match's public matchId
        assert (item["price"], item["quantity"]) == (str(record["price"]), str(record["quantity"]))
        assert (item["orderType"] == record["orderType"]) == (item["executionType"] == "taker")
        assert item["orderFilledAt"] == record["updatedAt"] >= item["orderCreatedAt"]
        assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", item["orderId"])
        rate = Decimal("0.0005") if item["executionType"] == "taker" else Decimal("0.0002")
        notional = Decimal(item["price"]) * Decimal(item["quantity"])
        assert Decimal(item["fees"]) == (notional * rate).quantize(Decimal("0.00000001"))
        assert (item["triggerType"], item["triggerPrice"], item["triggerCreatedAt"]) == ("none", "0", 0)


def test_maker_records_mode() -> None:
    """maker_records shows some matches as a maker record alone or followed by its taker record."""
    with make(maker_records=True) as sim, client(sim, get_token(sim), "ALL", "publicTrades") as ws:
        emitted = rails(sim).emit(300)
        orders = recv(ws)["data"]["orders"] + recv(ws)["data"]["orders"]
    assert sorted(map(json.dumps, orders)) == sorted(json.dumps(wire(record)) for record in emitted)
    by_match: dict[str, list[dict[str, Any]]] = {}
    for record in emitted:
        by_match.setdefault(record["matchId"], []).append(record)
    shapes = {tuple(record["executionType"] for record in records) for records in by_match.values()}
    assert shapes == {("taker",), ("maker",), ("maker", "taker")}
    for records in by_match.values():
        if len(records) == 2:
            maker, taker = records
            assert maker["orderType"] != taker["orderType"]
            assert [maker[k] for k in ("price", "quantity", "updatedAt")] == [
                taker[k] for k in ("price", "quantity", "updatedAt")
            ]
    # The matches are the same as without the mode: only how they are shown differs.
    plain = [record["matchId"] for record in make().venue("rails").trades()]
    shown = [record["matchId"] for record in make(maker_records=True).venue("rails").trades()]
    assert plain == list(dict.fromkeys(shown))


def test_legacy_names_mode() -> None:
    """legacy_names uses completedOrdersDelta (data.orders) / completedOrders and accepts emitCompletedOrders."""
    with make(legacy_names=True) as sim, client(sim, get_token(sim), subscriptions="publicTrades,trades") as ws:
        send(ws, "emitCompletedOrders", clientRequestId="l1")
        legacy = recv(ws)
        send(ws, "emitPublicCompletedOrders", clientRequestId="l2")
        new = recv(ws)
        rails(sim).emit(100)
        delta, fills = recv(ws), recv(ws)
    assert legacy["resultType"] == new["resultType"] == "completedOrders"
    assert legacy["data"]["clientRequestId"] == "l1" and legacy["data"]["orders"]
    assert delta["resultType"] == "completedOrdersDelta" and "market" not in delta  # a single-market connection
    assert isinstance(delta["data"], dict) and delta["data"]["orders"]
    assert fills["resultType"] == "completedOrdersDelta" and isinstance(fills["data"], list)


def test_same_seed_same_tape() -> None:
    """Tape content (timestamps aside) depends only on the seed."""

    def content(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        drop = {"updatedAt", "orderCreatedAt", "orderFilledAt"}
        return [{k: v for k, v in row.items() if k not in drop} for row in rows]

    one, two, other = (Simulator(seed=seed, rate=0, venues=["rails"]).venue("rails") for seed in (5, 5, 6))
    assert isinstance(one, RailsVenue) and isinstance(two, RailsVenue) and isinstance(other, RailsVenue)
    assert content(one.emit(500)) == content(two.emit(500)) and content(one.fills()) == content(two.fills())
    assert content(other.trades()) != content(two.trades()[:100])
    assert len(one.trades()) == 600 and one.fills()


def test_unknown_option_is_a_type_error() -> None:
    """Options are constructor keywords; an unknown one raises TypeError."""
    with pytest.raises(TypeError):
        make(no_such_option=True)


# -- token expiry and permissions ----------------------------------------------


def test_default_mode_keeps_the_socket_open_after_exp() -> None:
    """Without strict the connection outlives its token; new handshakes with it get 401."""
    with make(token_lifetime=1) as sim:
        token = get_token(sim)
        with client(sim, token) as ws:
            remaining = claims_of(token)["exp"] - time.time()
            with pytest.raises(TimeoutError):  # waits until the token has expired
                ws.recv(timeout=max(0.0, remaining) + 0.1)
            assert_no_frame(ws)
        with pytest.raises(InvalidStatus) as refused, client(sim, token):
            pass
        assert refused.value.response.status_code == 401


def test_strict_mode_closes_1008_token_expired_at_exp() -> None:
    """With strict=True the connection is closed with 1008 "token expired" once exp has passed."""
    with make(token_lifetime=1, strict=True) as sim:
        token = get_token(sim)
        with client(sim, token) as ws:
            assert recv_close(ws) == (1008, "token expired")
            assert time.time() > claims_of(token)["exp"] - 0.01  # not before exp (timer granularity aside)


def test_expire_tokens_closes_connections_and_refuses_old_tokens(sim: Simulator) -> None:
    """expire_tokens() closes every connection with 1008 "token expired"; old tokens then get 401."""
    old = get_token(sim)
    with client(sim, old) as one, client(sim, get_token(sim, read_only=True), "ALL", "publicTrades") as two:
        assert sim.wait_for_connections(2, "rails", timeout=TIMEOUT)
        assert rails(sim).expire_tokens() == 2
        assert recv_close(one) == recv_close(two) == (1008, "token expired")
    with pytest.raises(InvalidStatus) as refused, client(sim, old):
        pass
    assert refused.value.response.status_code == 401
    with client(sim, get_token(sim)) as ws:
        assert_no_frame(ws)


def test_read_only_key_may_not_subscribe_to_trades(sim: Simulator) -> None:
    """A read-only key's token gets 1008 for trades, in the query or by subscribe; public streams work."""
    token = get_token(sim, read_only=True)
    with client(sim, token, subscriptions="publicTrades,trades") as ws:
        assert recv_close(ws) == (1008, "forbidden subscription: trades")
    with client(sim, token, subscriptions="publicTrades") as ws:
        emitted = rails(sim).emit(20)
        assert recv(ws)["data"]["orders"] == [wire(r) for r in emitted if r["market"] == "BTC-USDT"]
        send(ws, "subscribe", subscriptions=["trades"])
        assert recv_close(ws) == (1008, "forbidden subscription: trades")


# -- lifecycle -----------------------------------------------------------------


def test_http_side_stops_with_the_simulator_and_rebinds_its_port() -> None:
    """stop() ends the loop thread and the token endpoint; start() serves it on the same port again."""
    sim = make()
    with pytest.raises(SimulatorError, match="call start"):
        sim.auth_url("rails")
    with sim:
        url = sim.auth_url("rails")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1/token", url)
        token = get_token(sim)
    assert not sim_threads()
    with pytest.raises(requests.ConnectionError):
        post_token(sim, *sim.credentials("rails"))
    with sim:
        assert sim.auth_url("rails") == url
        get_token(sim)
        with client(sim, token) as ws:  # tokens survive a restart, as the tape does
            assert_no_frame(ws)
    assert not sim_threads()
    assert rails(sim).token_requests == 2  # the refused connection never reached the endpoint
