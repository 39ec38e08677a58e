"""The tradefeed command: demo against the embedded simulator, and sim as a process."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tradefeed import Status
from tradefeed.cli import main

from .conftest import PipeLines, reaped

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
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "tradefeed demo: error: argument --limit: must be a whole number >= 1, not '0' (see tradefeed demo --help)"
    ]


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


def write_config(tmp_path, sim, **extra_outputs) -> Path:
    """A config streaming every simulated venue; Rails credentials through the environment."""
    params = {v: sim.feed_params(v) for v in ("dopp", "synfutures", "synthetix", "rails")}
    rails = params["rails"]
    lines = ["feeds:"]
    lines += ["  - venue: dopp", "    url: %s" % params["dopp"]["url"]]
    lines += ["  - venue: synfutures", "    url: %s" % params["synfutures"]["url"], "    pairs: %s" % json.dumps(params["synfutures"]["pairs"])]
    lines += ["  - venue: synthetix", "    url: %s" % params["synthetix"]["url"], "    symbols: [BTC-USDT]"]
    lines += [
        "  - venue: rails",
        "    url: %s" % rails["url"],
        "    market: BTC-USDT",
        "    auth_url: %s" % rails["auth_url"],
        "    api_key: ${SIM_RAILS_KEY}",
        "    api_secret: ${SIM_RAILS_SECRET}",
    ]
    path = tmp_path / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env(sim) -> dict[str, str]:
    key, secret = sim.credentials("rails")
    return dict(os.environ, PYTHONPATH=str(ROOT), SIM_RAILS_KEY=key, SIM_RAILS_SECRET=secret)


def test_run_writes_valid_jsonl_for_a_bounded_duration(tmp_path, make_sim):
    """run CONFIG --format jsonl --duration: valid JSON lines from every venue, exit 0."""
    sim = make_sim(rate=50, history=5, max_connects=None)
    config = write_config(tmp_path, sim)
    result = subprocess.run(
        [sys.executable, "-m", "tradefeed", "run", str(config), "--format", "jsonl", "--duration", "1.5"],
        capture_output=True, text=True, timeout=60, env=cli_env(sim),
    )
    assert result.returncode == 0, result.stderr
    trades = [json.loads(line) for line in result.stdout.splitlines()]
    assert {t["venue"] for t in trades} == {"dopp", "synfutures", "synthetix", "rails"}
    assert all(Decimal(t["price"]) > 0 for t in trades)


def test_run_appends_csv_to_a_file_and_stops_at_the_limit(tmp_path, make_sim):
    """run --output FILE --format csv --limit N: N rows after one header, even across two runs."""
    sim = make_sim(rate=50, history=5, max_connects=None)
    config = write_config(tmp_path, sim)
    out = tmp_path / "trades.csv"
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "tradefeed", "run", str(config), "--output", str(out), "--format", "csv", "--limit", "30"],
            capture_output=True, text=True, timeout=60, env=cli_env(sim),
        )
        assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60 and rows[0]["time_utc"].endswith("Z")
    assert all(Decimal(r["amount"]) > 0 and r["timestamp_ms"].isdigit() for r in rows)


def test_sigint_during_run_exits_zero_with_the_output_flushed(tmp_path, make_sim):
    """Ctrl-C while streaming: exit 0, and every line written is complete."""
    sim = make_sim(rate=100, history=5, max_connects=None)
    config = write_config(tmp_path, sim)
    process = subprocess.Popen(
        [sys.executable, "-m", "tradefeed", "run", str(config), "--format", "jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(sim),
    )
    with reaped(process):
        first = [process.stdout.readline() for _ in range(20)]
        process.send_signal(signal.SIGINT)
        # read on through the same buffered stream (communicate() would skip its read-ahead)
        rest = process.stdout.read()
        errors = process.stderr.read()
        process.wait(timeout=30)
    assert process.returncode == 0, errors
    lines = first + rest.splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    assert all(json.loads(line)["trade_id"] for line in lines)


def test_check_exit_codes(tmp_path, capsys, monkeypatch):
    """check: 0 and a summary for a valid file; 2 and every problem for an invalid one."""
    fixtures = ROOT / "tests" / "fixtures" / "config"
    monkeypatch.setenv("RAILS_API_KEY", "k")
    monkeypatch.setenv("RAILS_API_SECRET", "s")
    assert main(["check", str(fixtures / "all_venues.yaml")]) == 0
    assert "ok, 4 feed(s): dopp-1 (dopp), synfutures-1 (synfutures), snx (synthetix), rails-1 (rails)" in capsys.readouterr().out
    assert main(["check", str(fixtures / "many_problems.yaml")]) == 2
    out = capsys.readouterr().out
    assert "8 problem(s)" in out and "did you mean 'venue'?" in out
    assert main(["run", str(fixtures / "many_problems.yaml")]) == 2  # run refuses it too, one line per problem
    assert "many_problems.yaml:12: extra" in capsys.readouterr().err


def test_venues_lists_parameters_and_defaults(capsys):
    """venues names each venue with its parameters, their defaults, and what changes at run time."""
    assert main(["venues"]) == 0
    out = capsys.readouterr().out
    assert "synthetix  (default wss://papi.synthetix.io)" in out
    assert "limit              default 50" in out
    assert "pairs              required  (subscribe/unsubscribe at run time)" in out
    assert "api_secret         required" in out


def test_demo_with_a_config_runs_it_against_the_simulator(capsys):
    """demo --config points the file's feeds at the simulator, credentials included."""
    assert main(["demo", "--config", str(ROOT / "examples" / "feeds.yaml"), "--limit", "40", "--format", "jsonl"]) == 0
    venues = {json.loads(line)["venue"] for line in capsys.readouterr().out.splitlines()}
    assert len(venues) >= 3


def test_status_line_on_a_terminal_and_quiet(tmp_path, make_sim):
    """With stderr on a terminal, run shows trades/s, lag and reconnects; --quiet hides it."""
    import pty

    sim = make_sim(rate=100, history=5, max_connects=None)
    config = write_config(tmp_path, sim)
    for quiet in (False, True):
        master, slave = pty.openpty()
        args = [sys.executable, "-m", "tradefeed", "run", str(config), "--format", "jsonl", "--duration", "2.5"]
        process = subprocess.Popen(
            args + (["--quiet"] if quiet else []), stdout=subprocess.DEVNULL, stderr=slave, env=cli_env(sim)
        )
        os.close(slave)
        seen = b""
        try:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            assert process.wait(30) == 0
            os.close(master)
        text = seen.decode(errors="replace")
        if quiet:
            assert "reconnects" not in text
        else:
            assert "/s lag" in text and "reconnects 0" in text and "dopp" in text


def test_query_prints_the_last_trades_per_symbol(tmp_path, capsys, make_sim, make_manager, collector):
    """A run into a SQLite sink, then `tradefeed query DB --last 3`: three trades per symbol."""
    from tradefeed.sinks.sqlite import SQLiteSink

    sim = make_sim(rate=0, history=60)
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(SQLiteSink(tmp_path / "trades.db"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
    assert main(["query", str(tmp_path / "trades.db"), "--last", "3", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    symbols = {t.symbol for t in collector.trades}
    assert len(rows) == sum(min(3, sum(t.symbol == s for t in collector.trades)) for s in symbols)
    for symbol in symbols:
        mine = [t.to_dict() for t in collector.trades if t.symbol == symbol][-3:]
        assert [r for r in rows if r["symbol"] == symbol] == mine
    assert main(["query", str(tmp_path / "missing.db")]) == 2


def test_sim_admin_endpoint_injects_faults(make_manager, collector):
    """`tradefeed sim --admin-port 0` prints its admin URL; POST /faults/drop drops the client."""
    import requests

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradefeed", "sim", "--venue", "dopp", "--rate", "50", "--admin-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        venue, url = proc.stdout.readline().split()
        label, admin = proc.stdout.readline().split()
        assert label == "admin" and admin.startswith("http://127.0.0.1:")
        manager = make_manager(backoff=0)  # no retries: a drop ends the feed visibly
        collector.attach(manager)
        manager.add_feed("dopp", url=url)
        with manager:
            assert collector.wait_trades(5)
            answer = requests.post(admin + "/faults/drop", params={"venue": "dopp"}, timeout=10)
            assert answer.status_code == 200 and answer.json()
            assert collector.wait_status(Status.DISCONNECTED)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_run_limit_applies_to_the_config_sinks_too(tmp_path, make_sim, capsys):
    """run --limit N with file and SQLite outputs: each sink gets exactly the N trades printed,
    although the first frame (a snapshot of 20) carries more in one batch."""
    from tradefeed.sinks.sqlite import read_trades

    sim = make_sim(rate=0, history=30)
    jsonl, db = tmp_path / "trades.jsonl", tmp_path / "trades.db"
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n  - {venue: dopp, url: '%s'}\n"
        "outputs:\n  - {type: stdout, format: jsonl}\n  - {type: file, path: '%s'}\n  - {type: sqlite, path: '%s'}\n"
        % (sim.url("dopp"), jsonl, db)
    )
    assert main(["run", str(config), "--limit", "7"]) == 0
    printed = [json.loads(line)["trade_id"] for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 7
    assert [json.loads(line)["trade_id"] for line in jsonl.read_text().splitlines()] == printed
    assert sorted(t.trade_id for t in read_trades(db)) == sorted(printed)


def test_run_of_an_empty_shard_exits_zero_at_once_with_a_warning(tmp_path):
    """run --shard 3/3 of a two-feed config (shards 1 and 2 take one each): a warning and exit 0,
    not an idle process."""
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n  - {venue: dopp, url: 'ws://127.0.0.1:9', currency: BTC}\n"
        "  - {venue: dopp, url: 'ws://127.0.0.1:9', currency: ETH}\n"
    )
    result = run_cli("run", str(config), "--shard", "3/3", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "shard 3/3 has no feeds" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_abandons_a_slow_stop(tmp_path, make_sim, signum, code):
    """A file output on a FIFO nobody reads holds the stop up: the first signal starts the stop
    (which says so), the second abandons it and the run exits at once with 128 + the signal
    number, without a traceback."""
    sim = make_sim(rate=0, history=30)
    fifo = tmp_path / "stuck.jsonl"
    os.mkfifo(fifo)  # opening it for writing blocks the dispatcher until a reader comes: never
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n  - {venue: dopp, url: '%s'}\n"
        "outputs:\n  - {type: stdout, format: jsonl}\n  - {type: file, path: '%s'}\n" % (sim.url("dopp"), fifo)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tradefeed", "run", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    out, err = PipeLines(process.stdout), PipeLines(process.stderr)
    try:
        assert out.wait_for("trade_id"), "no trade printed"  # then the sink blocks on the FIFO
        process.send_signal(signum)
        assert err.wait_for("again to abandon"), err.rest()
        process.send_signal(signum)
        start = time.monotonic()
        assert process.wait(timeout=10) == code, err.rest()
        assert time.monotonic() - start < 5.0  # well inside the 10 s a stuck stop would take
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in err.rest()
    out.rest()
    process.stdout.close()
    process.stderr.close()


def wait_for_health(url: str, timeout: float = 30.0) -> dict:
    """Poll /healthz (nothing signals it) until it answers 200, bounded; its body."""
    import urllib.error
    import urllib.request

    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            err.close()
            if time.monotonic() > deadline:
                raise
        pause.wait(0.05)


def test_run_serves_metrics_and_writes_json_log_lines(tmp_path, make_sim):
    """run --metrics-port 0 --log-format json: every stderr line is one JSON record (the metrics
    URL among them, status records with feed/venue/status, no credential anywhere); /metrics
    names every feed and /healthz turns 200; SIGTERM exits 0 and closes the port."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    sim = make_sim(rate=50, history=5, max_connects=None)
    config = write_config(tmp_path, sim)
    process = subprocess.Popen(
        [sys.executable, "-m", "tradefeed", "-v", "run", str(config), "--format", "jsonl",
         "--metrics-port", "0", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(sim),
    )  # fmt: skip
    out, err = PipeLines(process.stdout), PipeLines(process.stderr)
    try:
        assert err.wait_for("/metrics"), err.rest()
        announced = json.loads(next(line for line in err.lines if "/metrics" in line))["message"]
        url = re.search(r"http://127\.0\.0\.1:\d+", announced).group(0)
        body = wait_for_health(url)
        assert body["status"] == "ok" and sorted(body["feeds"]) == ["dopp-1", "rails-1", "synfutures-1", "synthetix-1"]
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        feeds = {s.labels["feed"] for s in families["tradefeed_feed_up"].samples if s.value == 1}
        assert feeds == {"dopp-1", "rails-1", "synfutures-1", "synthetix-1"}
        assert out.wait_for("trade_id")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, err.rest()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.rest()
    out.rest()
    process.stdout.close()
    process.stderr.close()
    entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(e) and e["time"].endswith("Z") for e in entries)
    assert any(e.get("status") == "connected" and e.get("feed") == "rails-1" and e.get("venue") == "rails" for e in entries)
    key, secret = sim.credentials("rails")
    assert key not in text and secret not in text
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/metrics", timeout=10)


def test_yaml_logging_format_and_settings_metrics(tmp_path, make_sim):
    """logging: {format: json} and settings: {metrics: {port: 0}} do what the flags do; a
    configuration error under --log-format json is a JSON record too; --metrics-host alone is
    a usage error."""
    sim = make_sim(rate=50, history=5)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n  - {venue: dopp, url: '%s'}\nsettings:\n  metrics: {port: 0}\nlogging: {level: INFO, format: json}\n"
        % sim.url("dopp")
    )
    result = run_cli("run", str(config), "--format", "jsonl", "--duration", "1")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert any("/metrics" in e["message"] and e["logger"] == "tradefeed.manager" for e in entries)
    assert any("metrics server" in e["message"] and "closed" in e["message"] for e in entries)
    bad = run_cli("run", str(tmp_path / "missing.yaml"), "--log-format", "json")
    assert bad.returncode == 2
    (entry,) = [json.loads(line) for line in bad.stderr.splitlines()]
    assert entry["level"] == "ERROR" and "cannot read" in entry["message"]
    plain = tmp_path / "plain.yaml"
    plain.write_text("feeds:\n  - {venue: dopp, url: '%s'}\n" % sim.url("dopp"))
    hostless = run_cli("run", str(plain), "--metrics-host", "0.0.0.0")
    assert hostless.returncode == 2 and "--metrics-host needs --metrics-port" in hostless.stderr
