"""Self-tests of the simulator's SynFutures venue over real loopback sockets.

The peer is websockets' sync client (close codes, receive timeouts) and, for
the handshake headers, websocket-client. Ports are chosen by the OS; waits are
on replies with timeouts, never on sleeps. The text ``ping`` is the barrier
that proves a frame was *not* sent: its ``pong`` goes through the same ordered
outbox, and ``emit()`` queues every window before it returns.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import websocket
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tradefeed.simulator import Simulator, VENUES
from tradefeed.simulator import synfutures
from tradefeed.simulator.synfutures import CHAIN_ID, PAIRS, PATH, PERPETUAL, WAD_FIELDS, SynfuturesVenue

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0  # seconds for any single wait
BTC = "0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295"
ETH = "0x44b60b6af9b615a5cf2d366e2143582557cff711_4294967295"
KEYS = [
    "id", "instrumentAddress", "expiry", "size", "balance", "price", "tradeFee", "protocolFee", "timestamp",
    "txHash", "type", "symbol", "baseToken", "quoteToken", "typeString", "side", "event", "fairPrice",
    "markPrice", "trader",
]  # fmt: skip
STRING_KEYS = [key for key in KEYS if key not in ("expiry", "timestamp", "baseToken", "quoteToken")]


# -- helpers -------------------------------------------------------------------


def request(method: str = "SUBSCRIBE", pairs: Any = (BTC,), request_id: Any = 1, **params: Any) -> str:
    """A request frame; ``request_id`` and ``params`` override the defaults, ``...`` drops a key."""
    body = {"chainId": CHAIN_ID, "type": "trades", "pairs": list(pairs) if isinstance(pairs, tuple) else pairs}
    body.update(params)
    frame = {"id": request_id, "method": method, "params": {k: v for k, v in body.items() if v is not ...}}
    return json.dumps({k: v for k, v in frame.items() if v is not ...})


def make_sim(**options: Any) -> Simulator:
    return Simulator(seed=1, rate=0, history=60, venues=["synfutures"], options={"synfutures": options})


@contextlib.contextmanager
def client(sim: Simulator) -> Iterator[ClientConnection]:
    url = sim.url("synfutures") + PATH
    with connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None) as ws:
        yield ws


def venue_of(sim: Simulator) -> SynfuturesVenue:
    venue = sim.venue("synfutures")
    assert isinstance(venue, SynfuturesVenue)
    return venue


def recv(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=TIMEOUT), parse_float=Decimal)


def subscribe(ws: ClientConnection, *pairs: str, request_id: int = 1, **params: Any) -> None:
    ws.send(request("SUBSCRIBE", pairs, request_id, **params))
    assert recv(ws) == {"id": request_id, "result": "success"}


def recv_window(ws: ClientConnection, pair: str) -> list[dict[str, Any]]:
    """Receive one stream frame for ``pair`` and return its trades, checking the envelope."""
    frame = recv(ws)
    instrument, expiry = pair.split("_")
    assert list(frame) == ["chainId", "instrument", "expiry", "stream", "data"]
    assert (frame["chainId"], frame["instrument"].lower(), frame["expiry"]) == (CHAIN_ID, instrument, int(expiry))
    assert frame["stream"] == "trades" and isinstance(frame["data"], list)
    return frame["data"]


def assert_no_frame(ws: ClientConnection) -> None:
    """Assert that nothing was queued before the answer to a text ping."""
    ws.send("ping")
    assert ws.recv(timeout=TIMEOUT) == "pong"


def newest(trades: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return list(reversed(trades[-n:]))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with make_sim() as simulator:
        yield simulator


# -- subscriptions and windows ---------------------------------------------------


def test_subscribe_acks_then_sends_one_window_per_pair_newest_first(sim: Simulator) -> None:
    """After the ack, each pair gets one frame with its tradesLimit newest trades, newest first."""
    venue = venue_of(sim)
    with client(sim) as ws:
        subscribe(ws, BTC, ETH, tradesLimit=5)
        assert recv_window(ws, BTC) == newest(venue.trades(BTC), 5)
        assert recv_window(ws, ETH) == newest(venue.trades(ETH), 5)
        subscribe(ws, ETH.upper().replace("0X", "0x"), ETH, request_id=2)  # any case, duplicates once, default 10
        assert recv_window(ws, ETH) == newest(venue.trades(ETH), 10)
        assert_no_frame(ws)


def test_each_new_trade_pushes_that_trade_alone_by_default(sim: Simulator) -> None:
    """Resolved 2026-12-06: after the subscription's window, each new trade of a subscribed
    pair is pushed alone (data: [trade]), in order."""
    venue = venue_of(sim)
    with client(sim) as ws:
        subscribe(ws, BTC, tradesLimit=3)
        recv_window(ws, BTC)
        emitted = venue.emit(40)
        new = [trade for trade in emitted if trade["instrumentAddress"] + f"_{PERPETUAL}" == BTC]
        assert len(new) >= 3
        for trade in new:
            assert recv_window(ws, BTC) == [trade]


def test_window_mode_pushes_an_overlapping_window_with_each_new_trade_first() -> None:
    """push_mode="window": every new trade of a subscribed pair pushes that pair's newest
    tradesLimit trades, new one first."""
    with make_sim(push_mode="window") as sim:
        _overlapping_windows(sim)


def test_plain_number_form_sends_plain_decimals_integer_values_without_a_dot() -> None:
    """number_form="plain": every money field is the exact value as a plain decimal, integer
    values without a dot (the contested form of synfutures.md row 5)."""
    from tradefeed.simulator.synfutures import WAD_FIELDS

    with make_sim(number_form="plain") as sim:
        tape = venue_of(sim).trades(exact=True)
    assert any("." not in t["price"] for t in tape) and any("." not in t["size"].lstrip("-") for t in tape)
    for trade in tape:
        for field in WAD_FIELDS:
            assert Decimal(trade[field]) == trade["exact"][field], field
            assert "e" not in trade[field].lower()
            if trade["exact"][field] == trade["exact"][field].to_integral_value():
                assert "." not in trade[field]


def test_ping_clients_sends_a_text_ping_and_counts_pongs(sim: Simulator) -> None:
    venue = venue_of(sim)
    with client(sim) as ws:
        assert venue.ping_clients() == 1
        assert ws.recv(timeout=TIMEOUT) == "ping"
        ws.send("pong")
        ws.send("ping")  # a round trip: once it is answered, the pong before it was read
        assert ws.recv(timeout=TIMEOUT) == "pong"
    assert venue.pongs == 1


def _overlapping_windows(sim: Simulator) -> None:
    venue = venue_of(sim)
    with client(sim) as ws:
        subscribe(ws, BTC, tradesLimit=3)
        recv_window(ws, BTC)
        emitted = venue.emit(40)
        tape = venue.trades(BTC)
        new = [trade for trade in emitted if trade["instrumentAddress"] + f"_{PERPETUAL}" == BTC]
        assert len(new) >= 3 and new == tape[-len(new) :]
        for position in range(len(tape) - len(new), len(tape)):
            window = recv_window(ws, BTC)
            assert window == newest(tape[: position + 1], 3)
        assert_no_frame(ws)  # nothing for the pairs not subscribed


def test_wad_strings_decode_to_the_exact_tape_values(sim: Simulator) -> None:
    """Money fields are 18-decimal integer strings equal to the tape's exact Decimals."""
    venue = venue_of(sim)
    trades = venue.trades(exact=True)
    assert {trade["event"] for trade in trades} == {"trade", "sweep"}
    assert {trade["symbol"] for trade in trades} == set(PAIRS.values())
    for trade in trades:
        exact = trade.pop("exact")
        assert list(trade) == KEYS
        assert all(isinstance(trade[key], str) for key in STRING_KEYS)
        assert trade["type"] == trade["typeString"] == "Market" and trade["side"] in ("long", "short")
        assert abs(trade["timestamp"] - time.time()) < 600  # seconds, not milliseconds
        for key in WAD_FIELDS:
            assert trade[key].lstrip("-").isdigit()
            assert Decimal(int(trade[key])).scaleb(-18) == exact[key]
            assert synfutures.from_wad(trade[key]) == exact[key]
        assert (exact["size"] < 0) == (trade["side"] == "short")
        assert exact["tradeFee"] == exact["price"] * abs(exact["size"]) * Decimal("0.0003")
        assert exact["protocolFee"] == exact["tradeFee"] / 10
    assert len({trade["id"] for trade in trades}) == len(trades)
    assert synfutures.to_wad(Decimal("90125.5")) == "90125500000000000000000"
    with pytest.raises(ValueError):
        synfutures.to_wad(Decimal("1E-19"))


def test_signed_size_and_trader_are_options() -> None:
    """signed_size=False sends every size positive; include_trader=False omits trader."""
    venue = SynfuturesVenue(seed=1, rate=0, history=40, signed_size=False, include_trader=False)
    trades = venue.trades()
    assert any(trade["side"] == "short" for trade in trades)
    assert all(not trade["size"].startswith("-") and "trader" not in trade for trade in trades)


def test_unsubscribe_stops_frames_for_that_pair_only(sim: Simulator) -> None:
    """After the UNSUBSCRIBE ack only the still-subscribed pairs get frames."""
    venue = venue_of(sim)
    with client(sim) as ws:
        subscribe(ws, BTC, ETH, tradesLimit=1)
        recv_window(ws, BTC)
        recv_window(ws, ETH)
        ws.send(request("UNSUBSCRIBE", (BTC,), 7, tradesLimit=50))
        assert recv(ws) == {"id": 7, "result": "success"}
        emitted = [trade for trade in venue.emit(30) if trade["instrumentAddress"] + f"_{PERPETUAL}" == ETH]
        assert emitted
        for trade in emitted:
            assert recv_window(ws, ETH) == [trade]
        assert_no_frame(ws)


@pytest.mark.parametrize(
    ("frame", "result"),
    [
        (request(pairs=[]), "error: invalid pairs"),
        (request(pairs=BTC), "error: invalid pairs"),
        (request(pairs=[BTC, 5]), "error: invalid pairs"),
        (request(pairs=[BTC, "0x" + "ab" * 20 + "_4294967295"]), "error: invalid pairs"),
        (request(pairs=["0x73ada1ea346cc3908f41cf67a040f0acd7808be0_1767225600"]), "error: invalid pairs"),
        (request(pairs=...), "error: invalid pairs"),
        (request(type="kline"), "error: invalid pairs"),
        (request(chainId=1), "error: invalid pairs"),
        (request(chainId="143"), "error: invalid pairs"),
        (request(chainId=...), "error: invalid pairs"),
        (json.dumps({"id": 1, "method": "SUBSCRIBE"}), "error: invalid pairs"),
        (request(pairs=[BTC] * 101), "error: too many pairs"),
        (request("UNSUBSCRIBE", pairs=["nope"]), "error: invalid pairs"),
        (request("UNSUBSCRIBE", pairs=[ETH] * 101), "error: too many pairs"),
        (request("subscribe"), "error: unknown method"),
        (request("LIST_SUBSCRIPTIONS"), "error: unknown method"),
        (json.dumps({"id": 1}), "error: unknown method"),
    ],
)
def test_failed_requests_get_error_acks_and_change_nothing(sim: Simulator, frame: str, result: str) -> None:
    """A refused request is acked {"id", "result": "error: ..."} and subscribes nothing."""
    with client(sim) as ws:
        ws.send(frame)
        assert recv(ws) == {"id": 1, "result": result}
        venue_of(sim).emit(20)
        assert_no_frame(ws)


def test_exactly_100_pairs_are_accepted(sim: Simulator) -> None:
    """100 entries (duplicates included) are within the limit; each distinct pair gets one window."""
    with client(sim) as ws:
        subscribe(ws, *([BTC] * 99 + [ETH]), tradesLimit=2)
        recv_window(ws, BTC)
        recv_window(ws, ETH)
        assert_no_frame(ws)


@pytest.mark.parametrize(
    "frame",
    ["{not json", "[1, 2]", '"SUBSCRIBE"', "null", request(request_id=None), request(request_id="1"),
     request(request_id=True), request(request_id=1.0), request("NOPE", request_id=...), "PING", "pong", b"ping"],
)  # fmt: skip
def test_malformed_or_unackable_frames_are_ignored(sim: Simulator, frame: str | bytes) -> None:
    """Bad JSON, non-objects and requests without an integer id get no reply and keep the connection."""
    with client(sim) as ws:
        ws.send(frame)
        assert_no_frame(ws)
        subscribe(ws, BTC)  # still open and working
        recv_window(ws, BTC)


def test_text_ping_gets_text_pong(sim: Simulator) -> None:
    """The bare text "ping" is answered with the text "pong", as often as sent."""
    with client(sim) as ws:
        for _ in range(3):
            ws.send("ping")
            assert ws.recv(timeout=TIMEOUT) == "pong"


@pytest.mark.parametrize(("limit", "expected"), [(0, 1), (-5, 1), (1, 1), (100, 100), (1000, 100), ("5", 10), (None, 10)])
def test_trades_limit_is_clamped_to_1_through_100(limit: Any, expected: int) -> None:
    """tradesLimit outside 1..100 is clamped, a non-integer means the default 10, with a success ack."""
    with Simulator(seed=1, rate=0, history=400, venues=["synfutures"]) as sim, client(sim) as ws:
        tape = venue_of(sim).trades(BTC)
        assert len(tape) > 100
        subscribe(ws, BTC, tradesLimit=limit)
        assert recv_window(ws, BTC) == newest(tape, expected)
        assert_no_frame(ws)


def test_object_form_sends_one_trade_per_frame() -> None:
    """With data_form="object" the window goes trade by trade, oldest first, then each new trade alone."""
    with make_sim(data_form="object") as sim, client(sim) as ws:
        venue = venue_of(sim)
        subscribe(ws, BTC, tradesLimit=3)
        before = venue.trades(BTC)
        for trade in reversed(newest(before, 3)):
            frame = recv(ws)
            assert frame["stream"] == "trades" and frame["data"] == trade
        venue.emit(30)
        new = venue.trades(BTC)[len(before) :]
        assert new
        for trade in new:
            assert recv(ws)["data"] == trade
        assert_no_frame(ws)


def test_mixed_case_envelope_keeps_items_lowercase() -> None:
    """mixed_case_envelope=True writes the envelope instrument in mixed case only."""
    with make_sim(mixed_case_envelope=True) as sim, client(sim) as ws:
        subscribe(ws, BTC, tradesLimit=2)
        frame = recv(ws)
        instrument = BTC.split("_")[0]
        assert frame["instrument"] != instrument and frame["instrument"].lower() == instrument
        assert frame["instrument"].startswith("0x")
        assert {trade["instrumentAddress"] for trade in frame["data"]} == {instrument}


# -- connection lifecycle ---------------------------------------------------------


def test_idle_connection_is_closed_1000_idle_timeout() -> None:
    """Text pings keep a connection open; without client messages it closes with 1000 "idle timeout"."""
    idle = 0.4
    with make_sim(idle_timeout=idle) as sim, client(sim) as ws:
        subscribe(ws, BTC)
        recv_window(ws, BTC)
        started = time.monotonic()
        while time.monotonic() - started < 2 * idle:  # messages every idle/2 keep it alive
            with pytest.raises(TimeoutError):
                ws.recv(timeout=idle / 2)
            assert_no_frame(ws)
        quiet = time.monotonic()
        assert ws.ping().wait(TIMEOUT)  # a protocol-level ping is not a client message
        with pytest.raises(ConnectionClosedOK) as closed:
            ws.recv(timeout=TIMEOUT)
        assert time.monotonic() - quiet >= idle * 0.9
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle timeout")


def test_handshake_accepts_any_headers_and_other_paths_get_404(sim: Simulator) -> None:
    """Public endpoint: any headers work on /v4/public/ws; another path is refused with 404."""
    base = sim.url("synfutures")
    ws = websocket.create_connection(
        base + PATH, timeout=TIMEOUT, origin="https://api.monday.trade", header=["User-Agent: Mozilla/5.0 (X11)"]
    )
    try:
        ws.send(request(request_id=42))
        assert json.loads(ws.recv()) == {"id": 42, "result": "success"}
    finally:
        ws.close()
    with pytest.raises(InvalidStatus) as refused:
        connect(base + "/v4/public/wss", proxy=None, open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 404


def test_shutdown_closes_1001_and_inject_reaches_clients() -> None:
    """inject() frames reach subscribers in order; stop() closes with 1001."""
    sim = make_sim().start()
    try:
        with client(sim) as ws:
            assert sim.wait_for_connections(1, venue="synfutures", timeout=TIMEOUT)
            assert venue_of(sim).inject('{"id": 9, "result": "error: custom"}') == 1
            assert recv(ws) == {"id": 9, "result": "error: custom"}
            sim.stop()
            with pytest.raises(ConnectionClosedOK) as closed:
                ws.recv(timeout=TIMEOUT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        sim.stop()


def test_fault_while_handling_a_message_closes_1011(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while handling a client message closes that connection with 1011."""

    def broken(self: SynfuturesVenue, session: Any, message: str | bytes) -> None:
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(SynfuturesVenue, "_on_message", broken)
    with make_sim() as sim, client(sim) as ws:
        ws.send("ping")
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


# -- construction and the tape ---------------------------------------------------------


def test_tape_content_depends_only_on_the_seed() -> None:
    """Same seed, same trades (timestamps aside) however emit() is chunked; another seed differs."""

    def content(venue: SynfuturesVenue) -> list[dict[str, Any]]:
        return [{k: v for k, v in trade.items() if k != "timestamp"} for trade in venue.trades(exact=True)]

    one, two, other = (SynfuturesVenue(seed=seed, rate=0, history=30) for seed in (7, 7, 8))
    one.emit(3)
    one.emit(4)
    two.emit(7)
    other.emit(7)
    assert content(one) == content(two) and len(content(one)) == 37
    assert content(one) != content(other)
    timestamps = [trade["timestamp"] for trade in one.trades()]
    assert timestamps == sorted(timestamps)


def test_tape_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the newest TAPE_LIMIT trades are kept."""
    monkeypatch.setattr(synfutures, "TAPE_LIMIT", 25)
    venue = SynfuturesVenue(seed=1, rate=0, history=10)
    emitted = venue.emit(40)
    assert venue.trades() == emitted[-25:]


def test_options_are_checked() -> None:
    """Unknown options raise TypeError, bad values ValueError; the venue is registered."""
    assert VENUES["synfutures"] is SynfuturesVenue
    with pytest.raises(TypeError):
        Simulator(options={"synfutures": {"bogus": 1}})
    with pytest.raises(ValueError):
        SynfuturesVenue(data_form="list")
    with pytest.raises(ValueError):
        SynfuturesVenue(idle_timeout=0)
    with pytest.raises(ValueError, match="unknown pair"):
        SynfuturesVenue(history=0).trades("BTC/USDC")
