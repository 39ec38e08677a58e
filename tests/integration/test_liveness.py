"""Liveness: quiet symbols are reported stale and fresh again; a connection is only
re-made for staleness when asked; a peer that stops answering pings is left."""

from __future__ import annotations

import pytest

from tradefeed import Backoff, StaleFeedError, Status

pytestmark = pytest.mark.timeout(60)


def events(collector, status):
    return [e for e in collector.statuses if e.status is status]


def test_quiet_symbols_go_stale_and_come_back_fresh(make_sim, make_manager, collector):
    """No trades for stale_after: 'stale' per symbol (and for the feed); the next trade of a
    symbol makes it 'fresh'; the connection itself is left alone."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager(stale_after=0.3, ping_interval=0.2, ping_timeout=0.1)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL")
    with manager:
        assert collector.wait_trades(1)
        assert collector.wait_for(lambda c: {e.detail["symbol"] for e in events(c, Status.STALE)} == {"BTC-PERPETUAL", None})
        while True:  # a BTC-PERPETUAL trade
            if any(t["instrument_name"] == "BTC-PERPETUAL" for t in sim.venue("dopp").emit(5)):
                break
        assert collector.wait_for(lambda c: {e.detail["symbol"] for e in events(c, Status.FRESH)} == {"BTC-PERPETUAL", None})
    stale = events(collector, Status.STALE)
    assert all(e.detail["age"] >= 0.3 for e in stale)
    assert manager.stats()["dopp-1"].reconnects == 0  # pings answered: the connection stays
    assert len(stale) == 2  # reported once each, not on every watchdog round


def test_reconnect_on_stale_remakes_a_silent_connection(make_sim, make_manager, collector):
    """With reconnect_on_stale the feed reconnects when it got no data for stale_after."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager(stale_after=0.3, reconnect_on_stale=True, backoff=Backoff(initial=0.05, max_delay=0.1))
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL")
    with manager:
        assert collector.wait_status(Status.RECONNECTING)
    (first,) = events(collector, Status.RECONNECTING)[:1]
    assert isinstance(first.detail["error"], StaleFeedError) and "no data for 0.3s" in str(first.detail["error"])


def test_heartbeats_do_not_count_as_data(make_sim, make_manager, collector):
    """SynFutures text pongs every 0.1 s keep the socket alive, not the data: the feed goes stale."""
    from tradefeed.adapters.synfutures import SynfuturesAdapter
    from tradefeed.simulator.synfutures import PAIRS

    sim = make_sim(venues=["synfutures"], rate=0, history=10)
    manager = make_manager(stale_after=0.5)
    collector.attach(manager)
    original = SynfuturesAdapter.tick_interval
    SynfuturesAdapter.tick_interval = 0.1
    try:
        manager.add_feed("synfutures", url=sim.url("synfutures"), pairs=[next(iter(PAIRS))])
        with manager:
            assert collector.wait_trades(1)
            assert collector.wait_for(lambda c: any(e.detail["symbol"] is None for e in events(c, Status.STALE)))
    finally:
        SynfuturesAdapter.tick_interval = original
    assert manager.stats()["synfutures-1"].messages > 3  # pongs kept coming meanwhile


def test_stale_after_is_validated(make_manager):
    from tradefeed import ConfigError

    with pytest.raises(ConfigError, match="stale_after"):
        make_manager(stale_after=0)
