"""Every example runs against the simulator and does what its docstring says."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from .conftest import reaped

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def example_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def run_example(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=60, env=example_env(**env)
    )


def test_every_example_has_a_docstring_saying_how_to_run_it():
    """Each example starts with a docstring that shows its command line."""
    for path in EXAMPLES.rglob("*.py"):
        text = path.read_text()
        name = path.relative_to(EXAMPLES).as_posix()
        assert text.startswith('"""') and "python examples/%s" % name in text, name


def test_callbacks_example_prints_limit_trades_and_exits():
    """examples/callbacks.py --limit 7 prints seven BTC-PERPETUAL trades and exits 0."""
    result = run_example("callbacks.py", "--limit", "7")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    for line in lines:
        ts, symbol, side, amount, at, price = line.split()
        assert symbol == "BTC-PERPETUAL" and side in ("buy", "sell") and at == "@"
        assert int(ts) > 1_700_000_000_000 and Decimal(amount) > 0 and Decimal(price) > 0


def test_run_config_example_streams_every_venue_of_feeds_yaml():
    """examples/run_config.py --simulator runs examples/feeds.yaml against the simulator."""
    result = run_example("run_config.py", "--simulator", "--limit", "60")
    assert result.returncode == 0, result.stderr
    venues = {line.split()[0] for line in result.stdout.splitlines()}
    assert venues == {"dopp", "synfutures", "synthetix", "rails"}


def test_vwap_example_prints_a_table_every_second():
    """examples/vwap.py prints per-symbol counts and a VWAP within the traded range."""
    result = run_example("vwap.py", "--duration", "2.5")
    assert result.returncode == 0, result.stderr
    blocks = [b for b in result.stdout.strip().split("\n\n") if b]
    assert len(blocks) >= 2
    rows = [line.split() for line in blocks[-1].splitlines()[1:]]
    assert {row[0] for row in rows} == {"dopp", "synfutures", "synthetix", "rails"}
    btc = next(row for row in rows if row[1] == "BTC-PERPETUAL")
    assert int(btc[2]) > 0 and Decimal("80000") < Decimal(btc[4]) < Decimal("100000")


def test_excel_com_example_writes_rows_from_the_owner_thread(tmp_path):
    """Without pywin32, examples/excel_com.py writes the same rows to a CSV."""
    out = tmp_path / "rows.csv"
    result = run_example("excel_com.py", "--csv", str(out), "--limit", "25")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(out.open()))
    assert rows[0][0] == "time (UTC)" and len(rows) == 26
    assert {row[1] for row in rows[1:]} <= {"dopp", "synthetix"} and all(Decimal(r[5]) > 0 for r in rows[1:])


def test_excel_com_example_drives_excel_through_com_from_the_owner_thread(tmp_path):
    """With pywin32 present (here a recording fake of win32com, tests/fixtures/fake_com),
    examples/excel_com.py opens Excel, adds a workbook and writes the header and 25 rows
    of text cells, every call from the owner (main) thread that pumps the manager."""
    log = tmp_path / "com.json"
    fake = ROOT / "tests" / "fixtures" / "fake_com"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "excel_com.py"), "--limit", "25"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join((str(fake), str(ROOT))), FAKE_COM_LOG=str(log)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "trades.csv").exists()  # Excel, not the CSV fallback
    recorded = json.loads(log.read_text())
    calls, main_thread = recorded["calls"], recorded["main_thread"]
    assert calls[0] == ["Dispatch", "Excel.Application", main_thread]
    assert ["set", "Application", "Visible", True, main_thread] in calls
    assert ["Workbooks.Add"] in calls and ["Worksheets", 1] in calls
    cells = [c for c in calls if c[0] == "cell"]
    assert {c[4] for c in cells} == {main_thread}  # COM objects stay on their thread
    rows: dict[int, dict[int, str]] = {}
    for _, row, column, value, _ in cells:
        rows.setdefault(row, {})[column] = value
    assert sorted(rows) == list(range(1, 27))  # the header, then exactly --limit rows
    assert rows[1][1] == "time (UTC)" and len(rows[1]) == 7
    assert all(isinstance(v, str) for r in rows.values() for v in r.values())  # text keeps every digit
    assert {rows[r][2] for r in range(2, 27)} <= {"dopp", "synthetix"}
    assert all(Decimal(rows[r][6]) > 0 and Decimal(rows[r][5]) > 0 for r in range(2, 27))


def test_tk_tape_shows_live_trades_and_closes_cleanly(xvfb, tmp_path):
    """Under Xvfb the Tk tape fills with trades (screenshot not blank, buys green, sells red),
    then closes cleanly (exit 0) when asked to."""
    from PIL import ImageGrab

    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "tk_tape.py"), "--duration", "60", "--ready", "25"],
        env=example_env(DISPLAY=xvfb),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with reaped(process):
        assert process.stdout.readline().strip() == "ready"
        shot = ImageGrab.grab(xdisplay=xvfb)
        shot.save(tmp_path / "tk_tape.png")
        window = shot.crop((0, 0, 900, 500))
        colors = window.getcolors(1 << 20) or []
        assert len(colors) > 50, "the window looks blank"
        greens = sum(n for n, (r, g, b) in colors if g > 100 and r < 60 and b < 60)
        reds = sum(n for n, (r, g, b) in colors if r > 150 and g < 60 and b < 60)
        assert greens and reds, "buys and sells are drawn in their colours"
        process.send_signal(signal.SIGTERM)  # closes the window like its close button
        assert process.wait(30) == 0, process.stderr.read()


def test_sharded_example_fans_in_through_redis(tmp_path):
    """Three shard processes of examples/sharded/feeds.yaml write into one real Redis; the
    consumer example reads every venue's trades back, each trade once."""
    from .redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        shards = run_example("sharded/run_shards.py", "--simulator", "--shards", "3", "--duration", "3", "--redis", server.url)
        assert shards.returncode == 0, shards.stderr
        assert "shards exited with [0, 0, 0]" in shards.stdout
        consumed = run_example("sharded/consume.py", "--redis", server.url, "--idle-exit", "1")
        assert consumed.returncode == 0, consumed.stderr
    finally:
        server.stop()
    rows = [line.split() for line in consumed.stdout.splitlines()]
    keys = [(r[0], r[1], r[2]) for r in rows]
    assert len(keys) == len(set(keys)), "a trade was consumed twice"
    assert {r[0] for r in rows} == {"dopp", "synthetix", "synfutures"}
    assert {r[1] for r in rows if r[0] == "synthetix"} == {"BTC-USDT", "ETH-USDT", "SOL-USDT"}


@pytest.mark.parametrize("name", ["run_config.py", "vwap.py", "tk_tape.py", "callbacks.py"])
def test_a_bad_input_is_one_error_line_not_a_traceback(name):
    """A config without its credentials (or a refused filter) ends an example as the CLI
    ends: ``<script>: error: ...``, exit 2 for a configuration mistake, 1 for a feed."""
    env = {k: v for k, v in example_env().items() if not k.startswith("RAILS_API_")}
    args = {
        "run_config.py": [str(EXAMPLES / "feeds.yaml")],
        "vwap.py": ["--config", str(EXAMPLES / "feeds.yaml")],
        "tk_tape.py": ["--config", str(EXAMPLES / "feeds.yaml")],
        "callbacks.py": ["--instrument", "NOPE-PERP"],  # the simulator closes it with 1008
    }[name]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert "Traceback" not in result.stderr, result.stderr
    first = result.stderr.splitlines()[0]
    if name == "callbacks.py":  # its on_error callback prints the refusal; run_forever re-raises it
        assert result.returncode == 1 and "invalid filter): check this feed's instrument_name 'NOPE-PERP'" in first
    else:
        assert result.returncode == 2
        assert first == "%s: error: 2 problem(s) in %s:" % (EXAMPLES / name, EXAMPLES / "feeds.yaml")


def test_excel_com_without_excel_writes_its_csv_to_the_temp_dir(tmp_path):
    """Without Excel and --csv, the rows go to the temporary directory, not the current one."""
    cwd, temp = tmp_path / "checkout", tmp_path / "temp"
    cwd.mkdir()
    temp.mkdir()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "excel_com.py"), "--limit", "5"],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=example_env(TMPDIR=str(temp), TEMP=str(temp)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(cwd.iterdir()) == []
    written = temp / "tradefeed-excel_com.csv"
    assert "writing rows to %s" % written in result.stdout
    assert len(written.read_text().splitlines()) == 6


def test_consume_stops_on_ctrl_c_without_a_traceback(tmp_path, make_sim, make_manager, collector):
    """Ctrl-C in the Redis consumer example: it leaves its loop and exits 0, quietly."""
    from tradefeed.sinks.redis import RedisSink

    from .redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        sim = make_sim(rate=0, history=5, venues=["dopp"])
        manager = make_manager()
        collector.attach(manager)
        manager.add_sink(RedisSink(server.url))
        manager.add_feed("dopp", **sim.feed_params("dopp"))
        with manager:
            assert collector.wait_trades(5)
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "sharded" / "consume.py"), "--redis", server.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=example_env(),
        )  # fmt: skip
        with reaped(process):
            assert process.stdout.readline().startswith("dopp ")  # in its read loop
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
            assert "Traceback" not in process.stderr.read()
    finally:
        server.stop()


def test_tk_tape_closes_cleanly_on_ctrl_c(xvfb):
    """Ctrl-C closes the Tk tape like its close button: exit 0, no traceback."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "tk_tape.py"), "--duration", "60", "--ready", "1"],
        env=example_env(DISPLAY=xvfb), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with reaped(process):
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        assert "Traceback" not in process.stderr.read()
