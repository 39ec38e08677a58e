"""One thread that runs every periodic job of a manager: transport pings, the
adapters' ``tick()`` heartbeats, and watchdogs.

One shared thread instead of websocket-client's ping thread per connection keeps a
thousand idle feeds at one thread.  Jobs must be quick and must not block: they send a
small frame or shut a socket down.  A job returns the seconds until its next run, or
None to end itself.  Waiting is ``Condition.wait(timeout)`` until the earliest job is
due; adding a job or stopping wakes the thread at once.

Wake-ups are shared: a job due in ``10 * granularity`` seconds or more runs at the first
multiple of ``granularity`` at or after its due time (never early, at most
``granularity`` late, like the kernel's timer slack), so the pings and checks of a
thousand connections, each due at its own instant, run a few at a time in a few
wake-ups a second instead of one wake-up each.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from typing import Callable

__all__ = ["Scheduler", "Job"]

log = logging.getLogger(__name__)

#: a job gets ``time.monotonic()`` and returns seconds to its next run, or None to end
Job = Callable[[float], "float | None"]


class Scheduler:
    """Runs jobs at monotonic deadlines on one daemon thread (``tradefeed-scheduler``).

    :param granularity: seconds; jobs due in at least ten times this are rounded up to
        a multiple of it, so that they share wake-ups (0: exact deadlines).
    """

    def __init__(self, name: str = "tradefeed-scheduler", granularity: float = 0.25) -> None:
        if not granularity >= 0:
            raise ValueError("granularity must be >= 0, not %r" % (granularity,))
        self._name = name
        self._granularity = granularity
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (due, tiebreak, job id)
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._tiebreak = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: wake-ups that ran at least one job (for tests and benchmarks)
        self.rounds = 0

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
            heapq.heappush(self._heap, (self._due(time.monotonic(), delay), next(self._tiebreak), job_id))
            self._cond.notify()
        return job_id

    def cancel(self, job_id: int) -> None:
        """Forget a job (a no-op if it already ended)."""
        with self._cond:
            self._jobs.pop(job_id, None)

    def _due(self, now: float, delay: float) -> float:
        """When a job *delay* seconds from *now* runs: then, or rounded up to the grid."""
        due = now + delay
        grid = self._granularity
        if grid and delay >= 10 * grid:
            due = max(due, math.ceil(due / grid) * grid)  # max(): never early, float error or not
        return due

    def _run(self) -> None:
        cond, heap, jobs = self._cond, self._heap, self._jobs
        while True:
            with cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if heap and heap[0][0] <= now:
                        break
                    cond.wait(None if not heap else heap[0][0] - now)
                due = []  # every job due now, in deadline order: one wake-up for all
                while heap and heap[0][0] <= now:
                    job_id = heapq.heappop(heap)[2]
                    if job_id in jobs:
                        due.append(job_id)
                if due:
                    self.rounds += 1
            for job_id in due:
                job = jobs.get(job_id)  # cancelled by an earlier job of this round: skip
                if job is None or self._stopping:
                    continue
                try:
                    again = job(time.monotonic())
                except Exception:  # noqa: BLE001 - a failing job must not end the others
                    log.exception("scheduled job %r failed; it will not run again", job)
                    again = None
                with cond:
                    if again is None or job_id not in jobs:
                        jobs.pop(job_id, None)
                    else:
                        heapq.heappush(heap, (self._due(time.monotonic(), again), next(self._tiebreak), job_id))
