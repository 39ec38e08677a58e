"""Every adapter, fed arbitrary bytes or JSON, returns a Parsed or raises ParseError:
never another exception (a crash in parse would only be caught by the connection's
safety net, which counts it as an adapter bug)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradefeed import ParseError, TradefeedError
from tradefeed.adapters import REGISTRY
from tradefeed.adapters.base import Parsed

PARAMS = {
    "dopp": {},
    "synfutures": {"pairs": ["0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295"]},
    "synthetix": {"symbols": ["BTC-USDT"]},
    "rails": {"market": "BTC-USDT", "subscriptions": ["publicTrades", "trades"]},
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["buy", "sell", "long", "short", "taker", "maker", "M", "T", "trade", "trades", "90125.5", "1e400", "NaN"]),
)
keys = st.sampled_from(
    ["last_trades", "trade_id", "price", "amount", "direction", "timestamp", "instrument_name", "trade_seq", "liquidity",
     "stream", "data", "id", "result", "symbol", "size", "side", "channel", "tradeId", "quantity", "status", "error",
     "resultType", "orders", "matchId", "orderType", "executionType", "updatedAt", "market", "fees", "orderFilledAt",
     "instrumentAddress", "expiry", "type", "isMaker", "meseq", "requestId"]
)
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=8)), max_leaves=30)


def check(adapter, frame) -> None:
    try:
        parsed = adapter.parse(frame, 1)
    except ParseError:
        return
    assert isinstance(parsed, Parsed)
    for error in parsed.errors:
        assert isinstance(error, TradefeedError)


@pytest.mark.parametrize("venue", sorted(REGISTRY))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes(venue, data):
    check(REGISTRY[venue].from_params(**PARAMS[venue]), data)


@pytest.mark.parametrize("venue", sorted(REGISTRY))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents)
def test_arbitrary_json(venue, doc):
    adapter = REGISTRY[venue].from_params(**PARAMS[venue])
    adapter.on_open()  # outstanding requests, so replies are matched too
    check(adapter, json.dumps(doc))
