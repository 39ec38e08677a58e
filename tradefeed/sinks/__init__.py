"""Outputs that keep trades: the :class:`Sink` interface and the runner that feeds it.

A sink receives trades in batches on the delivery thread (the dispatcher thread, or the
thread calling ``pump()``), after the trade callbacks of the same batch.  It is opened
on that thread before its first batch (so a SQLite connection, say, belongs to it) and
closed there when the manager stops.

A failing sink never loses trades: :class:`SinkRunner` keeps every trade the sink has
not accepted, in order, reports the failure once as :class:`SinkError` through
``on_error`` (and once more when the sink recovers), and retries with backoff; the
backlog is counted in ``stats()``.  Sinks must therefore make ``write`` atomic per call
or idempotent (a retried batch may be partly written): the SQLite and Redis sinks
de-duplicate by ``(venue, symbol, trade_id)``.

Modules: ``files`` (JSON lines, CSV), ``sqlite`` (stdlib sqlite3), ``redis`` (redis-py,
imported lazily: extra ``redis``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..backoff import Backoff
from ..exceptions import SinkError
from ..models import Trade

__all__ = ["Sink", "SinkRunner", "SinkStats"]

log = logging.getLogger(__name__)

#: retry policy for a failing sink (seconds); never gives up: the backlog is kept
SINK_BACKOFF = Backoff(initial=0.5, max_delay=10.0, jitter=0.1)
#: most trades handed to one ``write`` call
MAX_BATCH = 5000


class Sink:
    """Base class of outputs.  All methods run on the delivery thread.

    Subclasses implement :meth:`write`; :meth:`open`, :meth:`flush` and :meth:`close`
    are optional.  ``name`` identifies the sink in errors and stats.
    """

    #: shown in errors and stats
    name: str = "sink"

    def open(self) -> None:
        """Acquire resources (files, connections); called before the first write."""

    def write(self, trades: Sequence[Trade]) -> None:
        """Store *trades* (in order).  Raise to refuse the whole batch: it is retried.

        :raises Exception: any failure; the runner wraps it in :class:`SinkError`.
        """
        raise NotImplementedError

    def flush(self) -> None:
        """Make what was written durable (called after each successful write)."""

    def close(self) -> None:
        """Release resources; called once, when the manager stops."""


@dataclass(frozen=True)
class SinkStats:
    """Counters of one sink."""

    name: str
    #: trades the sink accepted
    written: int
    #: trades waiting because the sink failed
    pending: int
    #: failed write attempts
    failures: int


class SinkRunner:
    """Feeds one sink from the delivery thread, keeping what it has not accepted.

    :param report: called with a :class:`SinkError` for on_error (on the same thread).
    :param clock: ``time.monotonic`` (tests may pass their own).
    """

    def __init__(
        self, sink: Sink, report: Callable[[SinkError], Any], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sink = sink
        self._report = report
        self._clock = clock
        self._backlog: deque[Trade] = deque()
        self._opened = False
        self._closed = False
        self._failing = False
        self._backoff = SINK_BACKOFF
        self._retry_at = 0.0
        self.written = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._backlog)

    def stats(self) -> SinkStats:
        return SinkStats(self.sink.name, self.written, len(self._backlog), self.failures)

    def retry_in(self) -> float | None:
        """Seconds until a failed sink should be tried again (None: nothing waits)."""
        if not self._backlog:
            return None
        return max(0.0, self._retry_at - float(self._clock()))

    def deliver(self, trades: Sequence[Trade]) -> None:
        """Queue *trades* and write what is due."""
        if self._closed:
            return
        self._backlog.extend(trades)
        if self._clock() >= self._retry_at:
            self.drain()

    def drain(self) -> None:
        """Write the backlog, batch by batch, until it is empty or the sink fails."""
        while self._backlog and not self._closed:
            batch = [self._backlog[i] for i in range(min(MAX_BATCH, len(self._backlog)))]
            try:
                if not self._opened:
                    self.sink.open()
                    self._opened = True
                self.sink.write(batch)
                self.sink.flush()
            except Exception as err:  # noqa: BLE001 - any failure of a sink is reported, never fatal
                self._failed(err)
                return
            for _ in batch:
                self._backlog.popleft()
            self.written += len(batch)
            if self._failing:
                self._failing = False
                self._backoff = self._backoff.reset()
                log.info("sink %s recovered; %d trades pending", self.sink.name, len(self._backlog))

    def _failed(self, err: Exception) -> None:
        self.failures += 1
        delay = self._backoff.delay(0.5)
        self._backoff = self._backoff.increment()
        self._retry_at = self._clock() + delay
        if not self._failing:  # once per failure streak: a retry storm must not flood on_error
            self._failing = True
            error = SinkError(
                "sink %s failed (%s: %s); %d trades kept, retrying" % (self.sink.name, type(err).__name__, err, len(self._backlog))
            )
            error.__cause__ = err
            self._report(error)
        log.debug("sink %s: retry in %.1f s", self.sink.name, delay)

    def close(self) -> None:
        """Last attempt at the backlog, then close the sink (once)."""
        if self._closed:
            return
        self.drain()
        self._closed = True
        if self._backlog:
            log.error("sink %s closed with %d trades not written", self.sink.name, len(self._backlog))
        if self._opened:
            try:
                self.sink.close()
            except Exception as err:  # noqa: BLE001
                error = SinkError("sink %s failed to close: %s" % (self.sink.name, err))
                error.__cause__ = err
                self._report(error)
