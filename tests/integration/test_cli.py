"""The tradefeed command: demo against the embedded simulator, and sim as a process."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tradefeed import Status
from tradefeed.cli import main

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "tradefeed", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_demo_jsonl_prints_exactly_limit_trades(capsys):
    """demo --limit N --format jsonl prints N Trade.to_dict() lines and exits 0."""
    assert main(["demo", "--limit", "25", "--format", "jsonl", "--rate", "500"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 25
    trades = [json.loads(line) for line in lines]
    assert {t["venue"] for t in trades} == {"dopp"}
    assert all(Decimal(t["price"]) > 0 and Decimal(t["amount"]) > 0 for t in trades)
    assert len({t["trade_id"] for t in trades}) == 25


def test_demo_csv_has_a_header_and_exact_columns(capsys):
    """demo --format csv writes a header row, ISO-8601 UTC time and the ms column."""
    assert main(["demo", "--limit", "5", "--format", "csv", "--rate", "500"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 5
    assert rows[0]["time_utc"].endswith("Z") and rows[0]["timestamp_ms"].isdigit()
    assert Decimal(rows[0]["price"]) > 0


def test_demo_table_and_duration(capsys):
    """demo --duration stops by itself; the table has a header and one line per trade."""
    assert main(["demo", "--duration", "0.5", "--rate", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("time (UTC)") and len(out) > 1
    assert all("dopp" in line for line in out[1:])


def test_version_and_usage_errors():
    """--version prints the version; a missing or bad command exits 2 with a message on stderr."""
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("tradefeed ")
    assert run_cli().returncode == 2
    bad = run_cli("demo", "--limit", "0")
    assert bad.returncode == 2 and "must be >= 1" in bad.stderr


def test_sim_serves_until_sigterm_and_exits_zero(make_manager, collector):
    """`tradefeed sim` prints its URL, serves a real client, and exits 0 on SIGTERM."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradefeed", "sim", "--venue", "dopp", "--rate", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        venue, url = line.split()
        assert venue == "dopp" and url.startswith("ws://127.0.0.1:")
        manager = make_manager()
        collector.attach(manager)
        manager.add_feed("dopp", url=url)
        with manager:
            assert collector.wait_trades(30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert collector.statuses[-1].status is Status.STOPPED


def test_demo_all_mixes_the_four_venues(capsys):
    """demo --venue all streams every venue from one simulator."""
    assert main(["demo", "--venue", "all", "--duration", "1.5", "--format", "jsonl", "--rate", "20"]) == 0
    venues = {json.loads(line)["venue"] for line in capsys.readouterr().out.splitlines()}
    assert venues == {"dopp", "synfutures", "synthetix", "rails"}
