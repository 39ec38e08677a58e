"""Per-feed connection tuning: :class:`ConnectionSettings`, a frozen value, and
:func:`checked_settings`, which checks what a manager is given for it.

Documented, and imported, as :class:`tradefeed.connection.ConnectionSettings`; it lives
here, below the connection, so that the connection's own pieces (:mod:`tradefeed._connect`)
can name it without importing :mod:`tradefeed.connection`.  What must not go here:
anything that reads a clock, opens a socket or starts a thread.
"""

from __future__ import annotations

import math
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable

from .backoff import Backoff
from .exceptions import ConfigError
from .models import SubscriptionChange

#: ``ConnectionSettings.recorder``: ``recorder(feed, venue, params, reconnects, received_ns, frame)``,
#: the frame a ``str``/``bytes`` as received, a :class:`~tradefeed.models.SubscriptionChange`, or None
Recorder = Callable[[str, str, dict[str, Any], int, int, str | bytes | SubscriptionChange | None], None]

__all__ = ["ConnectionSettings", "Recorder", "checked_settings"]


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
    recorder: Recorder | None = None


def checked_settings(
    *,
    backoff: Backoff | int | None,
    ping_interval: float,
    ping_timeout: float,
    connect_timeout: float,
    dedup_window: int,
    max_frame_bytes: int,
    stale_after: float | None,
    reconnect_on_stale: bool,
    join_timeout: float,
    ssl_context: ssl.SSLContext | None,
    ca_file: str | os.PathLike[str] | None,
    recorder: Recorder | None,
) -> ConnectionSettings:
    """The settings a :class:`~tradefeed.FeedManager` is given (see there), checked in this
    order and made into :class:`ConnectionSettings`; *ca_file* is read into an SSL context.

    :raises ConfigError: the first value that is out of range, or a CA file that cannot
        be used.
    """
    if not all(math.isfinite(v) for v in (ping_interval, ping_timeout, connect_timeout)):
        raise ConfigError("ping_interval, ping_timeout and connect_timeout must be finite")
    if ping_interval < 0 or ping_timeout <= 0 or connect_timeout <= 0:
        raise ConfigError("ping_interval must be >= 0; ping_timeout and connect_timeout > 0")
    if ping_interval and ping_timeout >= ping_interval:
        raise ConfigError("ping_timeout (%g s) must be below ping_interval (%g s)" % (ping_timeout, ping_interval))
    if dedup_window < 1:
        raise ConfigError("dedup_window must be >= 1")
    if stale_after is not None and stale_after <= 0:
        raise ConfigError("stale_after must be > 0 seconds or None")
    if isinstance(join_timeout, bool) or not isinstance(join_timeout, (int, float)) or not 0 < join_timeout < math.inf:
        raise ConfigError("join_timeout must be a number of seconds > 0, not %r" % (join_timeout,))
    if ca_file is not None:
        if ssl_context is not None:
            raise ConfigError("give ssl_context or ca_file, not both")
        try:
            ssl_context = ssl.create_default_context(cafile=os.fspath(ca_file))
        except (OSError, ssl.SSLError) as err:
            raise ConfigError("cannot use ca_file %s: %s" % (ca_file, err)) from err
    return ConnectionSettings(
        backoff=Backoff.from_value(backoff),
        ping_interval=float(ping_interval),
        ping_timeout=float(ping_timeout),
        connect_timeout=float(connect_timeout),
        dedup_window=dedup_window,
        max_frame_bytes=max_frame_bytes,
        stale_after=None if stale_after is None else float(stale_after),
        reconnect_on_stale=bool(reconnect_on_stale),
        join_timeout=float(join_timeout),
        ssl_context=ssl_context,
        recorder=recorder,
    )
