"""SynFutures through FeedManager against the simulator over real loopback sockets."""

from __future__ import annotations

import pytest

from tradefeed import Backoff, ConfigError, Liquidity, ParseError, Side, Status, VenueError
from tradefeed.simulator.synfutures import PAIRS

pytestmark = pytest.mark.timeout(60)

BTC, ETH, MON = sorted(PAIRS, key=lambda p: ["BTC/USDC", "ETH/USDC", "MON/USDC"].index(PAIRS[p]))
FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


def by_pair(trades):
    out: dict[str, list] = {}
    for t in trades:
        out.setdefault(t.raw["pair"], []).append(t)
    return out


def assert_pair_matches_tape(trades, tape):
    """The pair's trades are a contiguous, ordered run of its tape, each value exact."""
    ids = [t["id"] for t in tape]
    start = ids.index(trades[0].trade_id)
    expected = tape[start : start + len(trades)]
    assert [t.trade_id for t in trades] == [e["id"] for e in expected], "missing, repeated or reordered"
    for trade, want in zip(trades, expected):
        exact = want["exact"]
        assert trade.price == exact["price"] and trade.amount == abs(exact["size"])
        assert trade.fee == exact["tradeFee"] + exact["protocolFee"]
        assert trade.side is (Side.BUY if want["side"] == "long" else Side.SELL)
        assert trade.timestamp_ms == want["timestamp"] * 1000 and trade.symbol == want["symbol"]
        assert trade.raw["event"] == want["event"] and trade.raw["txHash"] == want["txHash"]
        assert trade.liquidity is Liquidity.TAKER and trade.fee_currency == "USDC"


def test_windows_deliver_every_trade_once_in_order_and_exact(make_sim, make_manager, collector):
    """Overlapping windows of 10 (the simulator's window mode): every trade of both pairs
    arrives exactly once, in order, exact."""
    sim = make_sim(venues=["synfutures"], seed=6, rate=0, history=40, options={"synfutures": {"push_mode": "window"}})
    venue = sim.venue("synfutures")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC, ETH], trades_limit=10)
    with manager:
        assert collector.wait_trades(1)
        for _ in range(30):
            venue.emit(10)
        last = {pair: venue.trades(pair)[-1]["id"] for pair in (BTC, ETH)}
        assert collector.wait_for(lambda c: {t.trade_id for t in c.trades} >= set(last.values()))
    assert len({t.trade_id for t in collector.trades}) == len(collector.trades)
    assert not collector.errors
    grouped = by_pair(collector.trades)
    assert set(grouped) == {BTC, ETH}
    for pair, trades in grouped.items():
        assert_pair_matches_tape(trades, venue.trades(pair, exact=True))
        assert trades[-1].trade_id == last[pair]
    stats = manager.stats()["synfutures-1"]
    assert stats.duplicates > stats.trades  # the windows overlapped heavily: de-duplication was exercised


def test_single_object_form_and_mixed_case_envelope(make_sim, make_manager, collector):
    """data sent as one object per frame, with a mixed-case envelope, parses the same."""
    sim = make_sim(
        venues=["synfutures"], rate=0, history=10, options={"synfutures": {"data_form": "object", "mixed_case_envelope": True}}
    )
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC])
    with manager:
        assert collector.wait_trades(1)
        sim.venue("synfutures").emit(30)
        last = sim.venue("synfutures").trades(BTC)[-1]["id"]
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == last)
    assert_pair_matches_tape(collector.trades, sim.venue("synfutures").trades(BTC, exact=True))


def test_subscribe_and_unsubscribe_at_run_time(make_sim, make_manager, collector):
    """A pair added while running starts streaming; a removed pair stops."""
    sim = make_sim(venues=["synfutures"], rate=0, history=30)
    venue = sim.venue("synfutures")
    manager = make_manager()
    collector.attach(manager)
    feed = manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC])
    with manager:
        assert collector.wait_trades(1)
        feed.subscribe(MON)
        assert collector.wait_for(lambda c: any(t.raw["pair"] == MON for t in c.trades))
        feed.unsubscribe(BTC)
        assert feed.params["pairs"] == [MON]
        # a ping round trip is not observable here; a new MON trade after the UNSUBSCRIBE is
        mark = len(collector.trades)
        while True:
            new = venue.emit(1)
            if new[0]["instrumentAddress"] + "_" + str(new[0]["expiry"]) == MON:
                break
        assert collector.wait_for(lambda c: any(t.trade_id == new[0]["id"] for t in c.trades))
        later = collector.trades[mark:]
    assert later and {t.raw["pair"] for t in later} == {MON}
    with pytest.raises(ConfigError, match="non-empty"):
        feed.unsubscribe(MON)  # the last pair cannot go: remove the feed instead


def test_failure_ack_and_malformed_frames_reach_on_error_and_streaming_goes_on(make_sim, make_manager, collector):
    """A refused SUBSCRIBE is a VenueError; junk frames are ParseErrors; trades keep coming."""
    sim = make_sim(venues=["synfutures"], rate=0, history=20)
    venue = sim.venue("synfutures")
    manager = make_manager()
    collector.attach(manager)
    feed = manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC], chain_id=1)  # unknown chain
    good = manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[ETH])
    with manager:
        assert collector.wait_for(lambda c: any(isinstance(e, VenueError) for e in c.errors))
        assert sim.wait_for_connections(2, "synfutures")  # both feeds get the junk below
        venue.inject("{not json")
        venue.inject('{"stream": "trades", "data": 7}')
        assert collector.wait_for(lambda c: sum(isinstance(e, ParseError) for e in c.errors) >= 4)
        venue.emit(20)
        last = venue.trades(ETH)[-1]["id"]
        assert collector.wait_for(lambda c: any(t.trade_id == last for t in c.trades))
    refused = [e for e in collector.errors if isinstance(e, VenueError)]
    assert refused[0].feed == feed.name and "invalid pairs" in str(refused[0])
    assert feed.is_alive() is False and good.stats().errors == 2
    assert not any(e.status is Status.RECONNECTING for e in collector.statuses)


def test_reconnect_resubscribes_and_the_new_windows_repeat_nothing(make_sim, make_manager, collector):
    """After a drop the SUBSCRIBE is re-sent; the windows overlap what was seen; no trade repeats."""
    sim = make_sim(venues=["synfutures"], rate=0, history=30)
    venue = sim.venue("synfutures")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC, ETH], trades_limit=20)
    with manager:
        assert collector.wait_trades(1)
        venue.emit(10)
        sim.drop_connections("synfutures", code=1011)
        assert collector.wait_status(Status.CONNECTED, count=2)
        venue.emit(10)
        last = {pair: venue.trades(pair)[-1]["id"] for pair in (BTC, ETH)}
        assert collector.wait_for(lambda c: {t.trade_id for t in c.trades} >= set(last.values()))
    assert len({t.trade_id for t in collector.trades}) == len(collector.trades)
    for pair, trades in by_pair(collector.trades).items():
        assert_pair_matches_tape(trades, venue.trades(pair, exact=True))


def test_text_ping_keeps_an_idle_connection_open(make_sim, make_manager, collector):
    """The venue closes silent clients; the adapter's text ping (here every 0.2 s) keeps it open."""
    from tradefeed.adapters.synfutures import SynfuturesAdapter

    sim = make_sim(venues=["synfutures"], rate=0, history=5, options={"synfutures": {"idle_timeout": 0.6}})
    manager = make_manager()
    collector.attach(manager)
    original = SynfuturesAdapter.tick_interval
    SynfuturesAdapter.tick_interval = 0.2
    try:
        manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC])
        with manager:
            assert collector.wait_trades(1)
            # three idle timeouts long: the text ping must have kept the socket open
            assert not collector.wait_status(Status.DISCONNECTED, timeout=2.0)
    finally:
        SynfuturesAdapter.tick_interval = original
    assert manager.stats()["synfutures-1"].reconnects == 0


def stream_all(sim, make_manager, collector, rounds=30):
    """Stream both pairs until the tape's last trade of each arrived; the venue."""
    venue = sim.venue("synfutures")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC, ETH, MON], trades_limit=10)
    with manager:
        assert collector.wait_trades(1)
        for _ in range(rounds):
            venue.emit(10)
        last = {pair: venue.trades(pair)[-1]["id"] for pair in (BTC, ETH, MON)}
        assert collector.wait_for(lambda c: {t.trade_id for t in c.trades} >= set(last.values()))
    return venue, manager


def test_default_push_is_a_batch_then_new_trades_only(make_sim, make_manager, collector):
    """Resolved 2026-12-06: after the subscription's first batch, each push holds new trades
    only: every trade once, in order, exact, and nothing for de-duplication to drop."""
    sim = make_sim(venues=["synfutures"], seed=6, rate=0, history=40)
    venue, manager = stream_all(sim, make_manager, collector)
    assert not collector.errors
    assert len({t.trade_id for t in collector.trades}) == len(collector.trades)
    for pair, trades in by_pair(collector.trades).items():
        assert_pair_matches_tape(trades, venue.trades(pair, exact=True))
    assert manager.stats()["synfutures-1"].duplicates == 0


def test_plain_decimal_numbers_are_read_as_plain(make_sim, make_manager, collector):
    """A venue sending plain decimals, integer values without a dot ("90136", size "1"): each
    trade's price, size and fee come out exact, never scaled down by 10^18, and unmarked."""
    sim = make_sim(venues=["synfutures"], seed=6, rate=0, history=40, options={"synfutures": {"number_form": "plain"}})
    venue, _ = stream_all(sim, make_manager, collector)
    tape = venue.trades()
    assert any("." not in t["price"] for t in tape), "no dot-less price on the tape: the test would prove nothing"
    assert any("." not in t["size"].lstrip("-") for t in tape)
    assert not collector.errors
    for pair, trades in by_pair(collector.trades).items():
        assert_pair_matches_tape(trades, venue.trades(pair, exact=True))
    assert not any("scale_guess" in t.raw for t in collector.trades)


def test_a_server_ping_is_answered_with_pong(make_sim, make_manager, collector):
    """The venue's own text ping gets a text pong; it is no parse error and the feed streams on."""
    import threading
    import time

    sim = make_sim(venues=["synfutures"], rate=0, history=5)
    venue = sim.venue("synfutures")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[BTC])
    with manager:
        assert collector.wait_trades(1)
        assert venue.ping_clients() == 1
        deadline, tick = time.monotonic() + 10, threading.Event()
        while venue.pongs < 1 and time.monotonic() < deadline:
            tick.wait(0.01)  # the pong crosses loopback: a bounded wait on a counter
        assert venue.pongs == 1
        before = len(collector.trades)
        venue.emit(5)
        assert collector.wait_for(lambda c: len(c.trades) > before)
    assert not collector.errors
    assert manager.stats()["synfutures-1"].reconnects == 0

