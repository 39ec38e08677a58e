"""What one feed knows across its connections and reconnects.

A feed usually has one connection; with ``redundancy=N`` it has N identical ones, and
they share this state: a trade delivered by one connection is a duplicate on the others,
the newest trade per symbol is the feed's (sequence gaps are judged against it), and a
symbol is stale only when no connection brings it.  ``lock`` guards every field; the
connection threads hold it while they de-duplicate a frame, and the scheduler's
watchdog while it looks for stale symbols.

Line arbitration (redundant feeds)
----------------------------------
Each connection is a *line* (:class:`Line`), as the A and B lines of an exchange feed.
Merging lines by "first arrival wins" keeps a symbol's order only while every line is
in step.  A line that (re)connects while another line is live is not: its back-fill
(Dopp's snapshot, Rails' snapshot, SynFutures' window, Synthetix' getLastTrades) can be
*newer* than what the live line has delivered so far (the live line still has a backlog
in flight), so delivering it at once would put those trades ahead of older ones.

So such a line is *joining*, and per key (``(stream, symbol)``) it holds its new trades
back until the key *joins*, which happens when:

1. one of its trades is a repeat (the feed delivered it already): the line has reached
   the feed's position, and from there on its trades are the continuation (anything it
   held before that repeat is older than it, so it is dropped);
2. another line delivers a trade the joining line holds (or, on sequenced venues, the
   one just before its first held trade): the held trades after it follow right behind
   it, in the same hand-over;
3. no other line can deliver the key any more (they ended, or are joining themselves):
   the held trades are released; the reconnect seam rules apply (a Gap where
   continuity is unproven, sequence checks on sequenced venues);
4. the hold is ``join_timeout`` old and a line that should deliver the key has brought
   no trades at all for that long: :meth:`FeedState.overdue` names it (stalled); the
   connection reconnects it, and its end releases the hold as in 3.  A line that is
   merely behind, working through its backlog, is waited for: nothing is ever delivered
   out of order to save time.

While a joining line holds a key, its trades of the keys it has joined queue up behind
the held ones instead of overtaking them, so what it contributes keeps the venue's order
across symbols too (best effort: past ``4 * window`` queued trades only each symbol's
order is kept).  A joining line never delivers a trade older than the feed's newest of
its key (by sequence, else venue time): it starts behind the feed, and such a trade is
dropped (the feed had it; or it fills a hole a Gap reported already: late, it would
break the order).  A line holds at most ``window`` trades per key (the oldest go first: the line that is
behind delivers them, or their loss is reported when the hold is released).  A line that
connects while no other line is live is not joining; a joining line stops joining when
it is the only live line left.

Lines fall behind each other (one is slower, or a backlog piles up in its socket).  The
window de-duplicates only ``window`` trades per key, so a line whose previous trade of a
key has left the window is more than that far behind: its next trades of the key were
delivered long ago, and are dropped until it shows one the window still has.

Releases caused by one line's trades or end are returned to *that* line's thread, which
hands them over under ``lock`` right behind its own, so the hand-over order is the
arbitration's order.  With one connection none of this runs per trade (the connection
de-duplicates with :meth:`Deduplicator.fresh` and checks its own seam).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Iterable, Sequence

from .dedup import Deduplicator
from .models import Trade

__all__ = ["FeedState", "Line"]

#: (stream, symbol): the unit of de-duplication, ordering, gaps and staleness
Key = tuple[Any, str]


def _key(trade: Trade) -> Key:
    return (trade.stream, trade.symbol)


_PENDING, _GO, _DROP = 0, 1, 2


class _Entry:
    """A trade in a joining line's queue: pending (its key's hold is unresolved), to go
    (through de-duplication) or to drop."""

    __slots__ = ("trade", "key", "state")

    def __init__(self, trade: Trade, key: Key, state: int) -> None:
        self.trade, self.key, self.state = trade, key, state


class _Hold:
    """What one joining line holds back of one key: its pending entries, oldest first."""

    __slots__ = ("entries", "ids", "since")

    def __init__(self, since: float) -> None:
        self.entries: deque[_Entry] = deque()
        self.ids: set[str] = set()
        #: when it started (or was last reported by overdue()), time.monotonic()
        self.since = since

    def add(self, entry: _Entry, limit: int) -> None:
        self.entries.append(entry)
        self.ids.add(entry.trade.trade_id)
        if len(self.entries) > limit:  # the line behind brings the oldest
            oldest = self.entries.popleft()
            oldest.state = _DROP
            self.ids.discard(oldest.trade.trade_id)


class Line:
    """One connection's standing in its feed's arbitration.

    Every field is guarded by the feed's :attr:`FeedState.lock`, except :attr:`in_sync`
    (an event: wait on it from any thread).

    :param owner: the connection (returned by :meth:`FeedState.overdue`).
    """

    __slots__ = ("owner", "joining", "joined", "held", "queue", "unproven", "due", "prev", "active", "in_sync")

    def __init__(self, owner: Any = None) -> None:
        self.owner = owner
        #: it connected while another line was live
        self.joining = False
        #: keys whose trades this joining line delivers as they come
        self.joined: set[Key] = set()
        #: key -> what is held back of it
        self.held: dict[Key, _Hold] = {}
        #: a joining line's trades from its first pending one on, in arrival order
        self.queue: deque[_Entry] = deque()
        #: keys whose continuity across this line's reconnect is not proven yet (the seam)
        self.unproven: set[Key] = set()
        #: keys the feed knew when this line connected and that it has not joined yet
        self.due: set[Key] = set()
        #: key -> id of the last trade of it the line brought
        self.prev: dict[Key, str] = {}
        #: when it last brought trades (time.monotonic())
        self.active = 0.0
        #: set while the line is live, holds nothing and has joined every key the feed
        #: knew when it connected: the other lines may then fail without loss
        self.in_sync = threading.Event()


class FeedState:
    """Shared by the connections of one feed.

    :param window: trade ids remembered per symbol (and trades held per symbol by a
        joining line).
    :param join_timeout: seconds a joining line holds a symbol's trades, while a line that
        should deliver them brings no trades at all, before that line counts as stalled
        (:meth:`overdue`).
    """

    def __init__(self, window: int, join_timeout: float = 10.0) -> None:
        self.lock = threading.Lock()
        self.dedup = Deduplicator(window)
        #: key -> (timestamp_ms, sequence) of the newest trade delivered
        self.last_seen: dict[Key, tuple[int, int | None]] = {}
        #: key -> local receive time (ns) of its newest trade
        self.data_ns: dict[Key, int] = {}
        #: keys reported stale (None: the whole feed)
        self.stale: set[Key | None] = set()
        #: trades delivered (after de-duplication)
        self.trades = 0
        #: Gap events reported
        self.gaps = 0
        #: local receive time (ns) of the newest trade delivered
        self.last_trade_ns: int | None = None
        self.window = window
        self.join_timeout = join_timeout
        #: holds started: a joining line held a symbol's trades back (diagnostics)
        self.holds = 0
        #: the live lines, in the order they connected
        self.lines: list[Line] = []
        #: key -> the lines holding trades of it, in the order they started to
        self._holders: dict[Key, list[Line]] = {}

    # -- line arbitration (the caller holds lock) ----------------------------------------

    def opened(self, line: Line, unproven: Iterable[Key], now: float) -> bool:
        """*line* connected; returns whether it is joining (another line is live).

        :param unproven: the keys of its reconnect seam (see the connection), which the
            arbitration checks from now on.
        :param now: ``time.monotonic()``.
        """
        joining = bool(self.lines)
        self.lines.append(line)
        line.joining = joining
        line.joined, line.held, line.queue, line.prev = set(), {}, deque(), {}
        line.unproven = set(unproven)
        line.due = set(self.last_seen) if joining else set()
        line.active = now
        self._resync(line)
        return joining

    def adopt(self, line: Line, unproven: Iterable[Key]) -> None:
        """Take over seam keys of a line that connected before its feed became redundant."""
        line.unproven.update(unproven)

    def accept(self, line: Line, trades: Sequence[Trade], sequenced: bool, now: float) -> tuple[list[Trade], list[tuple[Key, Trade]]]:
        """The trades of one frame of *line*: what to hand over now, in order (its new
        trades, then what they released of other lines' holds), and the seam gaps to
        report first, as ``(key, first trade after the gap)``.

        :param sequenced: ``Trade.sequence`` counts every trade of a symbol.
        :param now: ``time.monotonic()``.
        """
        line.active = now
        out: list[Trade] = []
        gaps: list[tuple[Key, Trade]] = []
        if line.joining:
            for trade in trades:
                self._sort(line, trade, sequenced, now, out, gaps)
            self._drain(line, out, gaps)
        else:
            direct = self._direct
            for trade in trades:
                direct(line, trade, (trade.stream, trade.symbol), out, gaps)
        if out and self._holders:
            self._settle(out, sequenced, out, gaps)
        return out, gaps

    def closed(self, line: Line, sequenced: bool) -> tuple[list[Trade], list[tuple[Key, Trade]]]:
        """*line* ended; returns what that releases (as :meth:`accept`): the holds of
        other lines that no live line can deliver any more (rule 3)."""
        if line not in self.lines:
            return [], []
        self.lines.remove(line)
        line.in_sync.clear()
        for key in list(line.held):
            self._unhold(line, key)  # the lines still live bring these trades themselves
        line.joining = False
        line.joined, line.queue, line.unproven, line.due, line.prev = set(), deque(), set(), set(), {}
        out: list[Trade] = []
        gaps: list[tuple[Key, Trade]] = []
        for key in list(self._holders):
            holders = self._holders.get(key)
            if not holders or any(self._fed(holder, key) for holder in holders):
                continue
            holder = self._oldest(holders, key)
            hold = self._unhold(holder, key)
            for entry in hold.entries:  # none older than the feed's newest: out of order
                entry.state = _DROP if self._behind(key, entry.trade, sequenced) else _GO
            holder.joined.add(key)  # continuity unproven: the seam check judges it
            holder.due.discard(key)
            released: list[Trade] = []
            self._drain(holder, released, gaps)
            self._resync(holder)
            out.extend(released)
            self._settle(released, sequenced, out, gaps)
        if len(self.lines) == 1:  # alone: it is the feed now
            alone = self.lines[0]
            self._drain(alone, out, gaps, force=True)
            alone.joining = False
            alone.due = set()
        for other in self.lines:
            self._resync(other)
        return out, gaps

    def overdue(self, line: Line, now: float) -> list[Any]:
        """The owners of the stalled lines of rule 4: they should deliver a key that *line*
        has held for ``join_timeout``, and have brought no trades for as long.  A hold
        reports them once per ``join_timeout``."""
        late: list[Any] = []
        timeout = self.join_timeout
        for key, hold in line.held.items():
            if now - hold.since < timeout:
                continue
            for other in self.lines:
                if (
                    other is not line
                    and (not other.joining or key in other.joined)
                    and now - other.active >= timeout
                    and other.owner not in late
                ):
                    late.append(other.owner)
                    hold.since = now  # once per join_timeout
        return late

    # -- helpers ---------------------------------------------------------------------

    def _direct(self, line: Line, trade: Trade, key: Key, out: list[Trade], gaps: list[tuple[Key, Trade]]) -> None:
        """A trade of a key *line* is in step on: de-duplicated, checked, delivered."""
        dedup = self.dedup
        tid = trade.trade_id
        if dedup.repeat(key, tid):  # the feed delivered it (counted as a duplicate)
            line.prev[key] = tid
            if key in line.unproven:
                line.unproven.discard(key)  # the reconnect's first trade of it is a repeat: no hole
            return
        last = line.prev.get(key)
        line.prev[key] = tid
        if last is not None and not dedup.seen(key, last):
            # its previous trade of the key has left the window: the line is more than
            # `window` trades behind, so this one was delivered long ago
            dedup.dropped += 1
            return
        if key in line.unproven:
            line.unproven.discard(key)  # the reconnect's first trade of it is new: a hole?
            gaps.append((key, trade))
        dedup.remember(key, tid)
        out.append(trade)

    def _sort(self, line: Line, trade: Trade, sequenced: bool, now: float, out: list[Trade], gaps: list[tuple[Key, Trade]]) -> None:
        """A joining line's trade: through at once, queued behind a pending one (so the
        line's own order across keys is kept), held, joined (rule 1) or dropped."""
        key = (trade.stream, trade.symbol)
        if key not in line.joined:
            hold = line.held.get(key)
            if self.dedup.repeat(key, trade.trade_id):  # rule 1: it reached the feed's position
                line.prev[key] = trade.trade_id
                self._join(line, key)
                if hold is not None:  # held before a repeat: older than the feed's newest
                    self._resolve(line, key, ())
                self._resync(line)
                return
            if hold is None:
                if self._behind(key, trade, sequenced):
                    self.dedup.dropped += 1  # the line is behind the feed: not its turn yet
                    return
                if self._continues(key, trade, sequenced):  # the next in sequence: proven
                    self._join(line, key)
                elif not self._fed(line, key):  # no other line to wait for
                    line.joined.add(key)  # continuity unproven: the seam check judges it
                    line.due.discard(key)
                else:
                    hold = line.held[key] = _Hold(now)
                    self._holders.setdefault(key, []).append(line)
                    self.holds += 1
                self._resync(line)
            if hold is not None:
                if trade.trade_id not in hold.ids:  # else the line's own resend (a window)
                    entry = _Entry(trade, key, _PENDING)
                    hold.add(entry, self.window)
                    line.queue.append(entry)
                return
        if line.queue:
            line.queue.append(_Entry(trade, key, _GO))
            if len(line.queue) > self.window * 4:  # that long a wait: keep each key's order only
                self._drain(line, out, gaps, force=True)
        else:
            self._direct(line, trade, key, out, gaps)

    def _drain(self, line: Line, out: list[Trade], gaps: list[tuple[Key, Trade]], force: bool = False) -> None:
        """Hand over the front of *line*'s queue up to its first pending entry (with
        *force*, every entry not pending)."""
        queue = line.queue
        if force:
            keep = deque(e for e in queue if e.state == _PENDING)
            done = [e for e in queue if e.state != _PENDING]
            queue.clear()
        else:
            done = []
            while queue and queue[0].state != _PENDING:
                done.append(queue.popleft())
        for entry in done:
            if entry.state == _GO:
                self._direct(line, entry.trade, entry.key, out, gaps)
            else:
                self.dedup.dropped += 1
        if force:
            line.queue = keep

    def _resolve(self, line: Line, key: Key, go: Iterable[_Entry]) -> None:
        """*key*'s hold on *line* is over: *go* go through, its other entries are dropped."""
        hold = self._unhold(line, key)
        going = {id(entry) for entry in go}
        for entry in hold.entries:
            entry.state = _GO if id(entry) in going else _DROP

    def _settle(self, delivered: list[Trade], sequenced: bool, out: list[Trade], gaps: list[tuple[Key, Trade]]) -> None:
        """Rule 2: the holds *delivered* (just handed over) reached; what they release
        is appended to *out*, right behind."""
        batch = delivered
        while batch and self._holders:
            by_key: dict[Key, list[Trade]] = {}
            for trade in batch:
                key = _key(trade)
                if key in self._holders:
                    by_key.setdefault(key, []).append(trade)
            batch = []
            for key, trades in by_key.items():
                for holder in list(self._holders.get(key, ())):
                    hold = holder.held[key]
                    rest = self._rest(hold, trades, sequenced)
                    if rest is None:
                        continue
                    self._resolve(holder, key, rest)
                    self._join(holder, key)
                    self._drain(holder, batch, gaps)
                    self._resync(holder)
            out.extend(batch)

    @staticmethod
    def _rest(hold: _Hold, trades: list[Trade], sequenced: bool) -> list[_Entry] | None:
        """If the feed, delivering *trades* (in order), reached *hold*: its entries after
        the feed's newest (those up to it are in *trades* or older); else None."""
        if sequenced:
            seqs = [t.sequence for t in trades if t.sequence is not None]
            held = [e.trade.sequence for e in hold.entries if e.trade.sequence is not None]
            if seqs and held:
                last = max(seqs)
                if last + 1 < min(held):
                    return None  # not there yet
                return [e for e in hold.entries if e.trade.sequence is None or e.trade.sequence > last]
        ids = hold.ids
        delivered = {t.trade_id for t in trades if t.trade_id in ids}
        if not delivered:
            return None
        entries = list(hold.entries)
        reached = max(i for i, e in enumerate(entries) if e.trade.trade_id in delivered)
        return entries[reached + 1 :]

    def _behind(self, key: Key, trade: Trade, sequenced: bool) -> bool:
        """Is *trade* older than the feed's newest of *key* (by sequence, else venue time)?
        A joining line never delivers such a trade: it would be out of order (and, the
        line being that far behind, it was most likely delivered, then forgotten)."""
        last = self.last_seen.get(key)
        if last is None:
            return False
        if sequenced and trade.sequence is not None and last[1] is not None:
            return trade.sequence <= last[1]
        return trade.timestamp_ms < last[0]

    def _continues(self, key: Key, trade: Trade, sequenced: bool) -> bool:
        """On a sequenced venue: is *trade* the one right after the feed's newest?"""
        if not sequenced or trade.sequence is None:
            return False
        last = self.last_seen.get(key)
        return last is not None and last[1] is not None and trade.sequence == last[1] + 1

    def _fed(self, line: Line, key: Key) -> bool:
        """Is another live line delivering *key* (so *line* can wait for it)?"""
        return any(other is not line and (not other.joining or key in other.joined) for other in self.lines)

    def _join(self, line: Line, key: Key) -> None:
        """*key* joined on *line* with its continuity proven or settled."""
        line.joined.add(key)
        line.unproven.discard(key)
        line.due.discard(key)

    def _unhold(self, line: Line, key: Key) -> _Hold:
        hold = line.held.pop(key)
        holders = self._holders[key]
        holders.remove(line)
        if not holders:
            del self._holders[key]
        return hold

    @staticmethod
    def _oldest(holders: list[Line], key: Key) -> Line:
        """The holder whose held trades start first: no other holds its first trade
        behind trades of its own."""
        for holder in holders:
            first = holder.held[key].entries[0].trade.trade_id
            if not any(
                other is not holder
                and first in other.held[key].ids
                and other.held[key].entries[0].trade.trade_id != first
                for other in holders
            ):
                return holder
        return holders[0]

    def _resync(self, line: Line) -> None:
        if line in self.lines and not line.held and not line.due:
            line.in_sync.set()
        else:
            line.in_sync.clear()
