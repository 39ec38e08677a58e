"""Synthetix through FeedManager against the simulator over real loopback sockets."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradefeed import Backoff, ConfigError, Liquidity, ParseError, Side, Status, VenueError

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


def by_symbol(trades):
    out: dict[str, list] = {}
    for t in trades:
        out.setdefault(t.symbol, []).append(t)
    return out


def assert_symbol_matches_tape(trades, tape):
    """The symbol's trades are a contiguous, ordered run of its tape, each value exact."""
    ids = [t["tradeId"] for t in tape]
    start = ids.index(trades[0].trade_id)
    expected = tape[start : start + len(trades)]
    assert [t.trade_id for t in trades] == [e["tradeId"] for e in expected], "missing, repeated or reordered"
    for trade, want in zip(trades, expected):
        assert str(trade.price) == want["price"] and str(trade.amount) == want["quantity"]
        assert trade.side is Side(want["side"]) and trade.timestamp_ms == want["timestamp"]
        assert trade.liquidity is (Liquidity.MAKER if want["isMaker"] else Liquidity.TAKER)
        assert trade.fee is None and isinstance(trade.price, Decimal)


def wait_for_tape_end(collector, sim, symbols):
    last = {sim.venue("synthetix").trades(s)[-1]["tradeId"] for s in symbols}
    return collector.wait_for(lambda c: {t.trade_id for t in c.trades} >= last)


def test_backfill_then_live_every_trade_once_in_order_and_exact(make_sim, make_manager, collector):
    """getLastTrades back-fill (newest first on the wire) then live pushes: each trade once, in order, exact."""
    sim = make_sim(venues=["synthetix"], seed=8, rate=0, history=120)
    venue = sim.venue("synthetix")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["btc-usdt", "ETH-USDT"], limit=30)
    with manager:
        assert venue.wait_for_subscriptions(2)
        for _ in range(20):
            venue.emit(15)
        assert wait_for_tape_end(collector, sim, ["BTC-USDT", "ETH-USDT"])
    assert not collector.errors
    grouped = by_symbol(collector.trades)
    assert set(grouped) == {"BTC-USDT", "ETH-USDT"}
    for symbol, trades in grouped.items():
        assert_symbol_matches_tape(trades, venue.trades(symbol))
        assert len(trades) >= 30  # the whole back-fill is there
    sequences = [t.sequence for t in grouped["BTC-USDT"] if t.sequence is not None]
    assert sequences == sorted(sequences) and sequences  # live pushes carry meseq


def test_trades_during_connect_are_neither_lost_nor_repeated(make_sim, make_manager, collector):
    """At 2,000 trades/s the back-fill and the live stream overlap; the seam has no gap and no repeat."""
    sim = make_sim(venues=["synthetix"], seed=9, rate=2000, history=50)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"], limit=100)
    with manager:
        assert collector.wait_trades(400)
    tape = sim.venue("synthetix").trades("BTC-USDT")
    assert_symbol_matches_tape(collector.trades, tape)


def test_reconnect_backfill_overlap_is_deduplicated(make_sim, make_manager, collector):
    """After a drop the new back-fill repeats trades already delivered; none is delivered twice."""
    sim = make_sim(venues=["synthetix"], rate=0, history=60)
    venue = sim.venue("synthetix")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["SOL-USDT"], limit=20)
    with manager:
        assert venue.wait_for_subscriptions(1)
        venue.emit(30)
        assert wait_for_tape_end(collector, sim, ["SOL-USDT"])
        seen_before_drop = len(venue.trades("SOL-USDT"))
        sim.drop_connections("synthetix", code=None)
        assert collector.wait_status(Status.CONNECTED, count=2)
        assert venue.wait_for_subscriptions(1)
        venue.emit(30)
        assert wait_for_tape_end(collector, sim, ["SOL-USDT"])
    assert_symbol_matches_tape(collector.trades, venue.trades("SOL-USDT"))
    # the second back-fill (the 20 newest) repeated only trades delivered before the drop
    assert manager.stats()["synthetix-1"].duplicates >= min(20, seen_before_drop)


def test_go_sdk_push_form(make_sim, make_manager, collector):
    """Pushes with tsMs and isTaker (the Go SDK's form) are read the same."""
    sim = make_sim(venues=["synthetix"], rate=0, history=10, options={"synthetix": {"push_time": "tsMs"}})
    venue = sim.venue("synthetix")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"])
    with manager:
        assert venue.wait_for_subscriptions(1)
        venue.emit(20)
        assert wait_for_tape_end(collector, sim, ["BTC-USDT"])
    assert_symbol_matches_tape(collector.trades, venue.trades("BTC-USDT"))


@pytest.mark.parametrize("envelope", ["method", "method-list"])
def test_official_sdk_push_envelopes(make_sim, make_manager, collector, envelope):
    """The official SDK's pushes ({"method": "trade", "data": a trade or a list}): back-fill
    then live, every trade once, in order, exact, no parse error."""
    options = {"synthetix": {"push_envelope": envelope}}
    sim = make_sim(venues=["synthetix"], seed=8, rate=0, history=60, options=options)
    venue = sim.venue("synthetix")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT", "ETH-USDT"], limit=20)
    with manager:
        assert venue.wait_for_subscriptions(2)
        for _ in range(10):
            venue.emit(15)
        assert wait_for_tape_end(collector, sim, ["BTC-USDT", "ETH-USDT"])
    assert not collector.errors
    for symbol, trades in by_symbol(collector.trades).items():
        assert_symbol_matches_tape(trades, venue.trades(symbol))


def test_strict_user_agent_is_satisfied(make_sim, make_manager, collector):
    """The venue requires a User-Agent; the adapter always sends one."""
    sim = make_sim(venues=["synthetix"], rate=0, history=5, options={"synthetix": {"strict_user_agent": True}})
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"])
    with manager:
        assert collector.wait_trades(len(sim.venue("synthetix").trades("BTC-USDT")))


def test_subscribe_and_unsubscribe_at_run_time(make_sim, make_manager, collector):
    """A symbol added at run time is back-filled and streams; a removed one stops."""
    sim = make_sim(venues=["synthetix"], rate=0, history=30)
    venue = sim.venue("synthetix")
    manager = make_manager()
    collector.attach(manager)
    feed = manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"], limit=5)
    with manager:
        assert venue.wait_for_subscriptions(1)
        feed.subscribe("eth-usdt")
        assert venue.wait_for_subscriptions(2)
        assert collector.wait_for(lambda c: any(t.symbol == "ETH-USDT" for t in c.trades))
        feed.unsubscribe("BTC-USDT")
        assert feed.params["symbols"] == ["ETH-USDT"]
        mark = len(collector.trades)
        venue.emit(40)
        assert wait_for_tape_end(collector, sim, ["ETH-USDT"])
        later = collector.trades[mark:]
    assert later and {t.symbol for t in later} == {"ETH-USDT"}
    with pytest.raises(ConfigError, match="longer than 20"):
        feed.subscribe("X" * 21)


def test_error_replies_reach_on_error_with_the_request_id_and_streaming_goes_on(make_sim, make_manager, collector):
    """An unknown symbol (400) and a failed back-fill (500) are VenueErrors naming the request."""
    sim = make_sim(venues=["synthetix"], rate=0, history=20)
    venue = sim.venue("synthetix")
    venue.fail_next_get_last_trades(500)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT", "NOPE-USDT"])
    with manager:
        assert collector.wait_for(lambda c: sum(isinstance(e, VenueError) for e in c.errors) >= 3)
        venue.emit(20)
        assert wait_for_tape_end(collector, sim, ["BTC-USDT"])
    messages = [str(e) for e in collector.errors if isinstance(e, VenueError)]
    assert any("getLastTrades BTC-USDT" in m and "500" in m and "unrecognized trade direction" in m for m in messages)
    assert any("subscribe NOPE-USDT" in m and "Invalid symbol" in m and "request subscription-" in m for m in messages)
    assert any("getLastTrades NOPE-USDT" in m and "Invalid symbol" in m for m in messages)
    assert not any(e.status is Status.RECONNECTING for e in collector.statuses)


def test_malformed_frames_and_unknown_sides_are_parse_errors(make_sim, make_manager, collector):
    """Junk and a trade with an unknown side are reported (never defaulted to buy); streaming goes on."""
    sim = make_sim(venues=["synthetix"], rate=0, history=10)
    venue = sim.venue("synthetix")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"])
    bad = {
        "channel": "trade",
        "data": {"tradeId": "1", "symbol": "BTC-USDT", "side": "bid", "price": "1", "quantity": "1", "timestamp": 1767225600000},
    }
    with manager:
        assert wait_for_tape_end(collector, sim, ["BTC-USDT"])  # the back-fill
        venue.inject("not json")
        venue.inject(json.dumps(bad))
        venue.emit(5)
        assert wait_for_tape_end(collector, sim, ["BTC-USDT"])
        assert collector.wait_for(lambda c: len(c.errors) >= 2)
    assert all(isinstance(e, ParseError) for e in collector.errors)
    assert "unknown side 'bid'" in str(collector.errors[1])
    assert "1" not in {t.trade_id for t in collector.trades}


def test_polling_mode_repeats_getlasttrades_without_duplicates(make_sim, make_manager, collector):
    """live=False polls getLastTrades; overlapping polls deliver each trade once, in order."""
    sim = make_sim(venues=["synthetix"], rate=0, history=10)
    venue = sim.venue("synthetix")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"], live=False, poll_interval=0.1, limit=50)
    with manager:
        assert wait_for_tape_end(collector, sim, ["BTC-USDT"])  # the first poll
        assert venue.wait_for_subscriptions(1, timeout=0.3) is False  # no live subscription
        for _ in range(3):
            venue.emit(10)
            assert wait_for_tape_end(collector, sim, ["BTC-USDT"])
    assert_symbol_matches_tape(collector.trades, venue.trades("BTC-USDT"))
    assert manager.stats()["synthetix-1"].duplicates > 0
