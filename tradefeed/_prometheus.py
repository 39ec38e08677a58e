"""The Prometheus side of :mod:`tradefeed.metrics`: the only importer of prometheus_client.

A :class:`ManagerCollector` turns what a manager already counts into metric families
when Prometheus scrapes, and only then: ``stats()``, ``sink_stats()``, the queue depth,
and the delivery histogram that :class:`tradefeed.metrics.DeliveryHistogram` keeps.
Nothing here runs per trade.  Importing this module fails without the ``metrics``
extra; :mod:`tradefeed.metrics` turns that into a :class:`ConfigError`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from .health import Observed
from .models import Status

if TYPE_CHECKING:
    from .metrics import DeliveryHistogram

__all__ = ["ManagerCollector", "Exporter"]

#: (family, FeedStats field, help) of the per-feed counters
FEED_COUNTERS = (
    ("tradefeed_messages", "messages", "Frames received."),
    ("tradefeed_trades", "trades", "Trades handed to the callbacks (after de-duplication)."),
    ("tradefeed_duplicates", "duplicates", "Trades dropped as already seen."),
    ("tradefeed_errors", "errors", "Frames or records that could not be parsed."),
    ("tradefeed_reconnects", "reconnects", "Reconnect attempts scheduled."),
    ("tradefeed_gaps", "gaps", "Possible losses reported (Gap events)."),
    ("tradefeed_dropped", "dropped", "Trades dropped because the queue was full (queue_limit)."),
)
#: (family, SinkStats field, help) of the per-sink counters
SINK_COUNTERS = (
    ("tradefeed_sink_written", "written", "Trades the sink accepted."),
    ("tradefeed_sink_failures", "failures", "Failed write attempts of the sink."),
    ("tradefeed_sink_rejected", "rejected", "Poison trades the sink could not take, reported and skipped."),
    ("tradefeed_sink_dropped", "dropped", "Trades dropped because the sink's queue was at its limit."),
)


class ManagerCollector(Collector):
    """Every ``tradefeed_*`` family of one manager, read at scrape time."""

    def __init__(self, manager: Observed, delivery: "DeliveryHistogram") -> None:
        self._manager = manager
        self._delivery = delivery

    def collect(self) -> Iterable[Metric]:
        stats = list(self._manager.stats().values())
        labels = ["feed", "venue"]
        for name, attribute, help_text in FEED_COUNTERS:
            counter = CounterMetricFamily(name, help_text, labels=labels)
            for feed in stats:
                counter.add_metric([feed.feed, feed.venue], getattr(feed, attribute))
            yield counter
        up = GaugeMetricFamily("tradefeed_feed_up", "1 while the feed is connected, else 0.", labels=labels)
        age = GaugeMetricFamily(
            "tradefeed_last_trade_age_seconds",
            "Seconds since the feed's last trade arrived (absent before its first).",
            labels=labels,
        )
        for feed in stats:
            up.add_metric([feed.feed, feed.venue], 1.0 if feed.status is Status.CONNECTED else 0.0)
            if feed.last_trade_age is not None:
                age.add_metric([feed.feed, feed.venue], feed.last_trade_age)
        yield up
        yield age
        yield GaugeMetricFamily(
            "tradefeed_queue_depth", "Trades received and waiting for the callbacks.", value=self._manager.queue_depth()
        )
        sinks = self._manager.sink_stats()
        for name, attribute, help_text in SINK_COUNTERS:
            counter = CounterMetricFamily(name, help_text, labels=["sink"])
            for sink_name, sink in sinks.items():
                counter.add_metric([sink_name], getattr(sink, attribute))
            yield counter
        pending = GaugeMetricFamily(
            "tradefeed_sink_pending", "Trades handed to the sink and not written yet (its queue).", labels=["sink"]
        )
        oldest = GaugeMetricFamily(
            "tradefeed_sink_oldest_pending_seconds",
            "Seconds the sink's oldest pending trade has waited (0 when nothing is pending).",
            labels=["sink"],
        )
        for sink_name, sink in sinks.items():
            pending.add_metric([sink_name], sink.pending)
            oldest.add_metric([sink_name], sink.oldest_pending_age or 0.0)
        yield pending
        yield oldest
        histogram = HistogramMetricFamily(
            "tradefeed_delivery_seconds",
            "Seconds from receiving a batch's first trade to the start of its delivery to the callbacks.",
            labels=["venue"],
        )
        for venue, buckets, total in self._delivery.snapshot():
            histogram.add_metric([venue], [(_le(bound), count) for bound, count in buckets], total)
        yield histogram


def _le(bound: float) -> str:
    """A bucket's ``le`` label as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class Exporter:
    """A registry of its own (never the process-wide default one, which other code
    and other managers share) holding one manager's collector."""

    def __init__(self, manager: Observed, delivery: "DeliveryHistogram") -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(ManagerCollector(manager, delivery))

    def render(self, accept: str) -> tuple[bytes, str]:
        """The scrape body in the format the ``Accept`` header asks for (Prometheus
        text, or OpenMetrics), and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self._registry), content_type
