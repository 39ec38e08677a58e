"""Self-tests of the simulator's fault-injection API and its admin endpoint.

Peers are real loopback clients: websockets' sync client (HTTP status of a
refused handshake, pings, bounded receives), websocket-client where its own
ping timeout is the point, and ``requests`` for the admin endpoint. Waits are
bounded receives and events. The barrier that proves a frame was *not* sent
is a frame that the venue queues in order after it: an application ping's
answer or a request's reply (replies and data share one ordered outbox), or
an injected marker (Dopp answers nothing). The one timed negative wait is a
protocol ping that must stay unanswered.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import websocket
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tradefeed.simulator import Simulator, SimulatorError
from tradefeed.simulator.admin import add_admin_arguments
from tradefeed.simulator.dopp import BY_CURRENCY, DoppVenue
from tradefeed.simulator.replay import RecordedFeed, ReplayVenue
from tradefeed.simulator.server import THREAD_NAME
from tradefeed.simulator.synfutures import CHAIN_ID, PAIRS
from tradefeed.simulator.synfutures import PATH as SYNFUTURES_PATH
from tradefeed.simulator.synthetix import INFO_PATH

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0  # seconds for any single wait
UNANSWERED = 0.5  # seconds a protocol ping waits for the pong that must not come
MARKER = "--marker--"  # injected after frames that must not have been sent


# -- peers -------------------------------------------------------------------------


@dataclass
class Peer:
    """A subscribed client of one venue, and how to read that venue's frames."""

    ws: ClientConnection
    #: a request that gets a reply (never a pong); None for Dopp, which answers nothing
    request: str | None
    is_reply: Callable[[str], bool]
    #: the venue's application-level ping and how its answer looks
    app_ping: str | None
    is_pong: Callable[[str], bool]
    is_data: Callable[[str], bool]

    def recv(self) -> str:
        frame = self.ws.recv(timeout=TIMEOUT)
        assert isinstance(frame, str)
        return frame

    def until(self, done: Callable[[str], bool]) -> list[str]:
        """Receive up to and including the first frame for which ``done`` holds; return those before it."""
        frames = []
        while not done(frame := self.recv()):
            frames.append(frame)
        return frames

    def data_until_pong(self) -> list[str]:
        """Send the app ping and return the frames that came before its answer (all data)."""
        assert self.app_ping is not None
        self.ws.send(self.app_ping)
        frames = self.until(self.is_pong)
        assert all(self.is_data(frame) for frame in frames), frames
        return frames


def _loads(frame: str) -> Any:
    try:
        return json.loads(frame)
    except ValueError:
        return None


def _has(key: str, *values: Any) -> Callable[[str], bool]:
    def check(frame: str) -> bool:
        doc = _loads(frame)
        return isinstance(doc, dict) and doc.get(key) in values

    return check


def _token(sim: Simulator) -> str:
    key, secret = sim.credentials("rails")
    with requests.Session() as session:
        session.trust_env = False  # no proxy for loopback
        headers = {"X-Api-Key": key, "X-Api-Secret": secret}
        response = session.post(sim.auth_url("rails"), headers=headers, timeout=TIMEOUT)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _connect(url: str, **kwargs: Any) -> ClientConnection:
    ws: ClientConnection = connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None,
                                   ping_interval=None, **kwargs)  # fmt: skip
    return ws


def dopp_of(sim: Simulator) -> DoppVenue:
    dopp = sim.venue("dopp")
    assert isinstance(dopp, DoppVenue)
    return dopp


@contextlib.contextmanager
def peer(sim: Simulator, venue: str) -> Iterator[Peer]:
    """A client of ``venue`` subscribed to every market, its subscription answered and
    (Dopp) its snapshot read, so that what follows is live data only."""
    base = sim.url(venue)
    if venue == "dopp":
        with _connect(base + BY_CURRENCY) as ws:
            ws.recv(timeout=TIMEOUT)  # the snapshot
            yield Peer(ws, None, lambda f: False, None, lambda f: False, lambda f: f.startswith('[{"last_trades"'))
    elif venue == "synfutures":
        params = {"type": "trades", "chainId": CHAIN_ID, "pairs": list(PAIRS), "tradesLimit": 2}
        subscribe = json.dumps({"id": 1, "method": "SUBSCRIBE", "params": params})
        unknown = json.dumps({"id": 1, "method": "LIST"})  # a reply without windows
        with _connect(base + SYNFUTURES_PATH) as ws:
            p = Peer(ws, unknown, _has("id", 1), "ping", lambda f: f == "pong", _has("stream", "trades"))
            ws.send(subscribe)
            assert p.is_reply(p.recv())
            p.data_until_pong()  # one window per pair
            yield p
    elif venue == "synthetix":
        subscribe = json.dumps({"id": "s", "method": "subscribe", "params": {"type": "trades"}})
        with _connect(base + INFO_PATH, user_agent_header="tradefeed-tests") as ws:
            p = Peer(ws, subscribe, _has("id", "s"), '{"type": "ping", "timestamp": 7}', _has("type", "pong"),
                     _has("channel", "trade"))  # fmt: skip
            ws.send(subscribe)
            assert p.is_reply(p.recv())
            yield p
    else:
        assert venue == "rails"
        url = base + "/?market=ALL&subscriptions=publicTrades"
        subscribe = json.dumps({"message": "subscribe", "content": {"subscriptions": ["publicTrades"]}})
        with _connect(url, subprotocols=[Subprotocol("authorization#" + _token(sim))]) as ws:
            yield Peer(ws, subscribe, _has("resultType", "subscribed"), '{"message": "ping", "content": {}}',
                       _has("resultType", "pong"), _has("resultType", "publicCompletedOrdersDelta"))  # fmt: skip


def dopp_trades(frame: str) -> list[dict[str, Any]]:
    doc = json.loads(frame)
    assert isinstance(doc, list) and len(doc) == 1
    return list(doc[0]["last_trades"])


def ids(trades: list[dict[str, Any]], key: str = "trade_id") -> list[str]:
    return [str(trade[key]) for trade in trades]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=1, rate=0, history=20) as simulator:
        yield simulator


# -- refused handshakes ----------------------------------------------------------------


@pytest.mark.parametrize(("status", "retry_after", "header"), [(429, 3, "3"), (503, 0, "0"), (503, None, None),
                                                               (500, 7, None), (401, None, None)])  # fmt: skip
def test_refused_handshakes_carry_the_status_and_retry_after_then_the_next_succeeds(
    sim: Simulator, status: int, retry_after: int | None, header: str | None
) -> None:
    """The next n handshakes get the status (Retry-After only for 429/503 when set); the (n+1)th connects."""
    assert sim.refuse_handshakes(2, status=status, retry_after=retry_after, venue="dopp") == 2
    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            _connect(sim.url("dopp") + BY_CURRENCY)
        assert refused.value.response.status_code == status
        assert refused.value.response.headers.get("Retry-After") == header
    with peer(sim, "dopp"):
        assert sim.connection_count("dopp") == 1
    assert sim.handshakes("dopp") == 3
    assert sim.fault_status("dopp")["refusals"] == 0


def test_refusals_of_every_venue_queue_up_and_clear_faults_cancels_them(sim: Simulator) -> None:
    """venue=None gives each venue its own n refusals; calls add up; clear_faults() drops the rest."""
    assert sim.refuse_handshakes(1) == len(sim.venue_names)
    assert sim.refuse_handshakes(2, status=503, venue="synthetix") == 3
    with pytest.raises(InvalidStatus) as refused:
        _connect(sim.url("synthetix") + INFO_PATH)
    assert refused.value.response.status_code == 429  # queued first, used first
    with pytest.raises(InvalidStatus) as refused:
        _connect(sim.url("synthetix") + INFO_PATH)
    assert refused.value.response.status_code == 503
    sim.clear_faults()
    assert [sim.fault_status(name)["refusals"] for name in sim.venue_names] == [0] * len(sim.venue_names)
    with peer(sim, "synthetix"):
        pass


def test_refusals_do_not_use_up_the_connection_rate_limit() -> None:
    """Injected refusals are the simulator's doing, so they leave the client's rate-limit budget alone."""
    with Simulator(seed=1, rate=0, venues=["dopp"], max_connects=1) as sim:
        sim.refuse_handshakes(3, venue="dopp")
        for _ in range(3):
            with pytest.raises(InvalidStatus):
                _connect(sim.url("dopp") + BY_CURRENCY)
        with peer(sim, "dopp"):
            pass
        with pytest.raises(InvalidStatus) as limited:  # now the real limit (1 per window) applies
            _connect(sim.url("dopp") + BY_CURRENCY)
        assert limited.value.response.status_code == 429


@pytest.mark.parametrize(("args", "kwargs"), [((-1,), {}), ((1,), {"status": 200}), ((1,), {"status": 600}),
                                              ((1,), {"retry_after": -1}), ((1.5,), {})])  # fmt: skip
def test_refuse_handshakes_rejects_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A negative or fractional count, a non-error status or a negative Retry-After is a ValueError."""
    with pytest.raises(ValueError):
        Simulator(venues=["dopp"]).refuse_handshakes(*args, **kwargs)


# -- stall -----------------------------------------------------------------------------


def test_a_stalled_dopp_connection_gets_no_data_but_answers_pings_and_loses_what_was_generated(sim: Simulator) -> None:
    """While stalled, trades are dropped (not delayed) and pings answered; after resume only new trades come."""
    dopp = dopp_of(sim)
    with peer(sim, "dopp") as p:
        assert sim.stall("dopp") == 1
        dopp.emit(5)
        assert p.ws.ping().wait(TIMEOUT)
        assert dopp.inject(MARKER) == 1
        assert p.recv() == MARKER  # nothing was sent before it
        assert sim.fault_status("dopp")["dropped"] == 1  # one frame of five trades
        assert sim.resume("dopp") == 1
        new = dopp.emit(3)
        assert ids(dopp_trades(p.recv())) == ids(new)


@pytest.mark.parametrize("venue", ["synfutures", "synthetix", "rails"])
def test_stall_drops_data_while_pings_and_requests_are_answered(sim: Simulator, venue: str) -> None:
    """A stalled connection answers protocol pings, application pings and requests, and sends no data."""
    with peer(sim, venue) as p:
        assert sim.stall(venue) == 1
        sim.venue(venue).emit(5)
        assert p.ws.ping().wait(TIMEOUT)
        assert p.data_until_pong() == []
        assert p.request is not None
        p.ws.send(p.request)
        assert p.until(p.is_reply) == []
        assert sim.resume(venue) == 1
        sim.venue(venue).emit(1)
        assert len(p.data_until_pong()) == 1


def test_stall_with_new_connections_stalls_reconnects_until_resume(sim: Simulator) -> None:
    """With new_connections=True a fresh connection starts stalled (no Dopp snapshot) until resume()."""
    dopp = dopp_of(sim)
    assert sim.stall("dopp", new_connections=True) == 0
    with _connect(sim.url("dopp") + BY_CURRENCY) as ws:
        assert sim.wait_for_connections(1, "dopp", timeout=TIMEOUT)
        dopp.emit(2)
        assert ws.ping().wait(TIMEOUT)
        dopp.inject(MARKER)
        assert ws.recv(timeout=TIMEOUT) == MARKER  # neither snapshot nor trades
        assert sim.fault_status("dopp")["stalled"] == 1
        sim.resume("dopp")
        new = dopp.emit(1)
        assert ids(dopp_trades(str(ws.recv(timeout=TIMEOUT)))) == ids(new)
    with peer(sim, "dopp"):  # the snapshot came: new connections are healthy again
        assert sim.fault_status("dopp")["stall_new"] is False


def test_a_plain_stall_leaves_later_connections_healthy(sim: Simulator) -> None:
    """Without new_connections, a reconnect is the cure: the new connection gets its snapshot."""
    with peer(sim, "dopp"):
        assert sim.stall() == 1
        with _connect(sim.url("dopp") + BY_CURRENCY) as ws:
            assert dopp_trades(str(ws.recv(timeout=TIMEOUT)))
        assert sim.fault_status("dopp")["stalled"] == 1


# -- muted pings -----------------------------------------------------------------------


@pytest.mark.parametrize("venue", ["synfutures", "synthetix", "rails"])
def test_muted_connection_answers_no_ping_while_data_and_replies_flow(sim: Simulator, venue: str) -> None:
    """Muted: protocol and application pings go unanswered, requests are answered, data flows; unmute undoes it."""
    with peer(sim, venue) as p:
        assert sim.mute_pings(venue) == 1
        pong = p.ws.ping()
        assert p.app_ping is not None and p.request is not None
        p.ws.send(p.app_ping)
        p.ws.send(p.request)
        before = p.until(p.is_reply)  # the server read both pings before this request
        assert not any(p.is_pong(frame) for frame in before)
        assert not pong.is_set()  # a pong would have arrived before the reply
        sim.venue(venue).emit(1)
        assert p.is_data(p.recv())
        assert sim.fault_status(venue)["unanswered"] == 2
        assert sim.unmute_pings(venue) == 1
        assert p.ws.ping().wait(TIMEOUT)
        assert p.data_until_pong() == []


def test_muted_dopp_connection_sends_data_but_no_pong(sim: Simulator) -> None:
    """A protocol ping to a muted Dopp connection gets no pong within a timeout, while trades still arrive."""
    dopp = dopp_of(sim)
    with peer(sim, "dopp") as p:
        sim.mute_pings("dopp")
        pong = p.ws.ping()
        new = dopp.emit(2)
        assert ids(dopp_trades(p.recv())) == ids(new)
        assert not pong.wait(UNANSWERED)
        sim.unmute_pings("dopp")
        assert p.ws.ping().wait(TIMEOUT)
        sim.mute_pings("dopp")
        p.ws.close()
        assert p.ws.close_code == 1000  # the muted server still answered the close handshake


def test_muted_pings_trip_websocket_clients_ping_timeout(sim: Simulator) -> None:
    """websocket-client's own ping timeout fires against a muted venue, after data has arrived."""
    sim.mute_pings("dopp", new_connections=True)
    messages: list[str] = []
    errors: list[Exception] = []
    app = websocket.WebSocketApp(
        sim.url("dopp") + BY_CURRENCY,
        on_message=lambda ws, message: messages.append(message),
        on_error=lambda ws, error: errors.append(error),
    )
    thread = threading.Thread(target=app.run_forever, kwargs={"ping_interval": 0.2, "ping_timeout": 0.1}, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert [type(error) for error in errors] == [websocket.WebSocketTimeoutException]
    assert messages and dopp_trades(messages[0])  # the snapshot: data flows while pings are muted


# -- trade faults ----------------------------------------------------------------------


def test_dopp_duplicates_are_sent_again_at_the_front_of_the_next_frame(sim: Simulator) -> None:
    """duplicate=1.0: every trade comes again, unchanged, before the next frame's new trades."""
    dopp = dopp_of(sim)
    dopp.fault(duplicate=1.0)
    with peer(sim, "dopp") as p:
        first = dopp.emit(2)
        assert ids(dopp_trades(p.recv())) == ids(first)
        second = dopp.emit(1)
        frame = dopp_trades(p.recv())
        assert ids(frame) == ids(first + second)
        assert [trade["trade_seq"] for trade in frame[:2]] == [trade["trade_seq"] for trade in first]
        dopp.fault()  # off: pending duplicates are dropped with the setting
        third = dopp.emit(1)
        assert ids(dopp_trades(p.recv())) == ids(third)


def test_dopp_reorder_swaps_neighbours_within_a_frame(sim: Simulator) -> None:
    """reorder=1.0: trades trade places pairwise (t2 t1 t4 t3 t5), each moving one place at most."""
    dopp = dopp_of(sim)
    dopp.fault(reorder=1.0)
    with peer(sim, "dopp") as p:
        t = ids(dopp.emit(5))
        assert ids(dopp_trades(p.recv())) == [t[1], t[0], t[3], t[2], t[4]]
    assert ids(dopp.trades()[-5:]) == t  # the tape itself is in order


def test_dopp_skip_sequence_jumps_trade_seq_by_two_exactly_where_the_seed_says(sim: Simulator) -> None:
    """Trade k skips a trade_seq iff draw 3k of Random(seed) < p; the client sees those jumps of exactly 2."""
    seed, p, count = 7, 0.25, 40
    rng = random.Random(seed)
    draws = [rng.random() for _ in range(3 * count)]
    expected_skips = [draws[3 * k] < p for k in range(count)]
    assert 0 < sum(expected_skips) < count
    dopp = dopp_of(sim)
    last_seq = {trade["instrument_name"]: trade["trade_seq"] for trade in dopp.trades()}
    dopp.fault(skip_sequence=p, seed=seed)
    with peer(sim, "dopp") as ws_peer:
        received = []
        for batch in (15, 1, 24):  # batching does not move the skips
            dopp.emit(batch)
            received += dopp_trades(ws_peer.recv())
    jumps = []
    for trade in received:
        previous = last_seq.get(trade["instrument_name"], 0)
        jumps.append(trade["trade_seq"] - previous)
        last_seq[trade["instrument_name"]] = trade["trade_seq"]
    assert jumps == [2 if skip else 1 for skip in expected_skips]
    settings = {"duplicate": 0.0, "reorder": 0.0, "skip_sequence": p, "seed": seed, "trades": count}
    assert dopp.fault_settings() == settings


def test_synthetix_skip_and_reorder_show_in_meseq() -> None:
    """Synthetix: skip_sequence makes meseq jump by 2 (prevMeseq = meseq - 1); reorder swaps notifications."""
    with Simulator(seed=1, rate=0, venues=["synthetix"]) as sim, peer(sim, "synthetix") as p:
        snx = sim.venue("synthetix")
        snx.fault(skip_sequence=1.0)
        snx.emit(12)
        pushes = [json.loads(frame) for frame in p.data_until_pong()]
        last: dict[str, int] = {}
        for push in pushes:
            assert push["prevMeseq"] == push["meseq"] - 1
            symbol = push["data"]["symbol"]
            if symbol in last:
                assert push["meseq"] == last[symbol] + 2
            last[symbol] = push["meseq"]
        assert len(last) < len(pushes)  # some symbol was seen twice
        snx.fault(reorder=1.0)
        emitted = snx.emit(2)
        assert [json.loads(f)["data"]["tradeId"] for f in p.data_until_pong()] == ids(emitted[::-1], "tradeId")


def test_synfutures_duplicate_resends_a_stale_window_and_reorder_swaps_windows() -> None:
    """SynFutures: a duplicated push comes again, unchanged, before the next batch; reorder swaps pushes."""
    with Simulator(seed=1, rate=0, venues=["synfutures"]) as sim, peer(sim, "synfutures") as p:
        venue = sim.venue("synfutures")
        venue.fault(duplicate=1.0)
        venue.emit(1)
        (window,) = p.data_until_pong()
        venue.emit(1)
        again, newer = p.data_until_pong()
        assert again == window and newer != window
        venue.fault(reorder=1.0)
        emitted = venue.emit(2)
        firsts = [json.loads(frame)["data"][0]["id"] for frame in p.data_until_pong()]
        assert firsts == ids(emitted[::-1], "id")


def test_rails_duplicates_whole_matches_in_the_next_batch() -> None:
    """Rails: with duplicate=1.0 each match's record comes once more with the next batch, before the new ones."""
    with Simulator(seed=1, rate=0, venues=["rails"]) as sim, peer(sim, "rails") as p:
        venue = sim.venue("rails")
        venue.fault(duplicate=1.0)
        first, second = venue.emit(3), venue.emit(1)
        received = [order["matchId"] for frame in p.data_until_pong() for order in json.loads(frame)["data"]["orders"]]
        assert received == by_market(first) + by_market(first + second)


def by_market(records: list[dict[str, Any]]) -> list[str]:
    """The match ids of one batch as Rails sends them: one delta per market, markets in order of appearance."""
    markets: dict[str, list[str]] = {}
    for record in records:
        markets.setdefault(record["market"], []).append(record["matchId"])
    return [match_id for match_ids in markets.values() for match_id in match_ids]


@pytest.mark.parametrize(("venue", "knobs"), [("rails", {"skip_sequence": 0.1}), ("synfutures", {"skip_sequence": 1.0}),
                                              ("dopp", {"duplicate": 1.5}), ("dopp", {"reorder": -0.1})])  # fmt: skip
def test_unsupported_or_impossible_trade_faults_are_refused(sim: Simulator, venue: str, knobs: dict[str, Any]) -> None:
    """A knob the venue does not simulate, or a probability outside [0, 1], is a ValueError."""
    with pytest.raises(ValueError):
        sim.venue(venue).fault(**knobs)
    assert sim.venue(venue).fault_settings() is None


def test_replay_venue_supports_no_trade_faults() -> None:
    """A replayed recording is sent as recorded: no trade fault applies."""
    replay = ReplayVenue(RecordedFeed("dopp-1", "dopp"))
    with pytest.raises(ValueError, match="none"):
        replay.fault(duplicate=0.5)
    replay.fault()  # all zeros is fine (clear_faults does it)


def test_clear_faults_undoes_everything(sim: Simulator) -> None:
    """clear_faults() resumes, unmutes, cancels refusals and turns trade faults off."""
    dopp = dopp_of(sim)
    with peer(sim, "dopp") as p:
        sim.stall("dopp", new_connections=True)
        sim.mute_pings("dopp", new_connections=True)
        sim.refuse_handshakes(5, venue="dopp")
        dopp.fault(duplicate=1.0, reorder=1.0, skip_sequence=1.0)
        sim.clear_faults("dopp")
        assert sim.fault_status("dopp") == {
            "connections": 1, "stalled": 0, "pings_muted": 0, "dropped": 0, "unanswered": 0, "refusals": 0,
            "stall_new": False, "mute_new": False, "trade_faults": None,
        }  # fmt: skip
        assert p.ws.ping().wait(TIMEOUT)
        new = dopp.emit(2)
        assert ids(dopp_trades(p.recv())) == ids(new)


# -- drop and close (existing), validated -----------------------------------------------


@pytest.mark.parametrize("code", [1005, 1006, 999, 5000])
def test_drop_connections_refuses_codes_a_close_frame_cannot_carry(sim: Simulator, code: int) -> None:
    """Codes reserved for 'no close frame' or outside the valid ranges are a ValueError, not a silent failure."""
    with pytest.raises(ValueError):
        sim.drop_connections("dopp", code=code)


# -- the admin endpoint ------------------------------------------------------------------


@pytest.fixture
def admin() -> Iterator[tuple[Simulator, requests.Session]]:
    with Simulator(seed=1, rate=0, history=20, admin_port=0) as simulator, requests.Session() as session:
        session.trust_env = False
        yield simulator, session


def post(session: requests.Session, sim: Simulator, fault: str, data: bytes = b"", **query: Any) -> requests.Response:
    return session.post(f"{sim.admin_url()}/faults/{fault}", params=query, data=data, timeout=TIMEOUT)


def test_admin_endpoint_refuses_stalls_mutes_and_clears(admin: tuple[Simulator, requests.Session]) -> None:
    """POST /faults/<name> drives the same faults as the Python API and answers JSON."""
    sim, session = admin
    answer = post(session, sim, "refuse", venue="dopp", n=1, status=503, retry_after=4)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"fault": "refuse", "venue": "dopp", "refusals": 1}
    with pytest.raises(InvalidStatus) as refused:
        _connect(sim.url("dopp") + BY_CURRENCY)
    assert (refused.value.response.status_code, refused.value.response.headers["Retry-After"]) == (503, "4")
    dopp = dopp_of(sim)
    with peer(sim, "dopp") as p:
        assert post(session, sim, "stall", venue="dopp").json() == {"fault": "stall", "venue": "dopp", "connections": 1}
        dopp.emit(3)
        assert post(session, sim, "inject", data=MARKER.encode(), venue="dopp").json()["connections"] == 1
        assert p.recv() == MARKER
        assert post(session, sim, "resume").json() == {"fault": "resume", "venue": None, "connections": 1}
        assert post(session, sim, "mute_pings", venue="dopp").json()["connections"] == 1
        pong = p.ws.ping()
        assert post(session, sim, "trades", venue="dopp", duplicate=1).json()["trade_faults"]["duplicate"] == 1.0
        new = dopp.emit(1)
        assert ids(dopp_trades(p.recv())) == ids(new)
        assert not pong.wait(UNANSWERED)
        status = session.get(f"{sim.admin_url()}/faults", timeout=TIMEOUT).json()["venues"]["dopp"]
        assert (status["pings_muted"], status["unanswered"], status["trade_faults"]["duplicate"]) == (1, 1, 1.0)
        assert post(session, sim, "clear", venue="dopp").json() == {"fault": "clear", "venue": "dopp"}
        assert p.ws.ping().wait(TIMEOUT)
        assert post(session, sim, "close", venue="dopp", code=4001, reason="chaos").json()["connections"] == 1
        with pytest.raises(ConnectionClosed) as closed:
            p.ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "chaos")


def test_admin_endpoint_drops_and_expires_tokens(admin: tuple[Simulator, requests.Session]) -> None:
    """drop aborts connections; expire_tokens reaches Rails' own fault."""
    sim, session = admin
    with peer(sim, "dopp") as p, peer(sim, "rails") as r:
        other_port = p.ws.local_address[1] + 1 if p.ws.local_address[1] < 65535 else 1
        assert post(session, sim, "drop", venue="dopp", port=other_port).json()["connections"] == 0
        assert post(session, sim, "drop", venue="dopp", port=p.ws.local_address[1]).json()["connections"] == 1
        with pytest.raises(ConnectionClosed) as dropped:
            p.ws.recv(timeout=TIMEOUT)
        assert dropped.value.rcvd is None  # no close frame: 1006
        assert post(session, sim, "expire_tokens", venue="rails").json()["connections"] == 1
        with pytest.raises(ConnectionClosed) as expired:
            r.ws.recv(timeout=TIMEOUT)
        assert expired.value.rcvd is not None and expired.value.rcvd.code == 1008


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/faults/explode", 404),
        ("GET", "/faults/stall", 405),
        ("DELETE", "/faults", 405),
        ("POST", "/faults/stall?venue=nowhere", 400),
        ("POST", "/faults/close?venue=dopp", 400),
        ("POST", "/faults/close?code=1006", 400),
        ("POST", "/faults/refuse?n=two", 400),
        ("POST", "/faults/refuse?status=200", 400),
        ("POST", "/faults/stall?new_connections=maybe", 400),
        ("POST", "/faults/trades?duplicate=0.5", 400),
        ("POST", "/faults/trades?venue=rails&skip_sequence=0.5", 400),
        ("POST", "/faults/expire_tokens?venue=dopp", 400),
    ],
)
def test_admin_endpoint_answers_mistakes_with_json_errors(
    admin: tuple[Simulator, requests.Session], method: str, path: str, status: int
) -> None:
    """Unknown faults are 404, wrong methods 405, bad parameters 400, each with an error message."""
    sim, session = admin
    answer = session.request(method, sim.admin_url() + path, timeout=TIMEOUT)
    assert answer.status_code == status
    assert answer.json()["error"]


def test_admin_endpoint_runs_on_the_simulator_loop_and_keeps_its_port(
    admin: tuple[Simulator, requests.Session],
) -> None:
    """The admin server adds no thread, and a restart binds the same port."""
    sim, session = admin
    url = sim.admin_url()
    assert [t.name for t in threading.enumerate() if t.name.startswith("tradefeed")] == [THREAD_NAME]
    sim.stop()
    sim.start()
    assert sim.admin_url() == url
    assert session.get(url + "/faults", timeout=TIMEOUT).status_code == 200


def test_admin_url_needs_an_admin_port(sim: Simulator) -> None:
    """Without admin_port there is no endpoint and admin_url() says so."""
    with pytest.raises(SimulatorError, match="admin_port"):
        sim.admin_url()


def test_add_admin_arguments_parses_the_port() -> None:
    """--admin-port PORT becomes args.admin_port (None when absent); a bad port is a usage error."""
    import argparse

    parser = argparse.ArgumentParser()
    add_admin_arguments(parser)
    assert parser.parse_args([]).admin_port is None
    assert parser.parse_args(["--admin-port", "0"]).admin_port == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--admin-port", "70000"])
