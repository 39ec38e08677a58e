"""Idle connections: what N open, quiet connections cost a client process.

The server (``server.py idle``) accepts and sends nothing; keepalive is each client's
default (tradefeed's ``ping_interval=20``, websockets' 20 s pings).  A client opens N
connections, waits until every one is open, then measures over a window: CPU (% of one
core), threads (as the kernel counts them), and resident memory above what the process
held before opening any (the libraries already imported), per connection.

- ``tradefeed``: one FeedManager (default settings, dispatcher thread) with N Dopp feeds;
- ``websockets``: N ``websockets`` asyncio client connections on one event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .job import Job
from .procstat import os_threads, peak_rss_kib, rss_kib

__all__ = ["IDLE_CONSUMERS", "run_idle"]

#: display names, in table order
IDLE_CONSUMERS = {
    "tradefeed": "tradefeed (FeedManager defaults)",
    "websockets": "websockets asyncio",
}


class Window:
    """The measurement: :meth:`opened` once every connection is open, then
    :meth:`begin`, let the window pass, :meth:`end`."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.baseline_kib = rss_kib()
        self._start = time.perf_counter()
        self._cpu = self._wall = 0.0
        self.result: dict[str, Any] = {"connections": connections, "opened": 0}

    def opened(self, count: int) -> None:
        self.result["opened"] = count
        self.result["connect_s"] = time.perf_counter() - self._start

    def begin(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def end(self) -> None:
        cpu, wall = time.process_time() - self._cpu, time.perf_counter() - self._wall
        rss = rss_kib()
        self.result.update(
            cpu_percent=100.0 * cpu / wall,
            threads=os_threads(),
            rss_kib=rss,
            baseline_kib=self.baseline_kib,
            kib_per_connection=(rss - self.baseline_kib) / self.connections,
        )


def _tradefeed(url: str, connections: int, window: float, timeout: float) -> dict[str, Any]:
    from tradefeed import FeedManager, Status

    measurement = Window(connections)
    connected: set[str] = set()
    changes: list[str] = []  # status events during the window: a quiet feed has none
    all_open, in_window = threading.Event(), threading.Event()

    def on_status(event: Any) -> None:
        if in_window.is_set():
            changes.append("%s %s" % (event.feed, event.status))
        elif event.status is Status.CONNECTED:
            connected.add(event.feed)
            if len(connected) == connections:
                all_open.set()

    manager = FeedManager()
    manager.on_status(on_status)
    for _ in range(connections):
        manager.add_feed("dopp", url=url)
    manager.start()
    try:
        opened = all_open.wait(timeout)
        measurement.opened(len(connected))
        if opened:
            in_window.set()
            measurement.begin()
            time.sleep(window)
            measurement.end()
            in_window.clear()
    finally:
        if not manager.stop(timeout=30):
            measurement.result["errors"] = ["stop() left threads running after 30 s"]
    measurement.result.update(status_changes=changes[:5], status_change_count=len(changes))
    return measurement.result


async def _websockets(url: str, connections: int, window: float, timeout: float) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    measurement = Window(connections)
    opened = await asyncio.wait_for(asyncio.gather(*(connect(url) for _ in range(connections))), timeout)
    measurement.opened(len(opened))
    measurement.begin()
    await asyncio.sleep(window)  # in the loop, so that keepalive runs as it would
    measurement.end()
    await asyncio.gather(*(ws.close() for ws in opened))
    return measurement.result


def run_idle(job: Job) -> dict[str, Any]:
    """Run an idle job in this process and describe the outcome."""
    result: dict[str, Any] = {"consumer": job.consumer}
    try:
        if job.consumer == "tradefeed":
            result.update(_tradefeed(job.url, job.connections, job.window, job.timeout))
        elif job.consumer == "websockets":
            result.update(asyncio.run(_websockets(job.url, job.connections, job.window, job.timeout)))
        else:
            raise KeyError("no idle consumer %r" % job.consumer)
    except Exception as err:  # reported, not raised: the parent goes on with the others
        result["errors"] = ["%s: %s" % (type(err).__name__, err)]
    result["peak_rss_kib"] = peak_rss_kib()
    return result
