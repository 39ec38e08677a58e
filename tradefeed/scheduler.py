"""One thread that runs every periodic job of a manager: transport pings, the
adapters' ``tick()`` heartbeats, and (later) watchdogs.

One shared thread instead of websocket-client's ping thread per connection keeps a
thousand idle feeds at one thread.  Jobs must be quick and must not block: they send a
small frame or shut a socket down.  A job returns the seconds until its next run, or
None to end itself.  Waiting is ``Condition.wait(timeout)`` until the earliest job is
due; adding a job or stopping wakes the thread at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

__all__ = ["Scheduler", "Job"]

log = logging.getLogger(__name__)

#: a job gets ``time.monotonic()`` and returns seconds to its next run, or None to end
Job = Callable[[float], "float | None"]


class Scheduler:
    """Runs jobs at monotonic deadlines on one daemon thread (``tradefeed-scheduler``)."""

    def __init__(self, name: str = "tradefeed-scheduler") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (due, tiebreak, job id)
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._tiebreak = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """End the thread; True when it has ended within *timeout*."""
        with self._cond:
            self._stopping = True
            self._jobs.clear()
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
            self._thread = None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def add(self, delay: float, job: Job) -> int:
        """Run *job* in *delay* seconds; returns an id for :meth:`cancel`."""
        with self._cond:
            job_id = next(self._ids)
            self._jobs[job_id] = job
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._tiebreak), job_id))
            self._cond.notify()
        return job_id

    def cancel(self, job_id: int) -> None:
        """Forget a job (a no-op if it already ended)."""
        with self._cond:
            self._jobs.pop(job_id, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, job_id = heapq.heappop(self._heap)
                        job = self._jobs.get(job_id)
                        if job is not None:
                            break
                        continue
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
            try:
                again = job(now)
            except Exception:  # noqa: BLE001 - a failing job must not end the others
                log.exception("scheduled job %r failed; it will not run again", job)
                again = None
            with self._cond:
                if again is None or job_id not in self._jobs:
                    self._jobs.pop(job_id, None)
                else:
                    heapq.heappush(self._heap, (time.monotonic() + again, next(self._tiebreak), job_id))
