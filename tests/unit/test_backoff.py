"""The Backoff policy: pure arithmetic."""

from __future__ import annotations

import pytest

from tradefeed import Backoff, ConfigError


def test_doubles_from_one_second_up_to_the_cap():
    """Un-jittered delays are 1, 2, 4, ... capped at 30 s (docs/venues rule)."""
    policy = Backoff()
    delays = []
    for _ in range(8):
        delays.append(policy.delay(0.5))
        policy = policy.increment()
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_jitter_spreads_plus_minus_a_quarter():
    """rand 0 and ~1 give the extremes of the +/-25 % band."""
    policy = Backoff().increment().increment()  # 4 s
    assert policy.delay(0.0) == pytest.approx(3.0)
    assert policy.delay(0.999999) == pytest.approx(5.0, rel=1e-5)


def test_immutable_copies():
    """increment() and reset() return new values; the shared default is never changed."""
    default = Backoff()
    bumped = default.increment()
    assert default.retries == 0 and bumped.retries == 1
    assert bumped.reset() == default and default.reset() is default


def test_max_retries_exhaustion():
    """With max_retries=2 two retries are allowed, then the policy is exhausted."""
    policy = Backoff(max_retries=2)
    assert not policy.exhausted
    policy = policy.increment()
    assert not policy.exhausted
    assert policy.increment().exhausted
    assert Backoff(max_retries=0).exhausted
    assert not Backoff(max_retries=None).increment().increment().exhausted


def test_from_value():
    """A policy passes through, an int means max retries, None means defaults."""
    custom = Backoff(initial=0.1)
    assert Backoff.from_value(custom) is custom
    assert Backoff.from_value(3) == Backoff(max_retries=3)
    assert Backoff.from_value(None) == Backoff()
    with pytest.raises(ConfigError):
        Backoff.from_value("3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Backoff.from_value(True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1}, {"multiplier": 0.5}, {"jitter": 1.5}, {"max_retries": -1}]
)
def test_invalid_values_are_config_errors(kwargs):
    """Nonsense settings fail at construction."""
    with pytest.raises(ConfigError):
        Backoff(**kwargs)


def test_huge_retry_counts_stay_finite():
    """Thousands of retries do not overflow the exponent."""
    assert Backoff(retries=10_000, jitter=0).delay(0.5) == 30.0
