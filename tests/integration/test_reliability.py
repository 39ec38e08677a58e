"""Reliability against injected faults: dead peers, refused handshakes, stalls,
sequence skips and duplicates (the simulator's fault API)."""

from __future__ import annotations

import pytest

from tradefeed import AuthError, Backoff, Gap, HandshakeError, Status, TransportError

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


def statuses(collector, status):
    return [e for e in collector.statuses if e.status is status]


def test_a_peer_that_stops_answering_pings_is_left_within_interval_plus_timeout(make_sim, make_manager, collector):
    """Muted pings: the feed gives up on the connection ping_interval + ping_timeout later and reconnects."""
    sim = make_sim(rate=0)
    manager = make_manager(ping_interval=0.3, ping_timeout=0.2, backoff=FAST)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.mute_pings("dopp")
        muted_at = collector.statuses[-1].time_ns
        assert collector.wait_status(Status.DISCONNECTED, timeout=10)
        sim.unmute_pings("dopp")
        assert collector.wait_status(Status.CONNECTED, count=2)
    (lost,) = statuses(collector, Status.DISCONNECTED)[:1]
    assert isinstance(lost.detail["error"], TransportError) and "no pong or data" in str(lost.detail["error"])
    assert (lost.time_ns - muted_at) / 1e9 < 0.3 + 0.2 + 0.5  # interval + timeout, plus slack for a busy machine


def test_a_stalled_feed_is_stale_but_kept_while_pings_answer(make_sim, make_manager, collector):
    """Stalled data with pings answered: 'stale', no reconnect; data again: 'fresh'."""
    sim = make_sim(rate=100)
    manager = make_manager(stale_after=0.3, ping_interval=0.2, ping_timeout=0.1)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(30)
        sim.stall("dopp")
        assert collector.wait_for(lambda c: any(e.detail["symbol"] is None for e in statuses(c, Status.STALE)))
        sim.resume("dopp")
        assert collector.wait_for(lambda c: any(e.detail["symbol"] is None for e in statuses(c, Status.FRESH)))
    assert manager.stats()["dopp-1"].reconnects == 0


def test_503_with_retry_after_is_retried_no_sooner(make_sim, make_manager, collector):
    """Two 503 refusals with Retry-After 1: the feed waits at least 1 s each time, then connects."""
    sim = make_sim(rate=0)
    sim.refuse_handshakes(2, status=503, retry_after=1, venue="dopp")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_status(Status.CONNECTED, timeout=20)
    refused = [e.detail["error"] for e in statuses(collector, Status.DISCONNECTED) if "error" in e.detail]
    assert [e.status_code for e in refused] == [503, 503] and all(isinstance(e, HandshakeError) for e in refused)
    assert [e.detail["delay"] >= 1.0 for e in statuses(collector, Status.RECONNECTING)] == [True, True]
    assert sim.handshakes("dopp") == 3


@pytest.mark.parametrize("status", [400, 404])
def test_400_and_404_end_the_feed(make_sim, make_manager, collector, status):
    """A handshake refused with 400 or 404 cannot succeed by retrying: the feed ends."""
    sim = make_sim(rate=0)
    sim.refuse_handshakes(1, status=status, retry_after=None, venue="dopp")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.start()
    with pytest.raises(HandshakeError) as info:
        manager.join(timeout=15)
    assert info.value.status_code == status and sim.handshakes("dopp") == 1


def test_401_at_the_handshake_refreshes_the_token_once_then_ends_with_auth_error(make_sim, make_manager, collector):
    """One 401: a new token, reconnect at once, streaming. Two in a row: AuthError ends the feed."""
    sim = make_sim(venues=["rails"], rate=0, history=10)
    sim.refuse_handshakes(1, status=401, retry_after=None, venue="rails")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("rails", **sim.feed_params("rails"))
    with manager:
        assert collector.wait_trades(1)
    assert sim.venue("rails").token_requests == 2
    assert statuses(collector, Status.RECONNECTING)[0].detail["delay"] == 0

    sim.refuse_handshakes(2, status=401, retry_after=None, venue="rails")
    other = make_manager(backoff=FAST)
    other.add_feed("rails", **sim.feed_params("rails"))
    other.start()
    with pytest.raises(AuthError, match="refused a freshly fetched token"):
        other.join(timeout=15)


def test_a_skipped_sequence_number_is_a_gap_live(make_sim, make_manager, collector):
    """The venue skips trade_seq numbers: each jump is a Gap with the two sequences."""
    sim = make_sim(rate=0)
    manager = make_manager()
    collector.attach(manager)
    gaps: list[Gap] = []
    manager.on_gap(gaps.append)
    manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL")
    with manager:
        assert collector.wait_trades(1)
        sim.venue("dopp").fault(skip_sequence=0.2, seed=7)
        sim.venue("dopp").emit(200)
        last = sim.venue("dopp").trades(instrument_name="BTC-PERPETUAL")[-1]["trade_id"]
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == last)
    seqs = [t.sequence for t in collector.trades]
    jumps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
    assert jumps and [(g.last_sequence, g.next_sequence) for g in gaps] == jumps
    assert all(g.reason == "sequence" and g.symbol == "BTC-PERPETUAL" for g in gaps)


def test_duplicated_trades_are_delivered_once(make_sim, make_manager, collector):
    """The venue repeats trades in later frames: each is delivered once, counted as a duplicate."""
    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").fault(duplicate=0.3, seed=3)
        for _ in range(20):
            sim.venue("dopp").emit(10)
        last = sim.venue("dopp").trades()[-1]["trade_id"]
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == last)
    ids = [t.trade_id for t in collector.trades]
    assert len(ids) == len(set(ids)) == 220
    assert manager.stats()["dopp-1"].duplicates > 20


def test_two_hundred_feeds_survive_a_restart_spread_out_and_clean_up(make_sim, make_manager, collector):
    """200 feeds; the server restarts; every feed reconnects, the reconnects are spread by
    jitter (no thundering herd), and after stop() the thread count is back to its baseline."""
    import threading

    sim = make_sim(rate=0, history=5, max_connects=None)
    baseline = threading.active_count()  # the simulator's thread included
    manager = make_manager(backoff=Backoff(initial=0.5, max_delay=2, jitter=0.25), ping_interval=0)
    collector.attach(manager)
    for _ in range(200):
        manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_status(Status.CONNECTED, count=200, timeout=60)
        assert threading.active_count() <= baseline + 200 + 2 + 1  # a thread per feed, scheduler, dispatcher (+ sim)
        sim.stop()
        sim.start()
        assert collector.wait_status(Status.CONNECTED, count=400, timeout=60)
    delays = sorted(e.detail["delay"] for e in collector.statuses if e.status is Status.RECONNECTING)
    assert len(delays) >= 200
    first = delays[:200]
    assert first[-1] - first[0] > 0.1  # spread over the jitter band, not one instant
    assert len({round(d, 3) for d in first}) > 100
    assert threading.active_count() == baseline
