"""A real ``redis-server`` on a unix socket in a test's temporary folder, and reader
processes (``redis_reader.py``) driven from a test.

Both are always stopped and waited for.  Readiness is observed, never guessed: the
server by PING over its socket (a short, bounded series of attempts, which also notices
a server that exited), a reader process by the line it prints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REPO = Path(__file__).resolve().parents[2]
READER_SCRIPT = Path(__file__).with_name("redis_reader.py")
#: a unix socket path must fit in sun_path (108 bytes on Linux)
MAX_SOCKET_PATH = 100


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll *predicate* until it holds or *timeout* seconds pass (for states nothing signals)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval)
    return True


class RedisServer:
    """``redis-server`` on ``<directory>/redis.sock``, no TCP port, no automatic saving.

    ``stop(save=True)`` writes ``dump.rdb`` in *directory*, which the next ``start()``
    loads: a restart that keeps the data, as a production server with persistence would.
    """

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        if len(str(directory / "redis.sock")) > MAX_SOCKET_PATH:
            directory = Path(tempfile.mkdtemp(prefix="redis-"))
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return "unix://%s" % self.socket

    def client(self, **options) -> redis.Redis:
        """A plain redis-py client (no retries: a test sees failures as they are)."""
        return redis.Redis(unix_socket_path=str(self.socket), decode_responses=True, socket_timeout=10, retry=Retry(NoBackoff(), 0), **options)

    def start(self, timeout: float = 10.0) -> "RedisServer":
        assert self.proc is None, "already running"
        # fmt: off
        command = [
            "redis-server", "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]
        # fmt: on
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client(socket_connect_timeout=1) as probe:
                    probe.ping()
                return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            try:  # paces the attempts and notices a server that died
                code = self.proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None or time.monotonic() >= deadline:
                self._reap()
                raise RuntimeError("redis-server did not start (exit %s): %s" % (code, self.log()))

    def stop(self, save: bool = False, timeout: float = 10.0) -> None:
        """SHUTDOWN (SAVE or NOSAVE) and wait for the process; kill it if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                with self.client() as admin:
                    admin.execute_command("SHUTDOWN", "SAVE" if save else "NOSAVE")
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits
        self._reap(timeout)

    def _reap(self, timeout: float = 10.0) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        self.proc = None

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


class ReaderProcess:
    """``redis_reader.py`` in a child process; its stdout lines are collected here.

    The child prints ``ready`` once it joined the group, then ``trade <trade_id>
    <entry_id> <redelivered 0|1>`` for each entry it processed (before acknowledging it).
    Closing its stdin (:meth:`stop`) ends it cleanly.
    """

    def __init__(self, url: str, stream: str, group: str, consumer: str, *, ack: bool = True, claim_idle_ms: int = 30000) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        mode = "ack" if ack else "hold"
        self.consumer = consumer
        self.lines: list[str] = []
        self._stderr: str | None = None
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(READER_SCRIPT), url, stream, group, consumer, mode, str(claim_idle_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self._pump = threading.Thread(target=self._collect, name="test-reader-stdout", daemon=True)
        self._pump.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("EOF")
            self._cond.notify_all()

    @property
    def processed(self) -> list[tuple[str, str, bool]]:
        """``(trade_id, entry_id, redelivered)`` per processed entry, in order."""
        with self._cond:
            rows = [line.split() for line in self.lines if line.startswith("trade ")]
        return [(r[1], r[2], r[3] == "1") for r in rows]

    def wait_for(self, predicate: Callable[["ReaderProcess"], bool], timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self) or "EOF" in self.lines, timeout) and predicate(self)

    def wait_ready(self, timeout: float = 20.0) -> None:
        if not self.wait_for(lambda r: "ready" in r.lines, timeout):
            self.stop()
            raise AssertionError("reader %s did not start: %s" % (self.consumer, self.stderr()))

    def stop(self, timeout: float = 20.0) -> int:
        """Close stdin (the child closes its reader and exits) and wait for it."""
        if self.proc.poll() is None and self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=timeout)
        self._finish(timeout)
        return code

    def kill(self, timeout: float = 20.0) -> int:
        """SIGKILL: no clean-up, no acknowledgement, like a crashed machine."""
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=timeout)
        self._finish(timeout)
        return code

    def _finish(self, timeout: float) -> None:
        if self._stderr is not None:
            return
        self._pump.join(timeout)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stderr = self.proc.stderr.read()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def stderr(self) -> str:
        """What the child wrote to stderr (known once it has been stopped or killed)."""
        return self._stderr[-2000:] if self._stderr is not None else "(running)"
