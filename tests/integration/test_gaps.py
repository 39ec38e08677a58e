"""Loss is never silent: Gap events for sequence jumps and for reconnects whose
back-fill does not reach back to the last trade seen."""

from __future__ import annotations

import pytest

from tradefeed import Backoff, Gap, Status

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


class Gaps:
    def __init__(self, collector, manager) -> None:
        self.items: list[Gap] = []
        manager.on_gap(self.add)
        self._collector = collector

    def add(self, gap: Gap) -> None:
        with self._collector._cond:
            self.items.append(gap)
            self._collector._cond.notify_all()


def outage(sim, collector, venue, emit):
    """Stop the venue, let trades happen while the client is away, start it again."""
    sim.stop()
    assert collector.wait_status(Status.RECONNECTING)
    emitted = sim.venue(venue).emit(emit)
    sim.start()
    return emitted


def test_dopp_sequence_jump_after_an_outage_is_a_gap(make_sim, make_manager, collector):
    """40 trades missed while away, more than the 20-trade snapshot: trade_seq jumps, a Gap says from where to where."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    gaps = Gaps(collector, manager)
    manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL")
    with manager:
        assert collector.wait_trades(1)
        before = {t.trade_id for t in collector.trades}
        last = collector.trades[-1]
        emitted = outage(sim, collector, "dopp", 200)
        assert collector.wait_for(lambda c: gaps.items)
    btc = [t for t in emitted if t["instrument_name"] == "BTC-PERPETUAL"]
    (gap,) = gaps.items
    assert gap.reason == "sequence" and gap.symbol == "BTC-PERPETUAL" and gap.feed == "dopp-1"
    assert gap.last_sequence == last.sequence and gap.from_ms == last.timestamp_ms
    first_after = next(t for t in collector.trades if t.trade_id not in before)
    assert gap.next_sequence == first_after.sequence > last.sequence + 1
    assert gap.to_ms == first_after.timestamp_ms
    assert len(btc) > 20  # the snapshot could not cover them all
    assert manager.stats()["dopp-1"].gaps == 1


def test_dopp_short_outage_is_covered_by_the_snapshot_no_gap(make_sim, make_manager, collector):
    """A few trades missed: the snapshot brings them back, the sequence is continuous, no Gap."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    gaps = Gaps(collector, manager)
    manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL")
    with manager:
        assert collector.wait_trades(1)
        emitted = outage(sim, collector, "dopp", 5)
        wanted = {t["trade_id"] for t in emitted if t["instrument_name"] == "BTC-PERPETUAL"}
        assert collector.wait_for(lambda c: wanted <= {t.trade_id for t in c.trades})
        sim.venue("dopp").emit(20)  # and the stream goes on
        last = sim.venue("dopp").trades(instrument_name="BTC-PERPETUAL")[-1]["trade_id"]
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == last)
    assert gaps.items == []
    sequences = [t.sequence for t in collector.trades]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


@pytest.mark.parametrize("missed, gap", [(40, True), (2, False)])
def test_synthetix_backfill_that_does_not_reach_back_is_a_gap(make_sim, make_manager, collector, missed, gap):
    """After an outage the getLastTrades back-fill (limit 10) either overlaps what was seen
    (no Gap) or starts after it (a 'reconnect' Gap naming the window)."""
    sim = make_sim(venues=["synthetix"], rate=0, history=30)
    venue = sim.venue("synthetix")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    gaps = Gaps(collector, manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"], limit=10)
    with manager:
        assert venue.wait_for_subscriptions(1)
        assert collector.wait_trades(1)
        last = collector.trades[-1]
        emitted = [t for t in outage(sim, collector, "synthetix", missed * 3) if t["symbol"] == "BTC-USDT"]
        assert emitted
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == emitted[-1]["tradeId"])
    if gap:
        (g,) = gaps.items
        assert g.reason == "reconnect" and g.symbol == "BTC-USDT" and g.from_ms == last.timestamp_ms
        first_after = collector.trades[collector.trades.index(last) + 1]
        assert g.to_ms == first_after.timestamp_ms and first_after.trade_id != emitted[0]["tradeId"]
    else:
        assert gaps.items == []
        assert [t.trade_id for t in collector.trades[-len(emitted):]] == [t["tradeId"] for t in emitted]


def test_a_gap_without_on_gap_is_logged(make_sim, make_manager, collector, caplog):
    """Nobody listening: the Gap is logged as a warning, not dropped."""
    sim = make_sim(venues=["synthetix"], rate=0, history=30)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"], limit=3)
    with caplog.at_level("WARNING", logger="tradefeed"):
        with manager:
            assert sim.venue("synthetix").wait_for_subscriptions(1)
            assert collector.wait_trades(1)
            emitted = [t for t in outage(sim, collector, "synthetix", 60) if t["symbol"] == "BTC-USDT"]
            assert collector.wait_for(lambda c: c.trades[-1].trade_id == emitted[-1]["tradeId"])
    assert "possible loss: Gap(feed='synthetix-1'" in caplog.text
