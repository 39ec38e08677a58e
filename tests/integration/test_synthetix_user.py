"""The Synthetix user feed (own fills over the EIP-712 authenticated Trade WebSocket)
through FeedManager against the simulator, over real loopback sockets."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import pytest

from tradefeed import AuthError, Backoff, ConfigError, FeedManager, Liquidity, Side, Status, VenueError
from tradefeed import config as config_module

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)
#: a valid key that does not own the simulated subaccount (account 0 of the test mnemonic)
OTHER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
NO_AUTO_FILLS = {"synthetix": {"fill_every": 0}}


def user_feed(manager, sim, **changes):
    return manager.add_feed("synthetix", **{**sim.feed_params("synthetix", stream="user"), **changes})


def assert_exact(trades, fills):
    """Each trade is its fill, in order, every value exact."""
    assert [t.trade_id for t in trades] == [f["tradeId"] for f in fills], "missing, repeated or reordered"
    for trade, fill in zip(trades, fills):
        assert trade.stream == "user" and trade.venue == "synthetix" and trade.symbol == fill["symbol"]
        assert str(trade.price) == fill["price"] and str(trade.amount) == fill["quantity"]
        assert str(trade.fee) == fill["fee"] and trade.fee_currency == "USDT" and isinstance(trade.fee, Decimal)
        assert trade.side is Side(fill["side"]) and trade.timestamp_ms == fill["timestamp"]
        assert trade.liquidity is (Liquidity.MAKER if fill["maker"] else Liquidity.TAKER)
        for key in ("order", "orderId", "feeRate", "realizedPnl", "direction", "triggeredByLiquidation", "reduceOnly"):
            assert trade.raw[key] == fill[key]


def test_own_fills_arrive_once_exact_across_the_backfill_live_seam(make_sim, make_manager, collector):
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    venue.fill(5)
    manager = make_manager()
    collector.attach(manager)
    user_feed(manager, sim)
    with manager:
        assert venue.trade.wait_for_subscribers(1)
        venue.fill(5)  # during or after the back-fill: buffered or live, delivered once either way
        assert collector.wait_trades(10)
        venue.fill(3, "ETH-USDT", liquidation=True)
        assert collector.wait_trades(13)
    assert not collector.errors
    assert_exact(collector.trades, venue.trade.fills())
    assert [t.raw["source"] for t in collector.trades[:5]] == ["backfill"] * 5
    assert all(t.raw["triggeredByLiquidation"] for t in collector.trades[10:])
    assert venue.trade.auth_attempts == 1


def test_a_drop_loses_nothing_the_backfill_covers(make_sim, make_manager, collector):
    """Fills made while the client is away come with the reconnect's back-fill (from the
    newest delivered fill minus 5 s), each once, and no Gap is reported."""
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    gaps = []
    manager.on_gap(gaps.append)
    user_feed(manager, sim)
    with manager:
        assert venue.trade.wait_for_subscribers(1)
        venue.fill(4)
        assert collector.wait_trades(4)
        sim.refuse_handshakes(1000, status=503, retry_after=None, venue="synthetix")  # keep it away...
        sim.drop_connections("synthetix")
        assert collector.wait_status(Status.RECONNECTING)
        venue.fill(6)  # ...while these happen
        sim.clear_faults("synthetix")
        assert collector.wait_trades(10)
        venue.fill(2)
        assert collector.wait_trades(12)
    assert_exact(collector.trades, venue.trade.fills())
    assert [t.raw["source"] for t in collector.trades[4:10]] == ["backfill"] * 6
    assert gaps == [] and not collector.errors
    resumed = venue.trade.get_trades_requests[-1]
    assert resumed["startTime"] == collector.trades[3].timestamp_ms - 5000 and resumed["limit"] == 1000


def test_fills_the_venue_no_longer_has_are_reported_as_a_gap(make_sim, make_manager, collector):
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options={"synthetix": {"fill_every": 0, "fill_history": 3}})
    venue = sim.venue("synthetix")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    gaps = []
    manager.on_gap(gaps.append)
    user_feed(manager, sim)
    with manager:
        assert venue.trade.wait_for_subscribers(1)
        venue.fill(4)
        assert collector.wait_trades(4)
        sim.refuse_handshakes(1000, status=503, retry_after=None, venue="synthetix")
        sim.drop_connections("synthetix")
        assert collector.wait_status(Status.RECONNECTING)
        lost = venue.fill(6)  # the history keeps the newest 3: three are gone
        sim.clear_faults("synthetix")
        assert collector.wait_trades(7)
    assert [t.trade_id for t in collector.trades[4:]] == [f["tradeId"] for f in lost[3:]]
    (gap,) = gaps
    assert gap.reason == "reconnect" and gap.stream == "user" and gap.symbol == "BTC-USDT"
    assert gap.from_ms == collector.trades[3].timestamp_ms and gap.to_ms == lost[3]["timestamp"]


def test_a_wrong_key_ends_only_that_feed_after_one_auth_attempt(make_sim, make_manager, collector):
    sim = make_sim(venues=["synthetix"], rate=0, history=20)
    venue = sim.venue("synthetix")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    public = manager.add_feed("synthetix", url=sim.url("synthetix"), symbols=["BTC-USDT"])
    wrong = user_feed(manager, sim, private_key=OTHER_KEY, name="mine")
    with manager:
        assert collector.wait_for(lambda c: any(e.feed == "mine" and e.status is Status.STOPPED for e in c.statuses))
        assert isinstance(wrong.error, AuthError) and "address does not own the specified account" in str(wrong.error)
        assert venue.trade.auth_attempts == 1
        assert venue.wait_for_subscriptions(1)
        fresh = venue.emit(3)  # the public feed goes on
        assert collector.wait_for(lambda c: {t.trade_id for t in c.trades} >= {t["tradeId"] for t in fresh if t["symbol"] == "BTC-USDT"})
        assert public.is_alive()
    assert venue.trade.auth_attempts == 1
    assert [e for e in collector.errors if isinstance(e, AuthError)] == [wrong.error]


def test_a_refused_auth_is_final_and_a_refused_backfill_is_reported_while_live_goes_on(make_sim, make_manager, collector):
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    venue.trade.refuse_next_auth("timestamp validation failed: request too old")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    refused = user_feed(manager, sim, name="refused")
    with manager:
        assert collector.wait_for(lambda c: any(e.feed == "refused" and e.status is Status.STOPPED for e in c.statuses))
        assert "request too old" in str(refused.error) and "clock" in str(refused.error)
        venue.trade.fail_next_get_trades(500, "Failed to retrieve trade history")
        user_feed(manager, sim, name="live")
        assert venue.trade.wait_for_subscribers(1)
        assert collector.wait_for(lambda c: any(isinstance(e, VenueError) for e in c.errors))
        made = venue.fill(3)
        assert collector.wait_trades(3)
    assert_exact(collector.trades, made)
    (venue_error,) = [e for e in collector.errors if isinstance(e, VenueError)]
    assert "getTrades" in str(venue_error) and venue_error.feed == "live"
    assert venue.trade.auth_attempts == 2


def test_the_key_is_in_no_log_repr_attribute_stat_or_event(make_sim, make_manager, collector, caplog):
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    key, _ = sim.credentials("synthetix")
    caplog.set_level(logging.DEBUG)
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    feed = user_feed(manager, sim)
    user_feed(manager, sim, private_key=OTHER_KEY, name="wrong")
    with manager:
        assert venue.trade.wait_for_subscribers(1)
        venue.fill(2)
        assert collector.wait_trades(2)
        sim.drop_connections("synthetix")
        assert collector.wait_status(Status.CONNECTED, 3)
        seen = [repr(manager), repr(vars(manager)), repr(manager.stats()), repr(feed.params)]
        for obj in [manager, *manager.feeds, *(c for f in manager.feeds for c in f._connections)]:
            seen.append(repr(obj))
            seen.extend(repr(value) for value in vars(obj).values())
    seen += [repr(collector.statuses), repr(collector.errors), repr(collector.trades), caplog.text]
    secrets = {key[2:].lower(), OTHER_KEY[2:].lower()}
    for text in seen:
        assert not any(secret in text.lower() for secret in secrets)
    assert "Eip712Signer(address=" in repr(vars(feed._connections[0]))  # the signer is there, redacted


def test_without_eth_account_the_user_feed_is_a_config_error_naming_the_extra():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["eth_account"] = None  # as if not installed
        from tradefeed import ConfigError, FeedManager
        try:
            FeedManager().add_feed("synthetix", stream="user", subaccount_id="1", private_key="0x" + "11" * 32)
        except ConfigError as err:
            print("ConfigError:", err)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "tradefeed[synthetix]"' in out.stdout and "11" * 32 not in out.stdout + out.stderr


def test_add_feed_refuses_a_missing_or_misplaced_key(make_manager):
    manager = make_manager()
    with pytest.raises(ConfigError, match="needs private_key") as info:
        manager.add_feed("synthetix", stream="user", subaccount_id="1")
    assert info.value.param == "private_key"
    with pytest.raises(ConfigError, match="for stream='user'"):
        manager.add_feed("synthetix", symbols=["BTC-USDT"], private_key=OTHER_KEY)
    with pytest.raises(ConfigError) as info:
        manager.add_feed("synthetix", stream="user", subaccount_id="1", private_key="0xabc")
    assert "0xabc" not in str(info.value)
    assert manager.feeds == []


def test_yaml_takes_the_key_from_the_environment(make_sim, collector, tmp_path):
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    key, subaccount_id = sim.credentials("synthetix")
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n"
        "  - venue: synthetix\n"
        "    url: %s\n"
        "    stream: user\n"
        "    subaccount_id: '%s'\n"
        "    private_key: ${SYNTHETIX_PRIVATE_KEY}\n" % (sim.url("synthetix"), subaccount_id),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={})
    assert "SYNTHETIX_PRIVATE_KEY" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={"SYNTHETIX_PRIVATE_KEY": "0x1234"})
    assert "not a wallet key" in str(info.value) and "0x1234" not in str(info.value)
    config = config_module.load(path, environ={"SYNTHETIX_PRIVATE_KEY": key})
    assert key[2:] not in repr(config)
    manager: FeedManager = config.create_manager()
    collector.attach(manager)
    try:
        manager.start()
        assert venue.trade.wait_for_subscribers(1)
        made = venue.fill(2)
        assert collector.wait_trades(2)
    finally:
        assert manager.stop(timeout=10)
    assert_exact(collector.trades, made)


def test_the_simulator_refuses_what_the_spec_says(make_sim):
    """Raw protocol checks of the simulated trade socket (the client never sends these)."""
    import websocket

    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    ws = websocket.create_connection(sim.url("synthetix") + "/v1/ws/trade", timeout=10)
    try:
        def ask(request):
            ws.send(json.dumps(request))
            return json.loads(ws.recv())

        assert ask({"id": "1", "method": "subscribe", "params": {"type": "subAccountUpdates", "sub_account_id": "1"}})["error"] == {
            "code": 401, "message": "not authenticated"
        }  # fmt: skip
        assert ask({"id": "2", "method": "auth", "params": {"message": "{", "signature": "0x"}})["error"]["message"] == (
            "failed to parse typed data"
        )
        from tradefeed.signing import Eip712Signer

        key, subaccount_id = sim.credentials("synthetix")
        signer = Eip712Signer(key)
        message, signature = signer.sign_auth(int(subaccount_id), time.time_ns() // 1_000_000 - 120_000)  # 2 min old
        assert "request too old" in ask({"id": "3", "method": "auth", "params": {"message": message, "signature": signature}})["error"]["message"]
        now = signer.next_ms(time.time_ns() // 1_000_000)
        message, signature = signer.sign_auth(int(subaccount_id), now)
        ok = ask({"id": "4", "method": "auth", "params": {"message": message, "signature": signature}})
        assert ok["status"] == 200 and ok["result"]["response"]["authenticated"] is True
        again = ask({"id": "5", "method": "auth", "params": {"message": message, "signature": signature}})
        assert again["error"]["message"] == "timestamp already used"
        forbidden = ask({"id": "6", "method": "subscribe", "params": {"type": "subAccountUpdate", "subaccountId": "42"}})
        assert forbidden["status"] == 403
        ack = ask({"id": "7", "method": "subscribe", "params": {"type": "subAccountUpdate", "subAccountId": subaccount_id}})
        assert ack["result"] == {"type": "subAccountUpdates", "status": "subscribed", "subAccountId": subaccount_id}
        nonce = signer.next_ms(time.time_ns() // 1_000_000)
        expired = {"action": "getTrades", "subaccountId": subaccount_id, "nonce": nonce - 120_000, "expiresAfter": nonce - 60_000,
                   "signature": signer.sign_action(int(subaccount_id), "getTrades", nonce - 120_000, nonce - 60_000)}  # fmt: skip
        assert ask({"id": "8", "method": "post", "params": expired})["error"]["message"] == "request expired"
        signed = {"action": "getTrades", "subaccountId": subaccount_id, "nonce": nonce, "expiresAfter": nonce + 60_000,
                  "signature": signer.sign_action(int(subaccount_id), "getTrades", nonce, nonce + 60_000)}  # fmt: skip
        assert ask({"id": "9", "method": "post", "params": {**signed, "limit": 1001}})["error"]["message"] == "limit cannot exceed 1000"
        page = ask({"id": "10", "method": "post", "params": signed})
        assert page["result"]["status"] == "ok" and page["result"]["response"] == {"hasMore": False, "total": 0, "trades": []}
    finally:
        ws.close()


def test_a_recorded_user_feed_replays_trade_for_trade_without_the_key(make_sim, make_manager, collector, tmp_path):
    """Record a live user feed across a drop (so the second connection back-fills from
    the newest delivered fill); replay gives exactly the live trades; the recording
    holds no key."""
    from tradefeed.recording import Recorder, replay

    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    key, _ = sim.credentials("synthetix")
    path = tmp_path / "user.jsonl"
    venue.fill(3)
    with Recorder(path) as recorder:
        manager = make_manager(recorder=recorder, backoff=FAST)
        collector.attach(manager)
        user_feed(manager, sim)
        with manager:
            assert collector.wait_trades(3)
            sim.refuse_handshakes(1000, status=503, retry_after=None, venue="synthetix")
            sim.drop_connections("synthetix")
            assert collector.wait_status(Status.RECONNECTING)
            venue.fill(4)
            sim.clear_faults("synthetix")
            assert collector.wait_trades(7)
            venue.fill(2)
            assert collector.wait_trades(9)
    assert recorder.error is None
    assert key[2:].lower() not in path.read_text(encoding="utf-8").lower()
    replayed: list = []
    errors: list = []
    replay(path, replayed.append, on_error=errors.append)
    assert errors == []
    assert [(t, t.received_ns) for t in replayed] == [(t, t.received_ns) for t in collector.trades]


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, None])
def test_every_close_reconnects_authenticates_again_and_loses_nothing(make_sim, make_manager, collector, code):
    sim = make_sim(venues=["synthetix"], rate=0, history=0, options=NO_AUTO_FILLS)
    venue = sim.venue("synthetix")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    user_feed(manager, sim)
    with manager:
        assert venue.trade.wait_for_subscribers(1)
        venue.fill(2)
        assert collector.wait_trades(2)
        sim.drop_connections("synthetix", code, "connection limit" if code == 1008 else "")
        assert collector.wait_status(Status.CONNECTED, 2)
        assert venue.trade.wait_for_subscribers(1)
        venue.fill(2)
        assert collector.wait_trades(4)
    assert_exact(collector.trades, venue.trade.fills())
    assert venue.trade.auth_attempts == 2 and not collector.errors
