"""The fast path gives exactly what the reference path gives.

msgspec (the ``fast`` extra) and the standard library must decode every document to the
same values, Decimals included digit for digit; every venue's fixtures must parse to
identical Trades with either; and ``new_trade`` must build the same Trade as the
dataclass constructor.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradefeed import Liquidity, ParseError, Side, Trade
from tradefeed.adapters import REGISTRY, base
from tradefeed.adapters.base import Parsed, new_parsed
from tradefeed.models import new_trade

from .test_adapters_property import PARAMS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def exact(value):
    """*value* with every Decimal replaced by its repr (digits and exponent), recursively."""
    if isinstance(value, Decimal):
        return ("D", repr(value))
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return (type(value).__name__, value)


def decode_both(text: bytes):
    results = []
    for loads in (base.stdlib_loads, base.fast_loads):
        try:
            results.append(("ok", exact(loads(text))))
        except ValueError as err:
            results.append(("error", type(err).__name__ if isinstance(err, UnicodeDecodeError) else "ValueError"))
    return results


def test_the_fast_decoder_is_installed_for_the_tests():
    assert base.JSON_BACKEND == "msgspec"  # else the comparisons below compare nothing


numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),  # exponents: 1E+400, 1E-9
    st.sampled_from(["1.50", "0.10000000000000000001", "-0.0", "1e-9", "1E400", "0.1e1", "90125.50", "5e-324"]),
)
json_values = st.recursive(
    st.one_of(numbers, st.sampled_from(["true", "false", "null"]), st.text(max_size=10).map(json.dumps)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.dictionaries(st.text(max_size=5), inner, max_size=4).map(
            lambda d: "{" + ",".join("%s:%s" % (json.dumps(k), v) for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(text=json_values)
def test_both_decoders_agree_on_json(text):
    first, second = decode_both(text.encode())
    assert first == second


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=60))
def test_both_decoders_agree_on_arbitrary_bytes(data):
    first, second = decode_both(data)
    assert first[0] == second[0]
    if first[0] == "ok":
        assert first == second


@pytest.mark.parametrize(
    "text",
    [b"[NaN]", b"[Infinity]", b'"\\ud800"', b"\xff[1]", b"[1] x", b"", b"{\"a\":1,\"a\":2}", "[\"\u00e9\"]".encode()],
)
def test_both_decoders_agree_on_edge_cases(text):
    first, second = decode_both(text)
    assert first == second


def fixture_frames():
    for venue in sorted(REGISTRY):
        for path in sorted((FIXTURES / venue).glob("*")):
            yield pytest.param(venue, path, id="%s/%s" % (venue, path.name))


def parse_all(venue: str, frame: bytes):
    """Parse *frame* as a venue adapter would after the venue's usual opening."""
    adapter = REGISTRY[venue].from_params(**PARAMS[venue])
    adapter.on_open()
    try:
        parsed = adapter.parse(frame, 123)
    except ParseError as err:
        return ("error", str(err))
    return (
        [(exact(t.to_dict()), t) for t in parsed.trades],
        [str(e) for e in parsed.errors],
        parsed.replies,
    )


@pytest.mark.parametrize("venue,path", list(fixture_frames()))
def test_every_fixture_parses_identically_with_either_decoder(venue, path, monkeypatch):
    frame = path.read_bytes()
    monkeypatch.setattr(base, "_loads", base.stdlib_loads)
    reference = parse_all(venue, frame)
    monkeypatch.setattr(base, "_loads", base.fast_loads)
    fast = parse_all(venue, frame)
    assert fast == reference
    if reference[0] != "error":
        assert [type(t) for _, t in fast[0]] == [Trade] * len(fast[0])


FIELDS = dict(
    venue="dopp", symbol="BTC-PERPETUAL", trade_id="7", price=Decimal("90125.50"), amount=Decimal("0.25"),
    side=Side.SELL, timestamp_ms=1767225600123, received_ns=5, sequence=9, fee=Decimal("-0.01"),
    fee_currency="USDC", liquidity=Liquidity.MAKER, stream="user", raw={"order_id": 1},
)  # fmt: skip


def test_new_trade_is_the_constructor_with_positional_fields():
    built = new_trade(*FIELDS.values())
    assert type(built) is Trade and Trade.__struct_fields__ == tuple(FIELDS)
    assert built == Trade(**FIELDS) and hash(built) == hash(Trade(**FIELDS))
    assert {name: getattr(built, name) for name in Trade.__struct_fields__} == FIELDS
    with pytest.raises(AttributeError):
        built.price = Decimal(1)  # type: ignore[misc]


def test_new_parsed_is_the_constructor():
    trades = [Trade("dopp", "BTC-PERPETUAL", "7", Decimal("1"), Decimal("2"), Side.BUY, 1767225600123)]
    fields = dict(trades=trades, replies=("pong",), errors=(ParseError("bad", raw="x"),), heartbeat=True)
    built = new_parsed(*fields.values())
    assert type(built) is Parsed
    assert {name: getattr(built, name) for name in Parsed.__struct_fields__} == fields
    with pytest.raises(AttributeError):
        built.heartbeat = False  # type: ignore[misc]


# -- Dopp's typed path against its generic path ---------------------------------------

DOPP_RECORD = {
    "wallet_address": '"0x9b1e4f0c2a7d3e8b5f6a1c2d3e4f5a6b7c8d9e0f"', "amount": "0.25", "base_currency": '"BTC"',
    "direction": '"buy"', "fee": "11.27", "fee_currency": '"USDC"', "index_price": "90110.42",
    "instrument_name": '"BTC-PERPETUAL"', "iv": "0", "liquidity": '"T"', "mark_price": "90118.65",
    "order_id": "1048576", "order_type": '"limit"', "price": "90125.50", "tick_direction": "0",
    "timestamp": "1767225600123", "trade_direction": '"buy"', "trade_id": '"771204"', "trade_seq": "771204",
}  # fmt: skip
odd_values = st.one_of(
    numbers,
    st.sampled_from(
        ['"sell"', '"M"', '"maker"', '"x"', "null", '""', '"90125.5"', "true", "[]", "{}", '" 1 "', "-0.0", "1767225600", "-0.25"]
    ),
)


@st.composite
def dopp_frames(draw):
    """Frames of spec-shaped Dopp records, some fields changed, dropped, duplicated or added."""
    records = []
    for _ in range(draw(st.integers(1, 3))):
        fields = list(DOPP_RECORD.items())
        for _ in range(draw(st.integers(0, 2))):
            action = draw(st.sampled_from(["change", "drop", "add", "duplicate"]))
            index = draw(st.integers(0, len(fields) - 1))
            if action == "change":
                fields[index] = (fields[index][0], draw(odd_values))
            elif action == "drop":
                del fields[index]
            elif action == "add":
                fields.append((draw(st.sampled_from(["extra", "stream", "price"])), draw(odd_values)))
            else:
                fields.append((fields[index][0], draw(odd_values)))
        records.append("{" + ",".join('"%s":%s' % kv for kv in fields) + "}")
    return ('[{"last_trades":[%s]}]' % ",".join(records)).encode()


def dopp_trades(trades):
    # raw's key order is not compared: the typed path gives dopp.md's order (a JSON
    # object's keys have no order; the values and the Trades are equal)
    return [exact(t.to_dict()) for t in trades]


@settings(max_examples=400, deadline=None)
@given(frame=dopp_frames())
def test_dopp_typed_path_gives_the_generic_result_or_none(frame):
    """Where the typed path answers, it gives exactly the generic path's trades; where
    it does not, the generic path runs."""
    from tradefeed.adapters import dopp

    typed = dopp._parse_typed(frame, 7)
    generic = REGISTRY["dopp"]()._parse_generic(frame, 7)  # a first frame: a snapshot
    if typed is not None:
        assert generic.errors == []
        assert dopp_trades(REGISTRY["dopp"]()._in_time_order(typed)) == dopp_trades(generic.trades)


def test_dopp_typed_path_takes_spec_shaped_frames():
    from tradefeed.adapters import dopp

    frame = ('[{"last_trades":[{%s}]}]' % ",".join('"%s":%s' % kv for kv in DOPP_RECORD.items())).encode()
    typed = dopp._parse_typed(frame, 7)
    assert typed is not None and len(typed) == 1  # else the property above compares nothing
    assert str(typed[0].price) == "90125.50"


def _dopp_frame_with(**changes):
    fields = {**DOPP_RECORD, **changes}
    return ('[{"last_trades":[{%s}]}]' % ",".join('"%s":%s' % kv for kv in fields.items())).encode()


@pytest.mark.parametrize(
    "changes,price,amount",
    [
        ({"price": "90125"}, "90125", "0.25"),  # an integral number: Decimal(int), still typed
        ({"amount": "-0.25"}, "90125.50", "0.25"),  # a signed amount: the side says which way
        # made positive exactly (``-amount`` would round to the context's 28 digits)
        ({"amount": "-1.234567890123456789012345678901234"}, "90125.50", "1.234567890123456789012345678901234"),
        ({"liquidity": "null", "fee": "null", "fee_currency": "null", "trade_seq": "null"}, "90125.50", "0.25"),
    ],
)
def test_dopp_typed_path_converts_what_the_generic_path_converts(changes, price, amount):
    from tradefeed.adapters import dopp

    frame = _dopp_frame_with(**changes)
    typed = dopp._parse_typed(frame, 7)
    assert typed is not None
    assert (str(typed[0].price), str(typed[0].amount)) == (price, amount)
    assert dopp_trades(typed) == dopp_trades(REGISTRY["dopp"]()._parse_generic(frame, 7).trades)


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"direction": '"long"'}, "unknown direction"),
        ({"liquidity": '"X"'}, "unknown liquidity"),
        ({"amount": "0"}, "amount is zero"),
        ({"amount": "true"}, "amount must be a number"),
        ({"instrument_name": '""'}, "instrument_name is empty"),
        ({"trade_seq": "true"}, "trade_seq must be an integer"),
        ({"fee_currency": "5"}, "fee_currency must be a string"),
        ({"trade_id": "771204"}, ("771204", 1767225600123)),  # an int id: taken as text
        ({"timestamp": "1767225600"}, ("771204", 1767225600000)),  # seconds: converted
    ],
)
def test_dopp_typed_path_leaves_what_msgspec_refuses_to_the_generic_path(changes, expected):
    """The typed record's types (Side, non-empty strings, a millisecond int...) are
    checked by msgspec: a record they do not fit sends its frame to the generic path,
    which converts it or reports it naming the venue's field."""
    from tradefeed.adapters import dopp

    frame = _dopp_frame_with(**changes)
    assert dopp._parse_typed(frame, 7) is None
    parsed = REGISTRY["dopp"]().parse(frame, 7)
    if isinstance(expected, str):
        assert parsed.trades == [] and len(parsed.errors) == 1 and expected in str(parsed.errors[0])
    else:
        assert parsed.errors == [] and [(t.trade_id, t.timestamp_ms) for t in parsed.trades] == [expected]


def test_lazy_raw_behaves_as_the_generic_paths_dict():
    """The typed path's raw is decoded on first access; every dict behaviour README
    promises holds, with the generic path's values."""
    import copy
    import pickle

    from tradefeed.adapters.dopp import DoppAdapter
    from tradefeed.models import LazyRaw

    frame = (FIXTURES / "dopp" / "snapshot.json").read_bytes()
    (typed, *_) = DoppAdapter().parse(frame, 1).trades
    generic = DoppAdapter()._parse_generic(frame, 1).trades[0]
    assert type(typed.raw) is LazyRaw and type(generic.raw) is dict
    assert typed.raw.cache is None  # nothing decoded yet
    expected = generic.raw
    assert typed.raw == expected and expected == typed.raw and typed == generic
    assert typed.raw["index_price"] == Decimal("90110.42") and typed.raw.get("nope", 5) == 5
    assert list(typed.raw) == list(expected) and len(typed.raw) == len(expected) and "iv" in typed.raw
    assert dict(typed.raw) == expected and list(typed.raw.items()) == list(expected.items())
    assert repr(typed.raw) == repr(expected) and typed.to_dict() == generic.to_dict()
    assert json.loads(json.dumps(dict(typed.raw), default=str)) == json.loads(json.dumps(expected, default=str))
    for twin in (pickle.loads(pickle.dumps(typed)), copy.copy(typed), copy.deepcopy(typed)):
        assert twin == generic
    assert type(pickle.loads(pickle.dumps(typed)).raw) is dict
    assert isinstance(typed.raw, __import__("collections").abc.Mapping)


# -- Synthetix's typed push path against its generic path ----------------------------

SNX_RECORD = {
    "tradeId": '"1950384714"', "symbol": '"BTC-USDT"', "side": '"buy"', "price": '"90127.0"', "quantity": '"0.010"',
    "timestamp": '"2026-01-01T00:00:02.010Z"', "isMaker": "false",
}  # fmt: skip
SNX_ENVELOPE = {"channel": '"trade"', "timestamp": "1767225602012", "meseq": "9", "prevMeseq": "8"}
snx_odd = st.one_of(
    odd_values,
    st.sampled_from(['"sell"', '"BTC-USDT"', "1767225602010", '"2026-01-01T00:00:02Z"', '"trade"', "9", "true"]),
)


def _object(fields):
    return "{" + ",".join('"%s":%s' % kv for kv in fields) + "}"


def _fuzzed(draw, base, keys):
    fields = list(base.items())
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["change", "drop", "add"]))
        index = draw(st.integers(0, len(fields) - 1))
        if action == "change":
            fields[index] = (fields[index][0], draw(snx_odd))
        elif action == "drop":
            del fields[index]
        else:
            fields.append((draw(st.sampled_from(keys)), draw(snx_odd)))
    return fields


@st.composite
def synthetix_pushes(draw):
    record = _object(_fuzzed(draw, SNX_RECORD, ["extra", "tsMs", "isTaker", "meseq"]))
    envelope = _fuzzed(draw, SNX_ENVELOPE, ["extra", "method", "channel"])
    return _object(envelope + [("data", record)]).encode()



@settings(max_examples=400, deadline=None)
@given(frame=synthetix_pushes())
def test_synthetix_typed_push_gives_the_generic_result_or_none(frame):
    from tradefeed.adapters.synthetix import SynthetixAdapter

    adapter = SynthetixAdapter(symbols=["BTC-USDT"])
    typed = adapter._parse_typed(frame, 7)
    try:
        doc = base.fast_loads(frame)
        generic = SynthetixAdapter(symbols=["BTC-USDT"])._notification(doc, frame, 7)
    except ParseError:
        generic = None
    if typed is not None:
        assert generic is not None and not generic.errors, generic
        assert [exact(t.to_dict()) for t in generic.trades] == [exact(t.to_dict()) for t in adapter._live(typed)]


def test_synthetix_typed_path_takes_the_documented_push():
    from tradefeed.adapters.synthetix import SynthetixAdapter
    from tradefeed.models import LazyRaw

    frame = (FIXTURES / "synthetix" / "live_trade.json").read_bytes()
    trade = SynthetixAdapter(symbols=["BTC-USDT"])._parse_typed(frame, 7)
    assert trade is not None and type(trade.raw) is LazyRaw
    generic = SynthetixAdapter(symbols=["BTC-USDT"])._notification(base.fast_loads(frame), frame, 7).trades
    assert generic == [trade] and generic[0].to_dict() == trade.to_dict()


# -- Rails's typed path (public deltas) against its generic path -----------------------

RAILS_RECORD = {
    "executionType": '"taker"', "matchId": '"9eb783a6-7abc-4e94-9d9c-fd404e7580eb"', "orderType": '"buy"',
    "price": '"90125.5"', "quantity": '"0.042"', "updatedAt": "1767225600500",
}  # fmt: skip
rails_odd = st.one_of(odd_values, st.sampled_from(['"maker"', '"sell"', '"BTC-USDT"', "1767225600", "200", "500"]))


@st.composite
def rails_deltas(draw):
    records = []
    for _ in range(draw(st.integers(1, 3))):
        fields = list(RAILS_RECORD.items())
        for _ in range(draw(st.integers(0, 2))):
            action = draw(st.sampled_from(["change", "drop", "add"]))
            index = draw(st.integers(0, len(fields) - 1))
            if action == "change":
                fields[index] = (fields[index][0], draw(rails_odd))
            elif action == "drop":
                del fields[index]
            else:
                fields.append((draw(st.sampled_from(["extra", "stream", "market"])), draw(rails_odd)))
        records.append(_object(fields))
    data = [("orders", "[%s]" % ",".join(records))]
    if draw(st.booleans()):
        data.append(("statusCode", draw(rails_odd)))
    envelope = [("resultType", '"publicCompletedOrdersDelta"'), ("data", _object(data))]
    if draw(st.booleans()):
        envelope.append(("market", draw(st.sampled_from(['"BTC-USDT"', '"ETH-USDT"', "null", "5"]))))
    return _object(envelope).encode()


@settings(max_examples=400, deadline=None)
@given(frame=rails_deltas(), market=st.sampled_from(["BTC-USDT", "ALL"]))
def test_rails_typed_delta_gives_the_generic_result_or_none(frame, market):
    from tradefeed.adapters.rails import RailsAdapter

    typed = RailsAdapter(market=market)._parse_typed(frame, 7)
    adapter = RailsAdapter(market=market)
    try:  # the legacy name of the same message takes the generic path
        generic = adapter.parse(frame.replace(b"publicCompletedOrdersDelta", b"completedOrdersDelta"), 7)
    except ParseError:
        generic = None
    if typed is not None:
        assert generic is not None and not generic.errors
        assert [exact(t.to_dict()) for t in generic.trades] == [exact(t.to_dict()) for t in typed.trades]


def test_rails_typed_path_takes_the_public_delta():
    from tradefeed.adapters.rails import RailsAdapter
    from tradefeed.models import LazyRaw

    frame = (FIXTURES / "rails" / "public_delta.json").read_bytes()
    typed = RailsAdapter(market="BTC-USDT")._parse_typed(frame, 7)
    assert typed is not None and [type(t.raw) for t in typed.trades] == [LazyRaw, LazyRaw]
    assert typed.trades[0].raw == {"executionType": "taker", "orderType": "buy", "stream": "publicTrades"}


# -- SynFutures's typed path (trades pushes) against its generic path ---------------------

SF_PUSH = json.loads((FIXTURES / "synfutures" / "push.json").read_text())
sf_odd = st.one_of(odd_values, st.sampled_from(['"long"', '"short"', '"Limit"', '"90120"', "1767225602", '"4294967295"', "143"]))


@st.composite
def synfutures_pushes(draw):
    records = []
    for item in SF_PUSH["data"]:
        fields = [(k, json.dumps(v)) for k, v in item.items()]
        for _ in range(draw(st.integers(0, 2))):
            action = draw(st.sampled_from(["change", "drop", "add"]))
            index = draw(st.integers(0, len(fields) - 1))
            if action == "change":
                fields[index] = (fields[index][0], draw(sf_odd))
            elif action == "drop":
                del fields[index]
            else:
                fields.append((draw(st.sampled_from(["extra", "expiry", "chainId", "instrumentAddress", "pair"])), draw(sf_odd)))
        records.append(_object(fields))
    envelope = [(k, json.dumps(v)) for k, v in SF_PUSH.items() if k != "data"]
    if draw(st.booleans()):
        index = draw(st.integers(0, len(envelope) - 1))
        envelope[index] = (envelope[index][0], draw(sf_odd))
    return _object(envelope + [("data", "[%s]" % ",".join(records))]).encode()


@settings(max_examples=400, deadline=None)
@given(frame=synfutures_pushes())
def test_synfutures_typed_push_gives_the_generic_result_or_none(frame):
    from tradefeed.adapters.synfutures import SynfuturesAdapter

    params = PARAMS["synfutures"]
    typed = SynfuturesAdapter(**params)._parse_typed(frame, 7)
    try:
        generic = SynfuturesAdapter(**params)._push(base.fast_loads(frame), frame, 7)
    except ParseError:
        generic = None
    if typed is not None:
        assert generic is not None and not generic.errors
        assert [exact(t.to_dict()) for t in generic.trades] == [exact(t.to_dict()) for t in typed.trades]


def test_synfutures_typed_path_takes_the_spec_push():
    from tradefeed.adapters.synfutures import SynfuturesAdapter
    from tradefeed.models import LazyRaw

    frame = (FIXTURES / "synfutures" / "push.json").read_bytes()
    typed = SynfuturesAdapter(**PARAMS["synfutures"])._parse_typed(frame, 7)
    assert typed is not None and typed.trades and all(type(t.raw) is LazyRaw for t in typed.trades)
    generic = SynfuturesAdapter(**PARAMS["synfutures"])._push(base.fast_loads(frame), frame, 7)
    assert list(generic.trades) == list(typed.trades)


HUGE = "1e9999999999999999999"  # valid JSON; its exponent is past what a Decimal holds


def out_of_range_frames():
    """Fixture frames with trades whose first price is made ``HUGE``: as a JSON number
    (Dopp, SynFutures) or inside the string the venue sends (Synthetix, Rails)."""
    import re

    for venue, path in ((v, p) for v, p in (param.values for param in fixture_frames())):
        text = path.read_text()
        number = re.search(r'"price": ?(-?[0-9][0-9.]*)', text)
        string = re.search(r'"price": ?"(-?[0-9][0-9.]*)"', text)
        match = number or string
        if match is None or not isinstance(parse_all(venue, path.read_bytes())[0], list):
            continue
        frame = (text[: match.start(1)] + HUGE + text[match.end(1) :]).encode()
        yield pytest.param(venue, frame, number is not None, id="%s/%s" % (venue, path.name))


@pytest.mark.parametrize("venue,frame,as_number", list(out_of_range_frames()))
def test_a_number_past_decimal_range_is_a_clear_parse_error(venue, frame, as_number, monkeypatch):
    """A JSON number no Decimal can hold is refused as a ParseError naming the cause, by
    both decoders, on the typed path too (never a bare decimal.InvalidOperation, which
    the connection would report as a bug of ours); inside a string it is a bad record
    and the frame's other records are still delivered."""
    for decoder in (base.stdlib_loads, base.fast_loads):
        monkeypatch.setattr(base, "_loads", decoder)
        result = parse_all(venue, frame)
        if as_number:
            assert result[0] == "error" and "beyond Decimal's range" in result[1], result
        else:
            trades, errors, _ = result
            assert errors and any("price" in error for error in errors), errors


def test_a_number_past_decimal_range_in_a_raw_only_field_is_a_clear_error_when_raw_is_read():
    """The typed path does not decode the fields only ``raw`` holds, so such a number
    is met when ``raw`` is first read: a ParseError naming it, each time it is read,
    never a bare decimal.InvalidOperation; the trade's own fields are exact."""
    from tradefeed.adapters import dopp

    frame = _dopp_frame_with(index_price=HUGE)
    (trade,) = dopp._parse_typed(frame, 7)
    assert (trade.trade_id, str(trade.price)) == ("771204", "90125.50")
    for _ in range(2):
        with pytest.raises(ParseError, match="trade.raw cannot be built: .*beyond Decimal's range"):
            trade.raw.get("index_price")


JSON_NUMBERS = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,40}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,40}", fullmatch=True)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, sign, digits: e + sign + digits,
            st.sampled_from(["e", "E"]),
            st.sampled_from(["", "+", "-"]),
            st.one_of(st.from_regex(r"[0-9]{1,3}", fullmatch=True), st.from_regex(r"[0-9]{17,21}", fullmatch=True)),
        ),
    ),
)


@given(JSON_NUMBERS)
@settings(max_examples=500, deadline=None)
def test_the_typed_paths_float_hook_is_decimal_exactly_or_raises(text):
    """``exact_decimal`` (the typed decoders' hook) gives ``Decimal(text)``'s digits and
    exponent, or raises a DecimalException (the frame then takes the generic path, which
    decodes with ``Decimal`` itself); it never rounds silently."""
    import decimal

    try:
        reference = Decimal(text)
    except decimal.DecimalException:
        reference = None
    try:
        fast = base.exact_decimal(text)
    except decimal.DecimalException:
        return  # the generic path decides, with Decimal() itself
    assert reference is not None and fast.as_tuple() == reference.as_tuple() and repr(fast) == repr(reference)


@pytest.mark.parametrize("text", ["1e99999999999999999999", "1.5e-99999999999999999999", "0e-99999999999999999999"])
def test_the_typed_paths_float_hook_refuses_what_decimal_refuses(text):
    """Past Decimal's exponent range both conversions refuse the number (the typed path
    falls back, and the generic path reports a ParseError)."""
    import decimal

    for convert in (base.exact_decimal, Decimal):
        with pytest.raises(decimal.DecimalException):
            convert(text)
