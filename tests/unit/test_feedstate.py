"""Line arbitration of redundant feeds (FeedState): each rule, deterministically.

Lines are driven by hand, in the interleavings that matter: "A" is the line that was live,
"B" the one that (re)connects while A is; trades are numbered in venue order.
"""

from __future__ import annotations

from decimal import Decimal

from tradefeed import Side, Trade
from tradefeed.feedstate import FeedState, Line

KEY = ("public", "BTC-PERPETUAL")


def t(n: int, symbol: str = "BTC-PERPETUAL", *, seq: bool = False) -> Trade:
    return Trade("dopp", symbol, str(n), Decimal(1), Decimal(1), Side.BUY, 1_000 + n, sequence=n if seq else None)


def ts(*ns: int, seq: bool = False) -> list[Trade]:
    return [t(n, seq=seq) for n in ns]


def ids(trades) -> list[int]:
    return [int(x.trade_id) for x in trades]


class Feed:
    """A FeedState and its lines, with what the connection does around accept()/closed():
    the hand-over list and last_seen."""

    def __init__(self, window: int = 4096, join_timeout: float = 10.0, sequenced: bool = False) -> None:
        self.state = FeedState(window, join_timeout)
        self.sequenced = sequenced
        self.delivered: list[Trade] = []
        self.gaps: list[tuple[int, int]] = []  # (first id after the gap, last delivered id)
        self.now = 0.0

    def open(self, name: str, unproven=()) -> Line:
        line = Line(name)
        self.joined = self.state.opened(line, unproven, self.now)
        return line

    def _hand_over(self, fresh, gaps) -> list[Trade]:
        for key, first in gaps:
            self.gaps.append((int(first.trade_id), self.state.last_seen[key][1]))
        for trade in fresh:
            self.state.last_seen[(trade.stream, trade.symbol)] = (trade.timestamp_ms, int(trade.trade_id))
        self.delivered.extend(fresh)
        return fresh

    def frame(self, line: Line, *trades: Trade) -> list[int]:
        return ids(self._hand_over(*self.state.accept(line, list(trades), self.sequenced, self.now)))

    def close(self, line: Line) -> list[int]:
        return ids(self._hand_over(*self.state.closed(line, self.sequenced)))


def test_a_single_line_delivers_directly_and_is_in_sync():
    feed = Feed()
    a = feed.open("A")
    assert not feed.joined and a.in_sync.is_set()
    assert feed.frame(a, *ts(1, 2, 3)) == [1, 2, 3]
    assert feed.frame(a, *ts(2, 3, 4)) == [4]  # a window overlapping the last
    assert feed.state.dedup.dropped == 2 and feed.state.holds == 0


def test_rule_1_a_backfill_reaching_back_to_delivered_trades_joins_at_once():
    """B's back-fill starts with trades the feed delivered: B is at the feed's position,
    and its newer trades are the continuation."""
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, 3, 4, 5))
    b = feed.open("B")
    assert feed.joined and not b.in_sync.is_set()  # it has a symbol to join
    assert feed.frame(b, *ts(3, 4, 5, 6, 7)) == [6, 7]
    assert b.in_sync.is_set() and KEY in b.joined
    assert feed.frame(a, *ts(6, 7, 8)) == [8]
    assert ids(feed.delivered) == list(range(1, 9)) and feed.state.holds == 0


def test_rule_2_a_backfill_ahead_of_the_live_line_waits_for_it():
    """The bug: A still has 6..10 in flight when B's back-fill 9..12 arrives.  B's trades
    are held; when A delivers one of them, the rest follow right behind, in order."""
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, 3, 4, 5))
    b = feed.open("B")
    assert feed.frame(b, *ts(9, 10, 11, 12)) == []  # held: newer than anything delivered
    assert feed.frame(b, t(13)) == []  # B's live trades too
    assert feed.state.holds == 1 and not b.in_sync.is_set()
    assert feed.frame(a, *ts(6, 7, 8)) == [6, 7, 8]  # not there yet
    assert feed.frame(a, *ts(9, 10)) == [9, 10, 11, 12, 13]  # A reached the hold
    assert b.in_sync.is_set() and not b.held
    assert feed.frame(a, *ts(11, 12, 13, 14)) == [14]
    assert feed.frame(b, *ts(14, 15)) == [15]
    assert ids(feed.delivered) == list(range(1, 16)) and feed.gaps == []


def test_sequenced_a_line_continuing_the_feed_joins_and_a_hold_follows_the_one_before_it():
    """With a sequence, the trade right after the feed's newest proves continuity, and a
    hold is released by the trade just before its first, without sharing an id."""
    feed = Feed(sequenced=True)
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, seq=True))
    b = feed.open("B")
    assert feed.frame(b, *ts(3, 4, seq=True)) == [3, 4]  # 3 follows 2: no wait
    assert KEY in b.joined and feed.state.holds == 0
    c = feed.open("C")
    assert feed.frame(c, *ts(7, 8, seq=True)) == []  # 5, 6 not delivered yet: held
    assert feed.frame(a, *ts(3, 4, 5, 6, seq=True)) == [5, 6, 7, 8]  # 6 is the one before 7
    assert ids(feed.delivered) == list(range(1, 9))


def test_rule_3_the_live_line_ending_releases_the_hold_with_a_seam_gap():
    """A ends before it reached B's hold: nobody else will deliver the symbol, so B's held
    trades go, and as its continuity is unproven (no sequence) a Gap reports the hole."""
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, 3))
    b = feed.open("B", unproven=[KEY])
    assert feed.frame(b, *ts(7, 8)) == []
    assert feed.close(a) == [7, 8]
    assert feed.gaps == [(7, 3)]  # between 3 and 7
    assert not b.joining and b.in_sync.is_set() and not a.in_sync.is_set()
    assert feed.frame(b, t(9)) == [9]  # B is the feed now


def test_a_holder_ending_drops_its_hold_the_live_line_brings_those_trades():
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2))
    b = feed.open("B")
    assert feed.frame(b, *ts(5, 6)) == []
    assert feed.close(b) == []
    assert feed.frame(a, *ts(3, 4, 5, 6)) == [3, 4, 5, 6]
    assert feed.state._holders == {}


def test_rule_4_a_line_bringing_nothing_is_named_once_per_timeout():
    """A stalled line (nothing at all for join_timeout) is reported; a line that is merely
    behind but working through its backlog is waited for."""
    feed = Feed(join_timeout=10.0)
    a = feed.open("A")
    feed.frame(a, *ts(1, 2))
    b = feed.open("B")
    feed.frame(b, *ts(8, 9))
    feed.now = 9.0
    assert feed.state.overdue(b, feed.now) == []  # not yet
    feed.frame(a, *ts(3))  # A is busy with its backlog
    feed.now = 12.0
    assert feed.state.overdue(b, feed.now) == []
    feed.now = 19.0
    assert feed.state.overdue(b, feed.now) == ["A"]  # 10 s without a trade from A
    feed.now = 20.0
    assert feed.state.overdue(b, feed.now) == []  # reported once per join_timeout
    assert feed.close(a) == [8, 9]  # its connection is cut: rule 3


def test_a_hold_is_bounded_and_ignores_the_lines_own_resends():
    """At most `window` trades per symbol are held (the oldest go: the line behind brings
    them), and an overlapping window resent by the joining line is held once."""
    feed = Feed(window=3)
    a = feed.open("A")
    feed.frame(a, t(1))
    b = feed.open("B")
    feed.frame(b, *ts(4, 5, 6))
    feed.frame(b, *ts(5, 6, 7))  # SynFutures-like window
    assert [int(e.trade.trade_id) for e in b.held[KEY].entries] == [5, 6, 7]
    assert feed.frame(a, *ts(2, 3, 4, 5)) == [2, 3, 4, 5, 6, 7]


def test_a_backfill_after_live_trades_keeps_the_order():
    """Rails-like: the joining line's live trade 7 arrives before its back-fill 3..7.  The
    back-fill's 3 proves its position; the held 7 comes after the back-fill's 6, once."""
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, 3, 4, 5))
    b = feed.open("B")
    assert feed.frame(b, t(7)) == []
    assert feed.frame(b, *ts(3, 4, 5, 6, 7)) == [6, 7]
    assert ids(feed.delivered) == [1, 2, 3, 4, 5, 6, 7]


def test_a_line_further_behind_than_the_window_does_not_deliver_old_trades_again():
    """Once the line's last trade of a symbol has left the window, its next ones were
    delivered long ago (and forgotten): dropped, until it shows one the window has."""
    feed = Feed(window=4)
    a = feed.open("A")
    b = feed.open("B")
    feed.frame(a, t(1))
    assert feed.frame(b, t(1)) == []  # a repeat: B joins at 1
    assert feed.frame(a, *ts(2, 3, 4, 5, 6, 7, 8, 9)) == [2, 3, 4, 5, 6, 7, 8, 9]  # B falls behind
    assert feed.frame(b, *ts(2, 3, 4)) == []  # out of the window (6..9 left), yet not new
    assert feed.frame(b, *ts(5, 6, 7, 8, 9, 10)) == [10]  # 6 is in the window: caught up
    assert ids(feed.delivered) == list(range(1, 11))


def test_seam_a_repeat_first_proves_continuity_a_new_trade_first_is_a_gap():
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, 3))
    feed.close(a)
    a = feed.open("A", unproven=[KEY])  # alone: not joining, only the seam applies
    assert feed.frame(a, *ts(3, 4)) == [4] and feed.gaps == []
    feed.close(a)
    a = feed.open("A", unproven=[KEY])
    assert feed.frame(a, *ts(8, 9, 8)) == [8, 9]  # a repeat inside the batch proves nothing
    assert feed.gaps == [(8, 4)]


def test_with_three_lines_the_oldest_hold_is_released_first():
    """A ends while B and C hold overlapping trades: B's (older) go first, then C's rest
    follows behind them, in order."""
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, *ts(1, 2, 3, 4))
    c = feed.open("C")
    b = feed.open("B")
    feed.frame(c, *ts(7, 8, 9))
    feed.frame(b, *ts(5, 6, 7, 8))
    assert feed.close(a) == [5, 6, 7, 8, 9]
    assert b.in_sync.is_set() and c.in_sync.is_set()


def test_a_joining_line_far_behind_the_feed_neither_holds_nor_delivers_old_trades():
    """B's stream starts further back than the window reaches: its trades older than the
    feed's newest are dropped (it would be out of order, and the feed had them), not held,
    until one is a repeat the window still has: then B has joined."""
    feed = Feed(window=4)
    a = feed.open("A")
    feed.frame(a, *ts(*range(1, 11)))
    b = feed.open("B")
    assert feed.frame(b, *ts(3, 4, 5)) == [] and not b.held
    assert feed.frame(b, *ts(6, 7, 8, 9, 10, 11, 12)) == [11, 12]
    assert ids(feed.delivered) == list(range(1, 13)) and feed.state.holds == 0


def test_a_joining_line_keeps_its_own_order_across_symbols():
    """B holds a symbol the feed has not delivered yet (A may have older trades of it in
    flight); B's later trades of a symbol it has joined wait behind that hold rather than
    overtake it, so what B contributes keeps the venue's order across symbols too."""
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, t(1))
    b = feed.open("B")
    eth = lambda n: t(n, "ETH-PERPETUAL")  # noqa: E731
    assert feed.frame(b, t(1), eth(2), t(3)) == []  # 1: joined; ETH 2: held; 3 waits behind it
    assert not b.in_sync.is_set()
    assert feed.close(a) == [2, 3]  # A is gone before it got there: in B's order
    assert feed.frame(b, eth(4), t(5)) == [4, 5]
    assert ids(feed.delivered) == [1, 2, 3, 4, 5] and feed.gaps == []


def test_a_joining_line_queue_drains_when_the_live_line_catches_up():
    feed = Feed()
    a = feed.open("A")
    feed.frame(a, t(1))
    b = feed.open("B")
    eth = lambda n: t(n, "ETH-PERPETUAL")  # noqa: E731
    assert feed.frame(b, t(1), eth(2), t(3), eth(4)) == []
    assert feed.frame(a, eth(2)) == [2, 3, 4]  # A delivers ETH 2: B's queue follows
    assert feed.frame(a, t(3), eth(4), t(5)) == [5]
    assert b.in_sync.is_set() and not b.queue
