"""The SynFutures adapter over fixture frames."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tradefeed import ConfigError, Liquidity, ParseError, Side, VenueError
from tradefeed.adapters.synfutures import SynfuturesAdapter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "synfutures"
BTC = "0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295"
ETH = "0x44b60b6af9b615a5cf2d366e2143582557cff711_4294967295"


def frame(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapter(**kwargs) -> SynfuturesAdapter:
    kwargs.setdefault("pairs", [BTC])
    return SynfuturesAdapter(**kwargs)


def test_handshake_path_and_headers():
    """The public socket path, with the User-Agent and Origin the venue asks for."""
    hs = adapter().handshake("ws://127.0.0.1:1")
    assert hs.url == "ws://127.0.0.1:1/v4/public/ws"
    assert hs.headers["Origin"] == "https://api.monday.trade" and "tradefeed" in hs.headers["User-Agent"]
    assert adapter().handshake().url == "wss://api.monday.trade/v4/public/ws"


def test_subscribe_frame_on_open():
    """On open: one SUBSCRIBE with an integer id, chainId, type trades, pairs and tradesLimit."""
    (sub,) = adapter(pairs=[BTC, ETH.upper().replace("0X", "0x")], trades_limit=50).on_open()
    assert json.loads(sub) == {
        "id": 1,
        "method": "SUBSCRIBE",
        "params": {"chainId": 143, "type": "trades", "pairs": [BTC, ETH], "tradesLimit": 50},
    }


def test_more_than_100_pairs_are_split():
    """The venue takes at most 100 pairs per request."""
    pairs = ["0x%040x_4294967295" % i for i in range(150)]
    frames = adapter(pairs=pairs).on_open()
    assert [len(json.loads(f)["params"]["pairs"]) for f in frames] == [100, 50]
    assert [json.loads(f)["id"] for f in frames] == [1, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pairs": []}, "non-empty"),
        ({"pairs": "0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295"}, "non-empty list"),
        ({"pairs": ["BTC/USDC"]}, "invalid pair"),
        ({"pairs": ["0x73ada1ea_4294967295"]}, "invalid pair"),
        ({"trades_limit": 0}, "1..100"),
        ({"trades_limit": 101}, "1..100"),
        ({"trades_limit": True}, "1..100"),
        ({"chain_id": "143"}, "chain_id"),
    ],
)
def test_parameters_are_validated_before_connecting(kwargs, message):
    """Bad pairs, trades_limit outside 1..100 or a bad chain id are ConfigErrors."""
    with pytest.raises(ConfigError, match=message):
        adapter(**kwargs)


def test_push_maps_wad_values_exactly_and_sorts_by_time():
    """WAD strings become exact Decimals, seconds become ms, fees are summed, long/short map to buy/sell."""
    parsed = adapter().parse(frame("push.json"), 7)
    assert list(parsed.errors) == []
    first, second = parsed.trades
    assert (first.trade_id, second.trade_id) == ("58120394", "58120395")  # oldest first
    assert first.price == Decimal("90125.5") and str(first.price) == "90125.5"
    assert first.amount == Decimal("0.015") and first.side is Side.BUY
    assert first.timestamp_ms == 1767225601000 and first.received_ns == 7
    assert first.fee == Decimal("0.44612122500000000") and first.fee == Decimal("0.405564750") + Decimal("0.040556475")
    assert first.fee_currency == "USDC" and first.liquidity is Liquidity.TAKER
    assert first.symbol == "BTC/USDC" and first.sequence is None
    assert first.raw["event"] == "trade" and first.raw["pair"] == BTC
    assert first.raw["tradeFee"] == "405564750000000000" and first.raw["txHash"].startswith("0x4b1f")
    assert second.amount == Decimal("0.25") and second.side is Side.SELL  # negative size, short
    assert second.raw["event"] == "sweep"


def test_single_object_data_and_mixed_case_envelope():
    """data as one object is accepted; the pair key comes from the envelope, lower-cased."""
    (trade,) = adapter().parse(frame("single_object.json"), 0).trades
    assert trade.price == Decimal("90136") and str(trade.price) == "90136" and trade.amount == Decimal(1)
    assert trade.raw["pair"] == BTC and trade.fee is None and trade.fee_currency is None


def test_acks_match_requests_and_failures_are_venue_errors():
    """A success ack is quiet; a failure ack names the request and its pairs."""
    a = adapter()
    a.on_open()
    assert not a.parse(frame("ack_success.json"), 0).errors
    b = adapter()
    b.on_open()
    (error,) = b.parse(frame("ack_failure.json"), 0).errors
    assert isinstance(error, VenueError) and error.payload == {"id": 1, "result": "error: invalid pairs"}
    assert "SUBSCRIBE" in str(error) and BTC in str(error) and "invalid pairs" in str(error)


def test_pong_is_a_heartbeat_and_ping_is_the_tick():
    """The text pong proves liveness; the tick sends the bare text ping every 30 s."""
    a = adapter()
    assert a.parse("pong", 0).heartbeat and a.parse(b"pong", 0).heartbeat
    assert a.tick(0) == ["ping"] and a.tick_interval == 30.0


def test_other_streams_are_ignored():
    """Kline and other streams on the same socket yield nothing and no error."""
    parsed = adapter().parse(frame("other_stream.json"), 0)
    assert not parsed.trades and not parsed.errors


def test_bad_records_are_errors_and_good_ones_survive():
    """Unknown side, missing price, non-numeric size, unknown type and zero size are each reported."""
    parsed = adapter().parse(frame("bad_records.json"), 0)
    assert [t.trade_id for t in parsed.trades] == ["6"]
    messages = [str(e) for e in parsed.errors]
    assert "unknown side 'up'" in messages[0]
    assert "without field 'price'" in messages[1]
    assert "size is not a number" in messages[2]
    assert "unknown type 'Auction'" in messages[3]
    assert "size is zero" in messages[4]
    assert all(isinstance(e, ParseError) for e in parsed.errors)


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'{"hello": 1}', b'{"stream": "trades", "data": 5}'])
def test_unusable_frames_raise_parse_error(raw):
    """Not JSON, not an object, neither push nor ack, or data not an array: ParseError."""
    with pytest.raises(ParseError):
        adapter().parse(raw, 0)


def test_run_time_subscribe_and_unsubscribe():
    """subscribe() sends only new pairs; unsubscribe() sends UNSUBSCRIBE and drops that pair's trades."""
    a = adapter()
    a.on_open()
    (sub,) = a.subscribe([ETH, BTC])
    assert json.loads(sub)["params"]["pairs"] == [ETH] and json.loads(sub)["id"] == 2
    assert a.subscribe([BTC]) == []
    (unsub,) = a.unsubscribe([BTC])
    assert json.loads(unsub) == {"id": 3, "method": "UNSUBSCRIBE", "params": {"chainId": 143, "type": "trades", "pairs": [BTC]}}
    assert not a.parse(frame("push.json"), 0).trades  # BTC trades in flight are dropped
    assert a.pairs == [ETH]


# -- the scale of a record's numbers (synfutures.md, resolved 2026-12-06) ----------------


def push(*items: dict) -> str:
    envelope = {"chainId": 143, "instrument": BTC.split("_")[0], "expiry": 4294967295, "stream": "trades"}
    return json.dumps({**envelope, "data": list(items)})


def record(price, size="1", *, base=90110.42, quote=1.0, **extra) -> dict:
    item = {
        "id": "7", "price": price, "size": size, "timestamp": 1767225603, "type": "Market",
        "symbol": "BTC/USDC", "side": "long", "event": "trade",
    }  # fmt: skip
    if base is not None:
        item["baseToken"] = {"symbol": "BTC", "decimals": 8, "price": base}
    if quote is not None:
        item["quoteToken"] = {"symbol": "USDC", "decimals": 6, "price": quote}
    return {**item, **extra}


def one(item: dict, a: SynfuturesAdapter | None = None):
    parsed = (a or adapter()).parse(push(item), 0)
    assert not parsed.errors, parsed.errors
    (trade,) = parsed.trades
    return trade


@pytest.mark.parametrize(
    "price, size, want_price, want_amount",
    [
        ("90136000000000000000000", "1000000000000000000", Decimal("90136"), Decimal(1)),  # WAD, near the reference
        ("90136", "1", Decimal("90136"), Decimal(1)),  # plain integers: the default would have said WAD
        ("90136.5", "0.015", Decimal("90136.5"), Decimal("0.015")),  # dotted: plain, no check
        ("9.01365E4", "1.5e-2", Decimal("90136.5"), Decimal("0.015")),  # exponent: plain
        ("90136000000000000000000", "1", Decimal("90136"), Decimal("1E-18")),  # dust: size follows the price's scale
        ("90136", "15000000000000000", Decimal("90136"), Decimal("15000000000000000")),  # plain record, size as is
    ],
)
def test_scale_is_decided_per_record_by_its_price(price, size, want_price, want_amount):
    trade = one(record(price, size))
    assert trade.price == want_price and trade.amount == want_amount
    assert "scale_guess" not in trade.raw


def test_fees_follow_the_record_scale():
    plain = one(record("90136", "1", tradeFee="27", protocolFee="2.7"))
    wad = one(record("90136" + "0" * 18, "1" + "0" * 18, tradeFee="27" + "0" * 18, protocolFee="27" + "0" * 17))
    assert plain.fee == wad.fee == Decimal("29.7")


def test_reference_prices_may_be_numeric_strings_and_need_not_be_usd_quoted():
    """baseToken.price / quoteToken.price: strings accepted; a quote token at 2 halves the reference."""
    assert one(record("45068", base="90136", quote="2")).price == Decimal("45068")
    assert one(record("45068" + "0" * 18, base="90136", quote="2")).price == Decimal("45068")


@pytest.mark.parametrize(
    "base, quote",
    [(None, 1.0), (90110.42, None), (0, 1.0), (90110.42, 0), ("n/a", 1.0), (-5, 1.0)],
    ids=["no base", "no quote", "zero base", "zero quote", "not a number", "negative"],
)
def test_without_a_usable_reference_wad_is_guessed_marked_and_warned_once(base, quote, caplog):
    a = adapter()
    with caplog.at_level("WARNING", logger="tradefeed.adapters.synfutures"):
        first = one(record("90136" + "0" * 18, "1" + "0" * 18, base=base, quote=quote), a)
        second = one(record("90137" + "0" * 18, "1" + "0" * 18, base=base, quote=quote, id="8"), a)
    assert first.price == Decimal("90136") and second.price == Decimal("90137")
    assert first.raw["scale_guess"] == second.raw["scale_guess"] == "wad"
    warnings = [r for r in caplog.records if "BTC/USDC" in r.getMessage()]
    assert len(warnings) == 1 and "scale_guess" in warnings[0].getMessage()


def test_a_price_far_from_both_readings_is_a_marked_wad_guess():
    """Neither 90136 nor 9.0136E-14 is within 10^3 of a reference of 1: WAD, marked."""
    trade = one(record("90136", base=1.0, quote=1.0))
    assert trade.price == Decimal("9.0136E-14") and trade.raw["scale_guess"] == "wad"


def test_numbers_or_numeric_strings_for_timestamp_expiry_and_chain_id():
    item = record("90136.5", timestamp="1767225603", expiry="4294967295", chainId="143")
    trade = one(item)
    assert trade.timestamp_ms == 1767225603000
    assert trade.raw["pair"] == BTC and trade.raw["expiry"] == 4294967295 and trade.raw["chainId"] == 143
    bad = adapter().parse(push(record("90136.5", expiry="perpetual")), 0)
    assert not bad.trades and "expiry must be a whole number" in str(bad.errors[0])


def test_a_server_ping_is_answered_with_pong():
    parsed = adapter().parse("ping", 0)
    assert parsed.replies == ("pong",) and parsed.heartbeat and not parsed.errors
    assert adapter().parse(b"ping", 0).replies == ("pong",)


@pytest.mark.parametrize(
    "price, size, want",
    [
        ("90136.5", "-1.234567890123456789012345678901234", "1.234567890123456789012345678901234"),
        ("90136" + "0" * 18, "-1234567890123456789012345678901234", "1234567890123456.789012345678901234"),  # WAD
    ],
)
def test_a_negative_size_becomes_its_exact_absolute_value(price, size, want):
    """A short's negative size is made positive without rounding (``-amount`` would round
    to the context's 28 digits)."""
    trade = one(record(price, size))
    assert str(trade.amount) == want and trade.side is Side.BUY
