"""Self-tests of the simulator: the Dopp protocol over real loopback sockets.

Peers are websockets' sync client (close codes, pings, receive timeouts) and,
where the raw wire matters, websocket-client (what the client library uses).
Every port is chosen by the OS; waits are on events with timeouts, never on
sleeps. A ping/pong round trip is the barrier that proves a frame was *not*
sent: the server writes a broadcast frame before ``emit()`` returns, so it
would arrive before the pong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
import websocket
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tradefeed.simulator import Outbox, Simulator, SimulatorError
from tradefeed.simulator._json import Raw, dumps
from tradefeed.simulator.dopp import BY_CURRENCY, BY_INSTRUMENT, CURRENCIES, INSTRUMENTS, WALLETS
from tradefeed.simulator.server import THREAD_NAME

pytestmark = pytest.mark.timeout(30)

KEYS = [
    "wallet_address", "amount", "base_currency", "direction", "fee", "fee_currency", "index_price",
    "instrument_name", "iv", "liquidity", "mark_price", "order_id", "order_type", "price",
    "tick_direction", "timestamp", "trade_direction", "trade_id", "trade_seq",
]  # fmt: skip
DECIMAL_KEYS = ["amount", "fee", "index_price", "iv", "mark_price", "price"]
TIMEOUT = 5.0  # seconds for any single wait


# -- helpers -------------------------------------------------------------------


def dopp_url(sim: Simulator, path: str = BY_INSTRUMENT, **query: str) -> str:
    return sim.url("dopp") + path + ("?" + urlencode(query) if query else "")


@contextlib.contextmanager
def client(url: str) -> Iterator[ClientConnection]:
    with connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None) as ws:
        yield ws


def recv_trades(ws: ClientConnection) -> list[dict[str, Any]]:
    """Receive one frame and return its trades, checking the frame's shape."""
    frame = json.loads(ws.recv(timeout=TIMEOUT), parse_float=Decimal)
    assert isinstance(frame, list) and frame
    assert all(list(element) == ["last_trades"] for element in frame)
    return [trade for element in frame for trade in element["last_trades"]]


def assert_no_frame(ws: ClientConnection) -> None:
    """Assert that nothing was sent before a ping/pong round trip completed."""
    assert ws.ping().wait(TIMEOUT)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0)


def ids(trades: list[dict[str, Any]]) -> list[int]:
    return [int(trade["trade_id"]) for trade in trades]


def matches(trade: dict[str, Any], instrument_name: str = "", currency: str = "", wallet_address: str = "") -> bool:
    return (
        instrument_name in ("", trade["instrument_name"])
        and currency in ("", trade["base_currency"])
        and wallet_address.lower() in ("", trade["wallet_address"])
    )


def content(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in trade.items() if key != "timestamp"} for trade in trades]


def sim_thread_alive() -> bool:
    return any(thread.name == THREAD_NAME for thread in threading.enumerate())


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(seed=1, rate=0, history=50)
    with simulator:
        yield simulator
    assert not simulator.running
    assert not sim_thread_alive()


# -- snapshot and live frames ----------------------------------------------------


@pytest.mark.parametrize(("history", "snapshot_size", "expected"), [(50, 20, 20), (3, 20, 3), (50, 0, 0)])
def test_first_frame_is_snapshot_of_newest_trades_newest_first(history: int, snapshot_size: int, expected: int) -> None:
    """The first frame holds the up to snapshot_size newest trades, newest first."""
    with Simulator(rate=0, history=history, snapshot_size=snapshot_size) as sim, client(dopp_url(sim)) as ws:
        snapshot = recv_trades(ws)
        tape = sim.venue("dopp").trades()
    assert len(snapshot) == expected
    assert snapshot == list(reversed(tape[len(tape) - expected :]))


def test_live_frames_carry_each_new_trade_once_in_order(sim: Simulator) -> None:
    """After the snapshot every trade arrives once, oldest first, one frame per emit."""
    dopp = sim.venue("dopp")
    with client(dopp_url(sim)) as ws:
        emitted = dopp.emit(7)  # may race the snapshot: then it is in the snapshot, never twice
        received = list(reversed(recv_trades(ws)))
        while ids(received)[-1] < ids(emitted)[-1]:
            received += recv_trades(ws)
        first, second = dopp.emit(2), dopp.emit(3)
        assert recv_trades(ws) == first
        assert recv_trades(ws) == second
        assert_no_frame(ws)
    got = ids(received)
    assert got == list(range(got[0], got[0] + len(got)))  # no gap, no duplicate
    assert received[-7:] == emitted


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (BY_INSTRUMENT, {}),
        (BY_INSTRUMENT, {"instrument_name": "BTC-PERPETUAL"}),
        (BY_INSTRUMENT, {"instrument_name": "ETH-27MAR26-3500-C", "wallet_address": WALLETS[2]}),
        (BY_CURRENCY, {"currency": "ETH"}),
        (BY_CURRENCY, {"currency": "BTC", "wallet_address": WALLETS[1][:2] + WALLETS[1][2:].upper()}),
        (BY_CURRENCY, {"currency": "", "wallet_address": WALLETS[0]}),
        (BY_INSTRUMENT, {"instrument_name": "", "wallet_address": ""}),
    ],
)
def test_filters_select_snapshot_and_live_trades(sim: Simulator, path: str, query: dict[str, str]) -> None:
    """Snapshot and live frames hold exactly the trades matching the URL's filters."""
    dopp = sim.venue("dopp")
    with client(dopp_url(sim, path, **query)) as ws:
        snapshot = recv_trades(ws)
        expected_live = [trade for trade in dopp.emit(300) if matches(trade, **query)]
        live = recv_trades(ws)
    tape = dopp.trades(**query)
    before = tape[: len(tape) - len(expected_live)]
    assert snapshot == list(reversed(before[-20:]))
    assert all(matches(trade, **query) for trade in tape)
    assert expected_live and live == expected_live


@pytest.mark.parametrize(
    ("path", "query"), [(BY_INSTRUMENT, {"instrument_name": "DOGE-PERPETUAL"}), (BY_CURRENCY, {"currency": "SOL"})]
)
def test_unknown_instrument_or_currency_closes_1008(sim: Simulator, path: str, query: dict[str, str]) -> None:
    """An unknown filter is accepted at the handshake, then closed with 1008 "invalid filter"."""
    with client(dopp_url(sim, path, **query)) as ws, pytest.raises(ConnectionClosedError) as closed:
        ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "invalid filter")


@pytest.mark.parametrize("wallet", ["0x" + "ab" * 20, "test_wallet_address"])
def test_wallet_without_trades_gets_empty_snapshot_and_stays_open(sim: Simulator, wallet: str) -> None:
    """Any wallet is accepted; one with no trades gets an empty snapshot and then nothing."""
    with client(dopp_url(sim, BY_CURRENCY, wallet_address=wallet)) as ws:
        assert ws.recv(timeout=TIMEOUT) == '[{"last_trades": []}]'
        sim.venue("dopp").emit(50)
        assert_no_frame(ws)
        assert sim.connection_count("dopp") == 1


def test_client_text_frames_are_ignored(sim: Simulator) -> None:
    """Client messages neither close the connection nor change what it receives."""
    with client(dopp_url(sim)) as ws:
        recv_trades(ws)
        ws.send("hello")
        ws.send('{"method": "subscribe", "params": ["nonsense"]}')
        assert_no_frame(ws)
        emitted = sim.venue("dopp").emit(5)
        assert recv_trades(ws) == emitted


def test_rate_generates_trades_continuously() -> None:
    """With rate > 0 live frames arrive by themselves, without gaps."""
    with Simulator(rate=1000, history=0) as sim, client(dopp_url(sim)) as ws:
        received = list(reversed(recv_trades(ws)))
        while len(received) < 100:
            received += recv_trades(ws)
    got = ids(received)
    assert got == list(range(got[0], got[0] + len(got)))


class StuckConnection:
    """Stands in for a connection whose client stopped reading: send() never finishes."""

    remote_address = ("127.0.0.1", 1)

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.sending, self.aborted = asyncio.Event(), asyncio.Event()
        self.transport = SimpleNamespace(abort=self.aborted.set)

    async def send(self, frame: str) -> None:
        self.sent.append(frame)
        self.sending.set()
        await self.aborted.wait()
        raise ConnectionClosedError(None, None)

    def __aiter__(self) -> StuckConnection:
        return self

    async def __anext__(self) -> str:
        await self.aborted.wait()
        raise StopAsyncIteration


def test_outbox_never_blocks_the_producer_and_aborts_a_stuck_client() -> None:
    """put() never waits; past its limit a client that stopped reading is aborted."""

    async def scenario() -> StuckConnection:
        connection = StuckConnection()
        outbox = Outbox(connection, limit=3)  # type: ignore[arg-type]
        pump = asyncio.create_task(outbox.pump())
        outbox.put("f0")
        await asyncio.wait_for(connection.sending.wait(), TIMEOUT)  # pump is stuck sending f0
        for frame in ("f1", "f2", "f3"):
            outbox.put(frame)
        assert not connection.aborted.is_set()
        outbox.put("f4")  # one more than the limit
        assert connection.aborted.is_set()
        await asyncio.wait_for(pump, TIMEOUT)
        return connection

    assert asyncio.run(scenario()).sent == ["f0"]


# -- the wire format -------------------------------------------------------------


def test_numbers_on_the_wire_are_exact_decimal_literals(sim: Simulator) -> None:
    """Every Decimal is written as a JSON number spelling exactly its digits."""
    ws = websocket.create_connection(dopp_url(sim), timeout=TIMEOUT)
    try:
        raw = ws.recv()
    finally:
        ws.close()
    tape = list(reversed(sim.venue("dopp").trades()[-20:]))
    parsed = [trade for element in json.loads(raw, parse_float=Decimal) for trade in element["last_trades"]]
    literals = [str(trade[key]) for trade in tape for key in DECIMAL_KEYS]
    assert any(re.fullmatch(r"\d+\.\d*0", literal) for literal in literals)  # trailing zeros occur
    for wire, expected in zip(parsed, tape, strict=True):
        assert list(wire) == KEYS
        for key in DECIMAL_KEYS:
            assert f'"{key}": {expected[key]}' in raw
            assert str(wire[key]) == str(expected[key])
    assert not re.search(r": -?[\d.]+[eE]", raw)  # no exponent notation
    assert not re.search(f'"(?:{"|".join(DECIMAL_KEYS)})": "', raw)  # numbers are never strings


@pytest.mark.parametrize(
    "literal", ["0.0215", "90125.50", "-0.001", "0.00000001", "1.0", "123456789012345678901234.5678"]
)
def test_encoder_round_trips_decimals_digit_for_digit(literal: str) -> None:
    """dumps() then json.loads(parse_float=Decimal) gives back the identical Decimal."""
    value = Decimal(literal)
    text = dumps({"v": [value]})
    assert text == f'{{"v": [{literal}]}}'
    assert json.loads(text, parse_float=Decimal)["v"][0].as_tuple() == value.as_tuple()


def test_encoder_matches_json_dumps_and_refuses_floats() -> None:
    """Without Decimals the output equals json.dumps; floats, NaN and odd keys are refused."""
    tree = {"s": 'é "q"\n', "n": None, "t": True, "f": False, "i": -12, "l": [1, [2, {}], []], "e": {}}
    assert dumps(tree) == json.dumps(tree)
    assert dumps([Raw('{"x": 1.50}')]) == '[{"x": 1.50}]'
    assert dumps(Decimal("1E+3")) == "1000"
    for bad, error in [(1.5, TypeError), (Decimal("NaN"), ValueError), ({1: 2}, TypeError), ({"x"}, TypeError)]:
        with pytest.raises(error):
            dumps(bad)


def test_tape_trades_follow_the_spec() -> None:
    """Every generated trade has the spec's keys, types and cross-field rules."""
    trades = Simulator(seed=3, rate=0, history=3000).venue("dopp").trades()  # never started: no thread
    assert not sim_thread_alive()
    assert ids(trades) == list(range(771200, 771200 + 3000))
    assert {trade["instrument_name"] for trade in trades} == set(INSTRUMENTS)
    last: dict[str, dict[str, Any]] = {}
    for previous, trade in zip([None, *trades], trades, strict=False):
        assert list(trade) == KEYS and all(isinstance(trade[key], Decimal) for key in DECIMAL_KEYS)
        name, base = trade["instrument_name"], trade["base_currency"]
        perpetual = name.endswith("-PERPETUAL")
        assert name.split("-")[0] == base and base in CURRENCIES
        assert re.fullmatch(r"0x[0-9a-f]{40}", trade["wallet_address"]) and trade["wallet_address"] in WALLETS
        step = {"BTC": Decimal("0.001"), "ETH": Decimal("0.01")}[base] if perpetual else Decimal("0.1")
        tick = {"BTC": Decimal("0.5"), "ETH": Decimal("0.05")}[base] if perpetual else Decimal("0.0001")
        assert trade["amount"] > 0 and trade["amount"] % step == 0 and trade["price"] % tick == 0
        assert trade["fee_currency"] == ("USDC" if perpetual else base)
        assert (trade["iv"] == 0) == perpetual
        assert trade["direction"] in ("buy", "sell") and trade["liquidity"] in ("M", "T")
        assert trade["order_type"] == "limit" or trade["liquidity"] == "T"
        assert (trade["trade_direction"] == trade["direction"]) == (trade["liquidity"] == "T")
        if previous is not None:
            assert trade["order_id"] > previous["order_id"] and trade["timestamp"] >= previous["timestamp"]
        before = last.get(name)
        assert trade["trade_seq"] == (before["trade_seq"] + 1 if before else 1)
        assert trade["tick_direction"] == expected_tick(before, trade["price"])
        last[name] = trade
    assert trades[-1]["timestamp"] > 10**12  # milliseconds


def expected_tick(before: dict[str, Any] | None, price: Decimal) -> int:
    if before is None or price > before["price"]:
        return 0
    if price < before["price"]:
        return 2
    return 1 if before["tick_direction"] in (0, 1) else 3


def test_same_seed_same_tape_different_seed_different_tape() -> None:
    """The tape's content is a function of the seed alone (timestamps aside)."""
    with Simulator(seed=7, rate=0, history=20) as one, Simulator(seed=7, rate=0, history=20) as two:
        assert content(one.venue("dopp").emit(200)) == content(two.venue("dopp").emit(200))
        assert content(one.venue("dopp").trades()) == content(two.venue("dopp").trades())
    other = Simulator(seed=8, rate=0, history=220).venue("dopp").trades()
    assert content(other) != content(one.venue("dopp").trades())


# -- HTTP answers ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/v1/public/ws/get_order_book", BY_INSTRUMENT + "/"])
def test_unknown_path_is_404(sim: Simulator, path: str) -> None:
    """A path the venue does not serve is refused with HTTP 404."""
    with pytest.raises(InvalidStatus) as refused, client(sim.url("dopp") + path):
        pass
    assert refused.value.response.status_code == 404
    assert sim.handshakes("dopp") == 1


def test_too_many_connects_get_429_with_retry_after() -> None:
    """Past max_connects handshakes per window the handshake gets 429 and a Retry-After."""
    with Simulator(rate=0, max_connects=3, connect_window=30.0) as sim:
        for _ in range(3):
            with client(dopp_url(sim)) as ws:
                recv_trades(ws)
        with pytest.raises(InvalidStatus) as refused, client(dopp_url(sim)):
            pass
        assert sim.handshakes("dopp") == 4
    assert refused.value.response.status_code == 429
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 30


def test_rate_limit_can_be_disabled() -> None:
    """max_connects=None admits any number of handshakes."""
    with Simulator(rate=0, max_connects=None) as sim:
        for _ in range(15):
            with client(dopp_url(sim)) as ws:
                recv_trades(ws)
        assert sim.handshakes("dopp") == 15


# -- lifecycle and faults --------------------------------------------------------


def test_restart_rebinds_same_port_and_continues_the_tape(sim: Simulator) -> None:
    """stop() closes with 1001 and ends the thread; start() reuses the port and the ids go on."""
    port, dopp = sim.port("dopp"), sim.venue("dopp")
    with client(dopp_url(sim)) as ws:
        recv_trades(ws)
        last = dopp.emit(3)[-1]
        assert recv_trades(ws)[-1] == last
        sim.stop()
        sim.stop()  # idempotent
        with pytest.raises(ConnectionClosedOK) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert not sim.running and not sim_thread_alive()
    sim.start()
    assert sim.port("dopp") == port and sim.url("dopp") == f"ws://127.0.0.1:{port}"
    with client(dopp_url(sim)) as ws:
        assert recv_trades(ws)[0] == last
        (new,) = dopp.emit(1)
        assert recv_trades(ws) == [new]
    assert int(new["trade_id"]) == int(last["trade_id"]) + 1
    assert new["order_id"] > last["order_id"]


@pytest.mark.parametrize("code", [1011, 4000])
def test_drop_connections_with_code_sends_that_close_code(sim: Simulator, code: int) -> None:
    """drop_connections(code=...) closes every client with that code and reason."""
    with client(dopp_url(sim)) as one, client(dopp_url(sim, BY_CURRENCY, currency="BTC")) as two:
        assert sim.wait_for_connections(2, timeout=TIMEOUT)
        assert sim.drop_connections("dopp", code=code, reason="going down") == 2
        for ws in (one, two):
            recv_trades(ws)  # the snapshot was sent before the close frame
            with pytest.raises(ConnectionClosedError) as closed:
                ws.recv(timeout=TIMEOUT)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, "going down")
    with client(dopp_url(sim)) as ws:  # the server itself keeps serving
        recv_trades(ws)


def test_drop_connections_without_code_is_abnormal_closure(sim: Simulator) -> None:
    """drop_connections(code=None) aborts TCP, so the client sees 1006 with no close frame."""
    with client(dopp_url(sim)) as ws:
        recv_trades(ws)
        assert sim.drop_connections(code=None) == 1
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is None and ws.close_code == 1006


def test_drop_connections_by_port_drops_only_that_client(sim: Simulator) -> None:
    """drop_connections(port=...) cuts the one connection from that client port; the
    other client of the same venue keeps streaming."""
    with client(dopp_url(sim)) as one, client(dopp_url(sim)) as two:
        recv_trades(one)
        recv_trades(two)
        port = one.local_address[1]
        assert sim.drop_connections("dopp", port=port) == 1
        with pytest.raises(ConnectionClosedError) as closed:
            one.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is None  # aborted: 1006
        sim.venue("dopp").emit(1)
        assert len(recv_trades(two)) == 1


def test_wait_for_connections_counts_completed_handshakes(sim: Simulator) -> None:
    """wait_for_connections is False on timeout and True once enough clients are in."""
    assert not sim.wait_for_connections(1, timeout=0.05)
    assert sim.connection_count("dopp") == 0
    with client(dopp_url(sim)):
        assert sim.wait_for_connections(1, timeout=TIMEOUT)
        assert sim.connection_count("dopp") == 1


def test_start_fails_clearly_when_the_port_is_taken() -> None:
    """A port that cannot be bound makes start() raise SimulatorError, leaving no thread."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        sim = Simulator(ports={"dopp": taken.getsockname()[1]})
        with pytest.raises(SimulatorError, match="cannot listen for venue 'dopp'"):
            sim.start()
    assert not sim.running and not sim_thread_alive()


def test_unknown_venue_names_are_rejected() -> None:
    """Only registered venues can be served or looked up."""
    with pytest.raises(ValueError, match="unknown venue"):
        Simulator(venues=["nope"])
    with pytest.raises(ValueError, match="unknown venue"):
        Simulator(ports={"nope": 1234})
    with pytest.raises(KeyError):
        Simulator().venue("nope")
    with pytest.raises(SimulatorError, match="call start"):
        Simulator().url("dopp")


def test_inject_sends_raw_frames_in_order_with_trades() -> None:
    """inject() queues a frame as is to every connection, between the venue's own frames."""
    with Simulator(seed=1, rate=0) as sim:
        ws = websocket.create_connection(sim.url("dopp") + "/v1/public/ws/get_user_trades_by_instrument", timeout=5)
        try:
            ws.recv()  # snapshot
            assert sim.venue("dopp").inject("not json") == 1
            sim.venue("dopp").emit(1)
            assert sim.venue("dopp").inject(b"\xff\xfe") == 1
            assert ws.recv() == "not json"
            assert '"last_trades"' in ws.recv()
            assert ws.recv() == b"\xff\xfe"
        finally:
            ws.close()
