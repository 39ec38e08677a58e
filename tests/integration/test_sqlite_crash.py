"""A process writing to the SQLite sink is killed with SIGKILL mid-stream and restarted.

The simulator runs in this test process, so its tape outlives the children: the tape is
the truth every stored row is checked against.  The children (``sqlite_crash_child.py``)
stream Dopp into one database file and print a line after each committed batch; the
test waits on those lines, never on the table.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

from tradefeed.sinks.sqlite import read_trades
from tradefeed.simulator import Simulator

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX"),
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("sqlite_crash_child.py")
#: trades per second on the simulated tape
RATE = 500
#: the snapshot a (re)connecting child gets: the whole tape of this test (at 500/s it
#: would take over 3 minutes to outgrow), so the window between the kill and the
#: restart is always back-filled and a missing trade can only be the sink's fault
SNAPSHOT = 100_000
#: live batches the first child commits after its snapshot batch before it is killed
LIVE_BATCHES = 20
#: how far past the kill point the second child streams
PAST_KILL = 500
#: Dopp record fields that become Trade fields; the others go to ``raw``
MAPPED = {"instrument_name", "trade_id", "price", "amount", "direction", "timestamp", "trade_seq", "fee", "fee_currency", "liquidity"}


class Child:
    """One child process; its stdout lines (JSON) are read by a thread into a queue."""

    def __init__(self, tmp_path: Path, name: str, db: Path, params: dict[str, Any], until: int | None = None) -> None:
        self.name = name
        self.stderr_path = tmp_path / ("%s.stderr" % name)
        self._stderr = open(self.stderr_path, "w")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        argv = [sys.executable, str(CHILD), str(db), json.dumps(params)] + ([str(until)] if until is not None else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        #: every line read so far, in order
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="%s-stdout" % name, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))
        self._queue.put(None)  # end of output: the process has ended

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0) -> None:
        """Read lines until *predicate(lines)* holds; fail after *timeout* seconds or at EOF."""
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("%s: no such output within %g s; stderr:\n%s" % (self.name, timeout, self.stderr()))
            if line is None:
                pytest.fail("%s ended (exit %s); stderr:\n%s" % (self.name, self.proc.wait(5), self.stderr()))
            self.lines.append(line)

    def batches(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "ids" in line]

    def committed(self) -> list[str]:
        """Trade ids of every batch the child reported committed, in order."""
        return [i for line in self.batches() for i in line["ids"]]

    def stderr(self) -> str:
        return self.stderr_path.read_text()  # the child writes it; this process only reads

    def close(self, grace: float = 0.0) -> int:
        """Give the process *grace* seconds to end, kill it if it still runs, wait for it
        and the reader; return its exit code."""
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        code = self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()
        return code


def wire(value: Any) -> Any:
    """A tape value as the client gets it in ``raw`` and stores it: a Decimal with no
    fractional digits is an integer literal on the wire (simulator ``_json``), any other
    is kept digit for digit and stored as a string."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else format(value, "f")
    return value


def expected(record: dict[str, Any]) -> dict[str, Any]:
    """The ``Trade.to_dict()`` (less ``received_ns``) a tape record must be stored as."""
    return {
        "venue": "dopp",
        "symbol": record["instrument_name"],
        "trade_id": record["trade_id"],
        "price": format(record["price"], "f"),
        "amount": format(record["amount"], "f"),
        "side": record["direction"],
        "timestamp_ms": record["timestamp"],
        "sequence": record["trade_seq"],
        "fee": format(record["fee"], "f"),
        "fee_currency": record["fee_currency"],
        "liquidity": {"M": "maker", "T": "taker"}[record["liquidity"]],
        "stream": "user",
        "raw": {k: wire(v) for k, v in record.items() if k not in MAPPED},
    }


def stored(db: Path) -> list[dict[str, Any]]:
    """Every stored trade as ``Trade.to_dict()``, in trade-id order."""
    return sorted((t.to_dict() for t in read_trades(db)), key=lambda d: int(d["trade_id"]))


def check_against_tape(rows: list[dict[str, Any]], tape: list[dict[str, Any]]) -> None:
    """The rows are a contiguous run of the tape, each equal to its tape record exactly."""
    ids = [r["trade_id"] for r in rows]
    tape_ids = [t["trade_id"] for t in tape]
    start = tape_ids.index(ids[0])
    assert ids == tape_ids[start : start + len(ids)], "stored trade ids are not a contiguous run of the tape"
    for row, record in zip(rows, tape[start:]):
        assert {k: v for k, v in row.items() if k != "received_ns"} == expected(record)


def test_sigkill_mid_stream_loses_no_committed_trade_and_writes_no_duplicate(tmp_path):
    """Killed with SIGKILL mid-stream, then restarted on the same file: every batch the first
    process committed is still there, exact; the restart back-fills the window, re-receives
    trades already stored and skips them; the table is the tape, contiguous, once per trade."""
    db = tmp_path / "trades.db"
    with Simulator(seed=1, rate=RATE, venues=["dopp"], snapshot_size=SNAPSHOT) as sim:
        params = sim.feed_params("dopp")

        first = Child(tmp_path, "first", db, params)
        try:
            first.wait_for(lambda lines: len(lines) >= 1 + LIVE_BATCHES)
            os.kill(first.proc.pid, signal.SIGKILL)
        finally:
            code = first.close()
        assert code == -signal.SIGKILL
        reported = first.committed()

        # after the kill: every batch reported committed survived, exactly as on the tape
        after_kill = stored(db)
        kept = {r["trade_id"] for r in after_kill}
        assert set(reported) <= kept, "a batch reported committed was lost"
        assert len(after_kill) == len(kept)
        check_against_tape(after_kill, sim.venue("dopp").trades())
        kill_point = max(int(i) for i in kept)

        second = Child(tmp_path, "second", db, params, until=kill_point + PAST_KILL)
        try:
            second.wait_for(lambda lines: bool(lines) and "stopped" in lines[-1])
        finally:
            code = second.close(grace=15)  # it is ending by itself
        assert code == 0, second.stderr()
        tape = sim.venue("dopp").trades()

    final = stored(db)
    assert len(final) == len({r["trade_id"] for r in final})  # no duplicate (the key ensures it)
    check_against_tape(final, tape)
    assert int(final[-1]["trade_id"]) >= kill_point + PAST_KILL
    # the first run's rows were not rewritten: same values, same received_ns
    by_id = {r["trade_id"]: r for r in final}
    assert [by_id[r["trade_id"]] for r in after_kill] == after_kill
    # the restart's snapshot re-delivered every trade already stored and the window
    # after the kill; it skipped exactly the stored ones and inserted exactly the rest
    received = second.committed()
    inserted = sum(x["inserted"] for x in second.batches())
    assert len(received) == len(set(received))
    assert kept <= set(received), "the restart did not re-receive what the first run stored"
    assert len(received) - inserted == len(kept)
    assert inserted == len(final) - len(after_kill)
    assert "error" not in first.stderr() + second.stderr()
