"""tradefeed in a process whose ``select`` module looks like Windows' (no ``poll``, no
``epoll``, no ``POLL*``/``EPOLL*`` names), against the simulator over loopback.

Each test starts a child under ``windows_like.py``, which strips ``select`` before
anything imports it.  On a client that waits with ``select.poll`` the child cannot even
import tradefeed, so every assertion here fails there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tradefeed.simulator import Simulator

from .conftest import reaped

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LAUNCH = [sys.executable, str(HERE / "windows_like.py")]
VENUES = ("dopp", "synfutures", "synthetix", "rails")


def child_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A peer that accepts TCP (the kernel completes the handshake) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as server:
        yield "ws://127.0.0.1:%d" % server.getsockname()[1]


def test_launcher_strips_select_as_on_windows(tmp_path):
    """The launcher itself: in its child, select has only select() and error, and
    selectors falls back to SelectSelector (a check that the other tests test something)."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import select, selectors\n"
        "print(sorted(n for n in dir(select) if not n.startswith('_')), selectors.DefaultSelector.__name__)\n"
    )
    result = subprocess.run([*LAUNCH, str(script)], capture_output=True, text=True, timeout=30, env=child_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['error',", "'select']", "SelectSelector"]


def test_every_venue_streams_stops_and_times_out_without_poll(tmp_path, silent_url):
    """Without select.poll: import; stream all four venues; remove_feed while the others
    stream on; stop() promptly; a silent peer times out on connect_timeout; stop() during
    that handshake returns at once; no thread is left."""
    with Simulator(rate=50, history=10, venues=list(VENUES)) as sim:
        spec = {"feeds": {v: sim.feed_params(v) for v in VENUES}, "silent_url": silent_url}
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        result = subprocess.run(
            [*LAUNCH, str(HERE / "windows_child.py"), str(tmp_path / "spec.json")],
            capture_output=True, text=True, timeout=100, env=child_env(),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, Any] = json.loads(result.stdout)
    assert found["select_has_poll"] is False and found["default_selector"] == "SelectSelector"

    stream = found["stream"]
    assert stream["streamed"], stream["counts"]
    assert all(stream["counts"].get(v, 0) >= 5 for v in VENUES), stream["counts"]
    assert stream["removed"] is True and stream["remove_seconds"] < 5
    assert sorted(stream["feeds_after_removal"]) == ["dopp", "rails", "synthetix"]
    assert stream["kept_streaming"]
    assert stream["stopped_clean"] and stream["stop_seconds"] < 5

    silent = found["silent"]
    assert silent["disconnected"], silent
    assert 1.0 <= silent["seconds"] < 6.0, silent  # connect_timeout=1.0
    assert "timed out" in silent["error"].lower(), silent
    assert silent["stopped_clean"] and silent["stop_seconds"] < 5

    stuck = found["stop_during_handshake"]
    assert stuck["connecting"] and stuck["stopped_clean"], stuck
    assert stuck["stop_seconds"] < 5, stuck  # not the 60 s connect_timeout

    assert found["threads_left"] == []


def test_cli_demo_streams_and_ctrl_c_stops_it_without_poll():
    """``python -m tradefeed demo`` without select.poll: JSON lines of trades; Ctrl-C
    (SIGINT) then stops it with exit 0 and nothing cut mid-line."""
    process = subprocess.Popen(
        [*LAUNCH, "-m", "tradefeed", "demo", "--format", "jsonl", "--rate", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT,
    )  # fmt: skip
    with reaped(process):
        lines = [process.stdout.readline() for _ in range(10)]
        assert all(json.loads(line)["venue"] == "dopp" for line in lines), lines
        process.send_signal(signal.SIGINT)
        # read on through the same buffered stream (communicate() would skip its read-ahead)
        rest, err = process.stdout.read(), process.stderr.read()
        assert process.wait(30) == 0, err
    assert all(json.loads(line)["venue"] == "dopp" for line in rest.splitlines())


def test_tk_example_pump_loop_runs_without_poll(xvfb):
    """examples/tk_tape.py (pump mode on the Tk thread) under the Windows-like select:
    trades reach the window, and it closes cleanly when asked."""
    process = subprocess.Popen(
        [*LAUNCH, str(ROOT / "examples" / "tk_tape.py"), "--duration", "60", "--ready", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(DISPLAY=xvfb),
    )  # fmt: skip
    with reaped(process):
        assert process.stdout.readline().strip() == "ready", process.stderr.read() if process.poll() is not None else ""
        process.send_signal(signal.SIGTERM)  # closes the window like its close button
        assert process.wait(30) == 0, process.stderr.read()
