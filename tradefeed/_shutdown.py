"""How a manager's threads end: in which order, and how long each may take.

:func:`stop_threads` ends a running manager's threads for ``FeedManager.stop()``: the
connections first (each sends its close frame, and its final status events are queued
before the dispatcher delivers the rest), then the scheduler, then the dispatcher, which
delivers what is queued (or drops it) and closes the sinks.  :func:`stop_feed` ends one
feed's connections for ``remove_feed()``.  A connection that has not ended after its
close handshake's grace has its socket cut.  What must not go here: the manager's state
and lock (``stop()`` changes them around these calls), the token providers, and the
metrics server, which ``stop()`` closes last so that scrapes keep working meanwhile.
"""

from __future__ import annotations

import time

from .connection import Connection
from .dispatcher import Dispatcher
from .scheduler import Scheduler

__all__ = ["stop_threads", "stop_feed"]


def stop_threads(
    connections: list[Connection],
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    dispatch: str,
    *,
    drain: bool,
    timeout: float,
    deadline: float,
) -> bool:
    """End every connection, the scheduler and the dispatcher, in that order.

    :param dispatch: the manager's ``"thread"`` or ``"manual"``.
    :param drain: False: drop what is queued rather than deliver it.
    :param timeout: the seconds ``stop()`` was given (the grace is at most half of it).
    :param deadline: ``time.monotonic()`` by which every thread should have ended.
    :returns: True if every thread ended in time and no sink is stuck in a write.
    """
    clean = True
    for conn in connections:
        conn.stop()
    # a close handshake takes one round trip; past this grace, cut the sockets
    grace = time.monotonic() + min(2.0, timeout / 2)
    for conn in connections:
        if not conn.join(max(0.0, grace - time.monotonic())):
            conn.abort()
    for conn in connections:
        clean &= conn.join(max(0.0, deadline - time.monotonic()))
    clean &= scheduler.stop(max(0.0, deadline - time.monotonic()))
    if not drain:
        dispatcher.discard()
    if dispatch == "thread":
        clean &= dispatcher.stop_thread(max(0.0, deadline - time.monotonic()))
    else:
        dispatcher.stop_manual(max(0.0, deadline - time.monotonic()))
    if dispatcher.sinks_closed.is_set():
        clean &= not dispatcher.sinks_busy()  # a sink stuck in a write it did not abort
    return clean


def stop_feed(connections: list[Connection], timeout: float) -> bool:
    """End one feed's connections: half of *timeout* for the close handshakes (2 s at
    most), then the sockets are cut and the rest waited for.

    :returns: True if every connection's thread ended within *timeout*.
    """
    for connection in connections:
        connection.stop()
    clean = True
    for connection in connections:
        if not connection.join(min(2.0, timeout / 2)):
            connection.abort()
        clean &= connection.join(timeout / 2)
    return clean
