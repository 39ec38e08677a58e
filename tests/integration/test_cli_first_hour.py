"""A new user's first hour, from the shell alone: the simulator as a process, every
command as a subprocess, and each mistake answered with one line and its exit code."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from .conftest import PipeLines, reaped

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
VENUES = {"dopp", "synfutures", "synthetix", "rails"}


def tradefeed(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``tradefeed ARGS`` as a user types it (``python -m tradefeed``), to completion."""
    return subprocess.run(
        [sys.executable, "-m", "tradefeed", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


@contextlib.contextmanager
def sim_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``tradefeed sim ARGS`` running until the block ends (then SIGTERM, exit 0), and
    what it printed up to "simulator running"."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tradefeed", "sim", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    with reaped(process):
        out, err = PipeLines(process.stdout), PipeLines(process.stderr)
        assert out.wait_for("simulator running"), err.rest()
        yield process, list(out.lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, err.rest()
        out.rest(), err.rest()


def free_port() -> int:
    """A port nothing listens on (the OS chose it, then it was released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sim_write_config_then_check_run_record_replay_every_venue(tmp_path):
    """`sim --write-config` writes a config that check, run, record and replay use as is:
    trades from all four venues, the Rails and Synthetix account streams included."""
    config = tmp_path / "conf" / "sim.yaml"  # its directory is created
    with sim_process("--rate", "50", "--write-config", str(config)) as (_, printed):
        assert any(line.startswith("wrote %s" % config) for line in printed)
        check = tradefeed("check", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        assert "ok, 5 feed(s): dopp-1 (dopp), rails-1 (rails)" in check.stdout
        run = tradefeed("run", str(config), "--format", "jsonl", "--duration", "3")
        assert run.returncode == 0 and run.stderr == "", run.stderr
        streams = {(t["venue"], t["stream"]) for t in map(json.loads, run.stdout.splitlines())}
        assert {venue for venue, _ in streams} == VENUES
        assert {("rails", "user"), ("synthetix", "user")} <= streams
        recording = tmp_path / "recordings" / "session.jsonl"
        record = tradefeed("record", str(config), "--out", str(recording), "--duration", "2")
        assert record.returncode == 0 and record.stderr == "", record.stderr
        assert record.stdout.startswith("recorded ") and "of 5 feed(s)" in record.stdout
    replay = tradefeed("replay", str(recording), "--max", "--format", "jsonl")
    assert replay.returncode == 0, replay.stderr
    assert {json.loads(line)["venue"] for line in replay.stdout.splitlines()} == VENUES


def test_sim_prints_a_config_with_the_simulators_own_credentials(tmp_path):
    """Without --write-config, `sim` prints the same YAML after its URLs: the Rails token
    endpoint and key pair and the Synthetix wallet, marked as the simulator's."""
    with sim_process("--venue", "rails", "--venue", "synthetix", "--rate", "20") as (_, printed):
        assert printed[0].split()[0] == "rails" and printed[0].split()[1].startswith("ws://127.0.0.1:")
        start = next(i for i, line in enumerate(printed) if line.startswith("feeds:"))
        document = yaml.safe_load("".join(printed[start:-1]))
        rails, public, user = document["feeds"]
        assert rails["auth_url"].startswith("http://127.0.0.1:") and rails["api_key"] and rails["api_secret"]
        assert user["stream"] == "user" and user["subaccount_id"] and user["private_key"].startswith("0x")
        assert sum("the simulator's test credential" in line for line in printed) == 3
        path = tmp_path / "pasted.yaml"
        path.write_text("".join(printed[start:-1]))
        run = tradefeed("run", str(path), "--format", "jsonl", "--limit", "20")
        assert run.returncode == 0 and len(run.stdout.splitlines()) == 20, run.stderr


def test_write_config_replaces_only_a_file_it_wrote(tmp_path):
    """A hand-written file in the way is one line and exit 2, before anything is served."""
    mine = tmp_path / "feeds.yaml"
    mine.write_text("feeds:\n  - venue: dopp\n")
    result = tradefeed("sim", "--write-config", str(mine))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "tradefeed: error: %s exists and was not written by tradefeed sim; give another FILE, or remove it first\n" % mine
    assert mine.read_text() == "feeds:\n  - venue: dopp\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["sim", "--rate", "-5"], "tradefeed sim: error: argument --rate: must be a number of trades per second >= 0, not '-5'"),
        (["sim", "--port", "99999"], "tradefeed sim: error: argument --port: must be a port number within 0..65535"),
        (["demo", "--rate", "x"], "tradefeed demo: error: argument --rate: must be a number of trades per second >= 0, not 'x'"),
        (["demo", "--seed", "1.5"], "tradefeed demo: error: argument --seed: must be a whole number, not '1.5'"),
        (["run", "f.yaml", "--duration", "0"], "tradefeed run: error: argument --duration: must be a number > 0, not '0'"),
        (["record", "f.yaml"], "tradefeed record: error: the following arguments are required: --out"),
        (["query", "t.db", "--last", "0"], "tradefeed query: error: argument --last: must be a whole number >= 1, not '0'"),
    ],
)
def test_option_mistakes_are_one_line_and_exit_2(args, message):
    """Every command checks its options with the same types: one line naming the option
    and --help, exit 2, no traceback."""
    result = tradefeed(*args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message) and lines[0].endswith("--help)"), result.stderr


@pytest.mark.parametrize("option", ["--port", "--admin-port"])
def test_a_port_in_use_is_one_line_and_exit_2(option):
    """A simulator port another process holds: one line naming it and the fix."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tradefeed("sim", "--venue", "dopp", option, str(port))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert ":%d: Address already in use; choose another port" % port in result.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_refusal_is_one_line_naming_what_the_feed_asked_for(tmp_path, make_sim):
    """An unknown Dopp instrument, a Rails market the venue refuses, a token endpoint
    that is not one: each ends its feed with one line naming the parameter, exit 1."""
    sim = make_sim(rate=20, history=5, venues=["dopp", "rails"])
    key, secret = sim.credentials("rails")
    rails = "url: %s\n    api_key: %s\n    api_secret: %s\n" % (sim.url("rails"), key, secret)
    cases = [
        (
            "feeds:\n  - venue: dopp\n    url: %s\n    instrument_name: NOPE-PERP\n" % sim.url("dopp"),
            "feed dopp-1 ended: closed by the venue with code 1008 (invalid filter): "
            "check this feed's instrument_name 'NOPE-PERP'",
        ),
        (
            "feeds:\n  - venue: rails\n    market: NOPE-X\n    auth_url: %s\n    %s" % (sim.auth_url("rails"), rails),
            "feed rails-1 ended: handshake refused with HTTP 400: check this feed's market 'NOPE-X' (subscriptions publicTrades)",
        ),
        (
            "feeds:\n  - venue: rails\n    market: ALL\n    auth_url: %s/nope\n    %s" % (sim.http_url("rails"), rails),
            "feed rails-1 ended: token endpoint %s/nope answered HTTP 404 (not found): check auth_url" % sim.http_url("rails"),
        ),
    ]
    for number, (document, message) in enumerate(cases):
        config = write(tmp_path / ("case%d.yaml" % number), document)
        result = tradefeed("run", str(config), "--duration", "20")  # each ends long before
        assert result.returncode == 1
        assert result.stderr == "tradefeed: error: %s\n" % message
        assert result.stdout == ""  # not even a table header


def test_a_feed_that_never_connects_warns_and_the_run_fails(tmp_path):
    """Nothing listening: a warning with the reason after the first attempt, and at the
    end one line saying no feed connected, exit 1 (not silence and 0)."""
    config = write(tmp_path / "feeds.yaml", "feeds:\n  - venue: dopp\n    url: ws://127.0.0.1:%d\n" % free_port())
    for command in (["run", str(config)], ["record", str(config), "--out", str(tmp_path / "rec.jsonl")]):
        result = tradefeed(*command, "--duration", "2.5")
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 2, lines
        assert "WARNING" in lines[0] and "dopp-1 not connected yet: cannot connect to 127.0.0.1:" in lines[0]
        assert "retrying in" in lines[0]
        assert lines[1].startswith("tradefeed: error: no feed connected (dopp-1: cannot connect to 127.0.0.1:")


def test_verbose_status_reads_as_sentences(tmp_path, make_sim):
    """-v shows each feed's status as words, not dicts with 16-digit floats."""
    sim = make_sim(rate=20, history=5, venues=["dopp"])
    config = write(tmp_path / "feeds.yaml", "feeds:\n  - venue: dopp\n    url: %s\n" % sim.url("dopp"))
    result = tradefeed("-v", "run", str(config), "--duration", "1.5", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert "dopp-1 connecting to %s/" % sim.url("dopp") in result.stderr
    assert "dopp-1 connected\n" in result.stderr and "dopp-1 stopped\n" in result.stderr
    assert "{" not in result.stderr


def test_every_command_is_quiet_in_a_pipe(tmp_path, make_sim):
    """A reader that goes away (`| head -1`) ends each command quietly with exit 0."""
    sim = make_sim(rate=200, history=50, venues=["dopp"])
    config = write(tmp_path / "feeds.yaml", "feeds:\n  - venue: dopp\n    url: %s\n" % sim.url("dopp"))
    recording = tmp_path / "rec.jsonl"
    assert tradefeed("record", str(config), "--out", str(recording), "--limit", "40").returncode == 0
    database = tmp_path / "trades.db"
    write(tmp_path / "db.yaml", config.read_text() + "outputs:\n  - {type: sqlite, path: %s}\n" % database)
    assert tradefeed("run", str(tmp_path / "db.yaml"), "--limit", "50").returncode == 0
    commands = [
        ["venues"],
        ["run", str(config)],
        ["demo", "--rate", "200"],
        ["replay", str(recording), "--max"],
        ["query", str(database), "--last", "50"],
    ]
    for command in commands:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradefeed", *command],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )  # fmt: skip
        with reaped(process):
            assert process.stdout.readline()
            process.stdout.close()  # the reader is gone
            errors = process.stderr.read()
            assert process.wait(timeout=30) == 0, (command, errors)
        assert errors == "", (command, errors)


def test_output_files_get_their_directories_and_a_bad_path_is_one_line(tmp_path, make_sim):
    """run/replay --output and record --out create missing directories (as the sinks
    do); --output FILE.csv writes CSV; a path that is a directory is one line, exit 2."""
    sim = make_sim(rate=100, history=20, venues=["dopp"])
    config = write(tmp_path / "feeds.yaml", "feeds:\n  - venue: dopp\n    url: %s\n" % sim.url("dopp"))
    csv_file = tmp_path / "a" / "b" / "trades.csv"
    assert tradefeed("run", str(config), "--output", str(csv_file), "--limit", "5").returncode == 0
    assert csv_file.read_text().splitlines()[0].startswith("time_utc,timestamp_ms,venue")
    recording = tmp_path / "c" / "rec.jsonl"
    assert tradefeed("record", str(config), "--out", str(recording), "--limit", "10").returncode == 0
    replayed = tmp_path / "d" / "replayed.jsonl"
    assert tradefeed("replay", str(recording), "--max", "--output", str(replayed)).returncode == 0
    assert json.loads(replayed.read_text().splitlines()[0])["venue"] == "dopp"
    result = tradefeed("run", str(config), "--output", str(tmp_path), "--limit", "5")
    assert result.returncode == 2
    assert result.stderr == "tradefeed: error: cannot write %s: it is a directory; give a file name\n" % tmp_path


def test_filters_that_match_nothing_say_what_exists(tmp_path, make_sim):
    """replay --feed with a name the recording lacks (exit 2) and query --venue with none
    stored (a warning) both name what there is."""
    sim = make_sim(rate=100, history=20, venues=["dopp"])
    config = write(tmp_path / "feeds.yaml", "feeds:\n  - venue: dopp\n    url: %s\n" % sim.url("dopp"))
    recording = tmp_path / "rec.jsonl"
    assert tradefeed("record", str(config), "--out", str(recording), "--limit", "10").returncode == 0
    replay = tradefeed("replay", str(recording), "--feed", "dop-1")
    assert replay.returncode == 2
    assert replay.stderr == "tradefeed: error: %s holds no feed named 'dop-1'; it holds dopp-1\n" % recording
    database = tmp_path / "trades.db"
    write(tmp_path / "db.yaml", config.read_text() + "outputs:\n  - {type: sqlite, path: %s}\n" % database)
    assert tradefeed("run", str(tmp_path / "db.yaml"), "--limit", "5").returncode == 0
    query = tradefeed("query", str(database), "--venue", "rails")
    assert query.returncode == 0 and query.stdout == ""
    assert "no trades of venue 'rails' in %s; it holds dopp " % database in query.stderr
