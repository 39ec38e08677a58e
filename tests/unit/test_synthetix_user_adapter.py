"""The Synthetix user feed without a socket: EIP-712 signing against the spec's test
vector, the auth -> subscribe -> getTrades sequence, the mapping of every field, both
push envelopes, the back-fill/live seam, and every refusal."""

from __future__ import annotations

import copy
import json
import pickle
from decimal import Decimal

import pytest

from tradefeed import AuthError, ConfigError, Liquidity, ParseError, Side, VenueError
from tradefeed.adapters.synthetix import SynthetixAdapter
from tradefeed.adapters.synthetix_user import SynthetixUserAdapter
from tradefeed.exceptions import FeedError
from tradefeed.signing import Eip712Signer

# synthetix-private.md section 2.4 [vec]: account 0 of the public Hardhat/Anvil test mnemonic
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SUBACCOUNT = "1867542890123456789"
AUTH_MESSAGE = (
    '{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},'
    '{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"AuthMessage":'
    '[{"name":"subAccountId","type":"uint256"},{"name":"timestamp","type":"uint256"},{"name":"action",'
    '"type":"string"}]},"primaryType":"AuthMessage","domain":{"name":"Synthetix","version":"1","chainId":1,'
    '"verifyingContract":"0x0000000000000000000000000000000000000000"},"message":{"subAccountId":'
    '"0x19ead85d289d7115","timestamp":"0x19b76daa800","action":"websocket_auth"}}'
)
AUTH_SIGNATURE = (
    "0xe9ea606807f9dde1c10c9c23872d82742ed2fc6020b4c1c7848da165f273806e"
    "1486304e09a7f9a161413acddbafd1818e60bc0a7828a52b35da947bb12e5aab1b"
)
NOW_MS = 1767225600000
MS = 1_000_000  # ns per ms

LIVE_EVENT = {
    "eventType": "trade", "subAccountId": SUBACCOUNT, "tradeId": "1950384714", "orderId": "1948058938469519360",
    "order": {"venueId": "1948058938469519360"}, "symbol": "BTC-USDT", "side": "sell", "price": "90127.0",
    "quantity": "0.010", "fee": "0.630889", "feeRate": "0.0007", "realizedPnl": "0.06", "maker": False,
    "reduceOnly": True, "postOnly": False, "markPrice": "90126.4", "entryPrice": "90121.0",
    "triggeredByLiquidation": False, "direction": "Close Long", "timestamp": 1767225602010,
}  # fmt: skip
BACKFILL = [  # section 3c, newest first
    {"tradeId": "1950384714", "order": {"venueId": "1948058938469519360"}, "orderId": "1948058938469519360",
     "symbol": "BTC-USDT", "orderType": "limitGtc", "side": "sell", "price": "90127.0", "quantity": "0.010",
     "realizedPnl": "0.06", "fee": "0.630889", "feeRate": "0.0007", "timestamp": 1767225602010,
     "maker": False, "reduceOnly": True, "markPrice": "90126.4", "entryPrice": "90121.0",
     "triggeredByLiquidation": False, "direction": "Close Long", "postOnly": False},
    {"tradeId": "1950384713", "order": {"venueId": "1948058938469519355", "clientId": "0x1234567890abcdef1234567890abcdef"},
     "orderId": "1948058938469519355", "symbol": "BTC-USDT", "orderType": "limitGtc", "side": "buy",
     "price": "90121.0", "quantity": "0.150", "realizedPnl": "0", "fee": "2.70363", "feeRate": "0.0002",
     "timestamp": 1767225601250, "maker": True, "reduceOnly": False, "markPrice": "90119.8",
     "entryPrice": "90121.0", "triggeredByLiquidation": False, "direction": "Open Long", "postOnly": True},
]  # fmt: skip


@pytest.fixture(scope="module")
def signer():
    return Eip712Signer(KEY)


def sent(frame):
    return json.loads(frame)


def reply(request, result, status=200, error=None):
    body = {"id": request["id"], "requestId": request["id"], "status": status, "result": result}
    if error is not None:
        body["error"] = error
    return json.dumps(body)


def trades_page(rows, has_more=False):
    return {"status": "ok", "timestamp": NOW_MS, "response": {"hasMore": has_more, "total": len(rows), "trades": rows}}


def push(event, **envelope):
    return json.dumps({"method": "subAccountEvent", "data": event, **envelope})


def streaming(signer, last_seen=None, **params):
    """An adapter through auth and subscribe; returns it and its getTrades request."""
    adapter = SynthetixAdapter.from_params(stream="user", subaccount_id=SUBACCOUNT, **params)
    adapter.signer = signer
    seam = adapter.resume(last_seen or {})
    (auth,) = adapter.on_open(NOW_MS * MS)
    parsed = adapter.parse(reply(sent(auth), {"status": "ok", "response": {"authenticated": True}}), NOW_MS * MS)
    (subscribe,) = parsed.replies
    ack = {"type": "subAccountUpdates", "status": "subscribed", "subAccountId": SUBACCOUNT}
    (get_trades,) = adapter.parse(reply(sent(subscribe), ack), (NOW_MS + 10) * MS).replies
    return adapter, sent(get_trades), seam


# -- signing ----------------------------------------------------------------------------


def test_auth_signature_matches_the_spec_test_vector(signer):
    message, signature = signer.sign_auth(int(SUBACCOUNT), NOW_MS)
    assert json.loads(message) == json.loads(AUTH_MESSAGE)
    assert signature == AUTH_SIGNATURE and len(signature) == 132
    assert signer.address == ADDRESS


def test_get_trades_signature_matches_the_spec_test_vector(signer):
    """Section 2.6 [vec]: nonce 1767225605000, expiresAfter 1767225665000; the object of section 3c."""
    assert signer.sign_action(int(SUBACCOUNT), "getTrades", 1767225605000, 1767225665000) == {
        "v": 27,
        "r": "0x2157fc610cc393cce6cf79433b8392def12f33fcd931d49785034394cd0a5824",
        "s": "0x0bca16c38342231497ab97e2b93556f6b835f3688b8032886196c492a5496b7b",
    }


def test_the_signer_never_shows_or_hands_over_its_key(signer):
    assert KEY[2:] not in repr(signer) and ADDRESS in repr(signer)
    assert not hasattr(signer, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(TypeError):
        copy.deepcopy(signer)


@pytest.mark.parametrize("bad", ["", "0x1234", "not a key", KEY[:-1] + "g", 12345, None])
def test_a_bad_key_is_a_config_error_that_does_not_quote_it(bad):
    with pytest.raises(ConfigError) as info:
        Eip712Signer(bad)
    assert info.value.param == "private_key" and "64 hex digits" in str(info.value)
    if isinstance(bad, str) and bad:
        assert bad not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None  # no eth-account error to quote it


def test_timestamps_and_nonces_strictly_increase_per_signer():
    signer = Eip712Signer(KEY)
    assert [signer.next_ms(NOW_MS), signer.next_ms(NOW_MS), signer.next_ms(NOW_MS - 5), signer.next_ms(NOW_MS + 9)] == [
        NOW_MS, NOW_MS + 1, NOW_MS + 2, NOW_MS + 9
    ]


# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, param",
    [
        ({"stream": "user"}, "subaccount_id"),
        ({"stream": "user", "subaccount_id": "12a"}, "subaccount_id"),
        ({"stream": "user", "subaccount_id": -3}, "subaccount_id"),
        ({"stream": "user", "subaccount_id": True}, "subaccount_id"),
        ({"stream": "user", "subaccount_id": SUBACCOUNT, "limit": 1001}, "limit"),
        ({"stream": "user", "subaccount_id": SUBACCOUNT, "limit": 0}, "limit"),
        ({"stream": "user", "subaccount_id": SUBACCOUNT, "live": False}, "live"),
        ({"stream": "user", "subaccount_id": SUBACCOUNT, "symbols": "BTC-USDT"}, "symbols"),
        ({"stream": "private", "symbols": ["BTC-USDT"]}, "stream"),
        ({"symbols": ["BTC-USDT"], "subaccount_id": SUBACCOUNT}, "subaccount_id"),
        ({"symbols": ["BTC-USDT"], "limit": 101}, "limit"),
    ],
)
def test_invalid_parameters_are_config_errors_naming_the_parameter(params, param):
    with pytest.raises(ConfigError) as info:
        SynthetixAdapter.from_params(**params)
    assert info.value.param == param


def test_stream_picks_the_adapter_and_whether_credentials_are_needed():
    user = SynthetixAdapter.from_params(stream="user", subaccount_id=int(SUBACCOUNT), symbols=["btc-usdt"])
    assert isinstance(user, SynthetixUserAdapter) and user.symbols == ["BTC-USDT"] and user.limit == 100
    assert isinstance(SynthetixAdapter.from_params(symbols=["BTC-USDT"]), SynthetixAdapter)
    assert SynthetixAdapter.requires_credentials({"stream": "user"})
    assert not SynthetixAdapter.requires_credentials({"symbols": ["BTC-USDT"]})


# -- the connection sequence --------------------------------------------------------------


def test_only_the_signed_auth_goes_out_first_then_subscribe_then_get_trades():
    signer = Eip712Signer(KEY)  # a fresh one: its first timestamp is the vector's
    adapter = SynthetixAdapter.from_params(stream="user", subaccount_id=SUBACCOUNT)
    adapter.signer = signer
    assert adapter.resume({}) == set()
    (auth,) = adapter.on_open(NOW_MS * MS + 999_999)
    request = sent(auth)
    assert request["method"] == "auth" and request["params"] == {"message": AUTH_MESSAGE, "signature": AUTH_SIGNATURE}
    assert adapter.tick(NOW_MS * MS) == []  # nothing else before the auth reply
    parsed = adapter.parse(reply(request, {"status": "ok", "response": {"authenticated": True}}), NOW_MS * MS)
    (subscribe,) = parsed.replies
    assert sent(subscribe)["method"] == "subscribe"
    assert sent(subscribe)["params"] == {"type": "subAccountUpdates", "sub_account_id": SUBACCOUNT}
    ack = {"type": "subAccountUpdates", "status": "subscribed", "subAccountId": SUBACCOUNT}
    (get_trades,) = adapter.parse(reply(sent(subscribe), ack), (NOW_MS + 10) * MS).replies
    params = sent(get_trades)["params"]
    assert params["action"] == "getTrades" and params["subaccountId"] == SUBACCOUNT
    assert params["walletAddress"] == ADDRESS and params["limit"] == 100 and params["offset"] == 0
    assert "startTime" not in params and params["endTime"] == NOW_MS + 10 + 2000  # first connect: the newest `limit`
    assert params["expiresAfter"] == params["nonce"] + 60000 and params["nonce"] > NOW_MS  # after the auth timestamp
    assert signer.sign_action(int(SUBACCOUNT), "getTrades", params["nonce"], params["expiresAfter"]) == params["signature"]
    (ping,) = adapter.tick((NOW_MS + 20) * MS)
    assert sent(ping)["method"] == "ping"


def test_every_field_maps_and_the_rest_stays_in_raw(signer):
    adapter, _, _ = streaming(signer)
    adapter.parse(reply({"id": "getTrades-3"}, trades_page([])), 0)  # back-fill done: live passes through
    (trade,) = adapter.parse(push(LIVE_EVENT, seq=7, prevSeq=6), 5).trades
    assert (trade.venue, trade.symbol, trade.trade_id) == ("synthetix", "BTC-USDT", "1950384714")
    assert trade.price == Decimal("90127.0") and str(trade.amount) == "0.010" and trade.side is Side.SELL
    assert trade.timestamp_ms == 1767225602010 and trade.received_ns == 5 and trade.sequence == 7
    assert trade.fee == Decimal("0.630889") and trade.fee_currency == "USDT" and trade.liquidity is Liquidity.TAKER
    assert trade.stream == "user"
    assert trade.raw == {
        "eventType": "trade", "subAccountId": SUBACCOUNT, "orderId": "1948058938469519360",
        "order": {"venueId": "1948058938469519360"}, "feeRate": "0.0007", "realizedPnl": "0.06",
        "reduceOnly": True, "postOnly": False, "markPrice": "90126.4", "entryPrice": "90121.0",
        "triggeredByLiquidation": False, "direction": "Close Long", "source": "live",
    }  # fmt: skip


def test_backfill_comes_oldest_first_then_the_live_fills_buffered_meanwhile(signer):
    adapter, request, _ = streaming(signer)
    newer = {**LIVE_EVENT, "tradeId": "1950384720", "timestamp": 1767225603000}
    assert adapter.parse(push(LIVE_EVENT), 1).trades == []  # buffered: its back-fill is not in
    assert adapter.parse(push(newer), 2).trades == []
    parsed = adapter.parse(reply(request, trades_page(BACKFILL)), 3)
    assert [t.trade_id for t in parsed.trades] == ["1950384713", "1950384714", "1950384720"]
    assert [t.raw["source"] for t in parsed.trades] == ["backfill", "backfill", "live"]  # first seen wins
    maker = parsed.trades[0]
    assert maker.liquidity is Liquidity.MAKER and maker.side is Side.BUY and maker.fee == Decimal("2.70363")
    assert maker.raw["order"]["clientId"] == "0x1234567890abcdef1234567890abcdef" and maker.raw["orderType"] == "limitGtc"
    assert adapter.parse(push(newer), 4).trades[0].trade_id == "1950384720"  # live now; the connection de-duplicates


def test_other_subaccount_events_are_ignored_and_a_liquidation_fill_is_a_trade(signer):
    adapter, request, _ = streaming(signer)
    adapter.parse(reply(request, trades_page([])), 0)
    for event in ({"eventType": "orderFilled", "orderId": "1"}, {"eventType": "liquidation"}, {"eventType": "funding"}):
        parsed = adapter.parse(push(event), 1)
        assert parsed.trades == [] and parsed.errors == []
    liquidated = {**LIVE_EVENT, "tradeId": "77", "triggeredByLiquidation": True}
    (trade,) = adapter.parse(push(liquidated), 2).trades
    assert trade.raw["triggeredByLiquidation"] is True


def test_the_other_envelopes_and_a_list_of_events_are_read_in_order(signer):
    adapter, request, _ = streaming(signer)
    adapter.parse(reply(request, trades_page([])), 0)
    second = {**LIVE_EVENT, "tradeId": "1950384715"}
    frame = json.dumps({"channel": "subAccountUpdate", "data": [LIVE_EVENT, {"eventType": "marginUpdate"}, second]})
    assert [t.trade_id for t in adapter.parse(frame, 1).trades] == ["1950384714", "1950384715"]


def test_side_falls_back_to_direction_and_unknown_values_are_errors(signer):
    adapter, request, _ = streaming(signer)
    adapter.parse(reply(request, trades_page([])), 0)
    no_side = {k: v for k, v in LIVE_EVENT.items() if k != "side"}
    for direction, side in (("Open Long", Side.BUY), ("close short", Side.BUY), ("OPEN SHORT", Side.SELL), ("Close Long", Side.SELL)):
        (trade,) = adapter.parse(push({**no_side, "direction": direction}), 1).trades
        assert trade.side is side
    for bad in ({**LIVE_EVENT, "side": "hold"}, {**no_side, "direction": "Flip"}, {**LIVE_EVENT, "quantity": "-1"},
                {**LIVE_EVENT, "maker": "yes"}, {k: v for k, v in LIVE_EVENT.items() if k != "tradeId"}):  # fmt: skip
        parsed = adapter.parse(push(bad), 1)
        assert parsed.trades == [] and len(parsed.errors) == 1 and isinstance(parsed.errors[0], ParseError)


def test_a_refused_auth_raises_auth_error_without_the_key(signer):
    adapter = SynthetixAdapter.from_params(stream="user", subaccount_id=SUBACCOUNT)
    adapter.signer = signer
    (auth,) = adapter.on_open(NOW_MS * MS)
    refusal = reply(sent(auth), None, 401, {"code": 401, "message": "address does not own the specified account"})
    with pytest.raises(AuthError) as info:
        adapter.parse(refusal, 0)
    assert "address does not own the specified account" in str(info.value) and info.value.status_code == 401
    assert KEY[2:] not in str(info.value)
    string_code = reply(sent(auth), {"status": "error", "error": {"code": "UNAUTHORIZED", "message": "Invalid signature"}})
    adapter = SynthetixAdapter.from_params(stream="user", subaccount_id=SUBACCOUNT)
    (auth,) = adapter.on_open(0)
    with pytest.raises(AuthError, match="UNAUTHORIZED Invalid signature"):
        adapter.parse(string_code.replace('"auth-1"', json.dumps(sent(auth)["id"])), 0)


def test_a_lost_session_reconnects_and_a_refused_backfill_lets_live_fills_go_on(signer):
    adapter, request, _ = streaming(signer)
    adapter.parse(push(LIVE_EVENT), 1)
    parsed = adapter.parse(reply(request, None, 500, {"code": 500, "message": "Failed to retrieve trade history"}), 2)
    assert [t.trade_id for t in parsed.trades] == ["1950384714"]
    assert isinstance(parsed.errors[0], VenueError) and "Failed to retrieve trade history" in str(parsed.errors[0])
    (ping,) = adapter.tick(3 * 10**18)
    with pytest.raises(FeedError, match="not authenticated"):
        adapter.parse(reply(sent(ping), None, 401, {"code": 401, "message": "not authenticated"}), 4)


def test_after_a_reconnect_the_backfill_reaches_back_to_the_newest_delivered_fill(signer):
    """startTime = hw - 5 s, paged with offset while hasMore; the newest key is the seam to check."""
    hw = NOW_MS - 60_000
    last_seen = {("user", "BTC-USDT"): (hw - 9000, None), ("user", "ETH-USDT"): (hw, None), ("public", "X"): (NOW_MS, 1)}
    adapter, request, seam = streaming(signer, last_seen)
    assert seam == {("user", "ETH-USDT")}
    params = request["params"]
    assert params["startTime"] == hw - 5000 and params["endTime"] == NOW_MS + 10 + 2000 and params["limit"] == 1000
    page = [{**BACKFILL[0], "tradeId": str(n), "timestamp": hw + n} for n in range(1000, 0, -1)]
    (next_page,) = adapter.parse(reply(request, trades_page(page, has_more=True)), 5).replies
    assert sent(next_page)["params"]["offset"] == 1000 and sent(next_page)["params"]["startTime"] == hw - 5000
    parsed = adapter.parse(reply(sent(next_page), trades_page([{**BACKFILL[1], "timestamp": hw - 1000}])), 6)
    assert len(parsed.trades) == 1001 and parsed.trades[0].trade_id == "1950384713"
    assert [int(t.trade_id) for t in parsed.trades[1:]] == list(range(1, 1001))


def test_a_long_outage_is_asked_for_in_seven_day_windows_within_thirty_days(signer):
    day = 86_400_000
    adapter, request, _ = streaming(signer, {("user", "BTC-USDT"): (NOW_MS - 40 * day, None)})
    windows = [(request["params"]["startTime"], request["params"]["endTime"])]
    while True:
        parsed = adapter.parse(reply(request, trades_page([])), 1)
        if not parsed.replies:
            break
        request = sent(parsed.replies[0])
        windows.append((request["params"]["startTime"], request["params"]["endTime"]))
    assert windows[0][0] == NOW_MS + 10 - 30 * day and windows[-1][1] == NOW_MS + 10 + 2000
    assert all(end - start < 7 * day for start, end in windows) and len(windows) == 5
    assert all(b[0] == a[1] + 1 for a, b in zip(windows, windows[1:]))  # contiguous, no overlap


def test_a_sequence_break_backfills_again_without_reconnecting(signer):
    adapter, request, _ = streaming(signer)
    adapter.parse(reply(request, trades_page(BACKFILL)), 0)
    assert not adapter.parse(push(LIVE_EVENT, seq=10, prevSeq=9), 1).replies
    parsed = adapter.parse(push({**LIVE_EVENT, "tradeId": "9"}, seq=14, prevSeq=13), (NOW_MS + 5000) * MS)
    (again,) = parsed.replies
    assert sent(again)["params"]["startTime"] == 1767225602010 - 5000 and parsed.trades == []  # buffered again
    (resync,) = adapter.parse(push({"eventType": "marginUpdate"}, needsResync=True), 3).replies or [None]
    assert resync is None  # one back-fill at a time


def test_symbols_filter_both_paths_and_one_symbol_is_asked_for_by_name(signer):
    adapter, request, _ = streaming(signer, symbols=["ETH-USDT"])
    assert request["params"]["symbol"] == "ETH-USDT"
    eth = {**BACKFILL[1], "symbol": "ETH-USDT"}
    assert [t.symbol for t in adapter.parse(reply(request, trades_page([BACKFILL[0], eth])), 0).trades] == ["ETH-USDT"]
    assert adapter.parse(push(LIVE_EVENT), 1).trades == []


def test_without_a_signer_requests_go_out_unsigned_for_replay():
    adapter = SynthetixAdapter.from_params(stream="user", subaccount_id=SUBACCOUNT)
    (auth,) = adapter.on_open()
    assert sent(auth)["params"] == {}
