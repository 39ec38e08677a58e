"""Feed: the handle on one feed that :meth:`FeedManager.add_feed` returns.

A feed runs one connection, or several identical ones (``redundancy``), or two for a
moment while a rotation replaces one (``rotate_after``); this handle sums their counters,
reports the error that ended the feed, and passes run-time subscription changes to each.
What must not go here: starting, rotating or stopping connections (the manager does
that), and making them (:mod:`tradefeed._wiring` does, and sets
:attr:`Feed._make_connection`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .connection import Connection
from .exceptions import TradefeedError
from .logs import redact
from .models import FeedStats, Status

__all__ = ["Feed"]


class Feed:
    """A handle on one feed, returned by :meth:`FeedManager.add_feed`.

    ``repr`` never shows credentials (any parameter named like a key, secret or token).
    """

    def __init__(self, name: str, venue: str, url: str | None, connections: list[Connection]):
        #: unique name within the manager, e.g. ``"dopp-1"``
        self.name = name
        #: venue registry key
        self.venue = venue
        #: base URL override, or None for the venue's production URL
        self.url = url
        self._connections = connections
        self._make_connection: Callable[[int, dict[str, Any]], Connection] = lambda index, params: connections[0]
        self._rotate_after: float | None = None

    @property
    def _connection(self) -> Connection:
        return self._connections[0]

    @property
    def redundancy(self) -> int:
        """How many identical connections the feed runs."""
        return len(self._connections)

    @property
    def params(self) -> dict[str, Any]:
        """The venue parameters now (run-time subscription changes included).
        Credentials are never among them: they live in the token provider."""
        return redact(self._connection.params)

    @property
    def error(self) -> TradefeedError | None:
        """The error that ended this feed, if it ended on one."""
        return next((c.fatal_error for c in self._connections if c.fatal_error is not None), None)

    def subscribe(self, *items: str) -> None:
        """Add subscription items at run time: SynFutures pairs, Synthetix symbols,
        Rails streams.  Sent at once if connected, and on every reconnect.  Safe from
        any thread, callbacks included.

        :raises ConfigError: an invalid item, or a venue whose subscriptions are fixed
            at connect time (Dopp: add another feed).
        """
        for connection in self._connections:
            connection.change_subscription(True, list(items))

    def unsubscribe(self, *items: str) -> None:
        """Remove subscription items at run time; their trades stop arriving (ones
        already in flight are dropped).

        :raises ConfigError: as :meth:`subscribe`, or when nothing would be left.
        """
        for connection in self._connections:
            connection.change_subscription(False, list(items))

    def is_alive(self) -> bool:
        """True while any of the feed's threads runs."""
        return any(c.is_alive() for c in self._connections)

    def stats(self) -> FeedStats:
        """This feed's counters (summed over its connections)."""
        parts = [c.stats() for c in self._connections]
        first = parts[0]
        if len(parts) == 1:
            return first
        order = [Status.CONNECTED, Status.CONNECTING, Status.RECONNECTING, Status.DISCONNECTED, Status.STOPPED]
        best = min((p.status for p in parts), key=lambda s: order.index(s) if s in order else len(order))
        return dataclasses.replace(
            first,
            status=best,
            messages=sum(p.messages for p in parts),
            errors=sum(p.errors for p in parts),
            reconnects=sum(p.reconnects for p in parts),
        )

    def __repr__(self) -> str:
        return "<Feed %s %s url=%r params=%r>" % (self.name, self.stats().status.value, self.url, self.params)

    def _status_for(self, now: float) -> float:
        """Seconds (to monotonic *now*) since the feed last went up or down: up since its
        longest-connected connection connected, down since the last one went down."""
        connections = self._connections
        up = [c.connected_changed for c in connections if c.status is Status.CONNECTED]
        since = min(up) if up else max(c.connected_changed for c in connections)
        return max(0.0, now - since)
