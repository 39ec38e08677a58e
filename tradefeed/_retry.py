"""The reconnect policy: what a connection does after an attempt ends.

:func:`decide` takes an attempt's :class:`~tradefeed._attempt.Outcome` (what its end
means, from :func:`~tradefeed._attempt.classify`), the backoff so far and the token
refreshes in a row, and returns a :class:`Decision`: end the feed (and with which
error), or reconnect after how long, with the new backoff and refresh count.  Pure
arithmetic on values, like :class:`~tradefeed.backoff.Backoff` (whose ``delay(rand)`` it
calls): no clock, no sleep, no random number drawn here, nothing logged or emitted.
The connection's thread does the rest: the stop checks, the wait, the ``RECONNECTING``
event and invalidating the refused token.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._attempt import Outcome
from .adapters.base import CloseAction
from .backoff import Backoff
from .exceptions import AuthError, FeedClosedError, HandshakeError, RetryExhaustedError, TradefeedError

__all__ = ["Decision", "decide"]


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt: end the feed, or reconnect after :attr:`delay`."""

    #: end the feed (with :attr:`fatal`); else reconnect
    stop: bool
    #: the error that ends the feed (None: a clean stop, or a reconnect)
    fatal: TradefeedError | None
    #: seconds to wait before reconnecting
    delay: float
    #: the backoff for the next decision
    backoff: Backoff
    #: token refreshes in a row without a healthy connection, this one included
    refreshes: int
    #: the venue refused the attempt's token: invalidate it before the next attempt
    invalidate_token: bool = False


def decide(outcome: Outcome, backoff: Backoff, refreshes: int, rand: float, name: str, venue: str) -> Decision:
    """What feed *name* does after an attempt ended with *outcome*.

    :param backoff: the policy as it stood before this attempt.
    :param refreshes: token refreshes in a row before this attempt, without a healthy
        connection between them.
    :param rand: uniform in [0, 1): the jitter of the delay (tests pass 0.5).
    :returns: a stop with the fatal error (an :class:`AuthError` for a freshly fetched
        token refused again, a :class:`RetryExhaustedError` once the backoff has no retry
        left, or the outcome's own error), or a reconnect: at once (a planned rotation,
        the first refresh of a refused token), promptly but spread over up to a second
        (the venue closed a working connection with 1000 or 1001), or after the backoff's
        delay, never shorter than a ``Retry-After``.
    """
    if outcome.stable:
        backoff = backoff.reset()
    if outcome.healthy:
        refreshes = 0
    error = outcome.error
    immediate = outcome.immediate
    invalidate = False
    if outcome.action is CloseAction.REFRESH_TOKEN:
        refreshes += 1
        if refreshes > 1 and isinstance(error, HandshakeError):
            refused = AuthError(
                "%s: the venue refused a freshly fetched token (HTTP %s)" % (name, error.status_code),
                venue=venue,
                status_code=error.status_code,
            )
            refused.__cause__ = error
            return Decision(True, refused, 0.0, backoff, refreshes)
        invalidate = True
        immediate = refreshes == 1  # once at once; a repeat backs off
    elif outcome.action is CloseAction.STOP:
        return Decision(True, error, 0.0, backoff, refreshes)
    delay = 0.0
    if outcome.healthy and isinstance(error, FeedClosedError) and error.code in (1000, 1001):
        # the venue closed a working connection (rotation, restart): back promptly, but
        # spread over up to a second, or every feed of a restarted server would
        # reconnect in the same instant
        immediate = True
        delay = rand * min(1.0, backoff.initial)
    if not immediate:
        if backoff.exhausted:
            exhausted = RetryExhaustedError(
                "%s: gave up after %d reconnect attempts; last error: %s" % (name, backoff.retries, error),
                venue=venue,
                feed=name,
            )
            exhausted.__cause__ = error
            return Decision(True, exhausted, 0.0, backoff, refreshes, invalidate)
        delay = backoff.delay(rand)
        if outcome.retry_after:  # a floor: jitter only adds
            delay = max(delay, outcome.retry_after * (1 + backoff.jitter * rand))
        backoff = backoff.increment()
    return Decision(False, None, delay, backoff, refreshes, invalidate)
