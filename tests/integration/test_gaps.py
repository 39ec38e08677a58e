"""Loss is never silent: Gap events for sequence jumps and for reconnects whose
back-fill does not reach back to the last trade seen."""

from __future__ import annotations

import pytest

from tradefeed import Backoff, Gap, Status
from tradefeed.adapters.base import dumps
from tradefeed.simulator.synthetix import rfc3339

from .rawserver import RawServer, close_frame, text_frame, upgrade_response

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


@pytest.mark.parametrize("limit, resumes_at", [(5, 8), (10, 4), (2, 10)])
def test_synthetix_backfill_overlapping_the_held_live_trades_is_no_proof_of_continuity(
    make_manager, collector, limit, resumes_at
):
    """Scripted, in an order a real venue can produce: after a reconnect, trades 10-12 are
    pushed between the subscribe ack and the getLastTrades reply, so the back-fill (the
    newest `limit` up to 12) and the held live trades overlap.  That overlap repeats the
    reconnect's own trades, not anything seen before it: with limit 5, 4-7 are lost and a
    Gap must say so.  With limit 2 the live stream reaches back further than the back-fill
    (4-9 lost) and must still come out in order.  With limit 10 the back-fill reaches back
    to 3, seen before: no Gap."""
    base = 1_767_225_600_000
    ids = {n: str(1_950_384_800 + n) for n in range(1, 14)}

    def record(n):
        return {"tradeId": ids[n], "symbol": "BTC-USDT", "side": "buy", "price": "90000.5",
                "quantity": "0.010", "timestamp": base + 10 * n, "isMaker": False}  # fmt: skip

    def push(n):
        data = {**record(n), "timestamp": rfc3339(base + 10 * n)}
        return text_frame(dumps({"channel": "trade", "data": data, "timestamp": base + 10 * n + 1}).encode())

    def reply(first, last):  # the getLastTrades reply of a fresh adapter (request "trades-2"), newest first
        result = {"response": {"trades": [record(n) for n in range(last, first - 1, -1)]}, "status": "success"}
        return text_frame(dumps({"id": "trades-2", "status": 200, "result": result}).encode())

    ack = text_frame(dumps({"id": "subscription-1", "requestId": "subscription-1", "status": 200,
                            "result": {"type": "trades", "symbol": "BTC-USDT"}}).encode())  # fmt: skip
    connections = []

    def respond(request):
        connections.append(request)
        if len(connections) == 1:  # back-fill 1-3, then the venue fails the connection
            return upgrade_response(request) + ack + reply(1, 3) + close_frame(1011)
        # 4-9 happened while away; 10-12 are pushed before the back-fill is answered; then 13
        live = b"".join(map(push, (10, 11, 12)))
        return upgrade_response(request) + ack + live + reply(12 - limit + 1, 12) + push(13)

    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    gaps = Gaps(collector, manager)
    with RawServer(respond) as server:
        manager.add_feed("synthetix", url=server.url, symbols=["BTC-USDT"], limit=limit)
        with manager:
            # a Gap is dispatched ahead of the trades of its batch, so it is in by trade 13
            assert collector.wait_for(lambda c: any(t.trade_id == ids[13] for t in c.trades))
    assert len(connections) == 2
    assert [t.trade_id for t in collector.trades] == [ids[n] for n in [1, 2, 3, *range(resumes_at, 14)]]
    if resumes_at > 4:
        (g,) = gaps.items
        assert g.reason == "reconnect" and g.symbol == "BTC-USDT"
        assert (g.from_ms, g.to_ms) == (base + 30, base + 10 * resumes_at)  # after trade 3, up to the next one
    else:
        assert gaps.items == []
