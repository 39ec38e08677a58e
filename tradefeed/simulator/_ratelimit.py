"""Connection-rate limit: how many handshakes one client IP may open per window.

This module owns the arithmetic only. It reads no clock (the caller passes
``now``, a :func:`time.monotonic` reading in seconds) and knows nothing about
HTTP or venues; :mod:`tradefeed.simulator.server` turns a refusal into an
HTTP 429 with a ``Retry-After`` header.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["ConnectLimiter"]


class ConnectLimiter:
    """Sliding-window count of admitted handshakes per client IP.

    Only admitted handshakes count: a refused attempt does not extend the
    block, so the ``Retry-After`` it returns stays true even when the client
    retries too early.

    ::

        >>> limiter = ConnectLimiter(max_connects=2, window=10.0)
        >>> limiter.admit("127.0.0.1", now=0.0), limiter.admit("127.0.0.1", now=1.0)
        (None, None)
        >>> limiter.admit("127.0.0.1", now=2.5)
        8

    :param max_connects: handshakes admitted per client within ``window``.
    :param window: length of the sliding window, in seconds.
    """

    def __init__(self, max_connects: int, window: float) -> None:
        if max_connects < 1:
            raise ValueError(f"max_connects must be at least 1, not {max_connects}")
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        self.max_connects = max_connects
        self.window = window
        #: client IP -> monotonic times of its admitted handshakes, oldest first
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, client: str, now: float) -> int | None:
        """Record a handshake from ``client`` if the limit allows it.

        :param client: the client's IP address.
        :param now: monotonic time in seconds.
        :return: ``None`` when admitted; otherwise the whole seconds until the
            window frees a slot (at least 1), for ``Retry-After``.
        """
        times = self._admitted.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.max_connects:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + self.window - now))
