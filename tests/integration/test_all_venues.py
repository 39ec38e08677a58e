"""All four venues at once in one FeedManager, against one simulator."""

from __future__ import annotations

import pytest

from tradefeed import VENUES

pytestmark = pytest.mark.timeout(60)

TRADE_ID_KEY = {"dopp": "trade_id", "synfutures": "id", "synthetix": "tradeId", "rails": "matchId"}
SYMBOL_KEY = {"dopp": "instrument_name", "synfutures": "symbol", "synthetix": "symbol", "rails": "market"}


def test_every_venue_streams_every_emitted_trade_exactly_once(make_sim, make_manager, collector):
    """One manager, four venues: each emitted trade arrives exactly once, on its venue."""
    sim = make_sim(rate=0, history=10)
    manager = make_manager()
    collector.attach(manager)
    for venue in VENUES:
        manager.add_feed(venue, **sim.feed_params(venue))
    assert sorted(f.venue for f in manager.feeds) == sorted(VENUES) == ["dopp", "rails", "synfutures", "synthetix"]
    with manager:
        assert collector.wait_for(lambda c: {t.venue for t in c.trades} == set(VENUES))  # every snapshot/back-fill
        assert sim.venue("synthetix").wait_for_subscriptions(3)
        emitted: dict[tuple[str, str], list[str]] = {}  # (venue, symbol) -> ids in tape order
        for venue in VENUES:
            for record in sim.venue(venue).emit(50):
                ids = emitted.setdefault((venue, record[SYMBOL_KEY[venue]]), [])
                if record[TRADE_ID_KEY[venue]] not in ids:  # rails: maker+taker records of one match
                    ids.append(record[TRADE_ID_KEY[venue]])
        wanted = {(venue, tid) for (venue, _), ids in emitted.items() for tid in ids}
        assert collector.wait_for(lambda c: wanted <= {(t.venue, t.trade_id) for t in c.trades})
    seen = [(t.venue, t.trade_id) for t in collector.trades]
    assert len(seen) == len(set(seen)), "a trade was delivered twice"
    assert not collector.errors
    for (venue, symbol), ids in emitted.items():  # per symbol: the emitted trades, last and in order
        received = [t.trade_id for t in collector.trades if t.venue == venue and t.symbol == symbol]
        assert received[-len(ids):] == ids, (venue, symbol)
