"""SinkRunner (nothing lost while a sink fails) and FileSink, without a network."""

from __future__ import annotations

import csv
import errno
import json
import os
from decimal import Decimal

import pytest

from tradefeed import ConfigError, Side, SinkError, Trade
from tradefeed.sinks import Sink, SinkRunner
from tradefeed.sinks.files import FileSink


def t(i: int, ts: int = 1767225600000) -> Trade:
    return Trade("dopp", "BTC-PERPETUAL", str(i), Decimal("90125.50"), Decimal("0.000000001"), Side.BUY, ts + i, raw={"n": i})


class Flaky(Sink):
    """A sink that refuses while `down` is set (a stand-in for an unreachable database)."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = False
        self.rows: list[str] = []
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def write(self, trades) -> None:
        if self.down:
            raise ConnectionError("database unreachable")
        self.rows.extend(x.trade_id for x in trades)

    def close(self) -> None:
        self.closed += 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_sink_keeps_every_trade_in_order_and_reports_once():
    """While the sink fails nothing is dropped; one SinkError per failure streak; order kept."""
    sink, clock, errors = Flaky(), Clock(), []
    runner = SinkRunner(sink, errors.append, clock=clock)
    runner.deliver([t(1), t(2)])
    sink.down = True
    runner.deliver([t(3)])
    assert runner.pending == 1 and len(errors) == 1 and isinstance(errors[0], SinkError)
    assert "flaky" in str(errors[0]) and "1 trades kept" in str(errors[0])
    assert isinstance(errors[0].__cause__, ConnectionError)
    runner.deliver([t(4)])  # before the retry time: queued, not attempted
    assert runner.pending == 2 and runner.failures == 1
    clock.now += runner.retry_in()
    runner.deliver([t(5)])  # due: attempted, fails again, still one report
    assert runner.pending == 3 and runner.failures == 2 and len(errors) == 1
    sink.down = False
    clock.now += runner.retry_in()
    runner.drain()
    assert sink.rows == ["1", "2", "3", "4", "5"] and runner.pending == 0
    assert runner.stats().written == 5 and sink.opened == 1


def test_retry_delays_grow_and_reset_after_recovery():
    """Backoff between retries doubles while failing and starts over after a success."""
    sink, clock = Flaky(), Clock()
    runner = SinkRunner(sink, lambda e: None, clock=clock)
    sink.down = True
    delays = []
    for i in range(3):
        runner.deliver([t(i)])
        delays.append(runner.retry_in())
        clock.now += runner.retry_in()
    assert delays[0] < delays[1] < delays[2]
    sink.down = False
    runner.drain()
    sink.down = True
    runner.deliver([t(9)])
    assert runner.retry_in() == pytest.approx(delays[0], rel=0.2)


def test_close_makes_a_last_attempt_and_closes_once():
    """close() writes what it can, then closes the sink exactly once."""
    sink, clock = Flaky(), Clock()
    runner = SinkRunner(sink, lambda e: None, clock=clock)
    sink.down = True
    runner.deliver([t(1)])
    sink.down = False
    runner.close()
    runner.close()
    assert sink.rows == ["1"] and sink.closed == 1
    runner.deliver([t(2)])  # after close: ignored
    assert sink.rows == ["1"]


def test_file_sink_jsonl_and_csv(tmp_path):
    """JSON lines are Trade.to_dict(); CSV has one header and exact Decimals, also when appending."""
    jsonl, table = tmp_path / "t.jsonl", tmp_path / "t.csv"
    for path, fmt in ((jsonl, "jsonl"), (table, "csv")):
        for start in (0, 3):  # two sinks, one after the other: appended
            sink = FileSink(path, format=fmt)
            sink.write([t(start + i) for i in range(3)])
            sink.flush()
            sink.close()
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [d["trade_id"] for d in lines] == [str(i) for i in range(6)]
    assert lines[0]["price"] == "90125.50" and lines[0]["amount"] == "0.000000001"
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 6 and rows[0]["amount"] == "0.000000001" and rows[0]["time_utc"].endswith("Z")


def test_file_sink_rotates_daily_by_trade_date(tmp_path):
    """{date} in the path gives one file per UTC day of the trades."""
    sink = FileSink(tmp_path / "out" / "trades-{date}.jsonl")
    day = 86_400_000
    sink.write([t(1, 1767225600000 - 10), t(2, 1767225600000), t(3, 1767225600000 + day)])
    sink.close()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["trades-2025-12-31.jsonl", "trades-2026-01-01.jsonl", "trades-2026-01-02.jsonl"]


def test_file_sink_retry_after_a_failure_mid_batch_writes_no_line_twice(tmp_path):
    """A batch with a trade that cannot be encoded fails before writing; retried, each trade is
    once in the file."""
    path = tmp_path / "t.jsonl"
    sink = FileSink(path)
    runner = SinkRunner(sink, lambda e: None, clock=Clock())
    bad = t(3)
    bad.raw["oops"] = {1, 2}  # a set is not JSON: the write fails at this trade
    runner.deliver([t(1), t(2), bad, t(4)])
    assert runner.pending == 4  # nothing acknowledged: the batch will be retried
    del bad.raw["oops"]  # the cause goes away
    runner._retry_at = 0
    runner.drain()
    runner.close()
    assert [json.loads(x)["trade_id"] for x in path.read_text().splitlines()] == ["1", "2", "3", "4"]


def test_file_sink_format_is_checked():
    with pytest.raises(ConfigError, match="jsonl or csv"):
        FileSink("x", format="xml")


def test_table_format_writes_plain_digits():
    """The table shows every digit without exponents, like jsonl and csv."""
    import io

    from tradefeed.output import TradeWriter

    out = io.StringIO()
    TradeWriter(out, "table", header=False).write(t(1))
    assert " 0.000000001 " in out.getvalue() and "90125.50" in out.getvalue() and "E-" not in out.getvalue()


class FullDisk:
    """A real file opened for appending that takes *room* more bytes (None: any number), then
    fails as a full disk does: a short write, then OSError(ENOSPC)."""

    def __init__(self, path: str, room: int | None) -> None:
        self.file = open(path, "ab", buffering=0)
        self.room = room

    def write(self, data) -> int:
        if self.room is None:
            return self.file.write(data)
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.file.write(bytes(data[: self.room]))
        self.room -= written
        return written

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize(
    "rooms",
    [(0,), (5,), (150, 0, 70), (400,)],
    ids=["full-at-once", "in-the-first-line-or-header", "bit-by-bit", "in-a-later-line"],
)
def test_file_sink_after_a_full_disk_writes_exactly_the_rest(tmp_path, fmt, rooms):
    """The disk fills during a batch and space comes back bit by bit between retries: the file
    ends byte for byte as if nothing had failed (no line doubled, lost or cut)."""
    trades = [t(i) for i in range(8)]
    expected = tmp_path / ("expected." + fmt)
    reference = FileSink(expected, format=fmt)
    reference.write(trades[:5])
    reference.write(trades[5:])
    reference.close()
    disks: list[FullDisk] = []

    def open_file(path: str) -> FullDisk:
        disks.append(FullDisk(path, rooms[0]))
        return disks[-1]

    clock, errors = Clock(), []
    runner = SinkRunner(FileSink(tmp_path / ("t." + fmt), format=fmt, open_file=open_file), errors.append, clock=clock)
    runner.deliver(trades[:5])
    for room in rooms[1:] + (None,):
        assert runner.pending == 5  # refused: kept for the retry
        disks[-1].room = room
        clock.now += runner.retry_in()
        runner.drain()
    assert runner.pending == 0
    runner.deliver(trades[5:])
    runner.close()
    assert (tmp_path / ("t." + fmt)).read_bytes() == expected.read_bytes()
    assert runner.stats().written == 8 and len(errors) == 1 and isinstance(errors[0].__cause__, OSError)


def test_a_poison_trade_in_a_csv_batch_is_reported_and_skipped(tmp_path):
    """A time beyond the calendar cannot be a CSV row: after the retry that trade is reported (a
    SinkError carrying it), counted and skipped, and every other trade is written once, in order,
    under one header."""
    path = tmp_path / "t.csv"
    clock, errors = Clock(), []
    runner = SinkRunner(FileSink(path, format="csv"), errors.append, clock=clock)
    poison = t(3, ts=10**20)
    runner.deliver([t(1), t(2), poison, t(4)])
    assert runner.pending == 4 and len(errors) == 1  # a first failure: kept and retried as it is
    clock.now += runner.retry_in()
    runner.deliver([t(5)])
    runner.close()
    text = path.read_text()
    assert [row["trade_id"] for row in csv.DictReader(text.splitlines())] == ["1", "2", "4", "5"]
    assert text.count("time_utc") == 1
    refused = [e for e in errors if e.trade is not None]
    assert [e.trade for e in refused] == [poison] and isinstance(refused[0].__cause__, ValueError)
    assert runner.stats().rejected == 1 and runner.stats().written == 4 and runner.pending == 0
