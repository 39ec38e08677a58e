"""Trade, StatusEvent and the public names."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

import tradefeed
from tradefeed import Liquidity, Side, Trade


def make(**changes):
    base = dict(
        venue="dopp",
        symbol="BTC-PERPETUAL",
        trade_id="1",
        price=Decimal("90125.50"),
        amount=Decimal("0.25"),
        side=Side.BUY,
        timestamp_ms=1767225600123,
        received_ns=5,
        sequence=7,
        fee=Decimal("0.000001"),
        fee_currency="USDC",
        liquidity=Liquidity.TAKER,
        raw={"mark_price": Decimal("1.10"), "nested": [Decimal("2.0"), {"x": Decimal("3")}]},
    )
    base.update(changes)
    return Trade(**base)


def test_to_dict_is_json_ready_and_exact():
    """to_dict() gives strings for Decimals (digits kept) and plain values for enums."""
    d = make().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["price"] == "90125.50" and d["fee"] == "0.000001"
    assert d["side"] == "buy" and d["liquidity"] == "taker"
    assert d["raw"] == {"mark_price": "1.10", "nested": ["2.0", {"x": "3"}]}


def test_to_dict_with_optional_fields_absent():
    """None stays None in to_dict()."""
    d = make(fee=None, liquidity=None, sequence=None, fee_currency=None).to_dict()
    assert d["fee"] is None and d["liquidity"] is None and d["sequence"] is None


def test_trade_is_frozen_and_slotted():
    """A Trade cannot be changed after construction and has no __dict__."""
    trade = make()
    with pytest.raises(AttributeError):
        trade.price = Decimal(1)  # type: ignore[misc]
    assert not hasattr(trade, "__dict__")


def test_equality_and_hash_by_value_ignoring_receive_time():
    """The same venue trade seen at two moments is equal and hashes alike."""
    a, b = make(received_ns=1), make(received_ns=2)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert make(price=Decimal("1")) != a
    assert make(raw={}) != a  # raw counts for equality


def test_enums_are_strings():
    """Side and Liquidity compare equal to their wire strings."""
    assert Side.BUY == "buy" and str(Side.SELL) == "sell" and Liquidity.MAKER == "maker"


def test_notional_and_replace():
    """notional is price x amount, exact; replace() returns a changed copy."""
    trade = make()
    assert trade.notional == Decimal("22531.3750")
    long = trade.replace(price=Decimal("90125.50000000000000000000001"), amount=Decimal("1.234567890123456789012345678901234"))
    assert str(long.notional) == "111266.04838132160483813216049615884376823456789012345678901234"  # 62 digits
    assert trade.replace(amount=Decimal("1")).amount == Decimal("1") and trade.amount == Decimal("0.25")


def test_public_names_are_pinned():
    """__all__ is the public contract: additions and removals are deliberate."""
    assert sorted(tradefeed.__all__) == sorted(
        [
            "__version__", "VENUES", "FeedManager", "Feed", "Trade", "Side", "Liquidity", "Status",
            "StatusEvent", "FeedStats", "Gap", "Backoff", "TradefeedError", "ConfigError", "AuthError",
            "CallbackError", "SinkError", "FeedError", "HandshakeError", "TransportError",
            "FeedClosedError", "StaleFeedError", "VenueError", "ParseError", "RetryExhaustedError",
        ]
    )
    for name in tradefeed.__all__:
        assert hasattr(tradefeed, name), name


def test_exception_tree():
    """The hierarchy drawn in exceptions.py holds."""
    from tradefeed import exceptions as e

    assert issubclass(e.ConfigError, ValueError) and issubclass(e.ParseError, ValueError)
    for cls in (e.HandshakeError, e.TransportError, e.FeedClosedError, e.StaleFeedError, e.VenueError,
                e.ParseError, e.RetryExhaustedError):
        assert issubclass(cls, e.FeedError)
    for cls in (e.ConfigError, e.AuthError, e.CallbackError, e.SinkError, e.FeedError):
        assert issubclass(cls, e.TradefeedError)


def test_to_dict_never_uses_exponent_notation():
    """Tiny and huge values are written with plain digits, exactly."""
    d = make(fee=Decimal("1E-9"), price=Decimal("1E+3"), amount=Decimal("0.000000000000000001")).to_dict()
    assert d["fee"] == "0.000000001" and d["price"] == "1000" and d["amount"] == "0.000000000000000001"


# -- the constructor checks every field (issue 17: "Trade(...) accepts anything") -----------


def test_plain_strings_and_exact_numbers_are_taken_exactly():
    trade = make(side="sell", liquidity="maker", price=90125, amount="0.250", fee="-0.01")
    assert trade.side is Side.SELL and trade.liquidity is Liquidity.MAKER
    assert trade.price == Decimal(90125) and type(trade.price) is Decimal and str(trade.amount) == "0.250"
    assert trade.fee == Decimal("-0.01") and trade.to_dict()["side"] == "sell"
    assert make(side="buy") == make(side=Side.BUY)


@pytest.mark.parametrize(
    "changes, error, field",
    [
        ({"side": "hold"}, ValueError, "side"),
        ({"side": None}, ValueError, "side"),
        ({"price": 90125.5}, TypeError, "price"),
        ({"price": "ninety"}, ValueError, "price"),
        ({"price": Decimal("NaN")}, ValueError, "price"),
        ({"amount": Decimal("-0.25")}, ValueError, "amount"),
        ({"amount": 0}, ValueError, "amount"),
        ({"amount": Decimal("-0")}, ValueError, "amount"),
        ({"amount": Decimal("Infinity")}, ValueError, "amount"),
        ({"price": Decimal("-Infinity")}, ValueError, "price"),
        ({"fee": Decimal("NaN")}, ValueError, "fee"),
        ({"received_ns": -1}, ValueError, "received_ns"),
        ({"sequence": True}, TypeError, "sequence"),
        ({"trade_id": ""}, TypeError, "trade_id"),
        ({"timestamp_ms": "1767225600123"}, TypeError, "timestamp_ms"),
        ({"timestamp_ms": -1}, ValueError, "timestamp_ms"),
        ({"timestamp_ms": True}, TypeError, "timestamp_ms"),
        ({"received_ns": 1.5}, TypeError, "received_ns"),
        ({"sequence": "7"}, TypeError, "sequence"),
        ({"fee": 0.1}, TypeError, "fee"),
        ({"fee_currency": 5}, TypeError, "fee_currency"),
        ({"liquidity": "M"}, ValueError, "liquidity"),
        ({"stream": "private"}, ValueError, "stream"),
        ({"venue": ""}, TypeError, "venue"),
        ({"symbol": None}, TypeError, "symbol"),
        ({"trade_id": 7}, TypeError, "trade_id"),
        ({"raw": [1, 2]}, TypeError, "raw"),
    ],
)
def test_a_bad_field_is_refused_naming_it(changes, error, field):
    with pytest.raises(error, match="Trade.%s" % field):
        make(**changes)
    with pytest.raises(error, match="Trade.%s" % field):
        make().replace(**changes)  # replace checks as the constructor does


def test_pickle_copy_and_replace_keep_the_value():
    import copy
    import pickle

    trade = make()
    for twin in (pickle.loads(pickle.dumps(trade)), copy.copy(trade), copy.deepcopy(trade), trade.replace()):
        assert twin == trade and type(twin) is Trade and twin.received_ns == trade.received_ns
    assert trade.replace(price=Decimal("1")).price == Decimal("1")
