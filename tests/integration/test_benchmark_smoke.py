"""Benchmark smoke: the consumers ``benchmarks/run.py`` compares count correctly.

A tiny throughput round through the real harness (a server process, one process per
consumer).  Nothing here is timed: the machine running tests is not a benchmark machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import consumers, harness, report
from benchmarks.harness import Scenario

TRADES = 200


def compared() -> list[str]:
    """The floor and tradefeed in every dispatch mode this checkout accepts."""
    return ["floor"] + ["tradefeed-%s" % mode for mode in consumers.tradefeed_dispatch_modes()]


@pytest.mark.parametrize("per_frame", [1, 20])
def test_each_consumer_counts_every_trade_exactly_once(per_frame: int) -> None:
    """Each consumer counts N trades, and its per-trade stamps show ids 1..N once each."""
    scenario = harness.throughput(compared(), TRADES, per_frame, repeat=1, verify=True)
    assert set(scenario.runs[0]) == set(compared())
    for name, result in scenario.runs[0].items():
        assert result["complete"], (name, result)
        assert (result["counted"], result["missing"], result["duplicates"]) == (TRADES, 0, 0), name
        assert result["errors"] == [], name
    assert "x floor" in report.tables([scenario])["throughput"]


def test_results_file_keeps_other_modes_and_replaces_the_rewritten_one(tmp_path: Path) -> None:
    """Rewriting a mode of today's section replaces that part only; another day's stays."""
    path = tmp_path / "RESULTS.rst"
    info = {
        "date": "2026-01-02", "time": "10:00 UTC", "load": 0.5, "cpu": "Test CPU", "cores": 2, "python": "3.11",
        "websocket-client": "1.9", "websockets": "17", "tradefeed": "0.1", "commit": "abc",
    }  # fmt: skip
    report.update_results({**info, "date": "2026-01-01"}, "run", {"idle": "table-idle-day-1"}, path)
    report.update_results(info, "run", {"throughput": "table-throughput-1", "latency": "table-latency"}, path)
    report.update_results(info, "run", {"throughput": "table-throughput-2"}, path)
    text = path.read_text()
    tables = [name for name in ("idle-day-1", "throughput-1", "throughput-2", "latency") if "table-" + name in text]
    assert tables == ["idle-day-1", "throughput-2", "latency"]
    assert text.index("2026-01-02") < text.index("2026-01-01")
    assert text.count(".. section: 2026-01-02") == 1


def test_ratio_to_the_floor_is_taken_within_each_repetition() -> None:
    """x floor is the median of per-repetition ratios, not a ratio of medians."""

    def run(elapsed: float) -> dict[str, object]:
        return {"complete": True, "elapsed_s": elapsed, "cpu_s": elapsed, "peak_rss_kib": 1024, "errors": []}

    scenario = Scenario("throughput", {"per_frame": 1, "trades": 100})
    scenario.runs = [{"floor": run(1.0), "x": run(2.0)}, {"floor": run(4.0), "x": run(2.0)}, {"floor": run(1.0), "x": run(1.0)}]
    rows = {row["consumer"]: row for row in report.summarize(scenario)}
    assert rows["x"]["x_floor"] == 1.0  # ratios 0.5, 2.0, 1.0
    assert rows["x"]["rate_median"] == 50.0
