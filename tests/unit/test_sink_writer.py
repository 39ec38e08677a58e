"""SinkWriter: one queue and one thread per sink (no network; a sink that blocks on an Event)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from tradefeed import ConfigError, Side, Trade
from tradefeed.sinks import Sink
from tradefeed.sinks._writer import SinkWriter


def t(i: int) -> Trade:
    return Trade("dopp", "BTC-PERPETUAL", str(i), Decimal("1.5"), Decimal("0.1"), Side.BUY, 1767225600000 + i)


class Gate(Sink):
    """Each write waits until the gate is open; records what it wrote and who asked it to abort."""

    name = "gate"

    def __init__(self, open_: bool = False) -> None:
        self.gate = threading.Event()
        if open_:
            self.gate.set()
        self.writing = threading.Event()  # a write has started
        self.ids: list[str] = []
        self.aborted = threading.Event()
        self.threads: set[int] = set()

    def write(self, trades) -> None:
        self.threads.add(threading.get_ident())
        self.writing.set()
        if not self.gate.wait(30):
            raise TimeoutError("gate never opened")
        if self.aborted.is_set():
            raise ConnectionError("aborted")
        self.ids.extend(x.trade_id for x in trades)

    def abort(self) -> None:
        self.aborted.set()
        self.gate.set()


class Signals:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.errors: list = []

    def signal(self, writer, kind, detail) -> None:
        self.events.append((kind, detail))

    def make(self, sink: Sink, **kwargs) -> SinkWriter:
        return SinkWriter(sink, self.errors.append, self.signal, **kwargs)


def finished(writer: SinkWriter, timeout: float = 10.0) -> bool:
    writer.finish(time.monotonic() + timeout)
    return writer.join(timeout)


def test_put_never_waits_for_the_sink_and_order_is_kept():
    """While a write hangs, put() returns at once; once it goes on, every trade is written in
    order, on the writer's own thread, and the thread ends at finish()."""
    sink, signals = Gate(), Signals()
    writer = signals.make(sink)
    writer.put([t(0)])
    assert sink.writing.wait(10)
    for i in range(1, 1001):
        writer.put([t(i)])  # the sink is stuck in its first write
    assert writer.pending == 1001 and writer.stats().written == 0
    sink.gate.set()
    assert finished(writer)
    assert sink.ids == [str(i) for i in range(1001)]
    assert sink.threads and threading.get_ident() not in sink.threads
    stats = writer.stats()
    assert (stats.written, stats.pending, stats.dropped, stats.oldest_pending_age) == (1001, 0, 0, None)


def test_lagging_past_high_water_and_caught_up_under_half():
    """Unbounded: one lagging signal when pending passes high_water, caught_up once it is below half."""
    sink, signals = Gate(), Signals()
    writer = signals.make(sink, high_water=10)
    writer.put([t(0)])
    assert sink.writing.wait(10)
    writer.put([t(i) for i in range(1, 20)])
    writer.put([t(20)])
    assert [kind for kind, _ in signals.events] == ["lagging"]
    assert signals.events[0][1] == {"sink": "gate", "pending": 20, "high_water": 10}
    sink.gate.set()
    assert finished(writer)
    assert [kind for kind, _ in signals.events] == ["lagging", "caught_up"]
    assert signals.events[1][1]["pending"] < 5


@pytest.mark.parametrize(
    "overflow, kept",
    [
        ("drop_oldest", ["0"] + [str(i) for i in range(16, 21)]),  # the batch in the sink's hands stays
        ("drop_newest", [str(i) for i in range(6)]),
    ],
)
def test_a_limit_drops_the_oldest_or_the_newest_counted_and_signalled_once(overflow, kept):
    """limit=6 while the sink hangs on trade 0: twenty more trades arrive; pending never passes
    6, the rest is dropped and counted; one 'dropping' signal for the episode."""
    sink, signals = Gate(), Signals()
    writer = signals.make(sink, limit=6, overflow=overflow)
    writer.put([t(0)])
    assert sink.writing.wait(10)
    for i in range(1, 21):
        writer.put([t(i)])
        assert writer.pending <= 6
    assert writer.stats().dropped == 15
    assert [kind for kind, _ in signals.events] == ["dropping"]
    assert signals.events[0][1] == {"sink": "gate", "pending": 6, "limit": 6, "dropped": 1}
    sink.gate.set()
    assert finished(writer)
    assert sink.ids == kept
    assert writer.stats().written + writer.stats().dropped == 21


def test_the_oldest_pending_age_follows_the_clock():
    """oldest_pending_age: seconds since the oldest unwritten trade was handed over."""
    now = [100.0]
    sink, signals = Gate(), Signals()
    writer = SinkWriter(sink, signals.errors.append, signals.signal, clock=lambda: now[0])
    writer.put([t(0), t(1)])
    assert sink.writing.wait(10)
    now[0] = 103.0
    writer.put([t(2)])
    now[0] = 107.5
    assert writer.stats().oldest_pending_age == 7.5
    sink.gate.set()
    writer.finish(now[0] + 30)  # the injected clock does not move: the writer ends once all is written
    assert writer.join(10)
    assert writer.stats().oldest_pending_age is None


def test_abandon_aborts_a_write_in_progress_and_keeps_the_count():
    """abandon(): the sink's abort() is called, no further write starts, nothing written is lost
    from the count: pending stays what was not written."""
    sink, signals = Gate(), Signals()
    writer = signals.make(sink)
    writer.put([t(0), t(1)])
    assert sink.writing.wait(10)
    writer.put([t(2)])
    writer.finish(time.monotonic())  # out of time already
    writer.abandon()
    assert writer.join(10)
    assert sink.aborted.is_set() and sink.ids == []
    assert writer.stats().pending == 3
    writer.put([t(3)])  # after the end: counted, not written
    assert writer.stats().pending == 4 and writer.late == 1


def test_bad_queue_settings_are_config_errors():
    for kwargs, text in (
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"overflow": "drop_random"}, "overflow"),
        ({"high_water": 0}, "high_water"),
    ):
        with pytest.raises(ConfigError, match=text):
            Signals().make(Gate(), **kwargs)
