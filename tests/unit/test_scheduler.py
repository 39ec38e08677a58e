"""The shared scheduler: deadlines, repeats, cancels, failures, and shared wake-ups."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tradefeed.scheduler import Scheduler

WAIT = 10.0  # seconds any single wait may take before the test fails


@pytest.fixture
def scheduler():
    made: list[Scheduler] = []

    def make(granularity: float = 0.25) -> Scheduler:
        s = Scheduler("test-scheduler", granularity=granularity)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        assert s.stop(timeout=WAIT)


def test_a_job_repeats_until_it_returns_none(scheduler):
    s = scheduler()
    runs: list[float] = []
    done = threading.Event()

    def job(now: float) -> float | None:
        runs.append(now)
        if len(runs) == 3:
            done.set()
            return None
        return 0.01

    s.add(0.01, job)
    assert done.wait(WAIT)
    assert s.stop(timeout=WAIT)
    assert len(runs) == 3 and runs == sorted(runs)


def test_jobs_never_run_early_and_a_grid_shares_wake_ups(scheduler):
    s = scheduler(granularity=0.05)  # delays of 0.5 s and more are rounded to a 50 ms grid
    count = 20
    ran: dict[int, float] = {}
    due: dict[int, float] = {}
    all_ran = threading.Event()

    def job_for(i: int):
        def job(now: float) -> None:
            ran[i] = time.monotonic()
            if len(ran) == count:
                all_ran.set()

        return job

    for i in range(count):  # due times spread over 10 ms: at most one grid line between
        delay = 0.5 + i * 0.0005
        due[i] = time.monotonic() + delay
        s.add(delay, job_for(i))
    assert all_ran.wait(WAIT)
    assert all(ran[i] >= due[i] for i in range(count)), "a job ran before its deadline"
    assert s.rounds <= 2, "%d jobs due within 10 ms took %d wake-ups" % (count, s.rounds)


def test_exact_deadlines_without_a_grid(scheduler):
    s = scheduler(granularity=0)
    ran = threading.Event()
    due = time.monotonic() + 0.3
    at: list[float] = []
    s.add(0.3, lambda now: at.append(time.monotonic()) or ran.set())  # type: ignore[func-returns-value]
    assert ran.wait(WAIT)
    assert at[0] >= due


def test_short_delays_are_not_rounded(scheduler):
    s = scheduler(granularity=1000.0)  # a grid that would delay a rounded job by minutes
    ran = threading.Event()
    s.add(0.01, lambda now: ran.set())
    assert ran.wait(WAIT)


def test_a_job_cancelled_by_an_earlier_job_of_its_round_does_not_run(scheduler):
    s = scheduler(granularity=0.05)
    ran: list[str] = []
    last = threading.Event()
    ids: dict[str, int] = {}

    def first(now: float) -> None:
        ran.append("first")
        s.cancel(ids["second"])

    ids["first"] = s.add(0.5, first)
    ids["second"] = s.add(0.5, lambda now: ran.append("second"))  # type: ignore[func-returns-value]
    s.add(0.5, lambda now: ran.append("third") or last.set())  # type: ignore[func-returns-value]
    assert last.wait(WAIT)
    assert ran == ["first", "third"]


def test_a_failing_job_is_logged_and_the_others_go_on(scheduler, caplog):
    s = scheduler(granularity=0)
    after = threading.Event()

    def broken(now: float) -> float:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="tradefeed.scheduler"):
        s.add(0.01, broken)
        s.add(0.05, lambda now: after.set())
        assert after.wait(WAIT)
    assert any("will not run again" in r.getMessage() and r.exc_info for r in caplog.records)


def test_cancel_before_the_deadline(scheduler):
    s = scheduler(granularity=0)
    ran: list[int] = []
    later = threading.Event()
    job_id = s.add(0.05, lambda now: ran.append(1))  # type: ignore[func-returns-value]
    s.cancel(job_id)
    s.add(0.1, lambda now: later.set())
    assert later.wait(WAIT)
    assert ran == []


def test_granularity_must_not_be_negative():
    with pytest.raises(ValueError):
        Scheduler(granularity=-1)
