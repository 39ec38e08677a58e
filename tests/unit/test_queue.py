"""The batch queue: unbounded with a lagging signal, or bounded with counted drops."""

from __future__ import annotations

import queue
from decimal import Decimal

import pytest

from tradefeed import Side, Status, StatusEvent, Trade
from tradefeed._queue import BatchQueue


def t(i):
    return Trade("dopp", "X", str(i), Decimal(1), Decimal(1), Side.BUY, i)


def event():
    return StatusEvent("dopp-1", "dopp", Status.CONNECTED, 0)


def drain(q):
    out = []
    while True:
        try:
            out.append(q.get(0))
        except queue.Empty:
            return out


def test_unbounded_signals_lagging_once_and_caught_up_below_half():
    """Past high_water: one 'lagging'; under half of it again: one 'caught_up'."""
    signals = []
    q = BatchQueue(high_water=10, signal=lambda kind, queued: signals.append((kind, queued)))
    for i in range(4):
        q.put([t(3 * i), t(3 * i + 1), t(3 * i + 2)], "dopp-1")
    assert signals == [("lagging", 12)] and q.queued == 12
    q.get(0), q.get(0)
    assert signals == [("lagging", 12)]  # 6 left: not yet under half
    q.get(0)
    assert signals == [("lagging", 12), ("caught_up", 3)]


@pytest.mark.parametrize("mode, kept", [("drop_oldest", ["2", "3", "4", "5"]), ("drop_newest", ["0", "1", "2", "3"])])
def test_bounded_modes_drop_trades_count_them_and_keep_control_items(mode, kept):
    """A limit of 4 trades: the oldest or the newest go, counted per feed; status events stay."""
    signals = []
    q = BatchQueue(limit=4, overflow=mode, signal=lambda kind, queued: signals.append(kind))
    q.put([event(), t(0), t(1)], "a")
    q.put([t(2), t(3)], "a")
    q.put([t(4), event(), t(5)], "b")
    items = [item for _, batch in drain(q) for item in batch]
    assert [x.trade_id for x in items if type(x) is Trade] == kept
    assert sum(isinstance(x, StatusEvent) for x in items) == 2
    assert sum(q.dropped.values()) == 2 and q.queued == 0
    assert signals[0] == "dropping" and signals.count("dropping") == 1
    assert q.dropped == ({"a": 2} if mode == "drop_oldest" else {"b": 2})


def test_bounded_get_waits_and_times_out():
    q = BatchQueue(limit=10)
    with pytest.raises(queue.Empty):
        q.get(0.01)
    q.put([t(1)], "a")
    assert q.get(1)[1][0].trade_id == "1"
