"""Self-tests of the simulator's Synthetix venue over real loopback sockets.

The peer is websockets' sync client (close codes, handshake headers, receive
timeouts). Ports are chosen by the OS; every wait is a receive with a timeout,
never a sleep. A method ping is the barrier that proves a frame was *not* sent:
the venue queues its pushes before ``emit()`` returns and answers requests in
order, so any push would arrive before the pong.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tradefeed.simulator import VENUES, Simulator
from tradefeed.simulator.synthetix import INFO_PATH, SYMBOLS, SynthetixVenue

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0  # seconds for any single wait
ITEM_KEYS = ["tradeId", "symbol", "side", "price", "quantity", "timestamp", "isMaker"]
MONEY = ("price", "quantity")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_ids = itertools.count(1)


# -- helpers ---------------------------------------------------------------------


def make_sim(**options: Any) -> Simulator:
    return Simulator(seed=1, rate=0, history=300, venues=["synthetix"], options={"synthetix": options})


def venue(sim: Simulator) -> SynthetixVenue:
    snx = sim.venue("synthetix")
    assert isinstance(snx, SynthetixVenue)
    return snx


@contextlib.contextmanager
def client(sim: Simulator, path: str = INFO_PATH, **kwargs: Any) -> Iterator[ClientConnection]:
    kwargs.setdefault("user_agent_header", "tradefeed-tests/1.0")
    url = sim.url("synthetix") + path
    with connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None, **kwargs) as ws:
        yield ws


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=TIMEOUT))
    return frame


def call(ws: ClientConnection, method: str, **params: Any) -> dict[str, Any]:
    """Send one request with a fresh id and return the reply, checking it carries that id."""
    request_id = f"{method}-{next(_ids)}"
    ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
    reply = recv(ws)
    assert reply["id"] == request_id
    return reply


def last_trades(ws: ClientConnection, **params: Any) -> dict[str, Any]:
    return call(ws, "post", action="getLastTrades", **params)


def error(reply: dict[str, Any], status: int, message: str, ack: bool = False) -> dict[str, Any]:
    """The error reply expected for ``reply``'s id."""
    expected = {"id": reply["id"], "status": status, "result": None, "error": {"code": status, "message": message}}
    return {"id": reply["id"], "requestId": reply["id"], **expected} if ack else expected


def ack(reply: dict[str, Any], result: dict[str, str]) -> dict[str, Any]:
    """The subscribe/unsubscribe acknowledgement expected for ``reply``'s id."""
    return {"id": reply["id"], "requestId": reply["id"], "status": 200, "result": result}


def pushes_until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Receive notifications up to the reply to a method ping (the barrier)."""
    ws.send(json.dumps({"id": "barrier", "method": "ping", "params": {}}))
    frames = []
    while (frame := recv(ws)).get("id") != "barrier":
        frames.append(frame)
    return frames


def as_item(push: dict[str, Any]) -> dict[str, Any]:
    """The getLastTrades item a documented-form notification carries."""
    data = push["data"]
    instant = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))  # 3.10 does not read "Z"
    return {**data, "timestamp": round(instant.timestamp() * 1000)}


def content(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in trade.items() if key != "timestamp"} for trade in trades]


# -- getLastTrades -------------------------------------------------------------------


def test_get_last_trades_returns_newest_first_exactly_as_on_the_tape() -> None:
    """getLastTrades answers the seed shape with the symbol's newest trades first, limit 50 by default."""
    with make_sim() as sim, client(sim) as ws:
        tape = venue(sim).trades("BTC-USDT")
        reply = last_trades(ws, symbol="btc-usdt", limit=5)  # upper-cased by the server
        default = last_trades(ws, symbol="BTC-USDT")
    assert list(reply) == ["id", "status", "result"] and reply["status"] == 200
    assert reply["result"]["status"] == "success"
    trades = reply["result"]["response"]["trades"]
    assert trades == list(reversed(tape))[:5]
    assert all(list(trade) == ITEM_KEYS and trade["isMaker"] is False for trade in trades)
    assert all(isinstance(trade["timestamp"], int) and trade["side"] in ("buy", "sell") for trade in trades)
    assert all(isinstance(trade[key], str) and Decimal(trade[key]) > 0 for trade in trades for key in MONEY)
    assert [int(trade["tradeId"]) for trade in trades] == sorted((int(t["tradeId"]) for t in trades), reverse=True)
    assert default["result"]["response"]["trades"] == list(reversed(tape))[:50]


def test_prices_and_quantities_are_exact_decimal_strings() -> None:
    """Money travels as decimal strings with the market's fixed decimals, never as float literals."""
    with make_sim() as sim:
        tape = venue(sim).trades()
    places = {"BTC-USDT": (1, 3), "ETH-USDT": (2, 2), "SOL-USDT": (3, 1)}
    assert {trade["symbol"] for trade in tape} == set(SYMBOLS)
    for trade in tape:
        price_places, quantity_places = places[trade["symbol"]]
        assert re.fullmatch(rf"\d+\.\d{{{price_places}}}", trade["price"])
        assert re.fullmatch(rf"\d+\.\d{{{quantity_places}}}", trade["quantity"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"symbol": "BTC-USDT", "limit": 101}, "Limit cannot exceed 100"),
        ({"symbol": "BTC-USDT", "limit": 0}, "Limit must be at least 1"),
        ({"symbol": "BTC-USDT", "limit": -3}, "Limit must be at least 1"),
        ({"symbol": "DOGE-USDT"}, "Invalid symbol"),
        ({"symbol": "BTC-USDT-PERPETUAL-XYZ"}, "Invalid symbol"),  # 21 characters
        ({}, "Invalid symbol"),
        ({"symbol": "BTC-USDT", "limit": "10"}, "Invalid request body"),
        ({"symbol": "BTC-USDT", "limit": 2.5}, "Invalid request body"),
        ({"symbol": 7}, "Invalid request body"),
    ],
)
def test_get_last_trades_validation_errors(params: dict[str, Any], message: str) -> None:
    """Invalid parameters get a 400 reply in the seed's error shape with the handler's message."""
    with make_sim() as sim, client(sim) as ws:
        reply = last_trades(ws, **params)
    assert reply == error(reply, 400, message)


def test_fail_next_get_last_trades_answers_500_once() -> None:
    """fail_next_get_last_trades() makes the next valid request fail with the handler's 500, then recovers."""
    with make_sim() as sim, client(sim) as ws:
        venue(sim).fail_next_get_last_trades()
        assert last_trades(ws, symbol="BTC-USDT", limit=0)["status"] == 400  # invalid requests fail first
        failed = last_trades(ws, symbol="BTC-USDT")
        recovered = last_trades(ws, symbol="BTC-USDT", limit=1)
    assert failed == error(failed, 500, "Internal error: unrecognized trade direction")
    assert recovered["status"] == 200 and len(recovered["result"]["response"]["trades"]) == 1


# -- subscriptions and pushes ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["trades", "trade"])
def test_subscribe_ack_echoes_either_type_spelling(kind: str) -> None:
    """Both type spellings are accepted and echoed; an omitted symbol is acknowledged as ALL."""
    with make_sim() as sim, client(sim) as ws:
        one = call(ws, "subscribe", type=kind, symbol="eth-usdt")
        every = call(ws, "subscribe", type=kind)
        assert venue(sim).wait_for_subscriptions(2, timeout=TIMEOUT)
    assert one == ack(one, {"type": kind, "symbol": "ETH-USDT"})
    assert every["result"] == {"type": kind, "symbol": "ALL"}


def test_live_pushes_carry_rfc3339_time_envelope_ms_and_meseq() -> None:
    """Each new trade of the symbol is pushed once, in order, with RFC 3339 data time, send ms and meseq."""
    with make_sim() as sim, client(sim) as ws:
        call(ws, "subscribe", type="trades", symbol="BTC-USDT")
        emitted = venue(sim).emit(40)
        pushes = pushes_until_pong(ws)
    expected = [trade for trade in emitted if trade["symbol"] == "BTC-USDT"]
    assert expected and [as_item(push) for push in pushes] == expected
    for push, trade in zip(pushes, expected):
        assert list(push) == ["channel", "data", "timestamp", "meseq", "prevMeseq"] and push["channel"] == "trade"
        assert RFC3339_MS.match(push["data"]["timestamp"])
        assert isinstance(push["timestamp"], int) and push["timestamp"] >= trade["timestamp"]
        assert push["prevMeseq"] == push["meseq"] - 1
    assert [push["meseq"] for push in pushes] == list(range(pushes[0]["meseq"], pushes[0]["meseq"] + len(pushes)))


def test_sdk_push_envelopes() -> None:
    """push_envelope="method": the docs' push with "method" for "channel"; "method-list":
    one {"method": "trade", "data": [...]} per emit, the subscriber's trades in order."""
    with make_sim(push_envelope="method") as sim, client(sim) as ws:
        call(ws, "subscribe", type="trades", symbol="BTC-USDT")
        emitted = venue(sim).emit(40)
        pushes = pushes_until_pong(ws)
    expected = [trade for trade in emitted if trade["symbol"] == "BTC-USDT"]
    assert [as_item(push) for push in pushes] == expected
    assert all(list(push) == ["method", "data", "timestamp", "meseq", "prevMeseq"] for push in pushes)
    with make_sim(push_envelope="method-list") as sim, client(sim) as ws:
        call(ws, "subscribe", type="trades", symbol="BTC-USDT")
        first, second = venue(sim).emit(40), venue(sim).emit(40)
        pushes = pushes_until_pong(ws)
    assert [list(push) for push in pushes] == [["method", "data"]] * 2
    for push, batch in zip(pushes, (first, second)):
        assert [as_item({"data": item}) for item in push["data"]] == [t for t in batch if t["symbol"] == "BTC-USDT"]
    with pytest.raises(ValueError, match="push_envelope"):
        make_sim(push_envelope="envelope")


def test_ts_ms_form_uses_ts_ms_and_is_taker() -> None:
    """With push_time="tsMs" the data carries tsMs (int ms) and isTaker instead of timestamp and isMaker."""
    with make_sim(push_time="tsMs") as sim, client(sim) as ws:
        call(ws, "subscribe", type="trade", symbol="ALL")
        emitted = venue(sim).emit(5)
        pushes = pushes_until_pong(ws)
    expected = [
        {**{key: trade[key] for key in ITEM_KEYS[:5]}, "tsMs": trade["timestamp"], "isTaker": True} for trade in emitted
    ]
    assert [push["data"] for push in pushes] == expected
    assert all(list(push["data"]) == [*ITEM_KEYS[:5], "tsMs", "isTaker"] for push in pushes)


@pytest.mark.parametrize("symbol", [{"symbol": "ALL"}, {"symbol": "all"}, {}])
def test_all_streams_every_market_with_meseq_per_symbol(symbol: dict[str, str]) -> None:
    """ALL (or no symbol) streams every market; meseq counts per symbol."""
    with make_sim() as sim, client(sim) as ws:
        call(ws, "subscribe", type="trades", **symbol)
        call(ws, "subscribe", type="trades", symbol="SOL-USDT")  # overlapping: still one push per trade
        emitted = venue(sim).emit(60)
        pushes = pushes_until_pong(ws)
    assert [as_item(push) for push in pushes] == emitted
    assert {trade["symbol"] for trade in emitted} == set(SYMBOLS)
    for name in SYMBOLS:
        meseqs = [push["meseq"] for push in pushes if push["data"]["symbol"] == name]
        assert meseqs == list(range(meseqs[0], meseqs[0] + len(meseqs)))


def test_unsubscribe_acks_and_stops_pushes() -> None:
    """Unsubscribe answers the ack shape and stops that subscription's pushes; an unknown one is a 400."""
    with make_sim() as sim, client(sim) as ws:
        call(ws, "subscribe", type="trades", symbol="BTC-USDT")
        venue(sim).emit(10)
        assert pushes_until_pong(ws)
        done = call(ws, "unsubscribe", type="trades", symbol="BTC-USDT")
        venue(sim).emit(10)
        assert pushes_until_pong(ws) == []
        again = call(ws, "unsubscribe", type="trades", symbol="BTC-USDT")
    assert done == ack(done, {"type": "trades", "symbol": "BTC-USDT"})
    assert again == error(again, 400, "Not subscribed", ack=True)


def test_no_snapshot_and_bad_subscriptions_are_refused() -> None:
    """Subscribing sends no snapshot; an unknown symbol or type gets a 400 reply."""
    with make_sim() as sim, client(sim) as ws:
        call(ws, "subscribe", type="trades", symbol="BTC-USDT")
        assert pushes_until_pong(ws) == []
        unknown = call(ws, "subscribe", type="trades", symbol="DOGE-USDT")
        orderbook = call(ws, "subscribe", type="orderbook", symbol="BTC-USDT")
    assert unknown == error(unknown, 400, "Invalid symbol", ack=True)
    assert orderbook == error(orderbook, 400, "Unsupported subscription type", ack=True)


# -- ping, junk, timeouts, handshake ------------------------------------------------------


def test_both_ping_forms_are_answered() -> None:
    """The method ping gets an id-matched "pong" result; the documented ping gets its timestamp back."""
    with make_sim() as sim, client(sim) as ws:
        ws.send(json.dumps({"id": "ping-7", "method": "ping", "params": {}}))
        method = recv(ws)
        ws.send(json.dumps({"type": "ping", "timestamp": 1767225600000}))
        documented = recv(ws)
    assert method == {"id": "ping-7", "requestId": "ping-7", "status": 200, "result": "pong"}
    assert documented == {"type": "pong", "timestamp": 1767225600000}


def test_junk_is_ignored_unless_it_has_an_id() -> None:
    """Malformed or id-less frames are ignored; an unknown method with an id gets a 400; nothing closes."""
    with make_sim() as sim, client(sim) as ws:
        no_id = '{"method": "subscribe", "params": {"type": "trades"}}'
        junk: list[str | bytes] = ["not json", "[1, 2]", no_id, b"\xff"]
        for frame in junk:
            ws.send(frame)
        unknown = call(ws, "frobnicate")
        action = call(ws, "post", action="getMarkets")
        assert pushes_until_pong(ws) == []
    assert unknown == error(unknown, 400, "Unsupported method", ack=True)
    assert action == error(action, 400, "Unsupported action")


def test_idle_connection_is_closed_with_1000() -> None:
    """Any client frame restarts the idle timer; idle_timeout seconds without one close with 1000."""
    with make_sim(idle_timeout=0.6) as sim, client(sim) as ws:
        for _ in range(7):  # 7 quiet waits of 0.1 s: longer than idle_timeout in all, never 0.6 s without a frame
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.1)
            ws.send("not json")  # even junk counts as activity
        started = time.monotonic()
        with pytest.raises(ConnectionClosedOK) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert closed.value.rcvd.reason == "idle timeout" and time.monotonic() - started >= 0.4


def test_max_age_closes_with_1001() -> None:
    """A connection older than max_age seconds is closed with 1001, however active it is."""
    with make_sim(max_age=0.5) as sim, client(sim) as ws:
        with pytest.raises(ConnectionClosedOK) as closed:
            while True:
                call(ws, "ping")
    assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "max age")


def test_connections_over_the_per_ip_limit_are_closed_with_1008() -> None:
    """One connection more than max_connections per IP is accepted, then closed with 1008."""
    with make_sim(max_connections=1) as sim, client(sim) as first, client(sim) as second:
        with pytest.raises(ConnectionClosedError) as closed:
            second.recv(timeout=TIMEOUT)
        assert call(first, "ping")["result"] == "pong"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_simulator_bug_closes_with_1011(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while handling a frame is logged and closes the connection with 1011."""

    def broken(params: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    with make_sim() as sim, client(sim) as ws:
        monkeypatch.setattr(venue(sim), "_post", broken)
        ws.send(json.dumps({"id": "x", "method": "post", "params": {"action": "getLastTrades"}}))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


def test_token_bucket_answers_429() -> None:
    """A request the IP's token bucket cannot pay for gets status 429; pings are free."""
    with make_sim(bucket_tokens=15) as sim, client(sim) as ws:
        assert last_trades(ws, symbol="BTC-USDT", limit=1)["status"] == 200  # 10 tokens
        limited = last_trades(ws, symbol="BTC-USDT", limit=1)
        pong = call(ws, "ping")
        sub = call(ws, "subscribe", type="trades")  # 1 token
    assert limited == error(limited, 429, "Rate limit exceeded")
    assert pong["result"] == "pong" and sub["status"] == 200


def test_strict_user_agent_refuses_handshake_without_it() -> None:
    """strict_user_agent=True answers 400 to a handshake without User-Agent; the default accepts it."""
    with make_sim(strict_user_agent=True) as sim:
        with pytest.raises(InvalidStatus) as refused, client(sim, user_agent_header=None):
            pass
        with client(sim) as ws:
            assert call(ws, "ping")["status"] == 200
    assert refused.value.response.status_code == 400
    with make_sim() as sim, client(sim, user_agent_header=None) as ws:
        assert call(ws, "ping")["status"] == 200


def test_other_paths_get_404() -> None:
    """Only /v1/ws/info and /v1/ws/trade are served (the older /v1/ws/subscriptions is not)."""
    with make_sim() as sim, pytest.raises(InvalidStatus) as refused, client(sim, path="/v1/ws/subscriptions"):
        pass
    assert refused.value.response.status_code == 404


# -- tape and options ------------------------------------------------------------------------


def test_tape_content_depends_only_on_the_seed() -> None:
    """Equal seeds give equal trades (timestamps aside); another seed gives others."""
    tapes = [SynthetixVenue(seed=seed, history=50).trades() for seed in (7, 7, 8)]
    assert content(tapes[0]) == content(tapes[1]) != content(tapes[2])
    assert [int(trade["tradeId"]) for trade in tapes[0]] == list(range(1950384712, 1950384762))
    timestamps = [trade["timestamp"] for trade in tapes[0]]
    assert timestamps == sorted(timestamps)


def test_registry_options_and_unknown_kwargs() -> None:
    """The venue is registered; unknown options raise TypeError, bad values ValueError."""
    assert VENUES["synthetix"] is SynthetixVenue and SYMBOLS == ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    with pytest.raises(TypeError):
        Simulator(venues=["synthetix"], options={"synthetix": {"bogus": 1}})
    with pytest.raises(ValueError):
        SynthetixVenue(push_time="unix")
    with pytest.raises(ValueError):
        SynthetixVenue(idle_timeout=0)
