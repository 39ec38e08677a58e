"""One connection's per-frame pipeline: from parsed trades to the batch handed over.

A :class:`~tradefeed.connection.Connection` reads frames and has its adapter parse them;
everything after that is here: de-duplication against what the feed delivered, the
reconnect seam (the first trades of a key after a reconnect must repeat one seen, or the
hole is reported as a :class:`~tradefeed.models.Gap`), sequence gaps, the newest trade
per key and the staleness bookkeeping, and the batch itself (trades, errors and status
events in order, handed to the dispatcher in one ``put``).  A redundant feed's trades go
through its line arbitration (:class:`~tradefeed.feedstate.FeedState`) instead of the
plain de-duplication, so its order is the arbitration's.

Runs on the connection's thread; the feed's shared state is touched under
``state.lock``.  No sockets and no clocks but the times it is handed.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from .feedstate import FeedState, Line
from .models import Gap, Status, StatusEvent, Trade

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

Key = tuple[Any, str]


class Pipeline:
    """The trades of one connection of feed *name*, on their way to the dispatcher.

    :param state: the feed's shared state (de-duplication, last seen, arbitration).
    :param line: this connection's place in the arbitration.
    :param put: hands a batch to the dispatcher (``put(batch, feed_name)``).
    :param batch_items: the batch size at which :meth:`full` says to hand over.
    """

    def __init__(
        self, name: str, venue: str, state: FeedState, line: Line, put: Callable[[list[Any], str], None], batch_items: int
    ) -> None:
        self.name = name
        self.venue = venue
        self.state = state
        self.line = line
        self._put = put
        self.batch_items = batch_items
        #: what has not been handed over yet: trades, errors, gaps, status events in order
        self.pending: list[Any] = []
        #: keys whose continuity across the last reconnect is not yet proven
        self.seam: set[Key] = set()
        #: the feed has several connections: trades go through the arbitration
        self.redundant = False

    def flush(self) -> None:
        """Hand over the batch (even an empty one wakes nobody: the queue skips it)."""
        batch = self.pending
        self.pending = []
        self._put(batch, self.name)

    def trades(self, trades: Any, sequenced: bool, received_ns: int) -> None:
        """A frame's trades: the new ones (and any Gap) join the batch."""
        if self.redundant:
            self._merge(trades, sequenced, received_ns)
            return
        state = self.state
        with state.lock:  # shared with the feed's other connections (redundancy, rotation)
            repeats: set[Key] | None = set() if self.seam else None
            fresh = state.dedup.fresh(trades, repeats)
            if repeats is not None:
                self._check_seam(trades, fresh, repeats)
            if fresh:
                self._check_gaps(fresh, sequenced, received_ns)
                state.trades += len(fresh)
                state.last_trade_ns = received_ns
        if fresh:
            self.pending.extend(fresh)

    # -- redundancy: line arbitration (FeedState) ------------------------------------

    def join(self, now: float) -> bool:
        """The connection opened: take its place among the feed's lines; whether it is
        joining (another line is live)."""
        state = self.state
        with state.lock:
            # a redundant feed's seam is checked by the arbitration from now on
            joining = state.opened(self.line, self.seam if self.redundant else (), now)
            if self.redundant:
                self.seam = set()
        return joining

    def leave(self, sequenced: bool) -> None:
        """The connection ended: trades other lines held for this one are released (with
        the seam's Gap checks) and handed over."""
        state = self.state
        with state.lock:
            released, gaps = state.closed(self.line, sequenced)
            if released or gaps:
                self._deliver(released, gaps, sequenced, time.time_ns())

    def _merge(self, trades: Any, sequenced: bool, received_ns: int) -> None:
        """A redundant feed's trades go through its line arbitration and are handed over
        under ``state.lock``, so the feed's order is the arbitration's."""
        state = self.state
        with state.lock:
            if self.seam:  # opened before its feed became redundant (a rotation)
                state.adopt(self.line, self.seam)
                self.seam = set()
            fresh, gaps = state.accept(self.line, trades, sequenced, time.monotonic())
            if fresh or gaps:
                self._deliver(fresh, gaps, sequenced, received_ns)

    def _deliver(self, fresh: list[Trade], gaps: list[tuple[Any, Trade]], sequenced: bool, received_ns: int) -> None:
        """Hand over what the arbitration let through; the caller holds ``state.lock``."""
        state = self.state
        for key, first in gaps:
            self._gap(key, "reconnect", state.last_seen[key][0], first.timestamp_ms)
        if fresh:
            self._check_gaps(fresh, sequenced, received_ns)
            state.trades += len(fresh)
            state.last_trade_ns = received_ns
            self.pending.extend(fresh)
        self.flush()

    # -- seams, gaps and staleness (the caller holds state.lock) ----------------------

    def _check_seam(self, trades: Any, fresh: list[Trade], repeats: set[Key]) -> None:
        """First trades of a symbol after a reconnect: a repeat of something seen proves
        the back-fill reached back far enough; otherwise report the hole as a Gap."""
        for key in {(t.stream, t.symbol) for t in trades} & self.seam:
            self.seam.discard(key)
            if key in repeats:
                continue
            first = next(t for t in fresh if (t.stream, t.symbol) == key)
            self._gap(key, "reconnect", self.state.last_seen[key][0], first.timestamp_ms)

    def _check_gaps(self, fresh: list[Trade], sequenced: bool, received_ns: int) -> None:
        """Remember the newest trade per symbol; on sequenced venues, report jumps.

        Runs once per trade: a run of trades of one key (most frames have one symbol)
        reads and writes the shared dicts once, at its ends, and allocates nothing."""
        state = self.state
        last_seen, data_ns = state.last_seen, state.data_ns
        if state.stale:
            self._freshen(fresh)
        key: Key | None = None
        symbol: str = ""
        stream: Any = None
        newest_ts: int | None = None  # the key's newest trade: None when none was seen
        newest_seq: int | None = None
        for trade in fresh:
            if key is None or trade.symbol != symbol or trade.stream != stream:
                if key is not None and newest_ts is not None:
                    last_seen[key] = (newest_ts, newest_seq)
                symbol, stream = trade.symbol, trade.stream
                key = (stream, symbol)
                data_ns[key] = received_ns
                newest_ts, newest_seq = last_seen.get(key, (None, None))
            seq = trade.sequence
            if sequenced and seq is not None and newest_seq is not None:
                if seq > newest_seq + 1:
                    self._gap(key, "sequence", newest_ts, trade.timestamp_ms, newest_seq, seq)  # type: ignore[arg-type]
                elif seq <= newest_seq:
                    continue  # late (reordered) trade: the newest stays the reference
            newest_ts, newest_seq = trade.timestamp_ms, seq
        if key is not None and newest_ts is not None:
            last_seen[key] = (newest_ts, newest_seq)

    def _freshen(self, fresh: list[Trade]) -> None:
        """Data for a stale symbol (or a stale feed): say it is fresh again."""
        keys = {(t.stream, t.symbol) for t in fresh}
        stale = self.state.stale
        back = [k for k in stale if k is None or k in keys]
        stale.difference_update(back)
        for key in back:
            self.pending.append(
                StatusEvent(self.name, self.venue, Status.FRESH, time.time_ns(), {"symbol": None if key is None else key[1]})
            )

    def _gap(self, key: Key, reason: str, from_ms: int, to_ms: int, last: int | None = None, nxt: int | None = None) -> None:
        self.state.gaps += 1
        gap = Gap(self.name, self.venue, key[1], reason, from_ms, to_ms, last, nxt, key[0])
        log.warning("%s: possible loss: %s", self.name, gap)
        self.pending.append(gap)

    def stale(self, now_ns: int, limit_ns: int, opened_ns: int) -> list[StatusEvent]:
        """The ``stale`` events due now: each symbol (and the whole feed: symbol None)
        without data for *limit_ns*, reported once until data comes back.  *opened_ns*:
        when the connection opened (a feed that never brought data is stale from then)."""
        state = self.state
        events = []
        with state.lock:
            quiet = [key for key, seen in state.data_ns.items() if now_ns - seen > limit_ns]
            newest = max([opened_ns, *state.data_ns.values()])
            for key in quiet + ([None] if now_ns - newest > limit_ns else []):
                if key not in state.stale:
                    state.stale.add(key)
                    age = (now_ns - (newest if key is None else state.data_ns[key])) / 1e9
                    events.append(
                        StatusEvent(
                            self.name, self.venue, Status.STALE, now_ns, {"symbol": None if key is None else key[1], "age": age}
                        )
                    )
        return events
