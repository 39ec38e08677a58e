"""Rails through FeedManager against the simulator: JWT auth, public and private trades."""

from __future__ import annotations

import logging

import pytest

from tradefeed import AuthError, Backoff, ConfigError, FeedClosedError, Liquidity, ParseError, Side, Status, VenueError

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


def rails_feed(manager, sim, **params):
    key, secret = params.pop("credentials", None) or sim.credentials("rails")
    params.setdefault("market", "BTC-USDT")
    return manager.add_feed("rails", url=sim.url("rails"), auth_url=sim.auth_url("rails"), api_key=key, api_secret=secret, **params)


def aggressor(record):
    side = Side(record["orderType"])
    if record["executionType"] == "taker":
        return side
    return Side.SELL if side is Side.BUY else Side.BUY


def assert_public_matches_tape(trades, tape):
    """Public trades are a contiguous, ordered run of the market's matches, each exact."""
    first_by_match = {}
    for record in tape:
        first_by_match.setdefault(record["matchId"], record)
    matches = list(first_by_match.values())
    ids = [r["matchId"] for r in matches]
    start = ids.index(trades[0].trade_id)
    expected = matches[start : start + len(trades)]
    assert [t.trade_id for t in trades] == [r["matchId"] for r in expected], "missing, repeated or reordered"
    for trade, want in zip(trades, expected):
        assert trade.price == want["price"] and str(trade.price) == str(want["price"])
        assert trade.amount == want["quantity"] and trade.timestamp_ms == want["updatedAt"]
        assert trade.side is aggressor(want) and trade.liquidity is Liquidity.TAKER
        assert trade.symbol == want["market"] and trade.raw["stream"] == "publicTrades"


def wait_for_last_match(collector, venue, market="BTC-USDT"):
    last = venue.trades(market)[-1]["matchId"]
    return collector.wait_for(lambda c: any(t.trade_id == last for t in c.trades))


def test_public_trades_once_in_order_and_exact_with_the_snapshot(make_sim, make_manager, collector):
    """The snapshot (asked for after connect) and the deltas: every match once, in order, exact."""
    sim = make_sim(venues=["rails"], seed=12, rate=0, history=80)
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        snapshot = len(collector.trades)
        emitted = [r["matchId"] for _ in range(10) for r in venue.emit(20) if r["market"] == "BTC-USDT"]
        assert wait_for_last_match(collector, venue)
    assert not collector.errors
    assert_public_matches_tape(collector.trades, venue.trades("BTC-USDT"))
    assert [t.trade_id for t in collector.trades[snapshot:]] == emitted
    assert 1 < snapshot <= 50
    assert venue.token_requests == 1


def test_private_fills_and_public_trades_share_match_ids_and_both_arrive(make_sim, make_manager, collector):
    """With publicTrades and trades, a fill of the account arrives on both streams, told apart by raw['stream']."""
    sim = make_sim(venues=["rails"], seed=3, rate=0, history=10)
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    rails_feed(manager, sim, subscriptions=["publicTrades", "trades"])
    with manager:
        assert collector.wait_trades(1)
        for _ in range(10):
            venue.emit(20)
        fills = [f for f in venue.fills() if f["orderFilledAt"] >= 0]
        assert fills, "the simulator made no fill for the account: nothing would be proven"
        last_fill = fills[-1]["matchId"]
        assert collector.wait_for(lambda c: any(t.trade_id == last_fill and t.raw["stream"] == "trades" for t in c.trades))
        assert wait_for_last_match(collector, venue)
    private = [t for t in collector.trades if t.raw["stream"] == "trades"]
    public_ids = {t.trade_id for t in collector.trades if t.raw["stream"] == "publicTrades"}
    by_id = {f["matchId"]: f for f in venue.fills()}
    assert private and all(t.trade_id in by_id for t in private)
    assert any(t.trade_id in public_ids for t in private)  # the same match on both streams
    for trade in private:
        fill = by_id[trade.trade_id]
        assert trade.fee == fill["fees"] and trade.fee_currency == "USDT" and trade.side is Side(fill["orderType"])
        assert trade.liquidity is Liquidity(fill["executionType"]) and trade.timestamp_ms == fill["orderFilledAt"]


def test_maker_records_give_the_aggressor_side_once_per_match(make_sim, make_manager, collector):
    """Maker records (alone, or before the taker record) yield one trade per match with the aggressor's side."""
    sim = make_sim(venues=["rails"], seed=5, rate=0, history=30, options={"rails": {"maker_records": True}})
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        venue.emit(100)
        assert wait_for_last_match(collector, venue)
    tape = venue.trades("BTC-USDT")
    assert any(r["executionType"] == "maker" for r in tape), "no maker record: nothing would be proven"
    assert_public_matches_tape(collector.trades, tape)
    assert manager.stats()["rails-1"].duplicates > 0  # maker-then-taker pairs were folded


def test_legacy_message_names(make_sim, make_manager, collector):
    """The older completedOrdersDelta / completedOrders names are read as public trades."""
    sim = make_sim(venues=["rails"], rate=0, history=20, options={"rails": {"legacy_names": True}})
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        venue.emit(30)
        assert wait_for_last_match(collector, venue)
    assert_public_matches_tape(collector.trades, venue.trades("BTC-USDT"))


def test_market_all_with_snapshot_markets(make_sim, make_manager, collector):
    """market=ALL streams every market; snapshots only for the markets listed."""
    sim = make_sim(venues=["rails"], rate=0, history=40)
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    rails_feed(manager, sim, market="ALL", snapshot_markets=["ETH-USDT"])
    with manager:
        assert collector.wait_trades(1)
        snapshot_markets = {t.symbol for t in collector.trades}
        venue.emit(60)
        assert wait_for_last_match(collector, venue, "BTC-USDT") and wait_for_last_match(collector, venue, "ETH-USDT")
    assert snapshot_markets == {"ETH-USDT"}
    for market in ("BTC-USDT", "ETH-USDT"):
        assert_public_matches_tape([t for t in collector.trades if t.symbol == market], venue.trades(market))


def test_subscribe_and_unsubscribe_streams_at_run_time(make_sim, make_manager, collector):
    """Adding 'trades' brings the account's fills; removing 'publicTrades' stops the public tape."""
    sim = make_sim(venues=["rails"], rate=0, history=10)
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    feed = rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        feed.subscribe("trades")
        feed.unsubscribe("publicTrades")
        assert feed.params["subscriptions"] == ["trades"]
        mark = len(collector.trades)
        # the venue applies the subscribe when it reads it: emit until a fill comes through
        for _ in range(100):
            venue.emit(10)
            if collector.wait_for(lambda c: any(t.raw["stream"] == "trades" for t in c.trades[mark:]), timeout=0.2):
                break
        later = collector.trades[mark:]
    assert later and {t.raw["stream"] for t in later} == {"trades"}


def test_strict_expiry_refreshes_the_token_and_streaming_continues(make_sim, make_manager, collector):
    """With 2-second tokens that the venue enforces, the client reconnects with fresh tokens and loses nothing."""
    sim = make_sim(venues=["rails"], rate=0, history=20, options={"rails": {"strict": True, "token_lifetime": 2}})
    venue = sim.venue("rails")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        for _ in range(3):  # across two token lifetimes
            assert collector.wait_status(Status.CONNECTED, count=_ + 1, timeout=10)
            venue.emit(5)
            assert wait_for_last_match(collector, venue)
        assert collector.wait_status(Status.CONNECTED, count=3, timeout=10)
        venue.emit(5)
        assert wait_for_last_match(collector, venue)
    assert venue.token_requests >= 3
    assert_public_matches_tape(collector.trades, venue.trades("BTC-USDT"))
    fatal = [e for e in collector.statuses if e.status is Status.STOPPED and e.detail.get("error")]
    assert not fatal


def test_expired_tokens_are_refreshed_after_close_1008(make_sim, make_manager, collector):
    """The venue revokes every token (1008 "token expired"): the client fetches a new one and goes on."""
    sim = make_sim(venues=["rails"], rate=0, history=20)
    venue = sim.venue("rails")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        assert venue.expire_tokens() == 1
        assert collector.wait_status(Status.CONNECTED, count=2)
        venue.emit(10)
        assert wait_for_last_match(collector, venue)
    closed = [e.detail["error"] for e in collector.statuses if e.status is Status.DISCONNECTED and "error" in e.detail]
    assert isinstance(closed[0], FeedClosedError) and closed[0].code == 1008 and closed[0].reason == "token expired"
    reconnect = next(e for e in collector.statuses if e.status is Status.RECONNECTING)
    assert reconnect.detail["delay"] == 0  # a refresh, not a backoff
    assert venue.token_requests == 2
    assert_public_matches_tape(collector.trades, venue.trades("BTC-USDT"))


def test_wrong_key_ends_that_feed_with_auth_error_and_others_keep_streaming(make_sim, make_manager, collector, caplog):
    """Bad credentials: AuthError ends the feed (one token request, no storm); the other feed streams;
    neither key nor secret appears in any log line, repr or error."""
    sim = make_sim(venues=["rails", "dopp"], rate=0, history=20)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    bad_key, bad_secret = "wrong-key-6f1c", "wrong-secret-9a2b77"
    good_key, good_secret = sim.credentials("rails")
    with caplog.at_level(logging.DEBUG):
        bad = rails_feed(manager, sim, credentials=(bad_key, bad_secret))
        good = rails_feed(manager, sim)
        dopp = manager.add_feed("dopp", url=sim.url("dopp"))
        with manager:
            assert collector.wait_for(lambda c: any(isinstance(e, AuthError) for e in c.errors))
            before = len(collector.trades)
            sim.venue("rails").emit(10)
            sim.venue("dopp").emit(10)
            assert collector.wait_for(lambda c: len(c.trades) >= before + 20)
            assert good.is_alive() and dopp.is_alive() and not bad.is_alive()
    error = next(e for e in collector.errors if isinstance(e, AuthError))
    assert error.status_code == 401 and error.venue == "rails" and bad.error is error
    assert sim.venue("rails").token_requests == 2  # one for each credential pair, no retries of the bad one
    # the client's log lines (the simulator's server-side logs are the venue's, not ours)
    client_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("websockets", "tradefeed.simulator"))
    )
    assert "rails" in client_log  # the client did log: the check below is not vacuous
    texts = [client_log, repr(bad), repr(good), repr(manager), str(error), repr(error), str(bad.params)]
    texts += [str(e) for e in collector.errors] + [repr(e.detail) for e in collector.statuses]
    for secret in (bad_key, bad_secret, good_key, good_secret, "eyJhbGci"):  # eyJhbGci: any JWT
        assert not any(secret in text for text in texts), "a credential leaked"


def test_token_endpoint_failures_are_retried(make_sim, make_manager, collector):
    """Two 503s from the token endpoint are retried with backoff; the feed then connects."""
    sim = make_sim(venues=["rails"], rate=0, history=10)
    venue = sim.venue("rails")
    venue.fail_token_requests(2, status=503)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1, timeout=20)
    assert venue.token_requests == 3


def test_read_only_key_cannot_stream_private_fills(make_sim, make_manager, collector):
    """A read-only key asking for 'trades' is closed with 1008 (forbidden): the feed ends, no retries."""
    sim = make_sim(venues=["rails"], rate=0, history=10)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    rails_feed(manager, sim, credentials=sim.credentials("rails", read_only=True), subscriptions=["trades"])
    manager.start()
    with pytest.raises(FeedClosedError) as info:
        manager.join(timeout=15)
    assert info.value.code == 1008 and "forbidden" in info.value.reason


def test_error_frames_and_malformed_frames_reach_on_error(make_sim, make_manager, collector):
    """An error frame is a VenueError, junk is a ParseError; the feed keeps streaming."""
    sim = make_sim(venues=["rails"], rate=0, history=10)
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    rails_feed(manager, sim)
    with manager:
        assert collector.wait_trades(1)
        venue.inject('{"resultType": "error", "data": {"statusCode": 400, "message": "unknown message type: nope"}}')
        venue.inject("{{{")
        venue.emit(10)
        assert wait_for_last_match(collector, venue)
        assert collector.wait_for(lambda c: len(c.errors) >= 2)
    assert isinstance(collector.errors[0], VenueError) and "unknown message type" in str(collector.errors[0])
    assert isinstance(collector.errors[1], ParseError)
    assert manager.stats()["rails-1"].reconnects == 0


def test_sqlite_keeps_a_fill_and_the_public_trade_of_the_same_match(tmp_path, make_sim, make_manager, collector):
    """Rails delivers a match on publicTrades and among the account's fills (same matchId):
    the SQLite sink stores both rows, as the callbacks received them."""
    from tradefeed.sinks.sqlite import read_trades, SQLiteSink

    sim = make_sim(venues=["rails"], seed=3, rate=0, history=10)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(SQLiteSink(tmp_path / "t.db"))
    rails_feed(manager, sim, subscriptions=["publicTrades", "trades"])
    with manager:
        assert collector.wait_trades(1)
        for _ in range(10):
            sim.venue("rails").emit(20)
        last_fill = sim.venue("rails").fills()[-1]["matchId"]
        assert collector.wait_for(lambda c: any(t.trade_id == last_fill and t.raw["stream"] == "trades" for t in c.trades))
        assert wait_for_last_match(collector, sim.venue("rails"))
    stored = read_trades(tmp_path / "t.db")
    assert len(stored) == len(collector.trades)
    assert sorted((t.trade_id, t.raw["stream"]) for t in stored) == sorted((t.trade_id, t.raw["stream"]) for t in collector.trades)


# -- public streams without credentials (rails.md row 3, resolved 2026-12-06) -------------


def test_public_trades_stream_without_credentials_where_the_venue_allows_it(make_sim, make_manager, collector):
    """No api_key/api_secret and only publicTrades: no token is fetched, the handshake has
    none, and every match arrives once, in order, exact (market filled in from the
    connection: single-market deltas do not name it)."""
    sim = make_sim(venues=["rails"], seed=12, rate=0, history=40, options={"rails": {"public_without_token": True}})
    venue = sim.venue("rails")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("rails", url=sim.url("rails"), market="BTC-USDT", subscriptions=["publicTrades"])
    with manager:
        assert collector.wait_trades(1)
        for _ in range(5):
            venue.emit(20)
        assert wait_for_last_match(collector, venue)
    assert not collector.errors
    assert_public_matches_tape(collector.trades, venue.trades("BTC-USDT"))
    assert venue.token_requests == 0


def test_a_venue_that_wants_credentials_ends_the_key_less_feed_with_one_clear_auth_error(make_sim, make_manager, collector):
    """The simulator's default (a token on every connection): HTTP 401 ends that feed with an
    AuthError saying Rails wants API credentials and how to pass them; no retry storm."""
    sim = make_sim(venues=["rails"], rate=0, history=5)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    feed = manager.add_feed("rails", url=sim.url("rails"), market="BTC-USDT")
    manager.start()
    with pytest.raises(AuthError) as info:
        manager.join(timeout=15)
    message = str(info.value)
    assert info.value.status_code == 401 and info.value.venue == "rails" and feed.error is info.value
    assert "needs API credentials" in message and "api_key and api_secret" in message and "\n" not in message
    assert sim.handshakes("rails") == 1 and sim.venue("rails").token_requests == 0


def test_own_fills_still_need_credentials_at_add_feed_and_at_run_time(make_sim, make_manager):
    sim = make_sim(venues=["rails"], rate=0, history=5, options={"rails": {"public_without_token": True}})
    manager = make_manager()
    with pytest.raises(ConfigError, match="api_key"):
        manager.add_feed("rails", url=sim.url("rails"), market="BTC-USDT", subscriptions=["publicTrades", "trades"])
    with pytest.raises(ConfigError, match="needs api_secret"):  # half a pair is a mistake, public or not
        manager.add_feed("rails", url=sim.url("rails"), market="BTC-USDT", api_key="k")
    feed = manager.add_feed("rails", url=sim.url("rails"), market="BTC-USDT")
    with pytest.raises(ConfigError, match="need API credentials"):
        feed.subscribe("trades")
    assert feed.params.get("subscriptions", ["publicTrades"]) == ["publicTrades"]  # unchanged

