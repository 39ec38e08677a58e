"""The queue between connection threads and user callbacks, and delivery from it.

Connection threads put *batches* (lists of Trades, errors and StatusEvents: everything
parsed while their socket still had bytes pending), never single items, so that under
load the consumer wakes once per batch rather than once per frame.  Delivery runs on
the dispatcher thread (``dispatch="thread"``) or on whichever thread calls
:meth:`Dispatcher.pump` (``dispatch="manual"``, for GUI and COM programs).

Rules: ``put`` never blocks (a blocked reader misses pongs); callbacks run in
registration order, outside any library lock; a raising callback is reported as
:class:`~tradefeed.exceptions.CallbackError` and delivery goes on.  Sinks get each
batch's trades after the callbacks, handed to each sink's own queue and writer thread
(:mod:`tradefeed.sinks._writer`), so delivery never waits for a sink; what the writers
report (a :class:`SinkError`, a sink's ``lagging``/``caught_up`` events) comes back
through this queue, so ``on_error`` and ``on_status`` still run on the delivery thread.
At stop the delivery thread waits for the writers until the stop's deadline, then
reports what each sink could not write.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from .exceptions import CallbackError, SinkError, TradefeedError
from ._queue import BatchQueue
from .models import Gap, Status, StatusEvent, Trade
from .sinks import Sink
from .sinks._writer import SinkWriter

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

TradeCallback = Callable[[Trade], Any]
ErrorCallback = Callable[[TradefeedError], Any]
StatusCallback = Callable[[StatusEvent], Any]

#: put after the last batch; the dispatcher thread ends when it reaches it
_STOP: list[Any] = []
#: seconds the sinks get to write what is pending when closed without a stop's deadline
SINK_TIMEOUT = 10.0
#: at most this much of a stop's time is kept back from the sinks, to abort a write in
#: progress and join the writers before the deadline (seconds; less for short timeouts)
SINK_MARGIN = 0.5


class Dispatcher:
    """Callback registry plus the hand-off queue.

    Registration is safe from any thread at any time: the lists are copied on write,
    and delivery iterates the copy it started with.
    """

    def __init__(self, queue_limit: int | None = None, overflow: str = "drop_oldest", high_water: int = 100_000) -> None:
        self._queue = BatchQueue(queue_limit, overflow, high_water, self._queue_signal)
        self._carry: deque[Any] = deque()  # pump(): the rest of a batch cut by max_items
        self._pump_lock = threading.Lock()
        self._pump_owner: int | None = None  # thread id of the pump() running now
        self._trade_cbs: tuple[tuple[TradeCallback, str | None, str | None], ...] = ()
        #: the trade callbacks when none has a filter (None when some do)
        self._unfiltered: tuple[TradeCallback, ...] | None = ()
        self._error_cbs: tuple[ErrorCallback, ...] = ()
        self._status_cbs: tuple[StatusCallback, ...] = ()
        self._gap_cbs: tuple[Callable[[Gap], Any], ...] = ()
        self._register_lock = threading.Lock()
        self._sinks: tuple[SinkWriter, ...] = ()
        self._sink_deadline: float | None = None  # time.monotonic() by which the sinks must be closed
        self._sink_timeout = SINK_TIMEOUT  # the same, as seconds from when they are closed (pump mode)
        #: set once close_sinks() has finished (every writer ended, or was given up on)
        self.sinks_closed = threading.Event()
        self._abandon = False  # set by discard(): skip the trades still to be delivered
        self._close_sinks_at_pump = False
        self._last_pump_thread: int | None = None
        self._thread: threading.Thread | None = None
        #: items delivered so far (trades, errors, status events)
        self.delivered = 0
        #: batches taken off the queue
        self.batches = 0
        #: called as ``observe_delivery(venue, received_ns)`` with the first trade of each
        #: batch as delivery of the batch begins (on the delivery thread; metrics): once
        #: per batch, never per trade
        self.observe_delivery: Callable[[str, int], Any] | None = None

    # -- registration ---------------------------------------------------------------

    def add_trade_callback(self, cb: TradeCallback, venue: str | None, symbol: str | None) -> None:
        with self._register_lock:
            self._set_trade_cbs(self._trade_cbs + ((cb, venue, symbol),))

    def _set_trade_cbs(self, cbs: tuple[tuple[TradeCallback, str | None, str | None], ...]) -> None:
        filtered = any(venue is not None or symbol is not None for _, venue, symbol in cbs)
        self._trade_cbs, self._unfiltered = cbs, None if filtered else tuple(cb for cb, _, _ in cbs)

    def add_error_callback(self, cb: ErrorCallback) -> None:
        with self._register_lock:
            self._error_cbs = self._error_cbs + (cb,)

    def add_status_callback(self, cb: StatusCallback) -> None:
        with self._register_lock:
            self._status_cbs = self._status_cbs + (cb,)

    def add_gap_callback(self, cb: Callable[[Gap], Any]) -> None:
        with self._register_lock:
            self._gap_cbs = self._gap_cbs + (cb,)

    def add_sink(
        self, sink: Sink, limit: int | None = None, overflow: str = "drop_oldest", high_water: int | None = None
    ) -> SinkWriter:
        """Feed *sink* every trade from now on, batched, after the callbacks, from its own
        queue and thread (see :class:`~tradefeed.sinks._writer.SinkWriter`).

        :raises ConfigError: a bad *limit*, *overflow* or *high_water*.
        """
        writer = SinkWriter(
            sink,
            self._sink_report,
            self._sink_signal,
            limit=limit,
            overflow=overflow,
            high_water=self._queue.high_water if high_water is None else high_water,
            on_end=self._wake,
        )
        with self._register_lock:
            self._sinks = self._sinks + (writer,)
        return writer

    def sink_writers(self) -> tuple[SinkWriter, ...]:
        return self._sinks

    def sinks_busy(self) -> bool:
        """A sink's writer thread is still running (after close_sinks: one stuck in a write)."""
        return any(writer.is_alive() for writer in self._sinks)

    def remove_callback(self, cb: Callable[..., Any]) -> bool:
        """Unregister *cb* from every list; True if it was registered."""
        with self._register_lock:
            before = len(self._trade_cbs) + len(self._error_cbs) + len(self._status_cbs) + len(self._gap_cbs)
            self._set_trade_cbs(tuple(t for t in self._trade_cbs if t[0] is not cb))
            self._error_cbs = tuple(c for c in self._error_cbs if c is not cb)
            self._status_cbs = tuple(c for c in self._status_cbs if c is not cb)
            self._gap_cbs = tuple(c for c in self._gap_cbs if c is not cb)
            return before != len(self._trade_cbs) + len(self._error_cbs) + len(self._status_cbs) + len(self._gap_cbs)

    # -- producer side --------------------------------------------------------------

    def put(self, batch: list[Any], feed: str | None = None) -> None:
        """Hand over one batch (the caller gives up the list).  Never blocks.

        :param feed: the feed it comes from (for drop counts in bounded modes).
        """
        self._queue.put(batch, feed)

    def backlog(self) -> int:
        """Batches waiting (approximate; for stats)."""
        return self._queue.qsize() + (1 if self._carry else 0)

    def queued(self) -> int:
        """Trades waiting for the callbacks (approximate; for stats and metrics)."""
        return self._queue.queued + sum(type(item) is Trade for item in list(self._carry))

    def discard(self) -> None:
        """Drop every queued trade now, and the rest of the batch being delivered
        (stop(drain=False)); control items stay."""
        self._abandon = True
        self._queue.discard()
        self._carry = deque(item for item in self._carry if type(item) is not Trade)

    def dropped(self) -> dict[str, int]:
        """Trades dropped on overflow, per feed (bounded modes)."""
        return dict(self._queue.dropped)

    def _queue_signal(self, kind: str, queued: int) -> None:
        """Lagging, dropping, caught up: a status event for everyone, and a log line."""
        queue_ = self._queue
        detail: dict[str, Any] = {"queued": queued, "dropped": sum(queue_.dropped.values())}
        if queue_.limit is None:
            detail["high_water"] = queue_.high_water
        else:
            detail["limit"] = queue_.limit
        if kind == "caught_up":
            log.info("dispatcher caught up (%d trades queued)", queued)
            status = Status.CAUGHT_UP
        else:
            log.warning(
                "callbacks are behind: %d trades queued%s",
                queued,
                "; dropping (%s)" % queue_.overflow if kind == "dropping" else "",
            )
            status = Status.LAGGING
        self._queue.put([StatusEvent("", "", status, time.time_ns(), detail)])

    # -- dispatcher thread ----------------------------------------------------------

    def start_thread(self, name: str = "tradefeed-dispatcher") -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop_thread(self, timeout: float | None) -> bool:
        """Deliver everything queued so far, let the sinks write until *timeout* runs
        out, then end the thread.  Returns False if it is still running after *timeout*
        (a slow callback).  Safe from a callback: the dispatcher thread does not wait
        for itself."""
        thread = self._thread
        if thread is None:
            return True
        deadline = time.monotonic() + (SINK_TIMEOUT if timeout is None else timeout)
        current = self._sink_deadline  # a second, non-draining stop() may have set an earlier one
        self._sink_deadline = deadline if current is None else min(current, deadline)
        self._queue.put(_STOP)
        if thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def on_thread(self) -> bool:
        """True when called from this dispatcher's own thread (inside a callback)."""
        return self._thread is not None and self._thread is threading.current_thread()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        get = self._queue.get
        deliver = self._deliver
        while True:
            feed, batch = get()
            if batch is _STOP:
                self.close_sinks()
                return
            self.batches += 1
            deliver(batch, feed)

    # -- sinks ---------------------------------------------------------------------

    def _sink_report(self, error: SinkError) -> None:
        """A writer's error, for on_error on the delivery thread (any thread)."""
        self._queue.put([error])

    def _wake(self) -> None:
        """A writer ended: wake close_sinks() (an empty batch delivers nothing)."""
        self._queue.put([])

    def _sink_signal(self, writer: SinkWriter, kind: str, detail: dict[str, Any]) -> None:
        """A sink is behind, dropping, or caught up: a status event and a log line, as
        for the callbacks' queue (detail ``sink`` names it)."""
        name = writer.sink.name
        if kind == "caught_up":
            log.info("sink %s caught up (%d trades pending)", name, detail["pending"], extra={"sink": name})
            status = Status.CAUGHT_UP
        else:
            log.warning(
                "sink %s is behind: %d trades pending%s",
                name,
                detail["pending"],
                "; dropping the %s (limit %d)" % (writer.overflow[5:], writer.limit or 0) if kind == "dropping" else "",
                extra={"sink": name},
            )
            status = Status.LAGGING
        self._queue.put([StatusEvent("", "", status, time.time_ns(), detail)])

    def hurry_sinks(self, deadline: float) -> None:
        """An earlier deadline for the sinks (a second, non-draining stop()); any thread."""
        current = self._sink_deadline
        self._sink_deadline = deadline if current is None else min(current, deadline)
        self._wake()

    def close_sinks(self, deadline: float | None = None) -> None:
        """Let every sink write what is pending until *deadline* (``time.monotonic()``;
        default: the stop's), then close them; a sink still busy then is abandoned (its
        write in progress aborted).  On the delivery thread: what the writers report
        meanwhile is delivered here.  What a sink could not write is reported as a
        :class:`SinkError` and stays counted as pending in its stats."""
        writers = self._sinks
        now = time.monotonic()
        if deadline is None:
            deadline = self._sink_deadline if self._sink_deadline is not None else now + self._sink_timeout
        self._sink_deadline = deadline
        margin = min(SINK_MARGIN, max(0.0, deadline - now) / 10)
        while True:
            cut = self._sink_deadline - margin
            for writer in writers:
                writer.finish(cut)
            now = time.monotonic()
            if now >= cut or not any(writer.is_alive() for writer in writers):
                break
            try:
                feed, batch = self._queue.get(cut - now)
            except queue.Empty:
                continue
            self._deliver_control(batch, feed)
        for writer in writers:
            if writer.is_alive():
                writer.abandon()
        for writer in writers:
            writer.join(max(0.0, self._sink_deadline - margin / 2 - time.monotonic()))
        while True:  # what the writers reported as they ended
            try:
                feed, batch = self._queue.get(0)
            except queue.Empty:
                break
            self._deliver_control(batch, feed)
        self.sinks_closed.set()
        for writer in writers:
            unwritten = writer.pending
            if not unwritten:
                continue
            name = writer.sink.name
            still = " (its writer thread is still busy: the sink ignored abort())" if writer.is_alive() else ""
            self._report(  # to on_error, or logged as a warning without one
                SinkError(
                    "sink %s: %d trades not written: stop() ran out of time while the sink was failing or "
                    "busy (a write in progress may still land)%s" % (name, unwritten, still)
                )
            )

    def _deliver_control(self, batch: list[Any], feed: str | None) -> None:
        """Deliver a batch taken off the queue after stop: errors, status events and gaps
        (trades arriving this late reach nobody, counted as dropped)."""
        if batch is _STOP:
            return
        kept = [item for item in batch if type(item) is not Trade]
        if len(kept) != len(batch):
            self._queue.count_drop(feed, len(batch) - len(kept))
        if kept:
            self._deliver(kept, feed)

    def stop_manual(self, timeout: float = SINK_TIMEOUT) -> None:
        """Manual mode stop(): deliver the queue and close the sinks now if called on the
        pumping thread, else at the end of the next pump(); the sinks get *timeout*
        seconds from then."""
        self._sink_timeout = timeout
        if self._pump_owner == threading.get_ident():  # inside a callback of pump()
            self._close_sinks_at_pump = True  # that pump() finishes the queue and closes them
        elif self._last_pump_thread == threading.get_ident():
            self.pump()
            self.close_sinks(time.monotonic() + timeout)
        else:
            self._close_sinks_at_pump = True
            self._queue.put(_STOP)  # wakes a pump(timeout=None) waiting on another thread

    # -- pump mode ------------------------------------------------------------------

    def pump(self, max_items: int | None = None, timeout: float | None = 0) -> int:
        """Deliver queued items on the calling thread.

        :param max_items: deliver at most this many items (None: all that are queued).
        :param timeout: seconds to wait for the first item when none is queued
            (0: do not wait; None: wait until one arrives).  Also bounds the wait while
            another thread is pumping.
        :returns: the number of items delivered.
        :raises TradefeedError: called from inside a callback that ``pump()`` is
            running on this thread (a nested GUI/COM loop): it would deadlock.
        """
        if max_items is not None and max_items < 1:
            return 0
        if self._pump_owner == threading.get_ident():
            raise TradefeedError("pump() called from a callback it is running (re-entrant pump)")
        if not self._pump_lock.acquire(timeout=-1 if timeout is None else timeout):
            return 0  # another thread is pumping
        self._pump_owner = self._last_pump_thread = threading.get_ident()
        try:
            delivered = self._pump(-1 if max_items is None else max_items, timeout)
            if self._close_sinks_at_pump and not self._carry and self._queue.empty():
                self._close_sinks_at_pump = False
                self.close_sinks()
            return delivered
        finally:
            self._pump_owner = None
            self._pump_lock.release()

    def _pump(self, limit: int, wait: float | None) -> int:
        delivered = 0
        while limit < 0 or delivered < limit:
            feed: str | None = None
            if self._carry:
                batch = list(self._carry)
                self._carry.clear()
            else:
                try:
                    feed, batch = self._queue.get(wait)
                except queue.Empty:
                    break
                if batch is _STOP:  # stop() from another thread: do not wait any longer
                    break
                self.batches += 1
            wait = 0  # only the first item is waited for
            if 0 <= limit < delivered + len(batch):
                cut = limit - delivered
                self._carry.extend(batch[cut:])
                batch = batch[:cut]
            self._deliver(batch, feed)
            delivered += len(batch)
        return delivered

    # -- delivery -------------------------------------------------------------------

    def _deliver(self, batch: Sequence[Any], feed: str | None = None) -> None:
        observe = self.observe_delivery
        if observe is not None:  # metrics: the batch's oldest trade, receipt to delivery
            for item in batch:
                if type(item) is Trade:
                    observe(item.venue, item.received_ns)
                    break
        trade_cbs = self._trade_cbs
        unfiltered = self._unfiltered
        abandoned = 0  # trades skipped by stop(drain=False): the batch's last ones (it stays set)
        if unfiltered is not None and len(unfiltered) == 1:  # one callback takes every trade: the common case
            cb = unfiltered[0]
            for item in batch:
                if type(item) is Trade:
                    if self._abandon:  # stop(drain=False) while this batch was being delivered
                        abandoned += 1
                        continue
                    try:
                        cb(item)
                    except Exception as err:  # noqa: BLE001 - user code may raise anything
                        self._callback_failed(cb, item, err)
                else:
                    self._deliver_event(item)
        else:
            for item in batch:
                if type(item) is not Trade:
                    self._deliver_event(item)
                elif self._abandon:
                    abandoned += 1
                elif unfiltered is not None:  # no venue/symbol filters
                    for cb in unfiltered:
                        try:
                            cb(item)
                        except Exception as err:  # noqa: BLE001 - user code may raise anything
                            self._callback_failed(cb, item, err)
                else:
                    for cb, venue, symbol in trade_cbs:
                        if (venue is None or venue == item.venue) and (symbol is None or symbol == item.symbol):
                            try:
                                cb(item)
                            except Exception as err:  # noqa: BLE001 - user code may raise anything
                                self._callback_failed(cb, item, err)
        self.delivered += len(batch)
        if abandoned:
            self._queue.count_drop(feed, abandoned)
        sinks = self._sinks
        if sinks:
            trades = [item for item in batch if type(item) is Trade]
            if abandoned:  # the sinks get what the callbacks got, no more
                del trades[len(trades) - abandoned :]
            if trades:
                for writer in sinks:
                    writer.put(trades)

    def _deliver_event(self, item: Any) -> None:
        """Everything but a trade: a status event, an error or a gap, to its callbacks."""
        if isinstance(item, StatusEvent):
            for status_cb in self._status_cbs:
                try:
                    status_cb(item)
                except Exception as err:  # noqa: BLE001
                    self._callback_failed(status_cb, item, err)
        elif isinstance(item, TradefeedError):
            self._report(item)
        elif type(item) is Gap:
            if not self._gap_cbs:
                # never silent, even unobserved
                log.warning("possible loss: %s", item, extra={"feed": item.feed, "venue": item.venue, "symbol": item.symbol})
            for gap_cb in self._gap_cbs:
                try:
                    gap_cb(item)
                except Exception as err:  # noqa: BLE001
                    self._callback_failed(gap_cb, item, err)
        else:  # a bug in tradefeed, not in user code: say so loudly, keep going
            log.error("dispatcher got an unexpected item %r", item)

    def _callback_failed(self, cb: Callable[..., Any], item: Any, err: Exception) -> None:
        error = CallbackError("callback %s raised %s: %s" % (_name(cb), type(err).__name__, err), callback=cb, item=item)
        error.__cause__ = err
        self._report(error)

    def _report(self, error: TradefeedError) -> None:
        cbs = self._error_cbs
        if not cbs:
            log.warning(
                "%s (no on_error callback registered)",
                error,
                exc_info=error if isinstance(error, CallbackError) else None,
            )
            return
        for cb in cbs:
            try:
                cb(error)
            except Exception:  # noqa: BLE001 - an error handler failing must not loop
                log.exception("on_error callback %s raised while handling %s", _name(cb), type(error).__name__)


def _name(cb: Callable[..., Any]) -> str:
    return getattr(cb, "__qualname__", None) or repr(cb)

