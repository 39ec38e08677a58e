"""Per-feed connection tuning: :class:`ConnectionSettings`, a frozen value.

Documented, and imported, as :class:`tradefeed.connection.ConnectionSettings`; it lives
here, below the connection, so that the connection's own pieces (:mod:`tradefeed._connect`)
can name it without importing :mod:`tradefeed.connection`.  What must not go here:
anything that reads a clock, opens a socket or starts a thread.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Callable

from .backoff import Backoff
from .models import SubscriptionChange

__all__ = ["ConnectionSettings"]


@dataclass(frozen=True)
class ConnectionSettings:
    """Per-feed connection tuning (durations in seconds)."""

    #: reconnect delays
    backoff: Backoff = field(default_factory=Backoff)
    #: send a WebSocket ping this often (0: never)
    ping_interval: float = 20.0
    #: the peer is dead if nothing (pong or data) arrives this long after a ping
    ping_timeout: float = 10.0
    #: TCP connect + TLS + HTTP upgrade, each; also the longest wait for one frame's bytes
    connect_timeout: float = 10.0
    #: hand over at the latest once this many items (trades, events) are pending, even
    #: if more bytes are: a batch that stays in the CPU's cache while it is delivered
    batch_items: int = 256
    #: trade ids remembered per symbol for de-duplication
    dedup_window: int = 4096
    #: a connection that delivered data and stayed up this long resets the backoff
    healthy_after: float = 60.0
    #: frames longer than this (bytes) are reported, not parsed
    max_frame_bytes: int = 16 * 1024 * 1024
    #: redundancy: a reconnected connection holds back a symbol's trades until it has
    #: caught up with the others; one of those that brings no trades at all for this long
    #: meanwhile is reconnected as stalled (see :mod:`tradefeed.feedstate`)
    join_timeout: float = 10.0
    #: a symbol (or the feed) without data for this long is reported stale (None: never)
    stale_after: float | None = None
    #: ...and the connection is re-made (off: a quiet market is not a dead connection)
    reconnect_on_stale: bool = False
    #: TLS settings for ``wss://`` (None: system CAs, certificates verified)
    ssl_context: ssl.SSLContext | None = None
    #: called as ``recorder(feed, venue, params, connection, time_ns, frame)`` for every
    #: data frame received, before it is parsed, with ``frame=None`` for every
    #: ``tick()``, and with a :class:`~tradefeed.models.SubscriptionChange` for every
    #: run-time subscribe/unsubscribe the adapter took: ``connection`` numbers the
    #: attempts (0, 1, ...), ``params`` is the feed's current parameter dict (never
    #: mutated: replaced when subscriptions change).  Runs on the connection thread
    #: (frames), the scheduler thread (ticks) or the caller's (changes) under the
    #: adapter lock, so it must be thread-safe, quick, and never raise
    #: (:class:`tradefeed.recording.Recorder`)
    recorder: Callable[[str, str, dict[str, Any], int, int, "str | bytes | SubscriptionChange | None"], None] | None = None
