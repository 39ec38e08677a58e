"""Delivery from the hand-off queue: order, filters, failures, pump."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from tradefeed import CallbackError, Gap, ParseError, Side, Status, StatusEvent, Trade
from tradefeed.dispatcher import Dispatcher


def t(trade_id, venue="dopp", symbol="BTC-PERPETUAL"):
    return Trade(venue, symbol, trade_id, Decimal(1), Decimal(1), Side.BUY, 0)


def test_callbacks_run_in_registration_order_with_filters():
    """Each trade goes to every matching callback, in the order they were registered."""
    d = Dispatcher()
    calls = []
    d.add_trade_callback(lambda x: calls.append(("all", x.trade_id)), None, None)
    d.add_trade_callback(lambda x: calls.append(("eth", x.trade_id)), None, "ETH-PERPETUAL")
    d.add_trade_callback(lambda x: calls.append(("other", x.trade_id)), "other", None)
    d.put([t("1"), t("2", symbol="ETH-PERPETUAL")])
    assert d.pump() == 2
    assert calls == [("all", "1"), ("all", "2"), ("eth", "2")]


def test_raising_callback_is_reported_and_delivery_goes_on():
    """A callback that raises becomes a CallbackError for on_error; later callbacks and trades still run."""
    d = Dispatcher()
    seen, errors = [], []

    def bad(trade):
        raise RuntimeError("boom " + trade.trade_id)

    d.add_trade_callback(bad, None, None)
    d.add_trade_callback(lambda x: seen.append(x.trade_id), None, None)
    d.add_error_callback(errors.append)
    d.put([t("1"), t("2")])
    d.pump()
    assert seen == ["1", "2"]
    assert [type(e) for e in errors] == [CallbackError, CallbackError]
    assert errors[0].item.trade_id == "1" and errors[0].callback is bad
    assert isinstance(errors[0].__cause__, RuntimeError) and "boom 1" in str(errors[0])


def test_failing_error_callback_does_not_loop():
    """An on_error callback that raises is logged, not fed back to itself."""
    d = Dispatcher()
    calls = []

    def bad_handler(err):
        calls.append(err)
        raise RuntimeError("handler broke")

    d.add_error_callback(bad_handler)
    d.put([ParseError("x", venue="dopp")])
    assert d.pump() == 1 and len(calls) == 1


def test_status_and_errors_are_routed():
    """StatusEvents go to on_status, errors to on_error, in queue order with trades."""
    d = Dispatcher()
    log = []
    d.add_trade_callback(lambda x: log.append("trade"), None, None)
    d.add_status_callback(lambda e: log.append(e.status.value))
    d.add_error_callback(lambda e: log.append("error"))
    d.put([StatusEvent("dopp-1", "dopp", Status.CONNECTED, 0), t("1"), ParseError("bad")])
    d.pump()
    assert log == ["connected", "trade", "error"]


def test_pump_max_items_keeps_the_rest_in_order():
    """pump(max_items) delivers at most that many and keeps the remainder for the next call."""
    d = Dispatcher()
    seen = []
    d.add_trade_callback(lambda x: seen.append(x.trade_id), None, None)
    d.put([t("1"), t("2"), t("3")])
    d.put([t("4")])
    assert d.pump(max_items=2) == 2 and seen == ["1", "2"]
    assert d.pump(max_items=1) == 1 and seen == ["1", "2", "3"]
    assert d.pump() == 1 and seen == ["1", "2", "3", "4"]
    assert d.pump() == 0


def test_pump_waits_for_the_first_item_up_to_timeout():
    """pump(timeout=...) blocks until a batch arrives from another thread."""
    d = Dispatcher()
    seen = []
    d.add_trade_callback(lambda x: seen.append(x.trade_id), None, None)
    producer = threading.Timer(0.05, d.put, args=([t("1")],))
    producer.start()
    try:
        assert d.pump(timeout=10) == 1
    finally:
        producer.join()
    assert seen == ["1"]


def test_pump_timeout_returns_zero_when_nothing_comes():
    """With nothing queued, pump(timeout) returns 0 after about that long."""
    d = Dispatcher()
    start = time.monotonic()
    assert d.pump(timeout=0.05) == 0
    assert time.monotonic() - start >= 0.04


def test_thread_mode_delivers_everything_queued_before_stop():
    """stop_thread() lets the dispatcher drain the queue, then joins it."""
    d = Dispatcher()
    seen = []
    d.add_trade_callback(lambda x: seen.append(x.trade_id), None, None)
    d.start_thread()
    for i in range(100):
        d.put([t(str(i))])
    assert d.stop_thread(timeout=10)
    assert seen == [str(i) for i in range(100)]
    assert not d.is_alive()


def test_remove_callback():
    """A removed callback gets nothing more; removing an unknown one says so."""
    d = Dispatcher()
    seen = []

    def cb(trade):
        seen.append(trade.trade_id)

    d.add_trade_callback(cb, None, None)
    d.put([t("1")])
    d.pump()
    assert d.remove_callback(cb) is True
    assert d.remove_callback(cb) is False
    d.put([t("2")])
    d.pump()
    assert seen == ["1"]


def test_pump_does_not_wait_again_after_delivering_carried_items():
    """Items left by pump(max_items) are delivered at once; the timeout is not waited on top."""
    d = Dispatcher()
    d.add_trade_callback(lambda x: None, None, None)
    d.put([t("1"), t("2"), t("3")])
    assert d.pump(max_items=1) == 1
    start = time.monotonic()
    assert d.pump(timeout=5) == 2
    assert time.monotonic() - start < 2.5


def test_re_entrant_pump_is_an_error_not_a_deadlock():
    """A callback that pumps again (a nested GUI loop) gets a clear error; delivery goes on."""
    d = Dispatcher()
    errors, seen = [], []

    def nested(trade):
        seen.append(trade.trade_id)
        d.pump()

    d.add_trade_callback(nested, None, None)
    d.add_error_callback(errors.append)
    d.put([t("1"), t("2")])
    assert d.pump() == 2
    assert seen == ["1", "2"] and len(errors) == 2
    assert "re-entrant" in str(errors[0].__cause__)


def test_pump_with_timeout_zero_does_not_wait_for_another_pumping_thread():
    """While one thread is delivering, pump(timeout=0) elsewhere returns 0 at once."""
    d = Dispatcher()
    inside, release = threading.Event(), threading.Event()

    def slow(trade):
        inside.set()
        release.wait(10)

    d.add_trade_callback(slow, None, None)
    d.put([t("1")])
    worker = threading.Thread(target=d.pump)
    worker.start()
    try:
        assert inside.wait(10)
        start = time.monotonic()
        assert d.pump(timeout=0) == 0
        assert time.monotonic() - start < 1
    finally:
        release.set()
        worker.join(10)


def test_pump_waiting_forever_wakes_when_the_manager_stops():
    """pump(timeout=None) on one thread returns when stop() comes from another thread."""
    d = Dispatcher()
    done = threading.Event()

    def pumping():
        d.pump(timeout=None)
        done.set()

    worker = threading.Thread(target=pumping)
    worker.start()
    try:
        d.stop_manual()
        assert done.wait(10)
    finally:
        worker.join(10)


def test_trades_abandoned_in_a_callback_reach_no_sink():
    """discard() (stop(drain=False)) from a callback: the sinks get the trades the callbacks got,
    the rest of the batch is dropped and counted."""
    from tradefeed.sinks import Sink

    class Recorder(Sink):
        def __init__(self) -> None:
            self.ids: list[str] = []

        def write(self, trades) -> None:
            self.ids.extend(x.trade_id for x in trades)

    d = Dispatcher()
    sink = Recorder()
    d.add_sink(sink)
    d.add_trade_callback(lambda x: d.discard() if x.trade_id == "2" else None, None, None)
    d.put([t("1"), t("2"), t("3"), t("4")], "dopp-1")
    d.pump()
    d.close_sinks(time.monotonic() + 10)  # the sink's writer thread writes what it got, and ends
    assert sink.ids == ["1", "2"] and d.dropped() == {"dopp-1": 2}



MIXED = [
    ("first", "1"), ("status", "stale"), ("first", "2"), ("gap", "BTC-PERPETUAL"),
    ("first", "3"), ("error", "CallbackError"), ("error", "ParseError"), ("first", "4"),
]  # fmt: skip


@pytest.mark.parametrize(
    "callbacks, abandon, expected",
    [
        (1, False, MIXED),
        (2, False, [
            ("first", "1"), ("second", "1"), ("status", "stale"), ("first", "2"), ("second", "2"),
            ("gap", "BTC-PERPETUAL"), ("first", "3"), ("error", "CallbackError"), ("second", "3"),
            ("error", "ParseError"), ("first", "4"), ("second", "4"),
        ]),
        (1, True, MIXED[:4] + [("error", "ParseError")]),
        (2, True, MIXED[:1] + [("second", "1")] + MIXED[1:3] + [("second", "2"), MIXED[3], ("error", "ParseError")]),
    ],
)
def test_a_mixed_batch_is_delivered_in_order_with_one_callback_or_several(callbacks, abandon, expected):
    """One trade callback takes a shorter path than several; both deliver a batch of trades,
    status events, gaps and errors in order, a raising callback is reported, and discard()
    from a callback drops the rest of the batch's trades (not its events)."""
    d = Dispatcher()
    calls: list[tuple[str, str]] = []

    def first(trade):
        calls.append(("first", trade.trade_id))
        if trade.trade_id == "3":
            raise RuntimeError("boom")
        if abandon and trade.trade_id == "2":
            d.discard()

    d.add_trade_callback(first, None, None)
    if callbacks == 2:
        d.add_trade_callback(lambda x: calls.append(("second", x.trade_id)), None, None)
    d.add_status_callback(lambda e: calls.append(("status", e.status.value)))
    d.add_gap_callback(lambda g: calls.append(("gap", g.symbol)))
    d.add_error_callback(lambda e: calls.append(("error", type(e).__name__)))
    status = StatusEvent("dopp-1", "dopp", Status.STALE, 1, {})
    gap = Gap("dopp-1", "dopp", "BTC-PERPETUAL", "sequence", 1, 2, 1, 3, "public")
    d.put([t("1"), status, t("2"), gap, t("3"), ParseError("bad", venue="dopp"), t("4")], "dopp-1")
    d.pump()
    assert calls == expected
    assert d.dropped() == ({"dopp-1": 2} if abandon else {})
