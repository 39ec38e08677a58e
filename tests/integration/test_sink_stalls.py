"""A sink that stops answering stalls nothing but itself (issue 15, part 1).

Real stalls: a redis-server paused with SIGSTOP (its socket accepts, nothing answers, as
a dead TCP path with no reset) and resumed with SIGCONT; a SQLite file whose write lock
another sqlite3 connection holds.  Meanwhile the callbacks keep receiving trades; once
the sink answers again every trade reaches it exactly once, in order; a stop while it
is stalled returns within its timeout and reports what it could not write.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tradefeed import SinkError, Status
from tradefeed.sinks.redis import RedisSink, decode_trade
from tradefeed.sinks.sqlite import SQLiteSink, read_trades

from .redis_server import RedisServer, wait_until

pytestmark = pytest.mark.timeout(90)


def process_state(pid: int) -> str:
    """The kernel's one-letter state of *pid* (``T``: stopped)."""
    stat = Path("/proc/%d/stat" % pid).read_text()
    return stat[stat.rindex(")") + 2]


class Paused:
    """SIGSTOP a redis-server until the block ends (SIGCONT, also on failure)."""

    def __init__(self, server: RedisServer) -> None:
        assert server.proc is not None
        self.pid = server.proc.pid

    def __enter__(self) -> "Paused":
        os.kill(self.pid, signal.SIGSTOP)
        assert wait_until(lambda: process_state(self.pid) == "T"), "redis-server did not stop"
        return self

    def __exit__(self, *exc) -> None:
        os.kill(self.pid, signal.SIGCONT)


class Locked:
    """Another connection holds the database's write lock until the block ends."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> "Locked":
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


@pytest.fixture
def server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)  # never leave it stopped
    server.stop()


def stored_ids(server: RedisServer, stream: str) -> list[str]:
    with server.client() as client:
        return [decode_trade(fields).trade_id for _, fields in client.xrange(stream)]


def prepared(path: Path) -> Path:
    """A database with the sink's table (a sink created it): locking it then blocks writes only."""
    sink = SQLiteSink(path)
    sink.open()
    sink.close()
    return path


def sink_events(collector, status: Status, name: str) -> list:
    return [e for e in collector.statuses if e.status is status and e.detail.get("sink") == name]


def test_a_paused_redis_stalls_no_callback_and_gets_every_trade_once_after(server, make_sim, make_manager, collector):
    """While redis-server is SIGSTOPped the callbacks receive every trade, and another sink
    keeps writing; the Redis backlog is reported as lagging; after SIGCONT every trade is
    in the stream exactly once, in delivery order, and caught_up follows."""
    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(RedisSink(server.url, stream="trades", timeout=1.0, name="redis"), high_water=50)
    other: list[str] = []
    from tradefeed.sinks import Sink

    class Memory(Sink):
        name = "memory"

        def write(self, trades) -> None:
            other.extend(t.trade_id for t in trades)

    manager.add_sink(Memory())
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
        assert wait_until(lambda: manager.sink_stats()["redis"].written == 20)
        with Paused(server):
            sim.venue("dopp").emit(200)
            assert collector.wait_trades(220)  # the callbacks go on
            assert wait_until(lambda: len(other) == 220)  # so does the other sink
            assert collector.wait_for(lambda c: sink_events(c, Status.LAGGING, "redis"))
            stats = manager.sink_stats()["redis"]
            assert stats.written == 20 and stats.pending == 200  # nothing answers: nothing written
            assert stats.oldest_pending_age is not None and stats.oldest_pending_age >= 0
        assert wait_until(lambda: manager.sink_stats()["redis"].written == 220, timeout=30)
        assert collector.wait_for(lambda c: sink_events(c, Status.CAUGHT_UP, "redis"))
    delivered = [t.trade_id for t in collector.trades]
    assert stored_ids(server, "trades") == delivered
    stats = manager.sink_stats()["redis"]
    assert (stats.written, stats.pending, stats.dropped, stats.oldest_pending_age) == (220, 0, 0, None)
    (lagging,) = sink_events(collector, Status.LAGGING, "redis")
    assert lagging.feed == "" and lagging.detail["high_water"] == 50 and lagging.detail["pending"] > 50
    assert sum(isinstance(e, SinkError) for e in collector.errors) <= 1  # one report per failure streak


def test_a_stop_while_redis_is_paused_returns_in_time_with_the_unwritten_count(server, make_sim, make_manager, collector):
    """stop(timeout) while redis-server is SIGSTOPped: every thread ends within the timeout (the
    write in progress is aborted), and the 100 trades Redis never confirmed stay counted as
    pending and are reported; after SIGCONT the stream holds no trade twice."""
    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(RedisSink(server.url, stream="trades", timeout=30.0, name="redis"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    manager.start()
    assert collector.wait_trades(20)
    assert wait_until(lambda: manager.sink_stats()["redis"].written == 20)
    with Paused(server):
        sim.venue("dopp").emit(100)
        assert collector.wait_trades(120)
        assert manager.stop(timeout=3.0)  # True: every thread ended within the 3 s
        stats = manager.sink_stats()["redis"]
        assert (stats.written, stats.pending) == (20, 100)
        (report,) = [e for e in collector.errors if isinstance(e, SinkError) and "not written" in str(e)]
        assert "redis: 100 trades not written" in str(report)
    stored = stored_ids(server, "trades")
    delivered = [t.trade_id for t in collector.trades]
    assert len(stored) == len(set(stored)) and set(stored) <= set(delivered) and len(stored) >= 20


def test_a_locked_sqlite_file_stalls_no_callback_and_gets_every_trade_once_after(tmp_path, make_sim, make_manager, collector):
    """Another connection holds the database's write lock: the callbacks go on, the trades wait
    for the sink; once the lock is released each trade is stored once."""
    db = prepared(tmp_path / "trades.db")
    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(SQLiteSink(db, name="db"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
        assert wait_until(lambda: manager.sink_stats()["db"].written == 20)
        with Locked(db):
            sim.venue("dopp").emit(150)
            assert collector.wait_trades(170)
            assert manager.sink_stats()["db"].pending == 150
        assert wait_until(lambda: manager.sink_stats()["db"].written == 170, timeout=30)
    stored = read_trades(db)
    assert sorted(t.trade_id for t in stored) == sorted(t.trade_id for t in collector.trades)
    assert len(stored) == 170 and manager.sink_stats()["db"].pending == 0


def test_a_stop_while_sqlite_is_locked_returns_in_time_with_the_unwritten_count(tmp_path, make_sim, make_manager, collector):
    """stop(timeout) while the database stays locked: it returns True (the lock wait is aborted)
    and reports the 150 trades it could not write; none of them is in the file."""
    db = prepared(tmp_path / "trades.db")
    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(SQLiteSink(db, name="db"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    manager.start()
    assert collector.wait_trades(20)
    assert wait_until(lambda: manager.sink_stats()["db"].written == 20)
    with Locked(db):
        sim.venue("dopp").emit(150)
        assert collector.wait_trades(170)
        assert manager.stop(timeout=2.0)
    stats = manager.sink_stats()["db"]
    assert (stats.written, stats.pending) == (20, 150)
    assert any(isinstance(e, SinkError) and "db: 150 trades not written" in str(e) for e in collector.errors)
    assert len(read_trades(db)) == 20


def stats_of(manager):
    stats = manager.sink_stats()["db"]
    return stats.pending, stats.dropped


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_a_sink_limit_drops_counts_and_reports(tmp_path, make_sim, make_manager, collector, overflow):
    """add_sink(limit=50): while the database is locked at most 50 trades wait; the others are
    dropped (the oldest or the incoming), counted and announced once by a lagging event; what
    is kept is written once the lock goes, in order; written + dropped is every trade."""
    db = prepared(tmp_path / "trades.db")
    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(SQLiteSink(db, name="db"), limit=50, overflow=overflow)
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
        assert wait_until(lambda: manager.sink_stats()["db"].written == 20)
        with Locked(db):
            for _ in range(10):
                sim.venue("dopp").emit(30)
            assert collector.wait_trades(320)
            # the dispatcher hands a batch to the callbacks and to the sink's queue in turn:
            # the last batch may reach the sink a moment after the callbacks saw it
            assert wait_until(lambda: sum(stats_of(manager)) == 300)
            stats = manager.sink_stats()["db"]
            assert stats.pending <= 50 and stats.pending + stats.dropped == 300
        assert wait_until(lambda: manager.sink_stats()["db"].pending == 0, timeout=30)
        assert collector.wait_for(lambda c: sink_events(c, Status.CAUGHT_UP, "db"))
    stats = manager.sink_stats()["db"]
    assert stats.written + stats.dropped == 320 and stats.dropped >= 250
    (lagging,) = sink_events(collector, Status.LAGGING, "db")
    assert lagging.detail["limit"] == 50 and lagging.detail["dropped"] > 0
    delivered = [t.trade_id for t in collector.trades]
    stored = {t.trade_id for t in read_trades(db)}
    kept = [i for i in delivered if i in stored]
    assert len(kept) == stats.written  # each once
    assert stats.dropped == len(delivered) - len(kept)
    if overflow == "drop_oldest":
        # what is in the writer's hands when the lock came (a run of consecutive trades)
        # is never dropped; of the trades queued behind it, the newest are kept
        later = kept[20:]
        start = delivered.index(later[0])
        held = 0
        while held < len(later) and later[held] == delivered[start + held]:
            held += 1
        newest = later[held:]
        assert newest == delivered[len(delivered) - len(newest) :]
        assert newest or held == 50  # none only when the writer held the whole limit
    else:
        assert delivered[-1] not in stored and delivered[20] in stored  # the first ones are kept


def test_callbacks_never_wait_for_a_sink_that_never_returns(make_sim, make_manager, collector):
    """A sink whose write blocks (it ignores abort) holds up neither the callbacks nor stop():
    stop returns False (its thread is left behind) and reports every trade it did not write."""
    from tradefeed.sinks import Sink

    release = threading.Event()

    class Stuck(Sink):
        name = "stuck"

        def write(self, trades) -> None:
            release.wait(60)

    sim = make_sim(rate=0, history=20)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(Stuck())
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    manager.start()
    try:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(100)
        assert collector.wait_trades(120)
        assert not manager.stop(timeout=1.0)  # the writer thread is still inside write()
        assert manager.sink_stats()["stuck"].pending == 120
        assert any("stuck: 120 trades not written" in str(e) for e in collector.errors)
    finally:
        release.set()
    assert wait_until(lambda: not any(t.name.startswith("tradefeed-sink-") for t in threading.enumerate()))


def test_run_exits_non_zero_and_names_each_sink_that_kept_trades(tmp_path, make_sim):
    """tradefeed run with a SQLite output whose file another connection keeps locked: the trades
    are printed, the stop gives the sink its time, and the run exits 3 with one line for that
    sink saying how many trades it did not write (all of them)."""
    import json
    import subprocess
    import sys

    db = prepared(tmp_path / "trades.db")
    sim = make_sim(rate=0, history=25)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n  - {venue: dopp, url: '%s'}\n"
        "outputs:\n  - {type: stdout, format: jsonl}\n  - {type: sqlite, path: '%s'}\n" % (sim.url("dopp"), db)
    )
    root = Path(__file__).resolve().parents[2]
    with Locked(db):
        result = subprocess.run(
            [sys.executable, "-m", "tradefeed", "run", str(config), "--limit", "20"],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(root)),
        )  # fmt: skip
    printed = [json.loads(line)["trade_id"] for line in result.stdout.splitlines()]
    assert result.returncode == 3, result.stderr
    assert len(printed) == 20
    lines = [line for line in result.stderr.splitlines() if line.startswith("tradefeed: error:")]
    assert lines == ["tradefeed: error: sink %s: 20 trades not written (20 pending at stop)" % "sqlite:%s" % db]
    assert read_trades(db) == []
