"""Make-before-break rotation of a feed's connection (``add_feed(rotate_after=...)``).

:func:`rotation_job` makes the scheduler job that replaces a single-connection feed's
connection every *rotate_after* seconds, before a venue's own connection age limit.  It
decides when the new connection may take over and retires the old one; the manager
schedules the job and lends it its lock, its "is this feed still running?" check and
its way of starting a connection.  What must not go here: making connections (the
feed's ``_make_connection``) or anything a feed does between rotations.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ._feed import Feed
from .connection import Connection
from .models import Status

__all__ = ["rotation_job"]

log = logging.getLogger(__name__)


def rotation_job(
    feed: Feed,
    every: float,
    lock: threading.Lock,
    current: Callable[[], bool],
    start: Callable[[Connection], None],
) -> Callable[[float], float | None]:
    """The scheduler job that replaces *feed*'s connection every *every* seconds.

    The new connection opens next to the old one and joins it as a redundant line
    does (:mod:`tradefeed.feedstate`); the old one is retired only once the new one
    is in sync, holding nothing back and caught up on every symbol the feed knew, so
    the handover opens no hole (its first data, an ack or a small back-fill, proves
    nothing).  A symbol the new connection never sees (a quiet one, or one no longer
    subscribed) would keep it out of sync forever: once it has been connected for
    ``join_timeout``, it is enough that it holds nothing back and that no connection
    delivered a trade of such a symbol since it connected; that symbol's next trade
    gets the seam checks.  A symbol the old connection still delivers and the new
    one does not (a refused subscription) keeps the old one going.

    :param lock: the manager's lock, held while the job changes the feed's connections.
    :param current: True while the manager runs and *feed* is still one of its feeds
        (called with *lock* held); the job ends once it is False.
    :param start: starts a connection's thread (called with *lock* held).
    :returns: ``job(now) -> seconds until its next run, or None: done``.
    """
    replacement: list[Connection] = []

    def job(now: float) -> float | None:
        with lock:
            if not current():
                return None
            if not replacement:  # open the new connection next to the old one
                old = feed._connections[0]
                if not old.is_alive():
                    return None
                new = feed._make_connection(old.index + 1, old.params)
                old.redundant = new.redundant = True  # both deliver: keep one order
                feed._connections = [old, new]
                replacement.append(new)
                start(new)
                return 0.02
            new = replacement[0]
            old = feed._connections[0]
            in_sync = new.in_sync.is_set()
            up_for = now - new.connected_changed
            settled = in_sync or (
                new.status is Status.CONNECTED
                and up_for >= new.state.join_timeout
                and new.settled(time.time_ns() - int(up_for * 1e9))
            )
            if new.is_alive() and (settled or not old.is_alive()):  # retire the old one
                old.retiring = True
                old.retired_in_sync = in_sync
                feed._connections = [new]
            elif new.is_alive():
                return 0.02  # not in sync yet; the old one keeps streaming
            else:  # the replacement failed: keep the old one, try again later
                feed._connections = [old]
                old.redundant = False
                replacement.clear()
                return every
        if not in_sync:
            log.info(
                "%s: rotation: connection #%d holds nothing back after %g s; symbols it has not seen had "
                "no trades since it connected; retiring #%d",
                feed.name, new.index, new.state.join_timeout, old.index,
                extra={"feed": feed.name, "venue": feed.venue},
            )  # fmt: skip
        old.stop()
        replacement.clear()
        return every

    return job
