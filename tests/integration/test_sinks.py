"""Sinks attached to a running manager, fed by the simulator."""

from __future__ import annotations

import json
import threading

import pytest

from tradefeed import SinkError
from tradefeed.sinks import Sink
from tradefeed.sinks.files import FileSink

pytestmark = pytest.mark.timeout(60)


def test_file_sink_gets_every_trade_once_in_order(tmp_path, make_sim, make_manager, collector):
    """A JSON-lines sink holds exactly the trades the callbacks saw, in the same order."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager()
    collector.attach(manager)
    sink = manager.add_sink(FileSink(tmp_path / "trades.jsonl"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(300)
        assert collector.wait_trades(320)
    written = [json.loads(line) for line in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert [d["trade_id"] for d in written] == [t.trade_id for t in collector.trades]
    assert written == [t.to_dict() for t in collector.trades]
    stats = manager.sink_stats()[sink.name]
    assert stats.written == 320 and stats.pending == 0 and stats.failures == 0


def test_a_failing_sink_loses_nothing_and_recovers(tmp_path, make_sim, make_manager, collector):
    """The sink's directory cannot be created (a file is in the way): SinkError once, trades
    kept and counted; once the obstacle is gone every trade is written exactly once."""
    blocker = tmp_path / "out"
    blocker.write_text("not a directory")
    sim = make_sim(rate=0, history=30)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(FileSink(blocker / "trades.jsonl", name="disk"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
        assert collector.wait_for(lambda c: any(isinstance(e, SinkError) for e in c.errors))
        sim.venue("dopp").emit(50)
        assert collector.wait_trades(70)
        assert manager.sink_stats()["disk"].pending > 0  # kept while failing
        blocker.unlink()  # the cause goes away; the next retry succeeds
        sim.venue("dopp").emit(10)
        assert collector.wait_trades(80)
    errors = [e for e in collector.errors if isinstance(e, SinkError)]
    assert len(errors) == 1 and "disk" in str(errors[0])
    written = [json.loads(x)["trade_id"] for x in (blocker / "trades.jsonl").read_text().splitlines()]
    assert written == [t.trade_id for t in collector.trades]
    stats = manager.sink_stats()["disk"]
    assert stats.pending == 0 and stats.written == 80 and stats.failures >= 1


class ThreadRecorder(Sink):
    """Records which thread opens, writes and closes it."""

    name = "threads"

    def __init__(self) -> None:
        self.threads: dict[str, set[int]] = {"open": set(), "write": set(), "close": set()}
        self.count = 0

    def open(self) -> None:
        self.threads["open"].add(threading.get_ident())

    def write(self, trades) -> None:
        self.threads["write"].add(threading.get_ident())
        self.count += len(trades)

    def close(self) -> None:
        self.threads["close"].add(threading.get_ident())


@pytest.mark.parametrize("dispatch", ["thread", "manual"])
def test_a_sink_lives_on_its_own_thread(make_sim, make_manager, collector, dispatch):
    """A sink is opened, written and closed on one thread of its own, never the one running
    the callbacks (the dispatcher, or the pumping thread in dispatch='manual')."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager(dispatch=dispatch)
    collector.attach(manager)
    sink = manager.add_sink(ThreadRecorder())
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    manager.start()
    if dispatch == "manual":
        while len(collector.trades) < 20:
            assert manager.pump(timeout=10)
    else:
        assert collector.wait_trades(20)
    manager.stop()  # delivers what is queued, lets the sink write it, closes the sink
    (writer,) = sink.threads["open"]
    assert sink.threads == {"open": {writer}, "write": {writer}, "close": {writer}}
    assert writer not in collector.threads | {threading.get_ident()}
    assert sink.count == len(collector.trades)


def test_yaml_outputs_become_sinks(tmp_path, make_sim, collector):
    """outputs: in a config attach sinks (stdout is left to the command line)."""
    from tradefeed import FeedManager

    sim = make_sim(rate=0, history=30)
    target = tmp_path / "daily" / "trades-{date}.csv"
    manager = FeedManager.from_config(
        {
            "feeds": [{"venue": "dopp", "url": sim.url("dopp")}],
            "outputs": [{"type": "stdout"}, {"type": "file", "path": str(target), "format": "csv"}],
        }
    )
    try:
        collector.attach(manager)
        assert list(manager.sink_stats()) == [str(target)]
        with manager:
            assert collector.wait_trades(20)
    finally:
        manager.stop()
    (written,) = (tmp_path / "daily").iterdir()
    rows = written.read_text().splitlines()
    assert rows[0].startswith("time_utc,") and len(rows) == 21
