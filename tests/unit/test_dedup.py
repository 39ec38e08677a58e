"""De-duplication windows."""

from __future__ import annotations

from decimal import Decimal

from tradefeed import Side, Trade
from tradefeed.dedup import Deduplicator


def t(trade_id, symbol="BTC-PERPETUAL", stream="public", raw=None):
    return Trade("dopp", symbol, trade_id, Decimal(1), Decimal(1), Side.BUY, 0, stream=stream, raw=raw or {})


def test_repeats_are_dropped_and_counted():
    """A trade id seen before (same symbol) is dropped; the order of new ones is kept."""
    d = Deduplicator()
    assert [x.trade_id for x in d.fresh([t("1"), t("2")])] == ["1", "2"]
    assert [x.trade_id for x in d.fresh([t("2"), t("3"), t("1")])] == ["3"]
    assert d.dropped == 2


def test_same_id_on_another_symbol_or_stream_is_not_a_repeat():
    """Keys are (stream, symbol, trade_id): different records are never merged."""
    d = Deduplicator()
    assert len(d.fresh([t("1"), t("1", symbol="ETH-PERPETUAL"), t("1", stream="user")])) == 3
    # the key is Trade.stream: the venue's own stream name in raw plays no part
    assert d.fresh([t("1", raw={"stream": "trades"})]) == []


def test_memory_is_bounded_per_symbol():
    """Only the last `window` ids are remembered; older ones pass again."""
    d = Deduplicator(window=3)
    d.fresh([t(str(i)) for i in range(5)])  # remembers 2, 3, 4
    assert [x.trade_id for x in d.fresh([t("4"), t("1")])] == ["1"]
    (win,) = d._windows.values()
    assert len(win.ids) == 3 and len(win.order) == 3


def test_a_repeat_is_reported_only_before_any_fresh_trade_of_its_key():
    """`repeats` is the reconnect seam's proof of continuity, so only a trade seen before
    this call counts, and only ahead of the key's first fresh trade: a duplicate *within*
    the batch (a Synthetix back-fill followed by the held live trades it overlaps) proves
    nothing about what was missed before it."""
    d = Deduplicator()
    d.fresh([t("1"), t("2"), t("3")])
    repeats: set = set()
    # back-fill 8..10 (does not reach back to 3), then held live 9..11
    out = d.fresh([t("8"), t("9"), t("10"), t("9"), t("10"), t("11")], repeats)
    assert [x.trade_id for x in out] == ["8", "9", "10", "11"]
    assert repeats == set()
    # a back-fill that starts with a trade seen before does prove it
    out = d.fresh([t("11"), t("12"), t("13"), t("12"), t("5", symbol="ETH-PERPETUAL")], repeats)
    assert [x.trade_id for x in out] == ["12", "13", "5"]
    assert repeats == {("public", "BTC-PERPETUAL")}
