"""Runs the scenarios: a server process, then one consumer process per measurement.

Consumers alternate within a repetition (the order rotates from one repetition to the
next, so none always runs first), and ratios are taken within a repetition, so slow
drift of a shared machine affects the floor and the others alike.
"""

from __future__ import annotations

import array
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Callable, Sequence

from .consumers import STAMPLESS
from .job import Job

__all__ = [
    "LATENCY_POINTS",
    "Scenario",
    "ServerProcess",
    "idle",
    "latency",
    "percentile",
    "pin",
    "run_job",
    "throughput",
    "throughput_timeout",
]

REPO = Path(__file__).resolve().parent.parent
#: a consumer that had not finished after this many seconds (plus its job's own
#: timeout) is killed and reported as failed
_GRACE = 60.0

#: the latency figures of a run: name and percentile of send-to-callback times
LATENCY_POINTS = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0))

Log = Callable[[str], None]

#: ``--pin``: the CPUs of the server process and of every consumer process (None: the
#: kernel places them, and a 2-core machine's figures then depend on where it did)
_PINNED: tuple[set[int], set[int]] | None = None


def pin(server_cpu: int = 0, consumer_cpu: int = 1) -> None:
    """Run servers on *server_cpu* and consumers on *consumer_cpu* from now on: one
    core each, like a client whose venue is another machine.  Steadier figures; note
    that a client's threads then share its one core.

    :raises ValueError: this process may not use both CPUs.
    """
    global _PINNED
    allowed = os.sched_getaffinity(0)
    if server_cpu == consumer_cpu or not {server_cpu, consumer_cpu} <= allowed:
        raise ValueError("--pin needs two distinct CPUs among %s" % sorted(allowed))
    _PINNED = ({server_cpu}, {consumer_cpu})


def _on_cpus(which: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (0: a server, 1: a consumer), if pinning."""
    if _PINNED is None:
        return None
    cpus = _PINNED[which]
    return lambda: os.sched_setaffinity(0, cpus)


def _quiet(line: str) -> None:
    """The default progress log: none."""


def _child_env() -> dict[str, str]:
    """The environment of every child: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Scenario:
    """One measured load and what every run of it returned."""

    #: ``throughput``, ``latency``, ``idle`` or ``soak``
    mode: str
    #: the load's settings: per_frame and trades; rate and trades; connections and window;
    #: soak: trades, per_frame, instruments and sample_every
    params: dict[str, Any]
    #: per repetition, consumer name -> the consumer's result (``consumers.run_job``);
    #: latency runs add ``latency_us`` (:data:`LATENCY_POINTS`) and ``server_rate``
    runs: list[dict[str, dict[str, Any]]] = field(default_factory=list)


class ServerProcess:
    """A ``benchmarks.server`` process: ``with ServerProcess("burst", ...) as server:``.

    Started on entry (returns once it listens); ended on exit by closing its stdin.
    """

    def __init__(self, *args: object) -> None:
        self._args = [str(a) for a in args]
        self._proc: subprocess.Popen[str] | None = None
        #: the port it listens on
        self.port = 0
        #: bytes it streams to each client after the upgrade (burst servers)
        self.stream_bytes = 0

    def __enter__(self) -> "ServerProcess":
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=_child_env(),
            preexec_fn=_on_cpus(0),
        )
        words = self._stdout.readline().split()
        if len(words) != 3 or words[0] != "ready":
            self.__exit__(None, None, None)
            raise RuntimeError("benchmark server %s did not start" % " ".join(self._args))
        self.port, self.stream_bytes = int(words[1]), int(words[2])
        return self

    @property
    def _stdout(self) -> IO[str]:
        assert self._proc is not None and self._proc.stdout is not None
        return self._proc.stdout

    def url(self, path: str = "") -> str:
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def wait_sent(self, run: str) -> float | None:
        """Block until the paced server has finished *run*; its achieved frames per
        second, or None if the client went away first or the server ended."""
        figures = self.wait_report(run)
        return float(figures[0]) if figures else None

    def wait_report(self, run: str) -> list[str] | None:
        """Block until the server has finished *run* (paced and soak servers); the
        words after the run's name on its ``sent`` line, or None if the client went
        away first or the server ended."""
        for line in self._stdout:
            words = line.split()
            if len(words) >= 2 and words[1] == run:
                return words[2:] if words[0] == "sent" else None
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._stdout.close()


def run_job(job: Job) -> dict[str, Any]:
    """Run *job* in a fresh consumer process and return its result; a process that
    fails or hangs becomes a result with ``errors``."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.consumers"],
            input=job.to_json(),
            capture_output=True,
            text=True,
            timeout=job.timeout + _GRACE,
            cwd=REPO,
            env=_child_env(),
            preexec_fn=_on_cpus(1),
        )
    except subprocess.TimeoutExpired:
        return {"consumer": job.consumer, "counted": 0, "complete": False, "errors": ["killed: hung"]}
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = done.stderr.strip().splitlines()[-3:]
        return {
            "consumer": job.consumer,
            "counted": 0,
            "complete": False,
            "errors": ["exit status %d: %s" % (done.returncode, " | ".join(tail))],
        }
    return result


def _rotated(names: list[str], repetition: int) -> list[str]:
    k = repetition % len(names)
    return names[k:] + names[:k]


def throughput_timeout(trades: int) -> float:
    """Seconds a consumer is given to count *trades* trades."""
    return max(60.0, trades / 2000)  # even a slow consumer manages 2,000 trades/s


def throughput(
    consumers: list[str],
    trades: int,
    per_frame: int,
    repeat: int,
    *,
    verify: bool = False,
    log: Log = _quiet,
) -> Scenario:
    """Every consumer counts *trades* trades sent as fast as the socket takes them.

    :param verify: also record every trade id, so that results carry ``missing`` and
        ``duplicates`` (slower; for tests).
    """
    scenario = Scenario("throughput", {"per_frame": per_frame, "trades": trades})
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ServerProcess(
        "burst", "--trades", trades, "--per-frame", per_frame
    ) as server:
        for repetition in range(repeat):
            results = {}
            for name in _rotated(consumers, repetition):
                stamps = os.path.join(tmp, name + ".recv") if verify and name not in STAMPLESS else None
                job = Job(name, server.url(), trades, throughput_timeout(trades), stamps, server.stream_bytes)
                results[name] = result = run_job(job)
                rate = trades / result["elapsed_s"] if result.get("complete") else 0.0
                log("throughput %d/frame, repetition %d: %-18s %10.0f trades/s" % (per_frame, repetition + 1, name, rate))
            scenario.runs.append(results)
    return scenario


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile *p* (0-100) of the sorted sequence *ordered*."""
    rank = math.ceil(round(len(ordered) * p / 100, 6))  # rounded first: 3000 * 99.9 is not exact
    return ordered[min(len(ordered), max(1, rank)) - 1]


def _latencies(send_file: str, recv_file: str, warmup: int) -> list[int]:
    """Receive minus send time of every trade after the first *warmup* (ns)."""
    sent, received = array.array("q"), array.array("q")
    for values, path in ((sent, send_file), (received, recv_file)):
        with open(path, "rb") as data:
            values.frombytes(data.read())
    return [r - s for s, r in zip(sent[warmup:], received[warmup:]) if r]


def latency(consumers: list[str], rate: int, seconds: float, repeat: int, *, log: Log = _quiet) -> Scenario:
    """The server paces one-trade frames at *rate* per second for *seconds*; each
    consumer stamps every trade on arrival.  The first tenth is warm-up, not counted."""
    trades = max(10, int(rate * seconds))
    warmup = trades // 10
    scenario = Scenario("latency", {"rate": rate, "trades": trades, "warmup": warmup})
    named = [n for n in consumers if n not in STAMPLESS]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ServerProcess(
        "paced", "--trades", trades, "--rate", rate, "--log-dir", tmp
    ) as server:
        for repetition in range(repeat):
            results = {}
            for name in _rotated(named, repetition):
                run = "%s-%d" % (name, repetition)
                recv_file = os.path.join(tmp, run + ".recv")
                job = Job(name, server.url("/run/" + run), trades, seconds * 10 + 30, recv_file)
                results[name] = result = run_job(job)
                # a consumer that received anything was served: wait for the server's log
                server_rate = server.wait_sent(run) if result.get("counted") else None
                samples = []
                if server_rate is not None and os.path.exists(recv_file):
                    samples = sorted(_latencies(os.path.join(tmp, run + ".send"), recv_file, warmup))
                if samples:
                    result["server_rate"] = server_rate
                    result["latency_us"] = {key: percentile(samples, p) / 1000 for key, p in LATENCY_POINTS}
                    p99 = result["latency_us"]["p99"]
                    log("latency %d frames/s, repetition %d: %-18s p99 %8.0f us" % (rate, repetition + 1, name, p99))
                else:
                    log("latency %d frames/s, repetition %d: %-18s failed" % (rate, repetition + 1, name))
            scenario.runs.append(results)
    return scenario


def idle(consumers: list[str], connections: int, window: float, *, log: Log = _quiet) -> Scenario:
    """Each consumer opens *connections* quiet connections and is measured for *window*
    seconds once all are open (one run each: a steady state, not a race)."""
    scenario = Scenario("idle", {"connections": connections, "window": window})
    with ServerProcess("idle", "--connections", connections) as server:
        results = {}
        for name in consumers:
            job = Job(name, server.url(), timeout=60.0 + connections / 20, connections=connections, window=window)
            results[name] = result = run_job(job)
            log(
                "idle %d connections: %-12s %s"
                % (connections, name, "%.2f%% CPU" % result["cpu_percent"] if "cpu_percent" in result else "failed")
            )
        scenario.runs.append(results)
    return scenario
