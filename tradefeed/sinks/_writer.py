"""One queue and one writer thread per sink.

A sink that stops answering (a paused Redis, a dead TCP path, a locked database) must
stall nothing but itself.  So each sink added to a manager gets a :class:`SinkWriter`:
the delivery thread (the dispatcher, or the ``pump()`` caller) hands it each batch's
trades with :meth:`SinkWriter.put`, which never waits for the sink, and the writer's
thread ``tradefeed-sink-<name>`` takes them, in order and at most one batch
(``MAX_BATCH``) at a time, into the sink's :class:`~tradefeed.sinks.SinkRunner`, which
opens, writes, retries with backoff and sets poison trades aside as it always did.

What a sink has not written is *pending*: its queue plus the batch the runner works on.
The queue is unbounded by default (nothing is lost while a sink is down); past
*high_water* pending trades a ``lagging`` status event says the sink is behind, and
``caught_up`` follows under half of it, as for the callbacks' queue.  With a *limit*
the queue drops trades instead, the oldest or the incoming ones (*overflow*), counted
(``dropped``) and announced by one ``lagging`` event per episode; a batch already
handed to the runner is never dropped.

Stopping: :meth:`finish` lets the writer write what is pending until a deadline
(retrying a failing sink every ``FINISH_RETRY`` seconds meanwhile) and then close the
sink; :meth:`abandon` gives up at once, asking the sink to :meth:`~Sink.abort` a write
in progress.  What was not written stays counted as pending.

Reports (errors, status events) go through the callables the dispatcher passes, which
put them on its queue: user callbacks never run on a writer thread.  Nothing here
blocks :meth:`put` beyond a short lock, and nothing here calls user code but the sink.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from ..exceptions import ConfigError, SinkError
from ..models import Trade
from . import MAX_BATCH, Sink, SinkRunner, SinkStats

__all__ = ["SinkWriter", "OVERFLOW_MODES", "FINISH_RETRY"]

log = logging.getLogger(__name__)

OVERFLOW_MODES = ("drop_oldest", "drop_newest")
#: while stopping, a failing sink is tried again at least this often (seconds)
FINISH_RETRY = 0.25


class _Ages:
    """When queued trades arrived, as runs of ``[time, count]``, oldest first: the age
    of the oldest pending trade without a timestamp per trade."""

    __slots__ = ("runs",)

    def __init__(self) -> None:
        self.runs: deque[list[float]] = deque()

    def add(self, when: float, count: int) -> None:
        if count > 0:
            self.runs.append([when, count])

    def extend(self, runs: list[list[float]]) -> None:
        self.runs.extend(runs)

    def take(self, count: int) -> list[list[float]]:
        """Remove *count* trades from the front; returns their runs."""
        taken: list[list[float]] = []
        runs = self.runs
        while count > 0 and runs:
            head = runs[0]
            if head[1] <= count:
                runs.popleft()
                taken.append(head)
                count -= int(head[1])
            else:
                head[1] -= count
                taken.append([head[0], count])
                count = 0
        return taken

    def oldest(self) -> float | None:
        return self.runs[0][0] if self.runs else None


class SinkWriter:
    """Feeds one sink from its own thread.

    :param sink: the sink.
    :param report: called with a :class:`SinkError` (any thread; must not block).
    :param signal: called as ``signal(writer, kind, detail)`` with ``kind`` one of
        ``lagging``, ``dropping``, ``caught_up`` (any thread, no lock held; must not block).
    :param limit: most pending trades (None: unbounded).
    :param overflow: what goes at the limit: ``drop_oldest`` or ``drop_newest``.
    :param high_water: pending trades past which the sink counts as lagging (unbounded).
    :param on_end: called on the writer thread as it ends (the dispatcher's wake-up).
    :param clock: ``time.monotonic``.
    :raises ConfigError: a bad *limit*, *overflow* or *high_water*.
    """

    def __init__(
        self,
        sink: Sink,
        report: Callable[[SinkError], Any],
        signal: Callable[["SinkWriter", str, dict[str, Any]], Any],
        *,
        limit: int | None = None,
        overflow: str = "drop_oldest",
        high_water: int = 100_000,
        on_end: Callable[[], Any] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError("a sink's limit must be a whole number >= 1 or None, not %r" % (limit,))
        if overflow not in OVERFLOW_MODES:
            raise ConfigError("a sink's overflow must be one of %s, not %r" % (", ".join(OVERFLOW_MODES), overflow))
        if isinstance(high_water, bool) or not isinstance(high_water, int) or high_water < 1:
            raise ConfigError("a sink's high_water must be a whole number >= 1, not %r" % (high_water,))
        self.sink = sink
        self.runner = SinkRunner(sink, report, clock)
        #: most pending trades, or None
        self.limit = limit
        self.overflow = overflow
        self.high_water = high_water
        self._signal = signal
        self._on_end = on_end
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[Trade] = deque()
        self._queue_ages = _Ages()
        self._runner_ages = _Ages()  # of the runner's backlog
        self._accounted = 0  # trades the runner has written or rejected, as of the last look
        self._thread: threading.Thread | None = None
        self._finishing = False
        self._deadline = math.inf  # finish(): write until then (monotonic)
        self._abandoned = False
        self._ended = threading.Event()
        self._lagging = False
        #: trades dropped at the limit
        self.dropped = 0
        #: trades handed over after the writer finished (not written)
        self.late = 0

    # -- the delivery thread -----------------------------------------------------------

    def put(self, trades: Sequence[Trade]) -> None:
        """Queue *trades* for the sink (in order).  Never waits for the sink."""
        kind: str | None = None
        detail: dict[str, Any] = {}
        with self._cond:
            if self._finishing or self._abandoned:
                self.late += len(trades)
                log.warning("sink %s: %d trades arrived after stop(); not written", self.sink.name, len(trades))
                return
            count = len(trades)
            queue = self._queue
            limit = self.limit
            if limit is not None:
                excess = len(queue) + self.runner.pending + count - limit
                if excess > 0:
                    dropped = 0
                    if self.overflow == "drop_oldest":
                        gone = min(excess, len(queue))
                        for _ in range(gone):
                            queue.popleft()
                        self._queue_ages.take(gone)
                        dropped, excess = gone, excess - gone
                    if excess > 0:  # drop_newest, or the oldest are in the runner's hands
                        keep = max(0, count - excess)
                        trades = trades[count - keep :] if self.overflow == "drop_oldest" else trades[:keep]
                        dropped += count - keep
                        count = keep
                    self.dropped += dropped
                    if not self._lagging:  # once per episode
                        self._lagging, kind = True, "dropping"
            queue.extend(trades)
            self._queue_ages.add(self._clock(), count)
            if not self._lagging and limit is None and len(queue) + self.runner.pending > self.high_water:
                self._lagging, kind = True, "lagging"
            if kind is not None:
                detail = self._detail()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tradefeed-sink-" + self.sink.name, daemon=True)
                self._thread.start()
            self._cond.notify()
        if kind is not None:
            self._signal(self, kind, detail)

    def finish(self, deadline: float) -> None:
        """Write what is pending until *deadline* (``time.monotonic()``), then close the
        sink; an earlier deadline than a previous call's wins."""
        with self._cond:
            self._finishing = True
            self._deadline = min(self._deadline, deadline)
            self._cond.notify()

    def abandon(self) -> None:
        """Give up now: no further write is started, and a write in progress is asked to
        fail (:meth:`Sink.abort`).  What is not written stays pending."""
        with self._cond:
            self._abandoned = True
            self._finishing = True
            self.runner.halt()
            self._cond.notify()
            running = self._thread is not None and self._thread.is_alive()
        if running:
            try:
                self.sink.abort()
            except Exception:  # noqa: BLE001 - best effort, on the stopping thread
                log.exception("sink %s: abort() failed", self.sink.name)

    def join(self, timeout: float | None) -> bool:
        """Wait for the writer thread to end; True if it has (or never started)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def is_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def pending(self) -> int:
        """Trades handed to this sink and not written (nor dropped) yet."""
        return len(self._queue) + self.runner.pending + self.late

    def stats(self) -> SinkStats:
        runner = self.runner
        with self._cond:
            pending = len(self._queue) + runner.pending
            oldest = self._runner_ages.oldest()
            if oldest is None:
                oldest = self._queue_ages.oldest()
        age = None if not pending or oldest is None else max(0.0, self._clock() - oldest)
        return SinkStats(
            self.sink.name,
            runner.written,
            pending + self.late,
            runner.failures,
            runner.rejected,
            self.dropped,
            age,
        )

    def _detail(self) -> dict[str, Any]:
        """A lagging/caught_up event's detail; the caller holds the lock."""
        detail: dict[str, Any] = {"sink": self.sink.name, "pending": len(self._queue) + self.runner.pending}
        if self.limit is None:
            detail["high_water"] = self.high_water
        else:
            detail["limit"] = self.limit
            detail["dropped"] = self.dropped
        return detail

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        runner = self.runner
        try:
            while self._next():
                runner.drain()
                self._account()
        except Exception:  # noqa: BLE001 - a bug of ours: the trades stay pending, counted
            log.exception("sink %s: writer thread failed", self.sink.name)
        finally:
            try:
                runner.close(last_attempt=False)
            finally:
                self._ended.set()
                self._on_end()

    def _next(self) -> bool:
        """Wait until there is something to write (moved into the runner: at most one
        batch) or a failed write is due again; False when the writer is to end."""
        runner = self.runner
        with self._cond:
            while True:
                if self._abandoned:
                    return False
                now = self._clock()
                wait: float | None = None
                if self._finishing and now >= self._deadline:
                    if self._queue or runner.pending:
                        runner.halt()  # out of time: what is left stays pending
                    return False
                if runner.pending:
                    wait = runner.retry_in() or 0.0
                    if self._finishing:
                        wait = min(wait, FINISH_RETRY)
                    if wait <= 0:
                        self._top_up()
                        return True
                elif self._queue:
                    self._top_up()
                    return True
                elif self._finishing:
                    return False  # everything written
                if self._finishing:
                    wait = min(math.inf if wait is None else wait, self._deadline - now)
                self._cond.wait(wait)

    def _top_up(self) -> None:
        """Move the oldest queued trades into the runner, up to one batch; holds the lock.

        With a ``limit``, a batch that failed is retried as it is: growing it would put
        queued trades beyond the reach of ``drop_oldest`` while the sink is down, so that
        newer trades, not older ones, would be dropped."""
        runner = self.runner
        if self.limit is not None and runner.pending:
            return
        count = min(MAX_BATCH - runner.pending, len(self._queue))
        if count <= 0:
            return
        queue = self._queue
        runner.add([queue.popleft() for _ in range(count)])
        self._runner_ages.extend(self._queue_ages.take(count))

    def _account(self) -> None:
        """After a drain: forget the arrival times of what the runner disposed of, and
        announce ``caught_up`` once the backlog is down to half the mark."""
        runner = self.runner
        signal = None
        with self._cond:
            done = runner.written + runner.rejected
            self._runner_ages.take(done - self._accounted)
            self._accounted = done
            if self._lagging:
                mark = self.high_water if self.limit is None else self.limit
                if len(self._queue) + runner.pending < mark // 2:
                    self._lagging = False
                    signal = self._detail()
        if signal is not None:
            self._signal(self, "caught_up", signal)
