"""The Dopp adapter over fixture frames: no sockets, no threads."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradefeed.adapters import CloseAction, create_adapter
from tradefeed.adapters.dopp import DoppAdapter
from tradefeed.exceptions import ConfigError, ParseError
from tradefeed.models import Liquidity, Side, Trade

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dopp"
RECEIVED_NS = 1_767_225_600_500_000_000


def frame(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str):
    return DoppAdapter().parse(frame(name), RECEIVED_NS)


# -- handshake --------------------------------------------------------------------------


def test_by_instrument_url_carries_both_filters():
    """wallet_address and instrument_name go into the by-instrument endpoint's query."""
    adapter = DoppAdapter(instrument_name="BTC-PERPETUAL", wallet_address="0xabc")
    assert adapter.handshake().url == (
        "wss://api.doppapp.com/v1/public/ws/get_user_trades_by_instrument"
        "?wallet_address=0xabc&instrument_name=BTC-PERPETUAL"
    )


def test_by_currency_url():
    """A currency filter selects the by-currency endpoint."""
    adapter = DoppAdapter(currency="BTC", wallet_address="test_wallet_address")
    assert adapter.handshake("ws://127.0.0.1:9000").url == (
        "ws://127.0.0.1:9000/v1/public/ws/get_user_trades_by_currency"
        "?wallet_address=test_wallet_address&currency=BTC"
    )


def test_no_filter_streams_everything_from_the_instrument_endpoint():
    """Without filters the URL has no query (the venue then streams all trades)."""
    assert DoppAdapter().handshake("ws://h:1/").url == "ws://h:1/v1/public/ws/get_user_trades_by_instrument"


def test_base_url_with_a_path_is_used_as_the_endpoint():
    """A URL that already names a path is kept; only the query is added."""
    url = DoppAdapter(instrument_name="X-1").handshake("wss://proxy.example/dopp/trades?v=1").url
    assert url == "wss://proxy.example/dopp/trades?v=1&instrument_name=X-1"


def test_query_values_are_url_encoded():
    """Odd characters in a filter cannot change the query's structure."""
    url = DoppAdapter(instrument_name="A&B=C").handshake("ws://h:1").url
    assert url.endswith("instrument_name=A%26B%3DC")


def test_handshake_has_no_headers_or_subprotocols():
    """Dopp documents no auth: nothing beyond the URL is sent."""
    hs = DoppAdapter().handshake()
    assert dict(hs.headers) == {} and list(hs.subprotocols) == []


@pytest.mark.parametrize(
    "params, message",
    [
        ({"instrument_name": "BTC-PERPETUAL", "currency": "BTC"}, "not both"),
        ({"instrument_name": ""}, "instrument_name"),
        ({"currency": " BTC"}, "currency"),
        ({"wallet_address": 42}, "wallet_address"),
        ({"instrument": "BTC-PERPETUAL"}, "unknown parameter"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    """Invalid or unknown parameters fail before any connection, naming the problem."""
    with pytest.raises(ConfigError, match=message):
        create_adapter("dopp", params)


def test_unknown_venue_lists_the_known_ones():
    """A typo in the venue name says which venues exist."""
    with pytest.raises(ConfigError, match="dopp"):
        create_adapter("dop", {})


def test_close_1008_ends_the_feed_and_others_reconnect():
    """1008 (invalid filter) is final; normal, going-away, abnormal and 1011 retry."""
    adapter = DoppAdapter()
    assert adapter.on_close(1008, "invalid filter") is CloseAction.STOP
    for code in (1000, 1001, 1006, 1011, None):
        assert adapter.on_close(code, "") is CloseAction.RECONNECT


def test_no_application_messages_or_heartbeat():
    """Dopp is push-on-connect: nothing to send on open, no tick."""
    adapter = DoppAdapter(instrument_name="BTC-PERPETUAL")
    assert adapter.on_open() == [] and adapter.tick(0) == [] and adapter.tick_interval is None


# -- parsing ----------------------------------------------------------------------------


def test_snapshot_maps_every_field_exactly():
    """The spec's example frame maps to the normalized Trade, with exact Decimals."""
    parsed = parse("snapshot.json")
    assert list(parsed.errors) == []
    perp = parsed.trades[0]
    assert perp == Trade(
        venue="dopp",
        symbol="BTC-PERPETUAL",
        trade_id="771204",
        price=Decimal("90125.5"),
        amount=Decimal("0.25"),
        side=Side.BUY,
        timestamp_ms=1767225600123,
        received_ns=RECEIVED_NS,
        sequence=771204,
        fee=Decimal("11.27"),
        fee_currency="USDC",
        liquidity=Liquidity.TAKER,
        stream="user",
        raw={
            "wallet_address": "0x9b1e4f0c2a7d3e8b5f6a1c2d3e4f5a6b7c8d9e0f",
            "base_currency": "BTC",
            "index_price": Decimal("90110.42"),
            "iv": 0,
            "mark_price": Decimal("90118.65"),
            "order_id": 1048576,
            "order_type": "limit",
            "tick_direction": 0,
            "trade_direction": "buy",
        },
    )
    assert perp.received_ns == RECEIVED_NS


def test_snapshot_sent_newest_first_is_delivered_oldest_first():
    """Trades within a frame come out in chronological order."""
    trades = parse("snapshot.json").trades
    assert [t.trade_id for t in trades] == ["771204", "771205"]
    option = trades[1]
    assert option.price == Decimal("0.0215") and str(option.price) == "0.0215"
    assert option.side is Side.SELL and option.liquidity is Liquidity.MAKER
    assert option.fee == Decimal("0.0003") and option.fee_currency == "BTC"
    assert str(option.amount) == "1.0"  # the literal's digits are kept


def test_empty_snapshot():
    """An empty last_trades array is a valid frame with no trades."""
    parsed = parse("empty_snapshot.json")
    assert list(parsed.trades) == [] and list(parsed.errors) == []


def test_every_element_of_the_outer_array_is_read():
    """Several {last_trades} objects in one frame all count; spelled-out liquidity too."""
    trades = parse("multi_element.json").trades
    assert [(t.trade_id, t.liquidity) for t in trades] == [("880001", Liquidity.TAKER), ("880002", Liquidity.MAKER)]
    assert str(trades[0].amount) == "0.010" and str(trades[0].price) == "3021.10"


def test_numeric_strings_integer_ids_and_seconds():
    """Numeric strings parse exactly; an int trade_id becomes a string; seconds become ms."""
    (trade,) = parse("numeric_strings.json").trades
    assert trade.amount == Decimal("0.123456789012345678901")
    assert str(trade.price) == "90125.50"
    assert trade.fee == Decimal("1E-9")
    assert trade.trade_id == "771300"
    assert trade.timestamp_ms == 1767225600000


def test_minimal_record_negative_amount_and_integer_price():
    """Optional fields may be absent; a negative amount is made positive; int prices are exact."""
    (trade,) = parse("minimal.json").trades
    assert trade.amount == Decimal("0.5") and trade.side is Side.SELL
    assert trade.price == Decimal(90000) and isinstance(trade.price, Decimal)
    assert trade.sequence is None and trade.fee is None and trade.liquidity is None and trade.raw == {}


def test_bare_object_frame_is_accepted():
    """A single {last_trades} object without the outer array parses the same."""
    single = b'{"last_trades": [{"amount": 1, "direction": "buy", "instrument_name": "X", "price": 2, "timestamp": 1767225600000, "trade_id": "1"}]}'
    assert [t.trade_id for t in DoppAdapter().parse(single, 0).trades] == ["1"]


@pytest.mark.parametrize("name", ["bad_json.txt", "not_an_array.json", "non_finite.json"])
def test_unusable_frames_raise_parse_error_with_the_raw_frame(name):
    """A frame that is not JSON, not an array, or has NaN raises ParseError carrying it."""
    raw = frame(name)
    with pytest.raises(ParseError) as info:
        DoppAdapter().parse(raw, 0)
    assert info.value.raw == raw and info.value.venue == "dopp"


def test_invalid_utf8_is_a_parse_error():
    """Bytes that are not UTF-8 (websocket-client skips that check for speed) are rejected."""
    with pytest.raises(ParseError):
        DoppAdapter().parse(b'[{"last_trades": ["\xff\xfe"]}]', 0)


def test_missing_field_is_reported_by_name():
    """A record without price is a ParseError naming the field; nothing is guessed."""
    parsed = parse("missing_field.json")
    assert parsed.trades == []
    (error,) = parsed.errors
    assert isinstance(error, ParseError) and "'price'" in str(error)
    assert error.raw["trade_id"] == "771204"


def test_unknown_direction_is_an_error_not_a_default():
    """An unmappable side is a ParseError, never a default."""
    (error,) = parse("unknown_direction.json").errors
    assert "unknown direction 'long'" in str(error)


def test_bad_records_are_reported_and_good_ones_still_delivered():
    """Each wrongly typed record yields one error; the valid record in the frame survives."""
    parsed = parse("wrong_types.json")
    assert [t.trade_id for t in parsed.trades] == ["771210"]
    messages = [str(e) for e in parsed.errors]
    assert len(messages) == 7
    assert "price is not a number" in messages[0]
    assert "amount must be a number, not bool" in messages[1]
    assert "timestamp is not a number" in messages[2]
    assert "trade_seq must be an integer" in messages[3]
    assert "unknown liquidity 'X'" in messages[4]
    assert "instrument_name must be a string" in messages[5]
    assert "not an object" in messages[6]
    assert all(isinstance(e, ParseError) for e in parsed.errors)


def test_element_without_last_trades_is_reported():
    """An array element that is not a {last_trades} object is an error; the rest parses."""
    parsed = parse("element_without_trades.json")
    assert [t.trade_id for t in parsed.trades] == ["771204"]
    assert "without a last_trades array" in str(parsed.errors[0])


def test_zero_amount_is_rejected():
    """A trade of nothing is not a trade."""
    parsed = DoppAdapter().parse(
        b'[{"last_trades": [{"amount": 0, "direction": "buy", "instrument_name": "X", "price": 2, "timestamp": 1767225600000, "trade_id": "1"}]}]',
        0,
    )
    assert parsed.trades == [] and "amount is zero" in str(parsed.errors[0])


def test_parse_error_message_is_truncated():
    """A huge bad frame does not end up whole in the message (it stays in .raw)."""
    raw = b"[" + b"x" * 10_000
    with pytest.raises(ParseError) as info:
        DoppAdapter().parse(raw, 0)
    assert len(str(info.value)) < 600 and info.value.raw == raw


def _frame(*trades):
    records = ",".join(
        '{"amount": 1, "direction": "buy", "instrument_name": "%s", "price": 2, "timestamp": %d, "trade_id": "%s", "trade_seq": %d}'
        % (symbol, ts, tid, seq)
        for symbol, ts, tid, seq in trades
    )
    return ('[{"last_trades": [%s]}]' % records).encode()


def test_same_millisecond_snapshot_is_reversed_and_live_frames_keep_venue_order():
    """With equal timestamps the snapshot (first frame) is reversed; later frames keep the venue's order."""
    adapter = DoppAdapter()
    snapshot = _frame(("ETH-PERPETUAL", 5, "3", 1), ("BTC-PERPETUAL", 5, "2", 9), ("ETH-PERPETUAL", 5, "1", 0))
    assert [t.trade_id for t in adapter.parse(snapshot, 0).trades] == ["1", "2", "3"]
    live = _frame(("ETH-PERPETUAL", 6, "4", 2), ("BTC-PERPETUAL", 6, "5", 10), ("ETH-PERPETUAL", 6, "6", 3))
    assert [t.trade_id for t in adapter.parse(live, 0).trades] == ["4", "5", "6"]


def test_a_later_frame_that_runs_backwards_in_time_is_reversed():
    """A resent window sent newest first (timestamps falling) is delivered oldest first."""
    adapter = DoppAdapter()
    adapter.parse(b'[{"last_trades": []}]', 0)
    window = _frame(("X", 9, "c", 3), ("X", 8, "b", 2), ("X", 7, "a", 1))
    assert [t.trade_id for t in adapter.parse(window, 0).trades] == ["a", "b", "c"]
