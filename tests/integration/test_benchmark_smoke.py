"""Benchmark smoke: the consumers ``benchmarks/run.py`` compares count correctly.

A tiny throughput round and a tiny soak through the real harness (a server process, one
process per consumer).  Nothing here is timed, nor is memory judged: the machine running
tests is not a benchmark machine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from benchmarks import consumers, harness, report, soak
from benchmarks.frames import SOAK_INSTRUMENTS, ClientFrameReader, soak_chunks
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
    # a part added to the file's last section: the part before it still ends in a blank line
    report.update_results({**info, "date": "2026-01-01"}, "run", {"soak": "table-soak"}, path)
    assert "table-idle-day-1\n\n.. mode: soak" in path.read_text()
    # a pinned run (--pin) gets a section of its own: it replaces nothing unpinned
    report.update_results({**info, "pinned": True}, "run --pin", {"throughput": "table-throughput-pinned"}, path)
    text = path.read_text()
    assert "table-throughput-pinned" in text and "table-throughput-2" in text
    assert text.count(".. section: 2026-01-02") == 2


def test_results_file_keeps_every_hotpath_run_of_the_day(tmp_path: Path) -> None:
    """A hotpath run is one lever's before and after: the day's earlier ones stay, newest
    first, under one heading; another mode written between them changes nothing."""
    path = tmp_path / "RESULTS.rst"
    info = {
        "date": "2026-01-02", "time": "10:00 UTC", "load": 0.5, "cpu": "Test CPU", "cores": 2, "python": "3.11",
        "websocket-client": "1.9", "websockets": "17", "tradefeed": "0.1", "commit": "abc",
    }  # fmt: skip
    report.update_results(info, "hotpath 1", {"hotpath": "table-lever-1"}, path)
    report.update_results(info, "run", {"idle": "table-idle"}, path)
    report.update_results({**info, "time": "11:00 UTC"}, "hotpath 2", {"hotpath": "table-lever-2"}, path)
    text = path.read_text()
    assert text.count(".. mode: hotpath") == 1 and text.count("Hot path stages, in one process") == 1
    assert text.index("table-lever-2") < text.index("``hotpath 1``") < text.index("table-lever-1")
    assert "table-idle" in text and text.count("table-lever-") == 2


def test_ratio_to_the_floor_is_taken_within_each_repetition() -> None:
    """x floor is the median of per-repetition ratios, not a ratio of medians."""

    def run(elapsed: float) -> dict[str, object]:
        return {"complete": True, "elapsed_s": elapsed, "cpu_s": elapsed, "peak_rss_kib": 1024, "errors": []}

    scenario = Scenario("throughput", {"per_frame": 1, "trades": 100})
    scenario.runs = [{"floor": run(1.0), "x": run(2.0)}, {"floor": run(4.0), "x": run(2.0)}, {"floor": run(1.0), "x": run(1.0)}]
    rows = {row["consumer"]: row for row in report.summarize(scenario)}
    assert rows["x"]["x_floor"] == 1.0  # ratios 0.5, 2.0, 1.0
    assert rows["x"]["rate_median"] == 50.0


def test_soak_stream_has_unique_ids_and_each_instrument_its_own_gapless_sequence() -> None:
    """Trade ids 1..N once each, in rising time; each frame one instrument, in turn;
    each instrument's trade_seq 1, 2, 3...; a last round shorter than the others."""
    trades, per_frame = 20 * (len(SOAK_INSTRUMENTS) * 2 + 3), 20
    reader = ClientFrameReader()
    ids, stamps, names = [], [], []
    sequences: dict[str, list[int]] = defaultdict(list)
    for chunk in soak_chunks(trades, per_frame):
        for _, payload in reader.feed(chunk):
            (element,) = json.loads(payload)
            records = element["last_trades"]
            assert len(records) == per_frame and len({r["instrument_name"] for r in records}) == 1
            names.append(records[0]["instrument_name"])
            for record in records:
                ids.append(int(record["trade_id"]))
                stamps.append(record["timestamp"])
                sequences[record["instrument_name"]].append(record["trade_seq"])
    assert ids == list(range(1, trades + 1)) and stamps == sorted(stamps)
    assert names[: len(SOAK_INSTRUMENTS)] == [name for name, _ in SOAK_INSTRUMENTS]
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in sequences.values())
    with pytest.raises(ValueError):
        soak_chunks(30, per_frame)


def test_soak_counts_every_trade_and_samples_memory() -> None:
    """The soak consumer counts N unique trades (none dropped as a duplicate, no gap)
    and samples its memory every so many; the report draws them."""
    scenario = soak.soak(2_000, sample_every=500)
    result = scenario.runs[0][soak.CONSUMER]
    assert result["complete"] and result["counted"] == 2_000 and result["errors"] == [], result
    assert [s["trades"] for s in result["samples"]] == [500, 1_000, 1_500, 2_000]
    assert all(s["rss_kib"] > 0 and s["blocks"] > 0 for s in result["samples"])
    stats = result["stats"]
    assert (stats["trades"], stats["duplicates"], stats["gaps"], stats["errors"]) == (2_000, 0, 0, 0)
    (row,) = report.summarize(scenario)
    assert row["failed"] == 0 and row["baseline_trades"] == 500
    text = report.tables([scenario])["soak"]
    assert "(threshold: trend under +%.1f MiB)" % soak.FLAT_GROWTH_MIB in text and "duplicates 0" in text


def test_soak_verdict_follows_the_trend_not_a_passing_spike() -> None:
    """A spike of 20 MiB that passes stays FLAT; 1 MiB more per million trades is GROWING."""

    def scenario(rss_mib: list[float]) -> Scenario:
        samples = [
            {"trades": (i + 1) * 500_000, "elapsed_s": i + 1.0, "rss_kib": mib * 1024, "hwm_kib": 0, "blocks": 1000}
            for i, mib in enumerate(rss_mib)
        ]
        result = {"complete": True, "counted": 10_000_000, "elapsed_s": 20.0, "cpu_s": 20.0, "peak_rss_kib": 0}
        params = {"trades": 10_000_000, "per_frame": 20, "instruments": 8, "sample_every": 500_000}
        return Scenario("soak", params, [{soak.CONSUMER: {**result, "samples": samples}}])

    spike = [50.0] * 20
    spike[12] = 70.0
    (row,) = soak.summarize(scenario(spike))
    assert row["flat"] and row["highest_growth_mib"] == 20.0 and row["baseline_trades"] == 1_000_000
    (row,) = soak.summarize(scenario([50.0 + i / 2 for i in range(20)]))  # 1 MiB per million trades
    assert not row["flat"] and round(row["trend_mib"], 6) == 9.0 == round(row["growth_mib"], 6)
    assert "GROWING" in report.tables([scenario([50.0 + i / 2 for i in range(20)])])["soak"]


def test_run_help_prints_every_option() -> None:
    """``benchmarks/run.py --help`` prints (a '%' in a help text once made it raise)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "run.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--fault-every" in done.stdout and "+/- 50 % (default 5)" in done.stdout


def test_hotpath_stages_run_and_deliver_every_trade(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.hotpath``: every stage runs (the dispatch and total stages
    assert their callback saw every trade), and the table has a row per frame size."""
    from benchmarks import hotpath

    assert hotpath.main(["--per-frame", "1,20", "--repeat", "1", "--trades", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["per", "frame", "tradefeed", "json.loads", "parse", "pipeline", "dispatch", "total"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "20"]
    assert all(float(figure) > 0 for line in lines[2:] for figure in line.split()[-5:])


def test_hotpath_against_a_baseline_checkout_gives_both_rows_and_the_change(capsys: pytest.CaptureFixture[str]) -> None:
    """``--baseline``: the other checkout's stages run in child processes that import its
    tradefeed (checked), in turns with this one's, and a change row follows."""
    from benchmarks import hotpath

    here = Path(hotpath.__file__).resolve().parent.parent
    assert hotpath.main(["--per-frame", "20", "--repeat", "1", "--trades", "200", "--baseline", str(here)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["20", "20", "change"]
    assert "(baseline)" in lines[2] and all(cell.endswith("%") for cell in lines[4].split()[1:])
    with pytest.raises(SystemExit):
        hotpath.main(["--baseline", str(here / "benchmarks")])  # not a checkout: a usage error
