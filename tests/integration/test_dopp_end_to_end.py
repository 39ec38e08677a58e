"""Dopp through FeedManager against the simulator over real loopback sockets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradefeed import Backoff, FeedClosedError, Liquidity, Side, Status

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


def assert_matches_tape(trades, tape):
    """Received trades are a contiguous run of the simulator's tape, each exact."""
    ids = [t["trade_id"] for t in tape]
    first = ids.index(trades[0].trade_id)
    expected = tape[first : first + len(trades)]
    assert [t.trade_id for t in trades] == [e["trade_id"] for e in expected], "missing, repeated or reordered"
    for trade, want in zip(trades, expected):
        assert trade.symbol == want["instrument_name"]
        assert str(trade.price) == str(want["price"]) and trade.price == want["price"]
        assert str(trade.amount) == str(want["amount"])
        assert str(trade.fee) == str(want["fee"]) and trade.fee_currency == want["fee_currency"]
        assert trade.side is Side(want["direction"])
        assert trade.liquidity is {"M": Liquidity.MAKER, "T": Liquidity.TAKER}[want["liquidity"]]
        assert trade.timestamp_ms == want["timestamp"] and trade.sequence == want["trade_seq"]
        assert trade.raw["wallet_address"] == want["wallet_address"]
        assert trade.raw["index_price"] == want["index_price"]
        assert isinstance(trade.price, Decimal) and isinstance(trade.amount, Decimal)


def test_thousand_trades_arrive_once_in_order_and_exact(make_sim, make_manager, collector):
    """1,000 streamed trades (plus the snapshot) arrive exactly once, in tape order, with exact values."""
    sim = make_sim(seed=3, rate=4000)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(1020, timeout=30)
    trades = list(collector.trades)
    tape = sim.venue("dopp").trades()
    assert len(trades) >= 1020
    assert len({t.trade_id for t in trades}) == len(trades)
    assert_matches_tape(trades, tape)
    assert collector.errors == []
    stats = manager.stats()["dopp-1"]
    assert stats.trades == len(trades) and stats.errors == 0 and stats.reconnects == 0


def test_snapshot_is_the_twenty_most_recent_delivered_oldest_first(make_sim, make_manager, collector):
    """The first frame after connect gives the 20 newest trades, delivered oldest first."""
    sim = make_sim(seed=5, rate=0, history=100)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        tape = sim.venue("dopp").trades()
        sim.venue("dopp").emit(5)
        assert collector.wait_trades(25)
    assert [t.trade_id for t in collector.trades] == [t["trade_id"] for t in sim.venue("dopp").trades()[-25:]]
    assert [t.trade_id for t in collector.trades[:20]] == [t["trade_id"] for t in tape[-20:]]


def test_instrument_and_wallet_filters(make_sim, make_manager, collector):
    """Only the requested instrument and wallet arrive, and all of them do."""
    sim = make_sim(seed=9, rate=0, history=300)
    venue = sim.venue("dopp")
    wallet = venue.trades()[-1]["wallet_address"]
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="BTC-PERPETUAL", wallet_address=wallet)
    with manager:
        assert sim.wait_for_connections(1)
        assert collector.wait_for(lambda c: any(e.status is Status.CONNECTED for e in c.statuses))
        for _ in range(20):
            venue.emit(20)
        expected = venue.trades(instrument_name="BTC-PERPETUAL", wallet_address=wallet)
        # the snapshot covers the newest 20 matches at connect time; all later ones stream
        assert collector.wait_for(lambda c: c.trades and c.trades[-1].trade_id == expected[-1]["trade_id"])
    assert collector.trades, "the filter matched nothing: the test would prove nothing"
    assert {t.symbol for t in collector.trades} == {"BTC-PERPETUAL"}
    assert {t.raw["wallet_address"] for t in collector.trades} == {wallet}
    assert_matches_tape(collector.trades, expected)


def test_currency_endpoint(make_sim, make_manager, collector):
    """The by-currency endpoint streams every instrument of that base currency, and only those."""
    sim = make_sim(seed=11, rate=0, history=200)
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"), currency="ETH")
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(200)
        expected = sim.venue("dopp").trades(currency="ETH")
        assert collector.wait_for(lambda c: c.trades[-1].trade_id == expected[-1]["trade_id"])
    assert {t.raw["base_currency"] for t in collector.trades} == {"ETH"}
    assert len({t.symbol for t in collector.trades}) > 1
    assert_matches_tape(collector.trades, expected)


def test_invalid_filter_ends_the_feed_without_retrying(make_sim, make_manager, collector):
    """An unknown instrument is closed with 1008; the feed reports it and does not reconnect."""
    sim = make_sim()
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    feed = manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="NOPE-PERPETUAL")
    manager.start()
    with pytest.raises(FeedClosedError) as info:
        manager.join(timeout=15)
    error = info.value
    assert error.code == 1008 and error.reason == "invalid filter" and error.feed == "dopp-1"
    assert "1008" in str(error) and "invalid filter" in str(error)
    assert collector.wait_status(Status.STOPPED)
    assert [e for e in collector.errors if isinstance(e, FeedClosedError)] == [error]
    stopped = [e for e in collector.statuses if e.status is Status.STOPPED]
    assert stopped[-1].detail["error"] is error
    assert not any(e.status is Status.RECONNECTING for e in collector.statuses)
    assert sim.handshakes("dopp") == 1
    assert feed.error is error and not feed.is_alive()


def test_other_feeds_keep_streaming_when_one_ends(make_sim, make_manager, collector):
    """A feed ended by 1008 does not affect a healthy feed in the same manager."""
    sim = make_sim(rate=0)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    bad = manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="NOPE")
    good = manager.add_feed("dopp", url=sim.url("dopp"), instrument_name="ETH-PERPETUAL")
    with manager:
        assert collector.wait_for(lambda c: any(e.status is Status.STOPPED and e.feed == bad.name for e in c.statuses))
        before = len(collector.trades)
        sim.venue("dopp").emit(100)
        assert collector.wait_for(lambda c: len(c.trades) > before)
        assert good.is_alive()


def test_server_restart_mid_stream_reconnects_by_itself(make_sim, make_manager, collector):
    """Stopping the server and restarting it on the same port: the feed comes back and streams."""
    sim = make_sim(seed=2, rate=500)
    port = sim.port("dopp")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(100)
        sim.stop()
        assert collector.wait_status(Status.DISCONNECTED)
        assert collector.wait_status(Status.RECONNECTING)
        sim.start()
        assert sim.port("dopp") == port
        assert collector.wait_status(Status.CONNECTED, count=2)
        seen = len(collector.trades)
        assert collector.wait_trades(seen + 100)
    ids = [t.trade_id for t in collector.trades]
    assert len(ids) == len(set(ids)), "the snapshot after reconnect must not repeat trades"
    assert manager.stats()["dopp-1"].reconnects >= 1


def test_abnormal_drop_reconnects_and_snapshot_overlap_is_deduplicated(make_sim, make_manager, collector):
    """After an abnormal close (1006) the new snapshot overlaps what was seen; no trade repeats."""
    sim = make_sim(seed=4, rate=0, history=50)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(5)
        assert collector.wait_trades(25)
        assert sim.drop_connections("dopp", code=None) == 1
        assert collector.wait_status(Status.CONNECTED, count=2)
        sim.venue("dopp").emit(5)
        assert collector.wait_trades(30)
    assert [t.trade_id for t in collector.trades] == [t["trade_id"] for t in sim.venue("dopp").trades()[-30:]]
    assert manager.stats()["dopp-1"].duplicates == 20
    disconnected = [e for e in collector.statuses if e.status is Status.DISCONNECTED]
    assert disconnected[0].detail["code"] == 1006


def test_handshake_429_backs_off_then_connects(make_sim, make_manager, collector):
    """Past the simulator's connect limit the handshake gets 429; the feed backs off and gets in."""
    sim = make_sim(max_connects=1, connect_window=0.5)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_status(Status.CONNECTED, count=2, timeout=20)
    refused = [e for e in collector.statuses if e.status is Status.DISCONNECTED and "429" in str(e.detail.get("error"))]
    assert refused, "one of the two feeds must have been refused"
    assert refused[0].detail["error"].status_code == 429
    assert refused[0].detail["error"].retry_after >= 1
    delays = [e.detail["delay"] for e in collector.statuses if e.status is Status.RECONNECTING]
    assert delays and min(delays) >= 1.0  # Retry-After is a floor over the 50 ms backoff


def test_malformed_frames_reach_on_error_and_the_feed_keeps_streaming(make_sim, make_manager, collector):
    """Bad JSON, invalid UTF-8, a wrong shape and a bad record are reported with their raw
    frame; the good trades around them, and in the same frame, are all delivered."""
    from tradefeed import ParseError

    sim = make_sim(rate=0)
    venue = sim.venue("dopp")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    good = (
        '{"amount": 1, "direction": "buy", "instrument_name": "BTC-PERPETUAL", "price": 2.5, '
        '"timestamp": 1767225600000, "trade_id": "good-1"}'
    )
    bad_side = good.replace('"buy"', '"long"').replace("good-1", "bad-1")
    with manager:
        assert collector.wait_trades(20)
        venue.inject('[{"last_trades": [')
        venue.inject(b"\xff\xfe\xfd")
        venue.inject('{"unexpected": true}')
        venue.inject('[{"last_trades": [%s, %s]}]' % (bad_side, good))
        venue.emit(3)
        assert collector.wait_trades(24)
        assert collector.wait_for(lambda c: len(c.errors) >= 4)
    errors = collector.errors
    assert all(isinstance(e, ParseError) and e.feed == "dopp-1" and e.venue == "dopp" for e in errors)
    assert "invalid JSON" in str(errors[0]) and errors[0].raw == b'[{"last_trades": ['
    assert errors[1].raw == b"\xff\xfe\xfd"
    assert "last_trades" in str(errors[2])
    assert "unknown direction 'long'" in str(errors[3]) and errors[3].raw["trade_id"] == "bad-1"
    ids = [t.trade_id for t in collector.trades]
    assert ids[20] == "good-1"
    assert ids[21:] == [t["trade_id"] for t in venue.trades()[-3:]]
    stats = manager.stats()["dopp-1"]
    assert stats.errors == 4 and stats.reconnects == 0
