"""Fixtures for tests against the real simulator over loopback.

Every test gets fresh simulators and managers that are stopped afterwards, and an
autouse check that no tradefeed thread outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from tradefeed import FeedManager, Status, StatusEvent, Trade, TradefeedError
from tradefeed.simulator import Simulator

# The Ctrl-C tests send SIGINT to the processes they start.  A shell starts a background
# job (``bash .ci/run &``, some CI runners) with SIGINT ignored, and a child inherits
# that: it would never see the signal, and each such test would time out.  A handler
# (rather than "ignore") is reset to the default in a child, which then installs Python's
# KeyboardInterrupt as usual.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Collector:
    """Records what callbacks receive and lets a test wait for it, with a timeout."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.errors: list[TradefeedError] = []
        self.statuses: list[StatusEvent] = []
        self.threads: set[int] = set()
        self._cond = threading.Condition()

    def trade(self, trade: Trade) -> None:
        with self._cond:
            self.threads.add(threading.get_ident())
            self.trades.append(trade)
            self._cond.notify_all()

    def error(self, error: TradefeedError) -> None:
        with self._cond:
            self.errors.append(error)
            self._cond.notify_all()

    def status(self, event: StatusEvent) -> None:
        with self._cond:
            self.statuses.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[["Collector"], bool], timeout: float = 15.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_trades(self, n: int, timeout: float = 15.0) -> bool:
        return self.wait_for(lambda c: len(c.trades) >= n, timeout)

    def wait_status(self, status: Status, count: int = 1, timeout: float = 15.0) -> bool:
        return self.wait_for(lambda c: sum(e.status is status for e in c.statuses) >= count, timeout)

    def attach(self, manager: FeedManager) -> "Collector":
        manager.on_trade(self.trade)
        manager.on_error(self.error)
        manager.on_status(self.status)
        return self


def tradefeed_threads() -> list[str]:
    """Names of the client's live threads (the simulator's own thread is not one)."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("tradefeed") and t.name != "tradefeed-sim" and t.is_alive()
    ]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    yield
    assert tradefeed_threads() == []
    assert not any(t.name == "tradefeed-sim" for t in threading.enumerate())


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    sims: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("seed", 1)
        kwargs.setdefault("rate", 0)
        sim = Simulator(**kwargs).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def make_manager() -> Iterator[Callable[..., FeedManager]]:
    managers: list[FeedManager] = []

    def make(**kwargs: Any) -> FeedManager:
        kwargs.setdefault("backoff", None)
        manager = FeedManager(**kwargs)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        assert manager.stop(timeout=10), "threads still running after stop()"


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def xvfb():
    """A virtual X display of our own (Xvfb picks a free display number)."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read_end, 16)
        assert chunk, "Xvfb did not start"
        number += chunk
    os.close(read_end)
    try:
        yield ":" + number.decode().strip()
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def reaped(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """*process*, killed if the test left it running, and its pipes closed."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


class PipeLines:
    """The lines of a child's pipe, read on a thread, so a test can wait for one with a timeout."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), name="test-pipe-reader", daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        """Wait until a line containing *text* arrives (False at EOF or after *timeout* s)."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
        return True

    def wait_for_count(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least *count* lines have arrived (False at EOF or after *timeout* s)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
        return True

    def rest(self, timeout: float = 10.0) -> str:
        """Everything after the lines seen so far, once the pipe has closed."""
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)
