"""De-duplication of trades by ``(stream, symbol, trade_id)`` with bounded memory.

Venues resend recent trades (Dopp snapshots, SynFutures windows, back-fill overlapping
live data), so each feed keeps the last ``window`` trade ids per symbol and drops a
trade whose id it has seen.  The window outlives connection attempts: that is what makes
the reconnect seam safe.  Memory is bounded: ``window`` ids per (stream, symbol).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from .models import Trade

__all__ = ["Deduplicator"]

_UNUSED: set[tuple[object, str]] = set()  # never added to


class _Window:
    __slots__ = ("ids", "order")

    def __init__(self, size: int) -> None:
        self.ids: set[str] = set()
        self.order: deque[str] = deque(maxlen=size)


class Deduplicator:
    """Remembers the last *window* trade ids per ``(stream, symbol)``.

    Not thread-safe: one connection thread owns it.

    :param window: ids remembered per symbol; must exceed the largest resend window
        of the venue (snapshots of 20, windows of up to 100).
    """

    def __init__(self, window: int = 4096) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._size = window
        self._windows: dict[tuple[object, str], _Window] = {}
        #: trades dropped as repeats, for stats
        self.dropped = 0

    def fresh(self, trades: Iterable[Trade], repeats: set[tuple[object, str]] | None = None) -> list[Trade]:
        """The trades not seen before, in their order; all of them are remembered.

        :param repeats: if given, the ``(stream, symbol)`` key of every trade dropped
            *before the first fresh trade of its key* is added to it: the key's trades
            then start with one seen before this call, which proves the stream continued
            from what was seen.  A drop after the key's first fresh trade proves nothing:
            it may repeat a trade of this very batch (a back-fill followed by the live
            trades it overlaps).
        """
        out: list[Trade] = []
        windows = self._windows
        size = self._size
        win: _Window | None = None
        symbol: str = ""
        stream: object = None
        key: tuple[object, str] = (None, "")
        ids: set[str]  # both set with win, at the first trade
        order: deque[str]
        # keys with a fresh trade, kept only for repeats (no set built per call otherwise)
        started: set[tuple[object, str]] = set() if repeats is not None else _UNUSED
        for trade in trades:
            # a frame's trades are mostly of one symbol: look the window up (and build
            # the key tuple, an allocation the cyclic GC counts) only when it changes
            if win is None or trade.symbol != symbol or trade.stream != stream:
                symbol, stream = trade.symbol, trade.stream
                key = (stream, symbol)
                win = windows.get(key)
                if win is None:
                    win = windows[key] = _Window(size)
                ids, order = win.ids, win.order
            tid = trade.trade_id
            if tid in ids:
                self.dropped += 1
                if repeats is not None and key not in started:
                    repeats.add(key)
                continue
            if len(order) == size:
                ids.discard(order[0])  # about to fall out of the deque
            order.append(tid)
            ids.add(tid)
            out.append(trade)
            if repeats is not None:
                started.add(key)
        return out

    # One trade at a time, for the line arbitration of redundant feeds (feedstate.py).

    def seen(self, key: tuple[object, str], trade_id: str) -> bool:
        """Whether *trade_id* of *key* is in the window."""
        win = self._windows.get(key)
        return win is not None and trade_id in win.ids

    def repeat(self, key: tuple[object, str], trade_id: str) -> bool:
        """:meth:`seen`, and counted as dropped if so."""
        win = self._windows.get(key)
        if win is None or trade_id not in win.ids:
            return False
        self.dropped += 1
        return True

    def remember(self, key: tuple[object, str], trade_id: str) -> None:
        """Put a new *trade_id* of *key* in the window (as :meth:`fresh` does)."""
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = _Window(self._size)
        if len(win.order) == self._size:
            win.ids.discard(win.order[0])  # about to fall out of the deque
        win.order.append(trade_id)
        win.ids.add(trade_id)
