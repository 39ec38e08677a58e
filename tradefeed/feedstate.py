"""What one feed knows across its connections and reconnects.

A feed usually has one connection; with ``redundancy=N`` it has N identical ones, and
they share this state: a trade delivered by one connection is a duplicate on the others,
the newest trade per symbol is the feed's (sequence gaps are judged against it), and a
symbol is stale only when no connection brings it.  ``lock`` guards every field; the
connection threads hold it while they de-duplicate a frame, and the scheduler's
watchdog while it looks for stale symbols.
"""

from __future__ import annotations

import threading
from typing import Any

from .dedup import Deduplicator

__all__ = ["FeedState"]

#: (raw["stream"], symbol): the unit of de-duplication, ordering, gaps and staleness
Key = tuple[Any, str]


class FeedState:
    """Shared by the connections of one feed.

    :param window: trade ids remembered per symbol.
    """

    def __init__(self, window: int) -> None:
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
