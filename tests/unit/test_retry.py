"""The reconnect policy (decide): what a feed does after an attempt, pure arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from tradefeed import Backoff
from tradefeed._attempt import Outcome
from tradefeed._retry import Decision, decide
from tradefeed.adapters.base import CloseAction
from tradefeed.exceptions import (
    AuthError,
    FeedClosedError,
    HandshakeError,
    RetryExhaustedError,
    TransportError,
)

#: un-jittered delays of 1, 2, 4, ... seconds; +/-25 % jitter
POLICY = Backoff(initial=1.0, max_delay=30.0, jitter=0.25)


def lost() -> TransportError:
    return TransportError("f: connection reset", venue="dopp", feed="f")


def closed(code: int) -> FeedClosedError:
    return FeedClosedError("f: closed by the venue with code %d" % code, code=code, venue="dopp", feed="f")


def refused(status: int, retry_after: float | None = None) -> HandshakeError:
    return HandshakeError("f: handshake refused", status_code=status, retry_after=retry_after, venue="dopp", feed="f")


def run(outcome: Outcome, backoff: Backoff = POLICY, refreshes: int = 0, rand: float = 0.5) -> Decision:
    return decide(outcome, backoff, refreshes, rand, "f", "dopp")


def test_a_lost_connection_waits_the_backoff_delay_and_increments_it():
    """A transport failure reconnects after the backoff's jittered delay; the next one waits longer."""
    step = run(Outcome(lost(), CloseAction.RECONNECT), POLICY.increment(), rand=0.0)
    assert step == Decision(False, None, 1.5, POLICY.increment().increment(), 0)


def test_the_delay_follows_the_backoff_through_consecutive_failures():
    """Feeding each decision's backoff into the next gives 1, 2, 4, ... seconds at rand=0.5."""
    backoff, delays = POLICY, []
    for _ in range(4):
        step = run(Outcome(lost(), CloseAction.RECONNECT), backoff)
        backoff = step.backoff
        delays.append(step.delay)
    assert delays == [1.0, 2.0, 4.0, 8.0] and backoff.retries == 4


def test_a_stable_connection_resets_the_backoff_and_the_refresh_count():
    """An attempt that stayed up for healthy_after starts the backoff over."""
    outcome = Outcome(lost(), CloseAction.RECONNECT, healthy=True, stable=True)
    step = run(outcome, POLICY.increment().increment().increment(), refreshes=1)
    assert step.delay == 1.0 and step.backoff.retries == 1 and step.refreshes == 0


def test_a_healthy_but_short_connection_keeps_the_backoff():
    """Data arrived but the connection did not last: the backoff goes on growing."""
    step = run(Outcome(lost(), CloseAction.RECONNECT, healthy=True), POLICY.increment())
    assert step.delay == 2.0 and step.backoff.retries == 2


def test_retry_after_is_a_floor_that_jitter_only_raises():
    """A 429's Retry-After beats a shorter backoff delay, scaled up (never down) by the jitter."""
    outcome = Outcome(refused(429, 10.0), CloseAction.RECONNECT, retry_after=10.0)
    assert run(outcome, rand=0.0).delay == 10.0
    assert run(outcome, rand=0.5).delay == pytest.approx(11.25)
    assert run(outcome).backoff.retries == 1


def test_a_backoff_delay_longer_than_retry_after_stands():
    """Retry-After only sets a floor: a longer backoff delay is kept."""
    outcome = Outcome(refused(429, 1.0), CloseAction.RECONNECT, retry_after=1.0)
    assert run(outcome, Backoff(initial=8.0, jitter=0.0)).delay == 8.0


def test_an_exhausted_backoff_ends_the_feed_with_the_last_error_as_cause():
    """With no retry left the feed ends with RetryExhaustedError from the attempt's error."""
    error = lost()
    step = run(Outcome(error, CloseAction.RECONNECT), Backoff(max_retries=2).increment().increment())
    assert step.stop and isinstance(step.fatal, RetryExhaustedError)
    assert step.fatal.__cause__ is error and (step.fatal.venue, step.fatal.feed) == ("dopp", "f")
    assert str(step.fatal) == "f: gave up after 2 reconnect attempts; last error: f: connection reset"
    assert step.backoff.retries == 2


def test_an_immediate_reconnect_ignores_an_exhausted_backoff():
    """A planned rotation reconnects at once, whatever the backoff has left."""
    exhausted = Backoff(max_retries=0)
    step = run(Outcome(None, CloseAction.RECONNECT, healthy=True, immediate=True), exhausted)
    assert step == Decision(False, None, 0.0, exhausted, 0)


def test_stop_ends_the_feed_with_the_outcomes_error():
    """CloseAction.STOP ends the feed with its error, or cleanly when it has none."""
    error = refused(404)
    assert run(Outcome(error, CloseAction.STOP)) == Decision(True, error, 0.0, POLICY, 0)
    assert run(Outcome(None, CloseAction.STOP)) == Decision(True, None, 0.0, POLICY, 0)


def test_a_first_refused_token_is_invalidated_and_retried_at_once():
    """A 401 with a token: a fresh token is fetched and tried without waiting."""
    step = run(Outcome(refused(401), CloseAction.REFRESH_TOKEN))
    assert step == Decision(False, None, 0.0, POLICY, 1, invalidate_token=True)


def test_a_refused_fresh_token_ends_the_feed_with_auth_error():
    """A second refusal in a row of a handshake ends the feed: retrying cannot fix credentials."""
    error = refused(403)
    step = run(Outcome(error, CloseAction.REFRESH_TOKEN), refreshes=1)
    assert step.stop and isinstance(step.fatal, AuthError) and not step.invalidate_token
    assert (step.fatal.status_code, step.fatal.venue, step.fatal.__cause__) == (403, "dopp", error)
    assert str(step.fatal) == "f: the venue refused a freshly fetched token (HTTP 403)"
    assert step.refreshes == 2


def test_a_repeated_refresh_asked_by_a_close_backs_off():
    """An adapter's close that asks for a new token again (no handshake refusal) waits the backoff."""
    step = run(Outcome(closed(4001), CloseAction.REFRESH_TOKEN), refreshes=1)
    assert step == Decision(False, None, 1.0, POLICY.increment(), 2, invalidate_token=True)


def test_a_refresh_that_exhausts_the_backoff_still_invalidates_the_token():
    """The refused token is invalidated even when the feed then gives up."""
    step = run(Outcome(closed(4001), CloseAction.REFRESH_TOKEN), Backoff(max_retries=0), refreshes=1)
    assert step.stop and isinstance(step.fatal, RetryExhaustedError) and step.invalidate_token


def test_a_healthy_connection_between_refreshes_starts_the_count_over():
    """Refreshes count only in a row: after data arrived a refusal is a first one again."""
    step = run(Outcome(refused(401), CloseAction.REFRESH_TOKEN, healthy=True), refreshes=1)
    assert step == Decision(False, None, 0.0, POLICY, 1, invalidate_token=True)


@pytest.mark.parametrize("code", [1000, 1001])
def test_a_healthy_connection_closed_normally_returns_promptly_but_spread(code):
    """A venue's 1000/1001 on a working connection: back within a second, jittered, backoff untouched."""
    backoff = POLICY.increment().increment()
    outcome = Outcome(closed(code), CloseAction.RECONNECT, healthy=True)
    assert run(outcome, backoff, rand=0.0) == Decision(False, None, 0.0, backoff, 0)
    assert run(outcome, backoff, rand=0.75).delay == 0.75
    assert run(outcome, Backoff(initial=0.2), rand=0.5).delay == pytest.approx(0.1)  # within initial
    assert run(outcome, Backoff(initial=5.0), rand=0.5).delay == 0.5  # within a second


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(closed(1000), CloseAction.RECONNECT),  # no data arrived: not a working connection
        Outcome(closed(1011), CloseAction.RECONNECT, healthy=True),  # not a normal close
    ],
)
def test_other_closes_back_off(outcome):
    """Only a healthy connection's 1000/1001 skips the backoff."""
    step = run(outcome, POLICY.increment())
    assert step.delay == 2.0 and step.backoff.retries == 2


def test_a_decision_is_immutable():
    """A Decision is a frozen value."""
    step = run(Outcome(lost(), CloseAction.RECONNECT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.delay = 0.0  # type: ignore[misc]
