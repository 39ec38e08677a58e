"""The health rules behind /healthz, without a server or a clock."""

from __future__ import annotations

import json

import pytest

from tradefeed import FeedStats, Status
from tradefeed.health import FeedSnapshot, evaluate
from tradefeed.sinks import SinkStats


def feed(status=Status.CONNECTED, *, name="dopp-1", age=1.0, status_for=100.0, error=None, reconnects=0) -> FeedSnapshot:
    stats = FeedStats(name, "dopp", status, 10, 5, 0, 0, reconnects, 0, 0, age)
    return FeedSnapshot(stats, status_for, error)


def judge(*feeds, sinks=None, running=True, stale_after=None, grace=60.0, limit=100):
    return evaluate(
        list(feeds), sinks or {}, running=running, stale_after=stale_after, reconnect_grace=grace, sink_pending_limit=limit
    )


def test_connected_feeds_and_idle_sinks_are_healthy():
    """Every feed connected, trades recent, sinks caught up: ok, with each feed's facts in the body."""
    health = judge(feed(age=0.25, reconnects=2), feed(name="dopp-2"), sinks={"db": SinkStats("db", 5, 0, 0)}, stale_after=10)
    assert health.ok and health.problems == []
    body = health.to_dict()
    assert body["status"] == "ok"
    assert body["feeds"]["dopp-1"] == {
        "venue": "dopp", "status": "connected", "last_trade_age": 0.25, "reconnects": 2, "problems": [],
    }  # fmt: skip
    assert body["sinks"]["db"] == {"pending": 0, "problems": []}
    json.dumps(body)  # the /healthz body is plain JSON


def test_a_feed_that_ended_on_an_error_is_unhealthy():
    """A feed ended by an error is named with that error."""
    health = judge(feed(Status.STOPPED, error="dopp: close 1008 invalid filter"))
    assert not health.ok
    assert health.problems == ["feed dopp-1: ended on an error: dopp: close 1008 invalid filter"]
    assert health.to_dict()["status"] == "unhealthy"


@pytest.mark.parametrize("status", [Status.RECONNECTING, Status.CONNECTING, Status.DISCONNECTED])
def test_a_reconnect_is_fine_within_the_grace_and_a_problem_after_it(status):
    """Down for less than the grace is routine; longer is a problem naming the state and duration."""
    assert judge(feed(status, status_for=59.0), grace=60).ok
    late = judge(feed(status, status_for=61.0), grace=60)
    assert late.problems == ["feed dopp-1: %s for 61.0 s, longer than the grace of 60 s" % status.value]


def test_a_stopped_feed_or_manager_is_unhealthy():
    """A feed that stopped without an error, or a manager that is not running, is a problem."""
    assert judge(feed(Status.STOPPED)).problems == ["feed dopp-1: stopped"]
    assert not judge(feed(), running=False).ok


def test_stale_is_judged_against_stale_after_only_when_set():
    """A connected feed with no trade for longer than stale_after is stale; without stale_after never."""
    assert judge(feed(age=30.0), stale_after=None).ok
    assert judge(feed(age=9.0), stale_after=10).ok
    assert judge(feed(age=11.0), stale_after=10).problems == ["feed dopp-1: stale: no trade for 11.0 s (stale_after 10 s)"]


def test_staleness_counts_from_the_latest_connect_or_trade():
    """No trade yet: quiet since it connected; an old trade before a recent reconnect is not stale yet."""
    assert judge(feed(age=None, status_for=5.0), stale_after=10).ok
    assert not judge(feed(age=None, status_for=15.0), stale_after=10).ok
    assert judge(feed(age=500.0, status_for=2.0), stale_after=10).ok


def test_a_sink_backlog_over_the_limit_is_a_problem():
    """A sink holding more unwritten trades than the limit is named with its backlog."""
    sinks = {"db": SinkStats("db", 5, 101, 3), "file": SinkStats("file", 9, 100, 1)}
    health = judge(feed(), sinks=sinks, limit=100)
    assert health.problems == ["sink db: 101 trades pending, over the limit of 100 (failures: 3)"]
    assert health.to_dict()["sinks"]["file"]["problems"] == []


def test_no_feeds_is_vacuously_healthy():
    """A running manager without feeds has nothing wrong."""
    assert judge().ok
