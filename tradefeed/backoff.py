"""Reconnect delay policy: an immutable value, arithmetic only.

Modelled on urllib3's ``Retry``: a :class:`Backoff` is never mutated, so one default
instance can be shared by every feed; :meth:`Backoff.increment` and :meth:`Backoff.reset`
return copies.  Nothing here sleeps or reads a clock; the connection waits with
``Event.wait(delay)`` so ``stop()`` interrupts the wait.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .exceptions import ConfigError

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with symmetric jitter.

    After ``retries`` consecutive failures the next attempt waits ``min(max_delay, initial * multiplier**n)``
    seconds, scaled by a random factor in ``[1 - jitter, 1 + jitter]`` so that many
    feeds dropped at once do not reconnect in lock step.

    >>> b = Backoff(initial=1.0, max_delay=30.0, jitter=0.0)
    >>> [b.increment().increment().delay(0.5), b.delay(0.5)]
    [4.0, 1.0]
    """

    #: first delay, seconds
    initial: float = 1.0
    #: cap on the un-jittered delay, seconds
    max_delay: float = 30.0
    #: growth factor per retry
    multiplier: float = 2.0
    #: +/- fraction of random spread
    jitter: float = 0.25
    #: give up after this many consecutive failures (None: never)
    max_retries: int | None = None
    #: consecutive failures so far
    retries: int = 0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.initial, self.max_delay, self.multiplier, self.jitter)):
            raise ConfigError("backoff values must be finite numbers")
        if self.initial < 0 or self.max_delay < 0:
            raise ConfigError("backoff delays must be >= 0 seconds")
        if self.multiplier < 1:
            raise ConfigError("backoff multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("backoff jitter must be within 0..1")
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigError("backoff max_retries must be >= 0 or None")

    @classmethod
    def from_value(cls, value: "Backoff | int | None") -> "Backoff":
        """Accept a policy, an int (max retries, default delays) or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("backoff must be a Backoff, an int or None, not %r" % (value,))
        return cls(max_retries=value)

    @property
    def exhausted(self) -> bool:
        """True when no retry is left: ``max_retries`` retries have been made."""
        return self.max_retries is not None and self.retries >= self.max_retries

    def delay(self, rand: float) -> float:
        """Seconds to wait before the next attempt; *rand* is uniform in [0, 1)."""
        exponent = min(self.retries, 64)  # keeps the power finite; the cap applies anyway
        base = min(self.max_delay, self.initial * self.multiplier**exponent)
        return base * (1 + self.jitter * (2 * rand - 1))

    def increment(self) -> "Backoff":
        """The policy after one more failed attempt."""
        return dataclasses.replace(self, retries=self.retries + 1)

    def reset(self) -> "Backoff":
        """The policy after a healthy connection."""
        return self if self.retries == 0 else dataclasses.replace(self, retries=0)
