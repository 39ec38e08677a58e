"""Outputs that keep trades: the :class:`Sink` interface and the runner that feeds it.

A sink receives trades in batches on a thread of its own (``tradefeed-sink-<name>``,
see :mod:`tradefeed.sinks._writer`), fed from its own queue after the trade callbacks
of each batch have run, so neither the callbacks nor the other sinks ever wait for it.
It is opened on that thread before its first batch (so a SQLite connection, say,
belongs to it) and closed there when the manager stops.

A failing sink never loses trades: :class:`SinkRunner` keeps every trade the sink has
not accepted, in order, reports the failure once as :class:`SinkError` through
``on_error``, and retries with backoff; the backlog is counted in ``stats()``.  Sinks
must therefore make ``write`` atomic per call or idempotent (a retried batch may be
partly written): the SQLite and Redis sinks de-duplicate by ``(venue, symbol,
trade_id)``, the file sink knows how many bytes of the batch it wrote.

A poison trade, one the sink can never take (a ``sequence`` too large for SQLite, a
time out of the calendar for CSV), must not hold up the trades behind it.  When a
batch fails a second time, the runner writes it one trade at a time, in order.  A
trade that fails alone is a suspect; it is poison if it fails alone again while the
sink is seen to work (it has just taken another trade): then it is reported as a
:class:`SinkError` whose ``.trade`` is that trade, counted (``rejected``) and skipped.
A sink that fails everything is down, not fed poison: two failures in a row, with no
trade written in between, end the pass, and the runner backs off as for any failure,
keeping every trade.  An ``OSError`` (a full disk, a refused connection) is never
blamed on a trade.  After a failure, ``write`` is called with the first trades not yet
taken (the same batch, or some of its first trades), except that the trades behind a
suspect are tried before the suspect is tried again.

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
#: failed writes in a row, none of them an OSError and no trade written in between,
#: after which a search for poison trades takes the sink for down and backs off
OUTAGE_FAILURES = 2


class Sink:
    """Base class of outputs.  All methods but :meth:`abort` run on the sink's own
    writer thread, one at a time.

    Subclasses implement :meth:`write`; :meth:`open`, :meth:`flush`, :meth:`close` and
    :meth:`abort` are optional.  ``name`` identifies the sink in errors and stats.
    """

    #: shown in errors and stats
    name: str = "sink"

    def open(self) -> None:
        """Acquire resources (files, connections); called before the first write."""

    def write(self, trades: Sequence[Trade]) -> None:
        """Store *trades* (in order).  Raise to refuse the whole batch: it is retried,
        then written one trade at a time to find poison trades (an ``OSError`` is taken
        for a fault of the disk or the network, never of a trade).

        :raises Exception: any failure; the runner wraps it in :class:`SinkError`.
        """
        raise NotImplementedError

    def flush(self) -> None:
        """Make what was written durable (called after each successful write)."""

    def close(self) -> None:
        """Release resources; called once, when the manager stops."""

    def abort(self) -> None:
        """Make a :meth:`write` (or :meth:`open`) in progress fail soon: called from
        another thread when ``stop()``'s timeout runs out while the sink still works on
        a batch (a server that stopped answering, a locked database).  Best effort,
        must not raise; the default does nothing, and the stop then leaves the writer
        thread behind until that call returns on its own."""


@dataclass(frozen=True)
class SinkStats:
    """Counters of one sink."""

    name: str
    #: trades the sink accepted
    written: int
    #: trades handed to the sink and not written yet: its queue and the batch it is
    #: working on (after ``stop()``: what it could not write)
    pending: int
    #: failed write attempts
    failures: int
    #: poison trades: trades the sink cannot take, reported and skipped
    rejected: int = 0
    #: trades dropped because the sink's ``limit`` was reached (``add_sink(limit=...)``)
    dropped: int = 0
    #: seconds the oldest pending trade has waited for the sink (None: nothing pending)
    oldest_pending_age: float | None = None


class SinkRunner:
    """Writes to one sink, keeping what it has not accepted; single-threaded (the sink's
    writer thread, :class:`tradefeed.sinks._writer.SinkWriter`, or a test's).

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
        self._halted = False  # halt(): no further write is started
        self._failing = False
        self._backoff = SINK_BACKOFF
        self._retry_at = 0.0
        self._strikes = 0  # failures of the batch at the head, none of them an OSError
        self._suspects = 0  # trades at the head of the backlog that failed alone
        self._singles = 0  # trades after the suspects still to be written one at a time
        self.written = 0
        self.failures = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        return len(self._backlog)

    def stats(self) -> SinkStats:
        return SinkStats(self.sink.name, self.written, len(self._backlog), self.failures, self.rejected)

    def retry_in(self) -> float | None:
        """Seconds until a failed sink should be tried again (None: nothing waits)."""
        if not self._backlog:
            return None
        return max(0.0, self._retry_at - float(self._clock()))

    def add(self, trades: Sequence[Trade]) -> None:
        """Queue *trades* behind the backlog, without writing."""
        if not self._closed:
            self._backlog.extend(trades)

    def deliver(self, trades: Sequence[Trade]) -> None:
        """Queue *trades* and write what is due."""
        if self._closed:
            return
        self._backlog.extend(trades)
        if self._clock() >= self._retry_at:
            self.drain()

    def halt(self) -> None:
        """Start no further write (any thread): ``stop()`` gave up on this sink."""
        self._halted = True

    def drain(self) -> None:
        """Write the backlog, batch by batch, until it is empty or the sink fails."""
        while self._backlog and not self._closed and not self._halted:
            if self._suspects or self._singles:
                error = self._write_singly()
            else:
                error = self._write_batch()
            if error is not None:
                self._failed(error)
                return

    def _write_batch(self) -> Exception | None:
        """Write the head of the backlog in one call; when that batch fails a second
        time (not with an OSError), go on one trade at a time.  Returns the error that
        stops the drain, if any."""
        batch = [self._backlog[i] for i in range(min(MAX_BATCH, len(self._backlog)))]
        error = self._write(batch)
        if error is None:
            for _ in batch:
                self._backlog.popleft()
            self._strikes = 0
            return None
        if isinstance(error, OSError):  # the disk or the network: no trade is to blame
            return error
        self._strikes += 1
        if self._strikes == 1:
            return error  # retried as it is, after the backoff
        self._strikes = 0
        self._singles = len(batch)
        return self._write_singly()

    def _write_singly(self) -> Exception | None:
        """Write the head of the backlog one trade at a time: the suspects (trades that
        failed alone) and then ``_singles`` more trades.  A suspect is tried again at the
        start of a pass and while the sink is seen to work (it has just taken a trade);
        failing then, it is poison.  Returns the error that ends the pass: an OSError,
        or the second of two failures in a row (what a sink that is down does); what is
        left stays at the head, in order."""
        works = False  # the sink took a trade since the last failure of this pass
        failures = 0
        error: Exception | None = None
        while self._backlog and not self._closed and not self._halted and (self._suspects or self._singles):
            again = bool(self._suspects) and (works or failures == 0)  # the first suspect
            index = 0 if again else self._suspects  # else the first trade not tried alone
            if index >= len(self._backlog):
                return error  # only suspects left: a later trade will tell poison from an outage
            trade = self._backlog[index]
            error = self._write([trade])
            if isinstance(error, OSError):
                return error  # the disk or the network: no trade is to blame
            if error is None or (again and works):
                del self._backlog[index]
                if again:
                    self._suspects -= 1
                else:
                    self._singles = max(0, self._singles - 1)
                if error is not None:
                    self._reject(trade, error)
                works, failures = True, 0
                continue
            if not again:
                self._suspects += 1
                self._singles = max(0, self._singles - 1)
            works = False
            failures += 1
            if failures >= OUTAGE_FAILURES:
                return error
        return None

    def _write(self, trades: list[Trade]) -> Exception | None:
        """Hand *trades* to the sink (opened first if need be); the error if it failed."""
        try:
            if not self._opened:
                self.sink.open()
                self._opened = True
            self.sink.write(trades)
            self.sink.flush()
        except Exception as err:  # noqa: BLE001 - any failure of a sink is reported, never fatal
            self.failures += 1
            return err
        self.written += len(trades)
        if self._failing:
            self._failing = False
            self._backoff = self._backoff.reset()
            log.info("sink %s recovered; %d trades pending", self.sink.name, len(self._backlog) - len(trades))
        return None

    def _reject(self, trade: Trade, err: Exception) -> None:
        """Report and count a poison trade (the caller drops it)."""
        self.rejected += 1
        error = SinkError(
            "sink %s cannot take trade %s %s %s (%s: %s); skipped"
            % (self.sink.name, trade.venue, trade.symbol, trade.trade_id, type(err).__name__, err),
            trade=trade,
        )
        error.__cause__ = err
        self._report(error)

    def _failed(self, err: Exception) -> None:
        delay = self._backoff.delay(0.5)
        self._backoff = self._backoff.increment()
        self._retry_at = self._clock() + delay
        if not self._failing and not self._halted:  # once per failure streak: a retry storm must not flood on_error
            self._failing = True
            error = SinkError(
                "sink %s failed (%s: %s); %d trades kept, retrying" % (self.sink.name, type(err).__name__, err, len(self._backlog))
            )
            error.__cause__ = err
            self._report(error)
        log.debug("sink %s: retry in %.1f s", self.sink.name, delay)

    def close(self, last_attempt: bool = True) -> None:
        """Last attempt at the backlog (unless halted, or *last_attempt* is False), then
        close the sink (once)."""
        if self._closed:
            return
        if last_attempt:
            self.drain()
        self._closed = True
        if self._backlog and not self._halted:  # else whoever halted it reports them
            log.error("sink %s closed with %d trades not written", self.sink.name, len(self._backlog))
        if self._opened:
            try:
                self.sink.close()
            except Exception as err:  # noqa: BLE001
                error = SinkError("sink %s failed to close: %s" % (self.sink.name, err))
                error.__cause__ = err
                self._report(error)
