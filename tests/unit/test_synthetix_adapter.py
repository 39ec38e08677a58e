"""The Synthetix adapter over fixture frames."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tradefeed import ConfigError, Liquidity, ParseError, Side, VenueError
from tradefeed.adapters.base import rfc3339_to_ms
from tradefeed.adapters.synthetix import SynthetixAdapter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "synthetix"


def frame(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def opened(**kwargs) -> SynthetixAdapter:
    """An adapter that has sent its opening requests (ids subscription-1, trades-2)."""
    kwargs.setdefault("symbols", ["btc-usdt"])
    a = SynthetixAdapter(**kwargs)
    a.on_open()
    return a


def test_handshake_sends_user_agent():
    """The info socket path, with the User-Agent the venue requires."""
    hs = SynthetixAdapter(symbols=["BTC-USDT"]).handshake()
    assert hs.url == "wss://papi.synthetix.io/v1/ws/info" and "tradefeed" in hs.headers["User-Agent"]


def test_on_open_subscribes_then_backfills_each_symbol():
    """Per symbol: subscribe (type trades), then getLastTrades with the limit."""
    a = SynthetixAdapter(symbols=["btc-usdt", "ETH-USDT"], limit=20)
    frames = [json.loads(f) for f in a.on_open()]
    assert frames == [
        {"id": "subscription-1", "method": "subscribe", "params": {"type": "trades", "symbol": "BTC-USDT"}},
        {"id": "trades-2", "method": "post", "params": {"action": "getLastTrades", "symbol": "BTC-USDT", "limit": 20}},
        {"id": "subscription-3", "method": "subscribe", "params": {"type": "trades", "symbol": "ETH-USDT"}},
        {"id": "trades-4", "method": "post", "params": {"action": "getLastTrades", "symbol": "ETH-USDT", "limit": 20}},
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"symbols": []}, "non-empty"),
        ({"symbols": ["A" * 21]}, "longer than 20"),
        ({"symbols": ["BTC USDT"]}, "invalid symbol"),
        ({"symbols": ["BTC-USDT"], "limit": 0}, "1..100"),
        ({"symbols": ["BTC-USDT"], "limit": 101}, "1..100"),
        ({"symbols": ["BTC-USDT"], "poll_interval": 0}, "poll_interval"),
        ({"symbols": ["BTC-USDT"], "live": "yes"}, "live"),
    ],
)
def test_parameters_are_validated(kwargs, message):
    """Symbols of more than 20 characters, limit outside 1..100 and such are ConfigErrors."""
    with pytest.raises(ConfigError, match=message):
        SynthetixAdapter(**kwargs)


def test_backfill_is_delivered_oldest_first_then_held_live_trades():
    """Live trades that arrive before the back-fill reply wait for it, then follow it."""
    a = opened()
    assert not a.parse(frame("subscribe_ack.json"), 0).trades
    held = a.parse(frame("live_trade.json"), 5)
    assert not held.trades and not held.errors
    parsed = a.parse(frame("last_trades.json"), 6)
    assert [t.trade_id for t in parsed.trades] == ["1950384712", "1950384713", "1950384714"]
    first = parsed.trades[0]
    assert first.price == Decimal("90125.5") and str(first.amount) == "0.042" and first.side is Side.BUY
    assert first.timestamp_ms == 1767225600500 and first.liquidity is Liquidity.TAKER and first.fee is None
    live = parsed.trades[2]
    assert live.timestamp_ms == 1767225602010 and live.sequence == 9 and live.received_ns == 5
    assert live.raw == {"channel": "trade", "timestamp": 1767225602012, "prevMeseq": 8}
    # after the back-fill, live trades flow straight through
    assert [t.trade_id for t in a.parse(frame("live_trade_tsms.json"), 0).trades] == ["1950384715"]


def _record(n: int) -> dict:
    return {"tradeId": str(1950384800 + n), "symbol": "BTC-USDT", "side": "buy", "price": "90000.5",
            "quantity": "0.010", "timestamp": 1767225600000 + n, "isMaker": False}  # fmt: skip


def _live(n: int) -> str:
    return json.dumps({"channel": "trade", "data": _record(n), "meseq": n, "prevMeseq": n - 1})


def _backfill(first: int, last: int) -> str:
    trades = [_record(n) for n in range(last, first - 1, -1)]  # newest first, as on the wire
    return json.dumps({"id": "trades-2", "status": 200, "result": {"response": {"trades": trades}, "status": "ok"}})


@pytest.mark.parametrize(
    "backfill, order",
    [
        ((8, 12), [8, 9, 10, 11, 12, 13, 14]),  # overlaps the live trades: each comes once
        ((12, 14), [10, 11, 12, 13, 14]),  # more than `limit` trades between the requests
        ((5, 9), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),  # ends just before the live stream
    ],
)
def test_backfill_and_held_live_trades_come_out_in_venue_order(backfill, order):
    """The held live trades are everything since the subscription, so the back-fill
    contributes only the trades older than them, whichever of the two reaches back
    further: never a live trade behind a newer back-filled one, never one twice."""
    a = opened()
    for n in range(10, 15):
        assert not a.parse(_live(n), 0).trades
    trades = a.parse(_backfill(*backfill), 0).trades
    assert [t.trade_id for t in trades] == [str(1950384800 + n) for n in order]
    assert all(t.sequence == int(t.trade_id) - 1950384800 for t in trades if int(t.trade_id) >= 1950384810)


def test_go_sdk_form_tsms_and_istaker():
    """tsMs (ms) and isTaker are accepted in place of the RFC 3339 timestamp and isMaker."""
    a = opened()
    a.parse(frame("last_trades.json"), 0)
    (trade,) = a.parse(frame("live_trade_tsms.json"), 0).trades
    assert trade.timestamp_ms == 1767225602500 and trade.liquidity is Liquidity.MAKER and trade.side is Side.SELL


def test_error_reply_reaches_errors_with_the_request_id_and_releases_live_trades():
    """A 400 to getLastTrades is a VenueError naming the request; held live trades are let go."""
    a = opened()
    a.parse(frame("live_trade.json"), 0)
    parsed = a.parse(frame("last_trades_error.json"), 0)
    (error,) = parsed.errors
    assert isinstance(error, VenueError) and "trades-2" in str(error) and "Invalid symbol" in str(error)
    assert error.payload["error"]["code"] == 400
    assert [t.trade_id for t in parsed.trades] == ["1950384714"]


def test_string_error_code_is_accepted():
    """error.code may be a string (StockSharp, REST docs)."""
    a = opened()
    reply = {"id": "trades-2", "status": 500, "error": {"code": "INTERNAL_ERROR", "message": "boom"}}
    (error,) = a.parse(json.dumps(reply), 0).errors
    assert "INTERNAL_ERROR" in str(error)


def test_unknown_side_is_a_parse_error_never_buy():
    """An unrecognized side is reported, not defaulted."""
    a = opened()
    a.parse(frame("last_trades.json"), 0)
    parsed = a.parse(frame("bad_side.json"), 0)
    assert not parsed.trades and "unknown side 'bid'" in str(parsed.errors[0])
    assert isinstance(parsed.errors[0], ParseError)


def test_pings_and_pongs():
    """The method ping is sent on tick; both reply forms are heartbeats."""
    a = opened()
    (ping,) = a.tick(0)
    assert json.loads(ping) == {"id": "ping-3", "method": "ping", "params": {}}
    assert a.parse(frame("ping_reply.json"), 0).heartbeat
    assert a.parse(b'{"type": "pong", "timestamp": 1767225600000}', 0).heartbeat
    assert a.tick(10**9) == []  # the next ping is due 30 s later


def test_polling_mode_repeats_get_last_trades():
    """live=False: no subscription; each tick asks getLastTrades again."""
    a = SynthetixAdapter(symbols=["BTC-USDT"], live=False, poll_interval=2)
    assert [json.loads(f)["method"] for f in a.on_open()] == ["post"]
    assert a.tick_interval == 2.0
    first = [json.loads(f) for f in a.tick(0)]
    assert [f["method"] for f in first] == ["ping", "post"]
    second = [json.loads(f) for f in a.tick(2 * 10**9)]
    assert [f["method"] for f in second] == ["post"]


def test_unsubscribe_stops_trades_of_that_symbol():
    """After unsubscribe, in-flight trades of that symbol are dropped."""
    a = opened(symbols=["BTC-USDT", "ETH-USDT"])
    a.parse(frame("last_trades.json"), 0)
    (unsub,) = a.unsubscribe(["btc-usdt"])
    assert json.loads(unsub)["method"] == "unsubscribe" and json.loads(unsub)["params"]["symbol"] == "BTC-USDT"
    assert not a.parse(frame("live_trade.json"), 0).trades


def test_subscribe_at_run_time_backfills_the_new_symbol():
    """A symbol added at run time is subscribed and back-filled like one from the start."""
    a = opened()
    frames = [json.loads(f) for f in a.subscribe(["eth-usdt", "BTC-USDT"])]
    assert [(f["method"], f["params"]["symbol"]) for f in frames] == [("subscribe", "ETH-USDT"), ("post", "ETH-USDT")]


@pytest.mark.parametrize(
    "text, ms",
    [
        ("2026-01-01T00:00:02.010Z", 1767225602010),
        ("2026-01-01T00:00:02Z", 1767225602000),
        ("2026-01-01T00:00:02.0109999Z", 1767225602010),
        ("2026-01-01T02:00:02.5+02:00", 1767225602500),
        ("2025-12-31T19:00:02-05:00", 1767225602000),
    ],
)
def test_rfc3339(text, ms):
    """RFC 3339 times with any offset and precision become exact epoch ms."""
    assert rfc3339_to_ms(text) == ms


@pytest.mark.parametrize("text", ["2026-01-01", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "yesterday", 5])
def test_rfc3339_rejects(text):
    """Dates without time or offset, impossible dates and non-strings are refused."""
    with pytest.raises(ValueError):
        rfc3339_to_ms(text)


# -- the official SDK's push envelope (synthetix.md, resolved 2026-12-06) -----------------


def _streaming() -> SynthetixAdapter:
    """An adapter past its back-fill: live trades come out at once."""
    a = opened()
    a.parse(_backfill(1, 2), 0)
    return a


@pytest.mark.parametrize(
    "push",
    [
        {"channel": "trade", "data": _record(3)},
        {"method": "trade", "data": _record(3)},
        {"method": "trade", "data": [_record(3)]},
        {"channel": "trade", "data": [_record(3)]},
    ],
    ids=["docs", "sdk object", "sdk list of one", "docs envelope with a list"],
)
def test_both_envelopes_and_both_data_shapes_give_the_same_trade(push):
    (trade,) = _streaming().parse(json.dumps(push), 5).trades
    docs = json.dumps({"channel": "trade", "data": _record(3)})
    (want,) = _streaming().parse(docs, 5).trades
    fields = ("symbol", "trade_id", "price", "amount", "side", "timestamp_ms", "liquidity", "sequence", "fee")
    assert [getattr(trade, f) for f in fields] == [getattr(want, f) for f in fields]
    assert trade.received_ns == 5 and trade.sequence is None
    envelope = {"channel", "method"}  # the envelope's own key stays in raw, whichever it was
    assert {k: v for k, v in trade.raw.items() if k not in envelope} == {k: v for k, v in want.raw.items() if k not in envelope}


def test_a_list_push_keeps_its_order_and_reports_a_bad_record_without_losing_the_rest():
    bad = dict(_record(5), side="hold")
    push = {"method": "trade", "data": [_record(3), _record(4), bad, _record(6)], "meseq": 99}
    parsed = _streaming().parse(json.dumps(push), 0)
    assert [t.trade_id for t in parsed.trades] == [str(1950384800 + n) for n in (3, 4, 6)]
    assert all(t.sequence is None for t in parsed.trades)  # an envelope meseq is one trade's, not a list's
    (error,) = parsed.errors
    assert isinstance(error, ParseError) and "unknown side 'hold'" in str(error)


def test_list_pushes_wait_for_the_back_fill_like_single_ones():
    a = opened()
    assert not a.parse(json.dumps({"method": "trade", "data": [_record(10), _record(11)]}), 0).trades
    trades = a.parse(_backfill(8, 9), 0).trades
    assert [t.trade_id for t in trades] == [str(1950384800 + n) for n in (8, 9, 10, 11)]


@pytest.mark.parametrize("data", [None, "x", 5])
def test_a_push_without_trade_data_is_a_parse_error(data):
    with pytest.raises(ParseError, match="trade push without data"):
        _streaming().parse(json.dumps({"method": "trade", "data": data}), 0)
