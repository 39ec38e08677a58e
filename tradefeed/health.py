"""Is a running manager healthy?  The verdict behind ``/healthz``.

This module owns the rules and nothing else: it takes what the manager already counts
(a snapshot per feed, the sinks' stats) and returns a :class:`Health`.  It opens no
socket, reads no clock (the caller measures the durations) and imports no metrics
library, so every rule is tested without a server.

A manager is healthy while every feed is connected (or has been down for less than
*reconnect_grace* seconds: a reconnect is routine), no connected feed has gone without
trades for longer than *stale_after* seconds, and no sink holds more than
*sink_pending_limit* unwritten trades.  Anything else is a problem, named in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from .models import FeedStats, Status
from .sinks import SinkStats

__all__ = ["FeedSnapshot", "Health", "evaluate", "RECONNECT_GRACE", "SINK_PENDING_LIMIT"]

#: seconds a feed may be disconnected or reconnecting before it is a problem (by default:
#: longer than the default backoff's longest wait, 30 s, so one slow retry is not one)
RECONNECT_GRACE = 60.0
#: unwritten trades a failing sink may hold before it is a problem (by default)
SINK_PENDING_LIMIT = 10_000


@dataclass(frozen=True)
class FeedSnapshot:
    """One feed as the health check sees it."""

    #: the feed's counters (``Feed.stats()``)
    stats: FeedStats
    #: seconds since the feed last went up (it is connected) or down (it is not)
    status_for: float
    #: the error that ended the feed, as text, if one did
    error: str | None = None


@dataclass(frozen=True)
class Health:
    """The verdict: ``ok`` and, per feed and sink, what was seen and what is wrong."""

    #: True when nothing is wrong (``/healthz`` answers 200, else 503)
    ok: bool
    #: per feed name: ``venue``, ``status``, ``last_trade_age`` (seconds or None),
    #: ``reconnects``, ``problems`` (a list of sentences)
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per sink name: ``pending``, ``problems``
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every problem, prefixed with the feed or sink it concerns
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of ``/healthz``."""
        return {
            "status": "ok" if self.ok else "unhealthy",
            "problems": list(self.problems),
            "feeds": self.feeds,
            "sinks": self.sinks,
        }


def evaluate(
    feeds: Sequence[FeedSnapshot],
    sinks: Mapping[str, SinkStats],
    *,
    running: bool,
    stale_after: float | None,
    reconnect_grace: float = RECONNECT_GRACE,
    sink_pending_limit: int = SINK_PENDING_LIMIT,
) -> Health:
    """Judge a manager's feeds and sinks.

    :param running: the manager has been started and not stopped.
    :param stale_after: seconds without trades after which a connected feed is stale
        (the manager's ``stale_after``; None: never).
    :param reconnect_grace: seconds a feed may be down before it is a problem.
    :param sink_pending_limit: most unwritten trades a sink may hold without a problem.
    """
    problems: list[str] = []
    feed_report: dict[str, dict[str, Any]] = {}
    for snapshot in feeds:
        stats = snapshot.stats
        found = _feed_problems(snapshot, running, stale_after, reconnect_grace)
        problems.extend("feed %s: %s" % (stats.feed, p) for p in found)
        feed_report[stats.feed] = {
            "venue": stats.venue,
            "status": stats.status.value,
            "last_trade_age": None if stats.last_trade_age is None else round(stats.last_trade_age, 3),
            "reconnects": stats.reconnects,
            "problems": found,
        }
    sink_report: dict[str, dict[str, Any]] = {}
    for name, sink in sinks.items():
        found = []
        if sink.pending > sink_pending_limit:
            found.append("%d trades pending, over the limit of %d (failures: %d)" % (sink.pending, sink_pending_limit, sink.failures))
        problems.extend("sink %s: %s" % (name, p) for p in found)
        sink_report[name] = {"pending": sink.pending, "problems": found}
    return Health(ok=not problems, feeds=feed_report, sinks=sink_report, problems=problems)


def _feed_problems(snapshot: FeedSnapshot, running: bool, stale_after: float | None, grace: float) -> list[str]:
    stats = snapshot.stats
    if snapshot.error is not None:
        return ["ended on an error: %s" % snapshot.error]
    if not running:
        return ["not running (the manager is not started)"]
    if stats.status is Status.STOPPED:
        return ["stopped"]
    if stats.status is not Status.CONNECTED:
        if snapshot.status_for > grace:
            return ["%s for %.1f s, longer than the grace of %g s" % (stats.status.value, snapshot.status_for, grace)]
        return []
    if stale_after is not None:
        # quiet since the last trade, or since it connected if no trade came since then
        age = stats.last_trade_age
        quiet = snapshot.status_for if age is None else min(age, snapshot.status_for)
        if quiet > stale_after:
            return ["stale: no trade for %.1f s (stale_after %g s)" % (quiet, stale_after)]
    return []


class Observed(Protocol):
    """What metrics and health read from a :class:`~tradefeed.FeedManager` (a protocol,
    so the modules that read it need not import the manager, which imports them)."""

    def stats(self) -> dict[str, FeedStats]: ...
    def sink_stats(self) -> dict[str, SinkStats]: ...
    def queue_depth(self) -> int: ...
    def health(self, *, reconnect_grace: float = ..., sink_pending_limit: int = ...) -> Health: ...
