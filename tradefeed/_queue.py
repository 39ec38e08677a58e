"""The batch queue between connection threads and the delivery thread.

Two kinds, chosen by ``FeedManager(queue_limit=...)``:

- unbounded (the default): ``queue.SimpleQueue``, the cheapest hand-off; a count of
  queued trades raises a *lagging* signal past ``high_water`` (and clears it below half);
- bounded: a deque under a condition; past ``limit`` queued trades it drops trades,
  the oldest (``drop_oldest``) or the incoming (``drop_newest``), counted per feed.
  Status events, errors and gaps are never dropped.

``put`` never blocks: a blocked reader would miss its pongs and be disconnected.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any, Callable

from .models import Trade

__all__ = ["BatchQueue", "OVERFLOW_MODES"]

OVERFLOW_MODES = ("drop_oldest", "drop_newest")


def _trades(batch: list[Any]) -> int:
    return list(map(type, batch)).count(Trade)  # at C speed: this runs for every batch


class BatchQueue:
    """Batches in, batches out, FIFO.

    :param limit: most trades queued (None: unbounded).
    :param overflow: what goes when full: ``drop_oldest`` or ``drop_newest``.
    :param high_water: queued trades that count as lagging (unbounded mode).
    :param signal: called without locks held, once per episode, with
        ``("lagging", queued)`` or ``("dropping", queued)`` (from a putting thread) and
        ``("caught_up", queued)`` (from the getting thread) when it is over.
    """

    def __init__(
        self,
        limit: int | None = None,
        overflow: str = "drop_oldest",
        high_water: int = 100_000,
        signal: Callable[[str, int], None] | None = None,
    ) -> None:
        self.limit = limit
        self.overflow = overflow
        self.high_water = high_water
        self._signal = signal or (lambda kind, queued: None)
        self._lock = threading.Lock()
        self._queued = 0  # trades in the queue
        self._lagging = False
        #: trades dropped on overflow, per feed name
        self.dropped: dict[str, int] = {}
        if limit is None:
            # (feed, batch, trades in it): the count travels along, counted once
            self._simple: queue.SimpleQueue[tuple[str | None, list[Any], int]] | None = queue.SimpleQueue()
        else:
            self._simple = None
            self._items: deque[tuple[str | None, list[Any]]] = deque()
            self._cond = threading.Condition(self._lock)

    @property
    def queued(self) -> int:
        """Trades waiting."""
        return self._queued

    def qsize(self) -> int:
        """Batches waiting (approximate)."""
        return self._simple.qsize() if self._simple is not None else len(self._items)

    def empty(self) -> bool:
        return self.qsize() == 0

    def put(self, batch: list[Any], feed: str | None = None) -> None:
        """Queue *batch* (the caller gives it up).  Never blocks."""
        count = _trades(batch)
        signal = None
        if self._simple is not None:
            with self._lock:
                self._queued += count
                if not self._lagging and self._queued > self.high_water:
                    self._lagging, signal = True, "lagging"
                queued = self._queued
            self._simple.put((feed, batch, count))
        else:
            with self._cond:
                overflow = self._queued + count - self.limit  # type: ignore[operator]
                if overflow > 0:
                    if self.overflow == "drop_newest":
                        batch, count = self._drop_newest(batch, feed, overflow, count)
                    else:
                        self._drop_oldest(min(overflow, self._queued))
                        overflow = self._queued + count - self.limit  # type: ignore[operator]
                        if overflow > 0:  # the new batch alone is over the limit
                            batch, count = self._drop_newest(batch, feed, overflow, count)
                    if not self._lagging:  # once per overflow episode
                        self._lagging, signal = True, "dropping"
                self._queued += count
                queued = self._queued
                self._items.append((feed, batch))
                self._cond.notify()
        if signal is not None:
            self._signal(signal, queued)

    def get(self, timeout: float | None = None) -> tuple[str | None, list[Any]]:
        """The oldest batch; waits up to *timeout* seconds (0: not at all).

        :raises queue.Empty: nothing came in time.
        """
        if self._simple is not None:
            feed, batch, count = self._simple.get_nowait() if timeout == 0 else self._simple.get(timeout=timeout)
            signal = None
            with self._lock:
                self._queued -= count
                if self._lagging and self._queued < self.high_water // 2:
                    self._lagging, signal = False, "caught_up"
                queued = self._queued
            if signal is not None:
                self._signal(signal, queued)
            return feed, batch
        signal = None
        with self._cond:
            if timeout != 0:
                self._cond.wait_for(lambda: bool(self._items), timeout)
            if not self._items:
                raise queue.Empty
            item = self._items.popleft()
            self._queued -= _trades(item[1])
            if self._lagging and self._queued < self.limit // 2:  # type: ignore[operator]
                self._lagging, signal = False, "caught_up"
            queued = self._queued
        if signal is not None:
            self._signal(signal, queued)
        return item

    def discard(self) -> None:
        """Drop every queued trade (counted); status events, errors, gaps and empty
        batches (the dispatcher's stop marker) stay."""
        batches = []
        while True:
            try:
                batches.append(self.get(0))
            except queue.Empty:
                break
        for feed, batch in batches:
            kept = [item for item in batch if type(item) is not Trade]
            with self._lock:
                self._count_drop(feed, len(batch) - len(kept))
            if kept or not batch:
                self.put(kept or batch, feed)

    def _drop_newest(self, batch: list[Any], feed: str | None, excess: int, count: int) -> tuple[list[Any], int]:
        """Drop the last *excess* trades of the incoming batch (never control items)."""
        kept: list[Any] = []
        dropped = 0
        for item in reversed(batch):
            if dropped < excess and type(item) is Trade:
                dropped += 1
                continue
            kept.append(item)
        kept.reverse()
        self._count_drop(feed, dropped)
        return kept, count - dropped

    def _drop_oldest(self, excess: int) -> None:
        """Drop *excess* trades from the oldest queued batches (never control items)."""
        index = 0
        while excess > 0 and index < len(self._items):
            feed, batch = self._items[index]
            trades = _trades(batch)
            if trades:
                take = min(trades, excess)
                kept, dropped = [], 0
                for item in batch:
                    if dropped < take and type(item) is Trade:
                        dropped += 1
                        continue
                    kept.append(item)
                self._items[index] = (feed, kept)
                self._queued -= dropped
                self._count_drop(feed, dropped)
                excess -= dropped
            index += 1

    def count_drop(self, feed: str | None, dropped: int) -> None:
        """Count trades dropped outside the queue (an abandoned delivery)."""
        with self._lock:
            self._count_drop(feed, dropped)

    def _count_drop(self, feed: str | None, dropped: int) -> None:
        if dropped:
            key = feed or ""
            self.dropped[key] = self.dropped.get(key, 0) + dropped
