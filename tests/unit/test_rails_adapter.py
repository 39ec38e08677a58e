"""The Rails adapter over fixture frames."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tradefeed import ConfigError, Liquidity, ParseError, Side, VenueError
from tradefeed.adapters import CloseAction
from tradefeed.adapters.rails import RailsAdapter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "rails"


def frame(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_handshake_puts_the_jwt_in_the_subprotocol_and_streams_in_the_query():
    """market and subscriptions go in the query; the token in Sec-WebSocket-Protocol, nowhere else."""
    hs = RailsAdapter(market="BTC-USDT", subscriptions=["publicTrades", "trades"]).handshake("ws://h:1", token="jwt.x.y")
    parts = urlsplit(hs.url)
    assert parts.path == "/" and parse_qs(parts.query) == {"market": ["BTC-USDT"], "subscriptions": ["publicTrades,trades"]}
    assert list(hs.subprotocols) == ["authorization#jwt.x.y"]
    assert "jwt" not in hs.url and "jwt" not in repr(hs)


def test_public_handshake_without_token_offers_no_subprotocol():
    """rails.md row 3 (resolved 2026-12-06): public trades alone may connect key-less."""
    hs = RailsAdapter(market="BTC-USDT").handshake("ws://h:1")
    assert list(hs.subprotocols) == [] and "subscriptions=publicTrades" in hs.url
    assert not RailsAdapter.requires_credentials({"market": "BTC-USDT"})


def test_own_fills_need_a_token():
    """The account's own fills need credentials: no handshake without a token."""
    assert RailsAdapter.requires_credentials({"market": "BTC-USDT", "subscriptions": ["publicTrades", "trades"]})
    with pytest.raises(ConfigError, match="api_key and api_secret"):
        RailsAdapter(market="BTC-USDT", subscriptions=["trades"]).handshake("ws://h:1")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"market": ""}, "market"),
        ({"market": "BTC-USDT", "subscriptions": []}, "non-empty"),
        ({"market": "BTC-USDT", "subscriptions": ["publicOrderBook"]}, "carries no trades"),
        ({"market": "BTC-USDT", "subscriptions": ["publicTrade"]}, "unknown subscription"),
        ({"market": "BTC-USDT", "snapshot_markets": ["ETH-USDT"]}, "only applies"),
    ],
)
def test_parameters_are_validated(kwargs, message):
    """Unknown streams, empty market, misplaced snapshot_markets: ConfigError."""
    with pytest.raises(ConfigError, match=message):
        RailsAdapter(**kwargs)


def test_snapshot_requested_on_open():
    """With publicTrades, the recent trades are requested right after connecting."""
    (request,) = RailsAdapter(market="BTC-USDT").on_open()
    body = json.loads(request)
    assert body["message"] == "emitPublicCompletedOrders" and body["content"]["market"] == "BTC-USDT"
    assert len(body["content"]["clientRequestId"]) == 36
    assert RailsAdapter(market="BTC-USDT", subscriptions=["trades"]).on_open() == []
    all_markets = RailsAdapter(market="ALL", snapshot_markets=["BTC-USDT", "ETH-USDT"]).on_open()
    assert [json.loads(f)["content"]["market"] for f in all_markets] == ["BTC-USDT", "ETH-USDT"]
    assert RailsAdapter(market="ALL").on_open() == []


def test_public_delta_maps_fields_and_orders_by_time():
    """matchId, exact decimals, ms times, aggressor side, liquidity taker, raw stream publicTrades."""
    parsed = RailsAdapter(market="BTC-USDT").parse(frame("public_delta.json"), 3)
    assert not parsed.errors
    first, second = parsed.trades
    assert first.trade_id == "9eb783a6-7abc-4e94-9d9c-fd404e7580eb" and second.trade_id.startswith("d65966ab")
    assert first.price == Decimal("90125.5") and str(first.amount) == "0.042" and first.side is Side.BUY
    assert first.timestamp_ms == 1767225600500 and first.liquidity is Liquidity.TAKER
    assert first.symbol == "BTC-USDT" and first.fee is None and first.received_ns == 3
    assert first.raw == {"executionType": "taker", "orderType": "buy", "stream": "publicTrades"}
    assert first.stream == "public"


def test_maker_record_gives_the_aggressor_side():
    """A maker record's orderType is the resting side: the aggressor is the opposite."""
    (trade,) = RailsAdapter(market="BTC-USDT").parse(frame("maker_record.json"), 0).trades
    assert trade.side is Side.BUY and trade.liquidity is Liquidity.TAKER
    assert trade.raw["orderType"] == "sell" and trade.raw["executionType"] == "maker"


def test_snapshot_and_legacy_names_are_public_trades():
    """publicCompletedOrders (snapshot) and the legacy completedOrdersDelta with data.orders both parse."""
    a = RailsAdapter(market="ALL", snapshot_markets=["BTC-USDT"])
    (snap,) = a.parse(frame("snapshot.json"), 0).trades
    assert snap.symbol == "BTC-USDT" and snap.side is Side.SELL
    (legacy,) = a.parse(frame("legacy_delta.json"), 0).trades
    assert legacy.symbol == "ETH-USDT" and str(legacy.price) == "3021.10"
    assert legacy.raw["stream"] == "publicTrades"


def test_private_fills_carry_fees_and_own_side():
    """completedOrdersDelta with a list is the account's fills: own side, own role, fees in the quote currency."""
    a = RailsAdapter(market="ETH-USDT", subscriptions=["trades"])
    (fill,) = a.parse(frame("private_fills.json"), 0).trades
    assert fill.symbol == "BTC-USDT" and fill.side is Side.BUY and fill.liquidity is Liquidity.TAKER
    assert fill.fee == Decimal("1.89263550") and str(fill.fee) == "1.89263550" and fill.fee_currency == "USDT"
    assert fill.timestamp_ms == 1767225600500 and fill.raw["stream"] == "trades"
    assert fill.stream == "user"
    assert fill.raw["orderId"] == "01JSG88WSP6MWEXBNXT0F43S59" and fill.raw["leverage"] == "1"


def test_streams_not_subscribed_are_dropped():
    """Private fills on a publicTrades-only feed (or vice versa) are not delivered."""
    assert not RailsAdapter(market="BTC-USDT").parse(frame("private_fills.json"), 0).trades
    assert not RailsAdapter(market="BTC-USDT", subscriptions=["trades"]).parse(frame("public_delta.json"), 0).trades


def test_error_frame_is_a_venue_error():
    """An error message reaches errors with its clientRequestId and text."""
    (error,) = RailsAdapter(market="BTC-USDT").parse(frame("error.json"), 0).errors
    assert isinstance(error, VenueError) and "unknown subscription: publicTrade" in str(error)
    assert "cfff0f58-8780-4cf2-b3d3-6439fed37304" in str(error) and error.payload["data"]["statusCode"] == 400


def test_replies_and_pong():
    """subscribed is quiet; pong is a heartbeat; ping is the tick."""
    a = RailsAdapter(market="BTC-USDT")
    assert not a.parse(frame("subscribed.json"), 0).trades
    assert a.parse(frame("pong.json"), 0).heartbeat
    (ping,) = a.tick(0)
    assert json.loads(ping)["message"] == "ping" and a.tick_interval == 30.0


def test_bad_records_are_errors_and_good_ones_survive():
    """Unknown orderType/executionType, a missing quantity and a negative one are each reported."""
    parsed = RailsAdapter(market="BTC-USDT").parse(frame("bad_records.json"), 0)
    assert [t.trade_id for t in parsed.trades] == ["e"]
    messages = [str(e) for e in parsed.errors]
    assert "unknown orderType 'bid'" in messages[0]
    assert "unknown executionType 'resting'" in messages[1]
    assert "without field 'quantity'" in messages[2]
    assert "quantity must be positive" in messages[3]
    assert all(isinstance(e, ParseError) for e in parsed.errors)


def test_public_trade_without_market_on_an_all_connection_is_an_error():
    """With market=ALL the message must say which market (the connection cannot)."""
    doc = json.loads(frame("public_delta.json"))
    del doc["market"]
    parsed = RailsAdapter(market="ALL").parse(json.dumps(doc), 0)
    assert not parsed.trades and "no market" in str(parsed.errors[0])
    assert len(RailsAdapter(market="BTC-USDT").parse(json.dumps(doc), 0).trades) == 2  # falls back


@pytest.mark.parametrize("raw", [b"nope", b"[]", b'{"data": {}}', b'{"resultType": "publicCompletedOrdersDelta", "data": {}}'])
def test_unusable_frames_raise_parse_error(raw):
    """Not JSON, not an object with resultType, or a trade message without orders: ParseError."""
    with pytest.raises(ParseError):
        RailsAdapter(market="BTC-USDT").parse(raw, 0)


def test_close_codes():
    """1008 'token expired' refreshes the token; other 1008 ends the feed; the rest reconnect."""
    a = RailsAdapter(market="BTC-USDT")
    assert a.on_close(1008, "token expired") is CloseAction.REFRESH_TOKEN
    assert a.on_close(1008, "forbidden subscription") is CloseAction.STOP
    assert a.on_close(1001, "") is CloseAction.RECONNECT and a.on_close(1011, "") is CloseAction.RECONNECT


def test_run_time_subscribe_unsubscribe():
    """subscribe adds streams with a correlated request (and a snapshot for publicTrades); unsubscribe removes."""
    a = RailsAdapter(market="BTC-USDT", subscriptions=["trades"])
    frames = [json.loads(f) for f in a.subscribe(["publicTrades", "trades"])]
    assert [f["message"] for f in frames] == ["subscribe", "emitPublicCompletedOrders"]
    assert frames[0]["content"]["subscriptions"] == ["publicTrades"]
    (unsub,) = a.unsubscribe(["trades"])
    assert json.loads(unsub)["content"]["subscriptions"] == ["trades"] and a.subscriptions == ["publicTrades"]
    assert a.unsubscribe(["trades"]) == []


def _public(market: str, ids: list[int], kind: str = "publicCompletedOrdersDelta", request_id: str | None = None) -> str:
    orders = [{"executionType": "taker", "matchId": "m%d" % n, "orderType": "buy", "price": "90000.5",
               "quantity": "0.010", "updatedAt": 1767225600000 + n} for n in ids]  # fmt: skip
    data: dict = {"orders": orders, "statusCode": 200}
    if request_id is not None:
        data["clientRequestId"] = request_id
    return json.dumps({"resultType": kind, "market": market, "data": data})


def _ids(trades) -> list[int]:
    return [int(t.trade_id[1:]) for t in trades]


def test_deltas_ahead_of_their_snapshot_reply_are_held_and_follow_it_in_order():
    """The deltas flow from the connect on, the snapshot is asked for after it: a delta
    that beats its market's snapshot reply waits for it and comes after the snapshot's
    older trades, each trade once (delivering it first would put it ahead of them)."""
    a = RailsAdapter(market="ALL", snapshot_markets=["BTC-USDT", "ETH-USDT"])
    btc, eth = [json.loads(f)["content"]["clientRequestId"] for f in a.on_open()]
    assert a.parse(_public("BTC-USDT", [10, 11]), 0).trades == []
    assert _ids(a.parse(_public("SOL-USDT", [3]), 0).trades) == [3]  # no snapshot asked: not held
    assert a.parse(_public("ETH-USDT", [20]), 0).trades == []
    snapshot = a.parse(_public("BTC-USDT", [7, 8, 9, 10, 11], "publicCompletedOrders", btc), 0)
    assert _ids(snapshot.trades) == [7, 8, 9, 10, 11]
    assert _ids(a.parse(_public("BTC-USDT", [12]), 0).trades) == [12]  # answered: flows again
    # a snapshot that does not reach back to the held deltas: they follow it all the same
    assert a.parse(_public("ETH-USDT", [21, 22]), 0).trades == []
    # told by name and market, not request id: a recording replays the same
    assert eth != "replayed"
    assert _ids(a.parse(_public("ETH-USDT", [21, 22], "publicCompletedOrders", "replayed"), 0).trades) == [20, 21, 22]
    assert a._held == {} and a._snapshots == {}


def test_a_failed_snapshot_request_releases_the_held_deltas():
    """An error reply to the snapshot request: no back-fill, the held deltas go with the error."""
    a = RailsAdapter(market="BTC-USDT")
    (request,) = a.on_open()
    request_id = json.loads(request)["content"]["clientRequestId"]
    assert a.parse(_public("BTC-USDT", [5]), 0).trades == []
    error = {"resultType": "error", "data": {"clientRequestId": request_id, "statusCode": 400, "message": "no"}}
    parsed = a.parse(json.dumps(error), 0)
    assert _ids(parsed.trades) == [5] and isinstance(parsed.errors[0], VenueError)
    assert _ids(a.parse(_public("BTC-USDT", [6]), 0).trades) == [6]


def test_resubscribing_public_trades_holds_its_deltas_again():
    """Unsubscribing publicTrades forgets what was awaited; subscribing again asks for a
    snapshot again, and the deltas wait for it."""
    a = RailsAdapter(market="BTC-USDT", subscriptions=["publicTrades", "trades"])
    a.on_open()
    assert a.parse(_public("BTC-USDT", [5]), 0).trades == []
    a.unsubscribe(["publicTrades"])
    _, request = a.subscribe(["publicTrades"])
    assert a.parse(_public("BTC-USDT", [8]), 0).trades == []
    request_id = json.loads(request)["content"]["clientRequestId"]
    assert _ids(a.parse(_public("BTC-USDT", [6, 7, 8], "publicCompletedOrders", request_id), 0).trades) == [6, 7, 8]
