"""FeedManager lifecycle, threads and callbacks, against the simulator."""

from __future__ import annotations

import threading

import pytest

from tradefeed import CallbackError, ConfigError, FeedManager, Status, TradefeedError

from .conftest import tradefeed_threads

pytestmark = pytest.mark.timeout(60)


def feed_lock(manager):
    """Hold the first feed's adapter lock: its thread stops at the next frame."""
    return manager.feeds[0]._connection._lock


def wait_until(predicate, timeout=10.0):
    """Poll a condition nothing signals (a counter of another thread), bounded."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return predicate()


def connection_threads():
    return [n for n in tradefeed_threads() if n.startswith("tradefeed-dopp")]


def test_threads_are_named_daemons_one_per_feed(make_sim, make_manager, collector):
    """Each feed runs on its own daemon thread tradefeed-<venue>-<n>."""
    sim = make_sim(rate=0)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"), currency="BTC")
    manager.add_feed("dopp", url=sim.url("dopp"), currency="ETH")
    with manager:
        assert collector.wait_status(Status.CONNECTED, count=2)
        names = sorted(connection_threads())
        assert names == ["tradefeed-dopp-1", "tradefeed-dopp-2"]
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("tradefeed-dopp"))
        assert "tradefeed-dispatcher" in tradefeed_threads() and "tradefeed-scheduler" in tradefeed_threads()
    assert connection_threads() == []


def test_stop_from_inside_a_callback(make_sim, make_manager, collector):
    """stop() called by a trade callback returns; the manager then winds down completely."""
    sim = make_sim(rate=200)
    manager = make_manager()
    returned = threading.Event()

    @manager.on_trade
    def stop_on_first(trade):
        if not returned.is_set():
            manager.stop(timeout=10)
            returned.set()

    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.start()
    assert returned.wait(15), "stop() inside a callback did not return"
    assert manager.join(timeout=15) is True
    assert tradefeed_threads() == []


def test_stop_from_another_thread(make_sim, make_manager, collector):
    """stop() from a thread of the user's returns True and leaves no tradefeed thread."""
    sim = make_sim(rate=200)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.start()
    assert collector.wait_trades(30)
    result = []
    stopper = threading.Thread(target=lambda: result.append(manager.stop(timeout=10)))
    stopper.start()
    stopper.join(15)
    assert result == [True]
    assert tradefeed_threads() == []
    assert collector.statuses[-1].status is Status.STOPPED  # queued events were delivered
    assert manager.stop() is True  # idempotent


def test_stop_while_the_server_is_down_is_prompt(make_sim, make_manager, collector):
    """A feed waiting out its backoff stops at once (Event.wait, not sleep)."""
    sim = make_sim(rate=0)
    url = sim.url("dopp")
    sim.stop()
    manager = make_manager(backoff=None)  # 1 s doubling: a sleep would be visible
    collector.attach(manager)
    manager.add_feed("dopp", url=url)
    manager.start()
    assert collector.wait_status(Status.RECONNECTING)
    assert manager.stop(timeout=5) is True
    assert tradefeed_threads() == []


def test_pump_mode_runs_callbacks_on_the_pumping_thread(make_sim, make_manager, collector):
    """With dispatch='manual' no dispatcher thread exists and callbacks run where pump() is called."""
    sim = make_sim(rate=500)
    manager = make_manager(dispatch="manual")
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    pump_thread = threading.get_ident()
    with manager:
        assert "tradefeed-dispatcher" not in tradefeed_threads()
        delivered = 0
        while len(collector.trades) < 100:
            delivered += manager.pump(timeout=10)
            assert delivered, "nothing arrived within the timeout"
    assert collector.threads == {pump_thread}
    assert manager.pump(max_items=1) in (0, 1)  # what was still queued stays pumpable


def test_pump_needs_manual_mode(make_manager):
    """pump() on a manager with its own dispatcher thread is a clear error."""
    with pytest.raises(TradefeedError, match="manual"):
        make_manager().pump()


def test_raising_callback_keeps_receiving_and_does_not_block_others(make_sim, make_manager, collector):
    """A callback that always raises still gets every trade, as does the next one; errors are reported."""
    sim = make_sim(rate=0)
    manager = make_manager()
    calls = []

    @manager.on_trade
    def broken(trade):
        calls.append(trade.trade_id)
        raise ValueError("user bug")

    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(30)
        assert collector.wait_trades(50)
        assert collector.wait_for(lambda c: sum(isinstance(e, CallbackError) for e in c.errors) >= 50)
    assert calls == [t.trade_id for t in collector.trades]
    errors = [e for e in collector.errors if isinstance(e, CallbackError)]
    assert errors[0].callback is broken and isinstance(errors[0].__cause__, ValueError)
    assert errors[0].item is collector.trades[0]


def test_filters_on_venue_and_symbol(make_sim, make_manager, collector):
    """on_trade(cb, symbol=...) only sees that symbol; the decorator form with arguments works."""
    sim = make_sim(rate=0, history=200)
    manager = make_manager()
    collector.attach(manager)
    eth = []

    @manager.on_trade(venue="dopp", symbol="ETH-PERPETUAL")
    def only_eth(trade):
        eth.append(trade)

    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(100)
        assert collector.wait_trades(120)
    assert eth and eth == [t for t in collector.trades if t.symbol == "ETH-PERPETUAL"]


def test_add_feed_while_running(make_sim, make_manager, collector):
    """A feed added after start() connects at once."""
    sim = make_sim(rate=0)
    manager = make_manager()
    collector.attach(manager)
    with manager:
        feed = manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL")
        assert collector.wait_status(Status.CONNECTED)
        assert feed.is_alive() and feed.name == "dopp-1"


def test_configuration_mistakes_raise_synchronously(make_manager):
    """Bad venue, parameter, URL or setting: ConfigError from the call itself."""
    manager = make_manager()
    with pytest.raises(ConfigError, match="unknown venue"):
        manager.add_feed("nope")
    with pytest.raises(ConfigError, match="unknown parameter"):
        manager.add_feed("dopp", symbol="BTC")
    with pytest.raises(ConfigError, match="ws://"):
        manager.add_feed("dopp", url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="unknown venue"):
        manager.on_trade(print, venue="nope")
    with pytest.raises(ConfigError, match="ping_timeout"):
        FeedManager(ping_interval=5, ping_timeout=5)
    with pytest.raises(ConfigError, match="dispatch"):
        FeedManager(dispatch="gui")  # type: ignore[arg-type]
    manager.add_feed("dopp", name="mine")
    with pytest.raises(ConfigError, match="exists"):
        manager.add_feed("dopp", name="mine")


def test_a_stopped_manager_cannot_be_restarted(make_manager):
    """start() after stop() is an error, not a half-working manager."""
    manager = make_manager()
    manager.start()
    manager.stop()
    with pytest.raises(TradefeedError, match="stopped"):
        manager.start()


def test_run_forever_returns_after_stop_from_a_callback(make_sim, make_manager, collector):
    """run_forever() blocks until a callback calls stop(), then returns cleanly."""
    sim = make_sim(rate=200)
    manager = make_manager()
    collector.attach(manager)

    @manager.on_trade
    def enough(trade):
        if len(collector.trades) >= 40:
            manager.stop()

    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.run_forever()
    assert len(collector.trades) >= 40
    assert tradefeed_threads() == []


def test_stats_and_feed_repr(make_sim, make_manager, collector):
    """stats() counts per feed; a Feed's repr shows its name and parameters."""
    sim = make_sim(rate=0)
    manager = make_manager()
    collector.attach(manager)
    feed = manager.add_feed("dopp", url=sim.url("dopp"), currency="BTC")
    with manager:
        assert collector.wait_trades(20)  # the snapshot frame
        live = manager.stats()["dopp-1"]
        assert live.status is Status.CONNECTED and live.last_trade_age is not None
    stats = manager.stats()["dopp-1"]
    assert stats.messages == 1 and stats.trades == 20 and stats.duplicates == 0
    assert stats.status is Status.STOPPED and stats.errors == 0 and stats.reconnects == 0
    assert "dopp-1" in repr(feed) and "'currency': 'BTC'" in repr(feed)


def test_a_burst_of_frames_is_handed_over_in_few_batches(make_sim, make_manager, collector):
    """Frames that are already waiting on the socket go to the dispatcher together, not one wake-up each."""
    sim = make_sim(rate=0)
    manager = make_manager()
    collector.attach(manager)
    feed = manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)  # the snapshot
        batches_before = manager._dispatcher.batches
        # hold the connection thread at its next frame while 200 frames pile up on the socket
        with feed._connection._lock:
            for _ in range(200):
                sim.venue("dopp").emit(1)
        assert collector.wait_trades(220)
        batches = manager._dispatcher.batches - batches_before
    assert [t.trade_id for t in collector.trades] == [t["trade_id"] for t in sim.venue("dopp").trades()[-220:]]
    assert batches <= 10, "%d hand-offs for 200 queued frames" % batches


@pytest.mark.parametrize("limit", [None, 50])
def test_a_slow_consumer_is_announced_and_a_bounded_queue_drops_counted(make_sim, make_manager, collector, limit):
    """While the callback is stuck: unbounded -> 'lagging' past high_water and 'caught_up'
    after; bounded -> the oldest trades dropped, counted in stats(), nothing else lost."""
    sim = make_sim(rate=0)
    manager = make_manager(queue_limit=limit, high_water=100)
    collector.attach(manager)
    gate = threading.Event()
    manager.on_trade(lambda trade: gate.wait(10))
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert sim.wait_for_connections(1)
        for _ in range(30):
            sim.venue("dopp").emit(10)
        total = len(sim.venue("dopp").trades()) - 100 + 20  # snapshot + emitted
        # the reader is not held up by the stuck callback: it takes in everything
        assert wait_until(lambda: manager.stats()["dopp-1"].trades == total)
        gate.set()
        stats = manager.stats()["dopp-1"]
        assert collector.wait_for(lambda c: len(c.trades) + manager.stats()["dopp-1"].dropped == total)
    lagging = [e for e in collector.statuses if e.status is Status.LAGGING]
    assert lagging and lagging[0].feed == ""
    dropped = manager.stats()["dopp-1"].dropped
    if limit is None:
        assert dropped == 0 and len(collector.trades) == total
        assert any(e.status is Status.CAUGHT_UP for e in collector.statuses)
    else:
        assert dropped > 0 and lagging[0].detail["limit"] == 50
    ids = [int(t.trade_id) for t in collector.trades]
    assert ids == sorted(ids) and stats.trades == total  # order kept; the reader never waited


def test_remove_feed_from_a_callback_while_others_stream(make_sim, make_manager, collector):
    """remove_feed() inside a callback stops that feed's thread; the other feed streams on."""
    sim = make_sim(rate=0)
    manager = make_manager()
    collector.attach(manager)
    doomed = manager.add_feed("dopp", url=sim.url("dopp"), currency="BTC")
    keeper = manager.add_feed("dopp", url=sim.url("dopp"), currency="ETH")
    removed = []

    @manager.on_trade
    def remove_once(trade):
        if not removed and trade.raw["base_currency"] == "BTC":
            removed.append(manager.remove_feed(doomed))

    with manager:
        assert collector.wait_for(lambda c: removed)
        before = len(collector.trades)
        sim.venue("dopp").emit(50)
        assert collector.wait_for(lambda c: len(c.trades) > before)
        assert removed == [True] and not doomed.is_alive() and keeper.is_alive()
        assert [f.name for f in manager.feeds] == [keeper.name]
        after = [t for t in collector.trades[before:] if t.raw["base_currency"] == "BTC"]
    assert after == []
    with pytest.raises(ConfigError, match="no feed named"):
        manager.remove_feed("dopp-9")


def test_stop_without_draining_is_prompt_behind_a_slow_callback(make_sim, make_manager, collector):
    """stop(drain=False) drops what is queued (counted) instead of waiting for a slow callback."""
    sim = make_sim(rate=0)
    manager = make_manager()
    release = threading.Event()
    calls = []
    manager.on_trade(lambda trade: (calls.append(trade), release.wait(0.05)))
    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.start()
    assert sim.wait_for_connections(1)
    with feed_lock(manager):  # the frames pile up: the dispatcher then takes them as ONE big batch
        for _ in range(20):
            sim.venue("dopp").emit(10)
        assert sim.wait_for_connections(1)
    assert wait_until(lambda: manager.stats()["dopp-1"].trades == 220)
    assert manager.stop(timeout=10, drain=False) is True  # also abandons the batch in delivery
    stats = manager.stats()["dopp-1"]
    assert stats.dropped > 0 and len(calls) + stats.dropped == 220


def test_stop_without_draining_abandons_a_draining_stop_under_way(make_sim, make_manager):
    """stop(drain=False) while an earlier stop() still delivers behind a stuck callback: the rest
    is dropped (counted), and the dispatcher ends as soon as the callback returns."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager()
    entered, release = threading.Event(), threading.Event()
    calls = []

    def stuck(trade):
        calls.append(trade)
        entered.set()
        release.wait(30)

    manager.on_trade(stuck)
    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.start()
    assert entered.wait(15)  # the snapshot's first trade; the rest of it waits behind
    assert manager.stop(timeout=0.5) is False  # draining: it gives up waiting for the dispatcher
    manager.stop(drain=False)
    release.set()
    assert manager.join(10) is True
    stats = manager.stats()["dopp-1"]
    assert len(calls) == 1 and stats.dropped == stats.trades - 1 > 0
