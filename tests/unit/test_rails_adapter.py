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


def test_handshake_without_token_is_refused():
    """Rails needs a token for every connection (rails.md row 3)."""
    with pytest.raises(ConfigError, match="token"):
        RailsAdapter(market="BTC-USDT").handshake("ws://h:1")


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
