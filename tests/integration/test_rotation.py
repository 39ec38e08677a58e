"""Rotation (rotate_after) hands over only once the new connection is in sync (issue 15, part 4).

A venue whose back-fill is small (Synthetix ``limit=1``: one trade per symbol on each
connect) is where a handover on the new connection's first data (an ack, or that one
trade) proves nothing: the old connection must go on until the new one has caught up
on every symbol.
"""

from __future__ import annotations

import pytest

from tradefeed import Status

pytestmark = pytest.mark.timeout(120)


def rotated(collector) -> list:
    return [e for e in collector.statuses if e.status is Status.STOPPED and e.detail.get("reason") == "rotated"]


def check_exact(collector, tape: list[dict], symbols) -> None:
    """Per symbol, the delivered trades are the tape's from the first delivered on: none
    missing, none twice, in order."""
    for symbol in symbols:
        want = [r["tradeId"] for r in tape if r["symbol"] == symbol]
        got = [t.trade_id for t in collector.trades if t.symbol == symbol]
        assert got, symbol
        start = want.index(got[0])
        assert got == want[start : start + len(got)], "%s: missing, repeated or reordered" % symbol
        assert got[-1] == want[-1], "%s: the newest trade did not arrive" % symbol


def test_rotation_with_a_small_back_fill_waits_for_sync_and_loses_nothing(make_sim, make_manager, collector):
    """Synthetix, limit=1, trades flowing on every symbol while the connection is replaced every
    0.3 s: each old connection is retired with its replacement in sync; across the rotations
    every trade arrives once, in order, and no Gap is reported."""
    sim = make_sim(venues=["synthetix"], seed=3, rate=0, history=10, max_connects=None)
    manager = make_manager()
    collector.attach(manager)
    gaps: list = []
    manager.on_gap(gaps.append)
    params = {**sim.feed_params("synthetix"), "limit": 1}
    feed = manager.add_feed("synthetix", rotate_after=0.3, **params)
    source = sim.venue("synthetix")
    with manager:
        assert source.wait_for_subscriptions(len(params["symbols"]))
        chunks = 0
        while len(rotated(collector)) < 4 or chunks < 10:
            assert chunks < 2000, "no rotation happened"
            source.emit(12)
            chunks += 1
            newest = source.trades()[-1]["tradeId"]
            assert collector.wait_for(lambda c: any(t.trade_id == newest for t in c.trades), timeout=30)
        tape = source.trades()
        newest_per_symbol = {r["symbol"]: r["tradeId"] for r in tape}
        assert collector.wait_for(lambda c: set(newest_per_symbol.values()) <= {t.trade_id for t in c.trades}, timeout=30)
    assert gaps == []
    check_exact(collector, tape, params["symbols"])
    events = rotated(collector)
    assert len(events) >= 4 and all(e.detail["in_sync"] is True for e in events)
    assert feed.stats().reconnects == 0  # replaced, never reconnected


def test_a_symbol_the_new_connection_never_sees_does_not_block_rotation(make_sim, make_manager, collector):
    """A symbol unsubscribed at run time stays known to the feed but never reaches a new
    connection, so that one is never in sync: after join_timeout it is enough that it holds
    nothing back; the old one is retired (in_sync False) and the live symbols lose nothing."""
    sim = make_sim(venues=["synthetix"], seed=4, rate=0, history=10, max_connects=None)
    manager = make_manager(join_timeout=0.5)
    collector.attach(manager)
    gaps: list = []
    manager.on_gap(gaps.append)
    feed = manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT", "ETH-USDT"], limit=1, rotate_after=0.3)
    source = sim.venue("synthetix")
    with manager:
        assert source.wait_for_subscriptions(2)
        assert collector.wait_for(lambda c: {t.symbol for t in c.trades} == {"BTC-USDT", "ETH-USDT"})
        feed.unsubscribe("ETH-USDT")  # known to the feed from now on, seen by no new connection
        chunks = 0
        while not any(e.detail["in_sync"] is False for e in rotated(collector)) or chunks < 5:
            assert chunks < 2000, "no rotation happened"
            source.emit(10)
            chunks += 1
            btc = [r["tradeId"] for r in source.trades() if r["symbol"] == "BTC-USDT"]
            if btc:
                assert collector.wait_for(lambda c: any(t.trade_id == btc[-1] for t in c.trades), timeout=30)
        tape = [r for r in source.trades() if r["symbol"] == "BTC-USDT"]
    assert gaps == []
    check_exact(collector, tape, ["BTC-USDT"])
    assert feed.stats().reconnects == 0
