"""redundancy=N: identical connections merged, so one dropping loses nothing."""

from __future__ import annotations

import random

import pytest

from tradefeed import Backoff, Status

pytestmark = pytest.mark.timeout(90)


def reconnecting(collector, index: int) -> int:
    return sum(e.status is Status.RECONNECTING and e.detail.get("connection") == index for e in collector.statuses)


def test_one_connection_dropping_loses_nothing(make_sim, make_manager, collector):
    """Two connections of one feed; one at a time is cut off (its socket shut) and sits out a
    0.5 s backoff while trades flow: every trade arrives once, in order, with no Gap."""
    sim = make_sim(rate=0, history=30)
    venue = sim.venue("dopp")
    manager = make_manager(backoff=Backoff(initial=0.5, max_delay=0.5, jitter=0))
    collector.attach(manager)
    gaps = []
    manager.on_gap(gaps.append)
    feed = manager.add_feed("dopp", url=sim.url("dopp"), redundancy=2)
    assert feed.redundancy == 2
    rng = random.Random(11)
    with manager:
        assert sim.wait_for_connections(2)
        assert collector.wait_trades(20)
        for round_ in range(8):
            victim = feed._connections[round_ % 2]
            other = feed._connections[(round_ + 1) % 2]
            # live and caught up (not just CONNECTED: an attempt cut during its handshake
            # may still report that before it fails)
            assert other.in_sync.wait(15)
            left = reconnecting(collector, victim.index)
            victim.abort()  # one network path fails
            assert collector.wait_for(lambda c: reconnecting(c, victim.index) > left)  # it has left
            for _ in range(rng.randint(3, 8)):
                venue.emit(rng.randint(5, 30))
        last = venue.trades()[-1]["trade_id"]
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == last)
    tape = [t["trade_id"] for t in venue.trades()]
    ids = [t.trade_id for t in collector.trades]
    assert ids == tape[tape.index(ids[0]) :], "missing, repeated or reordered"
    assert gaps == []
    stats = feed.stats()
    assert stats.reconnects >= 8 and stats.duplicates > 0
    assert {e.detail.get("connection") for e in collector.statuses if e.status is Status.CONNECTED} == {1, 2}


def test_redundancy_is_validated(make_manager):
    from tradefeed import ConfigError

    with pytest.raises(ConfigError, match="redundancy"):
        make_manager().add_feed("dopp", redundancy=0)


def test_rotation_replaces_the_connection_without_a_gap(make_sim, make_manager, collector):
    """rotate_after: every 0.4 s a new connection opens, delivers, and only then the old
    one closes; across several rotations every trade arrives once, in order, no Gap."""
    import threading

    sim = make_sim(rate=300, history=30)
    manager = make_manager()
    collector.attach(manager)
    gaps = []
    manager.on_gap(gaps.append)
    feed = manager.add_feed("dopp", url=sim.url("dopp"), rotate_after=0.4)
    baseline = threading.active_count()
    with manager:
        assert collector.wait_for(
            lambda c: sum(e.status is Status.STOPPED and e.detail.get("reason") == "rotated" for e in c.statuses) >= 4,
            timeout=30,
        )
        last_id = collector.trades[-1].trade_id
    tape = [t["trade_id"] for t in sim.venue("dopp").trades()]
    ids = [t.trade_id for t in collector.trades]
    assert ids == tape[tape.index(ids[0]) : tape.index(ids[-1]) + 1], "missing, repeated or reordered"
    assert int(ids[-1]) >= int(last_id) and gaps == []
    connected = [e for e in collector.statuses if e.status is Status.CONNECTED]
    assert len(connected) >= 5 and feed.stats().reconnects == 0  # replaced, never reconnected
    assert threading.active_count() <= baseline  # retired connections' threads ended
