"""What a benchmark process measures about itself: CPU, memory, threads, fd limit.

Linux only (``/proc/self/status``), like the rest of the suite.
"""

from __future__ import annotations

import resource
import time

__all__ = ["Stopwatch", "os_threads", "peak_rss_kib", "raise_fd_limit", "rss_kib"]


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft open-files limit to at least *needed* (up to the hard
    limit): a thousand sockets do not fit the usual default of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def rss_kib() -> int:
    """Resident memory now, KiB."""
    return _status("VmRSS")


def os_threads() -> int:
    """Threads of this process as the kernel counts them (Python's and any others)."""
    return _status("Threads")


def peak_rss_kib() -> int:
    """Peak resident memory of this process so far, KiB.

    ``VmHWM``, not ``getrusage().ru_maxrss``: Linux carries ``ru_maxrss`` across
    ``execve``, so a child started by a big parent reports the parent's size.
    """
    return _status("VmHWM")


class Stopwatch:
    """Wall-clock and CPU time (every thread of the process) between :meth:`start`
    and :meth:`stop`, in seconds."""

    def __init__(self) -> None:
        self._wall = self._cpu = 0.0
        #: seconds between start() and stop()
        self.elapsed = 0.0
        #: CPU seconds (user + system, all threads) between start() and stop()
        self.cpu = 0.0
        #: stop() was called
        self.stopped = False

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> float:
        """Seconds since :meth:`start`; the watch runs on."""
        return time.perf_counter() - self._wall

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.stopped = True
