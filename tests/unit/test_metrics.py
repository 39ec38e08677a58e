"""Metrics without a network: the delivery histogram, its hook in the dispatcher, and the
mistakes serve_metrics refuses before it binds anything."""

from __future__ import annotations

import math
import sys
import time
from decimal import Decimal

import pytest

from tradefeed import ConfigError, FeedManager, Side, Status, StatusEvent, Trade
from tradefeed.dispatcher import Dispatcher
from tradefeed.metrics import DELIVERY_BUCKETS, DeliveryHistogram


def trade(trade_id: str, received_ns: int, venue: str = "dopp") -> Trade:
    return Trade(venue, "BTC-PERPETUAL", trade_id, Decimal(1), Decimal(1), Side.BUY, 0, received_ns)


def test_histogram_counts_cumulatively_with_inf_equal_to_the_count():
    """Each observation lands in the first bucket whose bound it does not exceed; +Inf is the total."""
    histogram = DeliveryHistogram(bounds=(0.001, 10.0, 1000.0))
    now = time.time_ns()
    histogram.observe("dopp", now - 100 * 10**9)  # 100 s ago: above 10, within 1000
    histogram.observe("dopp", now - 5000 * 10**9)  # above every bound
    histogram.observe("rails", now + 10**9)  # a clock step back: counted as 0 s
    ((venue, buckets, total), (other, other_buckets, other_total)) = sorted(histogram.snapshot())
    assert venue == "dopp" and [b for b, _ in buckets] == [0.001, 10.0, 1000.0, math.inf]
    assert [count for _, count in buckets] == [0, 0, 1, 2]
    assert total >= 5100
    assert other == "rails" and [c for _, c in other_buckets] == [1, 1, 1, 1] and other_total == 0.0


def test_histogram_ignores_trades_without_a_receive_time():
    """A Trade built by hand (received_ns 0) is not a delivery time."""
    histogram = DeliveryHistogram()
    histogram.observe("dopp", 0)
    assert histogram.snapshot() == []
    assert len(DELIVERY_BUCKETS) == len(set(DELIVERY_BUCKETS)) and list(DELIVERY_BUCKETS) == sorted(DELIVERY_BUCKETS)


def test_dispatcher_observes_once_per_batch_from_its_first_trade():
    """The hook gets the venue and receive time of each batch's first trade, once, and
    nothing for a batch without trades."""
    dispatcher = Dispatcher()
    seen = []
    dispatcher.observe_delivery = lambda venue, received_ns: seen.append((venue, received_ns))
    event = StatusEvent("dopp-1", "dopp", Status.CONNECTED, 1)
    dispatcher.put([event, trade("1", 111), trade("2", 222)])
    dispatcher.put([event])
    dispatcher.put([trade("3", 333, venue="rails")])
    assert dispatcher.pump() == 5
    assert seen == [("dopp", 111), ("rails", 333)]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"port": -1}, "port"),
        ({"port": 65536}, "port"),
        ({"port": "9108"}, "port"),
        ({"port": 0, "host": ""}, "host"),
        ({"port": 0, "reconnect_grace": -1}, "reconnect_grace"),
        ({"port": 0, "reconnect_grace": math.inf}, "reconnect_grace"),
        ({"port": 0, "sink_pending_limit": -1}, "sink_pending_limit"),
    ],
)
def test_bad_values_are_config_errors(kwargs, words):
    """Each bad argument is a ConfigError naming it, raised before anything is bound."""
    manager = FeedManager()
    with pytest.raises(ConfigError, match=words):
        manager.serve_metrics(**kwargs)
    assert manager.stop()


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch):
    """With prometheus_client missing, serve_metrics raises ConfigError saying which extra to install."""
    monkeypatch.delitem(sys.modules, "tradefeed._prometheus", raising=False)
    for name in [n for n in sys.modules if n == "prometheus_client" or n.startswith("prometheus_client.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    manager = FeedManager()
    with pytest.raises(ConfigError, match=r'pip install "tradefeed\[metrics\]"'):
        manager.serve_metrics(0)
    assert manager.stop()
