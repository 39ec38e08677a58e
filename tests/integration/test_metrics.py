"""/metrics and /healthz of a running manager, scraped over real loopback HTTP against the
simulator and read with prometheus_client's own parser."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tradefeed import Backoff, ConfigError, FeedManager, Status, TradefeedError
from tradefeed.sinks import Sink

from .conftest import tradefeed_threads

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "prometheus" / "alerts.yml"

#: every family the issue asks for, as prometheus_client's parser names them (counters
#: without their _total suffix)
FAMILIES = {
    "tradefeed_messages": "counter",
    "tradefeed_trades": "counter",
    "tradefeed_duplicates": "counter",
    "tradefeed_errors": "counter",
    "tradefeed_reconnects": "counter",
    "tradefeed_gaps": "counter",
    "tradefeed_dropped": "counter",
    "tradefeed_feed_up": "gauge",
    "tradefeed_last_trade_age_seconds": "gauge",
    "tradefeed_queue_depth": "gauge",
    "tradefeed_sink_written": "counter",
    "tradefeed_sink_pending": "gauge",
    "tradefeed_sink_failures": "counter",
    "tradefeed_sink_rejected": "counter",
    "tradefeed_sink_dropped": "counter",
    "tradefeed_sink_oldest_pending_seconds": "gauge",
    "tradefeed_delivery_seconds": "histogram",
}
COUNTERS = ("messages", "trades", "duplicates", "errors", "reconnects", "gaps", "dropped")


class MemorySink(Sink):
    """Keeps what it is given."""

    name = "memory"

    def __init__(self) -> None:
        self.trades: list[Any] = []

    def write(self, trades: Any) -> None:
        self.trades.extend(trades)


def get(url: str, accept: str | None = None) -> tuple[int, str, Any]:
    """(status, body, headers) of a GET; an HTTP error status is an answer too."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode(), err.headers


class Scrape:
    """One /metrics body, parsed by prometheus_client."""

    def __init__(self, url: str) -> None:
        status, body, headers = get(url + "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        self.text = body
        self.families = {f.name: f for f in text_string_to_metric_families(body)}
        self.samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in self.families.values() for s in f.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def names(self) -> set[str]:
        """Every family and sample name present."""
        return set(self.families) | {name for name, _ in self.samples}


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll a condition that nothing signals (an HTTP answer), bounded; its last value."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        result = predicate()
        if result:
            return result
        pause.wait(0.02)
    return predicate()


def healthz(url: str) -> tuple[int, dict[str, Any]]:
    status, body, headers = get(url + "/healthz")
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def test_counters_match_stats_and_every_family_is_served(make_sim, make_manager, collector):
    """Each counter equals stats() and sink_stats(); the scrape has exactly the families the
    issue lists, with their types, and a delivery histogram whose +Inf bucket is its count."""
    sim = make_sim(rate=0, history=5, venues=["dopp"])
    manager = make_manager()
    collector.attach(manager)
    sink = manager.add_sink(MemorySink())
    manager.add_feed("dopp", url=sim.url("dopp"), name="btc")
    server = manager.serve_metrics(0)
    manager.start()
    assert collector.wait_trades(5)  # the snapshot on connect, delivered: a batch of its own
    sim.venue("dopp").emit(10)
    sim.venue("dopp").inject("not json")
    assert collector.wait_for(lambda c: len(c.trades) >= 15 and c.errors)
    assert wait_until(lambda: len(sink.trades) == 15)
    scrape = Scrape(server.url)
    assert {name: f.type for name, f in scrape.families.items()} == FAMILIES
    stats = manager.stats()["btc"]
    for counter in COUNTERS:
        assert scrape.value("tradefeed_%s_total" % counter, feed="btc", venue="dopp") == getattr(stats, counter), counter
    assert stats.trades == 15 and stats.errors == 1
    assert scrape.value("tradefeed_feed_up", feed="btc", venue="dopp") == 1
    assert 0 <= scrape.value("tradefeed_last_trade_age_seconds", feed="btc", venue="dopp") < 60
    assert scrape.value("tradefeed_queue_depth") == 0
    sink_stats = manager.sink_stats()["memory"]
    assert scrape.value("tradefeed_sink_written_total", sink="memory") == sink_stats.written == 15
    assert scrape.value("tradefeed_sink_pending", sink="memory") == 0
    assert scrape.value("tradefeed_sink_failures_total", sink="memory") == 0
    assert scrape.value("tradefeed_sink_rejected_total", sink="memory") == 0
    assert scrape.value("tradefeed_sink_dropped_total", sink="memory") == 0
    assert scrape.value("tradefeed_sink_oldest_pending_seconds", sink="memory") == 0
    batches = scrape.value("tradefeed_delivery_seconds_count", venue="dopp")
    assert batches >= 2  # the snapshot, then the emitted trades
    assert scrape.value("tradefeed_delivery_seconds_bucket", venue="dopp", le="+Inf") == batches
    assert scrape.value("tradefeed_delivery_seconds_sum", venue="dopp") >= 0


def test_openmetrics_on_request_and_other_paths(make_sim, make_manager):
    """A scraper asking for OpenMetrics gets it; / names the endpoints; other paths are 404."""
    sim = make_sim(venues=["dopp"])
    manager = make_manager()
    manager.add_feed("dopp", url=sim.url("dopp"))
    server = manager.serve_metrics(0)
    status, body, headers = get(server.url + "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n") and "tradefeed_messages_total" in body
    assert get(server.url + "/")[0] == 200 and "/healthz" in get(server.url + "/")[1]
    assert get(server.url + "/nope")[0] == 404


def test_feed_up_drops_while_the_simulator_refuses_and_returns(make_sim, make_manager, collector):
    """Connections dropped and reconnects refused: feed_up 0, reconnects counted, /healthz 503
    past the grace; once the simulator accepts again: feed_up 1 and /healthz 200."""
    sim = make_sim(rate=0, venues=["dopp"])
    manager = make_manager(backoff=Backoff(initial=0.05, max_delay=0.2, jitter=0))
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    server = manager.serve_metrics(0, reconnect_grace=0)
    manager.start()
    assert collector.wait_status(Status.CONNECTED)
    assert Scrape(server.url).value("tradefeed_feed_up", feed="dopp-1", venue="dopp") == 1
    assert healthz(server.url)[0] == 200
    sim.refuse_handshakes(100_000, status=503, retry_after=None, venue="dopp")
    assert sim.drop_connections("dopp") == 1
    assert collector.wait_status(Status.RECONNECTING)
    scrape = Scrape(server.url)
    assert scrape.value("tradefeed_feed_up", feed="dopp-1", venue="dopp") == 0
    assert scrape.value("tradefeed_reconnects_total", feed="dopp-1", venue="dopp") >= 1
    status, body = wait_until(lambda: (lambda answer: answer if answer[0] == 503 else None)(healthz(server.url)))
    assert status == 503 and body["status"] == "unhealthy"
    assert body["feeds"]["dopp-1"]["status"] in ("disconnected", "reconnecting", "connecting")
    assert "longer than the grace of 0 s" in body["problems"][0]
    sim.clear_faults("dopp")
    assert collector.wait_status(Status.CONNECTED, count=2)
    assert Scrape(server.url).value("tradefeed_feed_up", feed="dopp-1", venue="dopp") == 1
    status, body = healthz(server.url)
    assert status == 200 and body["status"] == "ok" and body["feeds"]["dopp-1"]["reconnects"] >= 1


def test_healthz_turns_503_on_a_stale_feed_and_200_again(make_sim, make_manager, collector):
    """A stalled venue makes the feed stale past stale_after: 503 naming it; data again: 200."""
    sim = make_sim(rate=50, venues=["dopp"])
    manager = make_manager(stale_after=0.5)
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    server = manager.serve_metrics(0)
    manager.start()
    assert collector.wait_trades(5)
    assert wait_until(lambda: healthz(server.url)[0] == 200)
    sim.stall("dopp")
    status, body = wait_until(lambda: (lambda answer: answer if answer[0] == 503 else None)(healthz(server.url)))
    assert status == 503
    feed = body["feeds"]["dopp-1"]
    assert feed["status"] == "connected" and feed["last_trade_age"] >= 0.5
    assert feed["problems"][0].startswith("stale: no trade for") and body["problems"][0].startswith("feed dopp-1: stale")
    sim.resume("dopp")
    status, body = wait_until(lambda: (lambda answer: answer if answer[0] == 200 else None)(healthz(server.url)))
    assert status == 200 and body["problems"] == []


def test_stop_closes_the_server_and_frees_its_port(make_sim, make_manager):
    """After stop() the endpoint refuses connections, its thread is gone, and the same port
    can be served again at once."""
    sim = make_sim(venues=["dopp"])
    manager = make_manager()
    manager.add_feed("dopp", url=sim.url("dopp"))
    server = manager.serve_metrics(0)
    manager.start()
    assert get(server.url + "/metrics")[0] == 200
    port = server.port
    assert "tradefeed-metrics" in tradefeed_threads()
    assert manager.stop(timeout=10)
    assert server.closed and "tradefeed-metrics" not in tradefeed_threads()
    with pytest.raises(urllib.error.URLError):
        get(server.url + "/metrics")
    with pytest.raises(TradefeedError, match="stopped"):
        manager.serve_metrics(0)
    again = make_manager()
    assert again.serve_metrics(port).port == port
    assert again.stop(timeout=10)


def test_one_server_per_manager_and_a_busy_port(make_manager):
    """A second serve_metrics is refused while one is open (allowed after close()); a port in
    use is a ConfigError naming it."""
    manager = make_manager()
    server = manager.serve_metrics(0)
    with pytest.raises(ConfigError, match="served already"):
        manager.serve_metrics(0)
    assert server.close()
    other = manager.serve_metrics(0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="cannot serve metrics on 127.0.0.1 port %d" % busy.getsockname()[1]):
            make_manager().serve_metrics(busy.getsockname()[1])
    assert other.port != 0


def test_no_credential_appears_in_metrics_or_health(make_sim, make_manager, collector):
    """A Rails feed's key and secret and a Redis URL's password appear in neither body."""
    from tradefeed.sinks.redis import RedisSink

    sim = make_sim(rate=20, venues=["rails"])
    params = sim.feed_params("rails")
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("rails", **params)
    manager.add_sink(RedisSink("redis://:hunter2@127.0.0.1:9/0"))  # nothing listens: a failing sink
    server = manager.serve_metrics(0)
    manager.start()
    assert collector.wait_trades(1)
    scrape = Scrape(server.url)
    health = get(server.url + "/healthz")[1]
    for secret in (params["api_key"], params["api_secret"], "hunter2"):
        assert secret not in scrape.text and secret not in health
    assert any(name == "tradefeed_sink_pending" for name, _ in scrape.samples)


def test_every_metric_of_the_alert_rules_exists_in_a_real_scrape(make_sim, make_manager, collector):
    """examples/prometheus/alerts.yml is valid YAML whose rules only name metrics a manager serves."""
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in exprs for name in re.findall(r"\btradefeed_[a-z_]+", expr)}
    assert len(exprs) >= 4 and named
    sim = make_sim(rate=50, venues=["dopp"])
    manager = make_manager()
    collector.attach(manager)
    manager.add_sink(MemorySink())
    manager.add_feed("dopp", url=sim.url("dopp"))
    server = manager.serve_metrics(0)
    manager.start()
    assert collector.wait_trades(5)
    assert named - Scrape(server.url).names() == set()


def test_a_failing_scrape_answers_500_and_the_server_goes_on(make_manager, monkeypatch, caplog):
    """An exception while building the answer is a 500 and a logged error; the next scrape works."""
    manager = make_manager()
    server = manager.serve_metrics(0)
    monkeypatch.setattr(manager, "queue_depth", lambda: 1 // 0)
    status, body, _ = get(server.url + "/metrics")
    assert status == 500 and "internal error" in body
    assert any("answering GET /metrics failed" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert get(server.url + "/metrics")[0] == 200
