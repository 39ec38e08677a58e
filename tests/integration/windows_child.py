"""The client half of test_windows_like.py: run under windows_like.py (``select`` as on
Windows), against the parent's simulator and silent peer; prints one JSON object of
findings on stdout, which the parent checks.

    python tests/integration/windows_like.py tests/integration/windows_child.py SPEC.json

SPEC.json: ``{"feeds": {venue: add_feed params}, "silent_url": "ws://127.0.0.1:PORT"}``.
"""

from __future__ import annotations

import json
import select
import selectors
import sys
import threading
import time
from typing import Any

import tradefeed
from tradefeed import FeedManager, Status

WAIT = 20.0  # seconds any one condition may take before the child gives up


class Seen:
    """Trades per venue and status events, with waits on a condition."""

    def __init__(self, manager: FeedManager) -> None:
        self.trades: dict[str, int] = {}
        self.statuses: list[Any] = []
        self.cond = threading.Condition()
        manager.on_trade(self.trade)
        manager.on_status(self.status)

    def trade(self, trade: Any) -> None:
        with self.cond:
            self.trades[trade.venue] = self.trades.get(trade.venue, 0) + 1
            self.cond.notify_all()

    def status(self, event: Any) -> None:
        with self.cond:
            self.statuses.append(event)
            self.cond.notify_all()

    def wait(self, predicate: Any) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, WAIT)


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def stream_every_venue(feeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    manager = FeedManager()
    seen = Seen(manager)
    for venue, params in feeds.items():
        manager.add_feed(venue, name=venue, **params)
    manager.start()
    streamed = seen.wait(lambda: all(seen.trades.get(v, 0) >= 5 for v in feeds))
    counts = dict(seen.trades)
    # remove one feed while the others stream on
    removed, remove_s = timed(lambda: manager.remove_feed("synfutures"))
    with seen.cond:
        after_removal = {v: n for v, n in seen.trades.items() if v != "synfutures"}
    kept_streaming = seen.wait(lambda: all(seen.trades.get(v, 0) > after_removal.get(v, 0) for v in after_removal))
    stopped, stop_s = timed(lambda: manager.stop(timeout=10))
    return {
        "streamed": streamed,
        "counts": counts,
        "removed": removed,
        "remove_seconds": remove_s,
        "feeds_after_removal": [f.name for f in manager.feeds],
        "kept_streaming": kept_streaming,
        "stopped_clean": stopped,
        "stop_seconds": stop_s,
    }


def silent_peer_times_out(url: str) -> dict[str, Any]:
    """The peer accepts TCP and never answers the upgrade: connect_timeout ends the attempt."""
    manager = FeedManager(connect_timeout=1.0)
    seen = Seen(manager)
    manager.add_feed("dopp", url, name="silent", instrument_name="BTC-PERPETUAL")
    started = time.monotonic()
    manager.start()
    disconnected = seen.wait(lambda: any(e.status is Status.DISCONNECTED for e in seen.statuses))
    elapsed = time.monotonic() - started
    error = next((str(e.detail.get("error")) for e in seen.statuses if e.status is Status.DISCONNECTED), None)
    stopped, stop_s = timed(lambda: manager.stop(timeout=10))
    return {"disconnected": disconnected, "seconds": elapsed, "error": error, "stopped_clean": stopped, "stop_seconds": stop_s}


def stop_during_handshake(url: str) -> dict[str, Any]:
    """stop() while a connection waits on a silent peer (connect_timeout 60 s) returns at once."""
    manager = FeedManager(connect_timeout=60.0)
    seen = Seen(manager)
    manager.add_feed("dopp", url, name="stuck", instrument_name="BTC-PERPETUAL")
    manager.start()
    connecting = seen.wait(lambda: any(e.status is Status.CONNECTING for e in seen.statuses))
    stopped, stop_s = timed(lambda: manager.stop(timeout=10))
    return {"connecting": connecting, "stopped_clean": stopped, "stop_seconds": stop_s}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as stream:
        spec = json.load(stream)
    findings = {
        "tradefeed": tradefeed.__version__,
        "select_has_poll": hasattr(select, "poll") or hasattr(select, "epoll"),
        "default_selector": selectors.DefaultSelector.__name__,
        "stream": stream_every_venue(spec["feeds"]),
        "silent": silent_peer_times_out(spec["silent_url"]),
        "stop_during_handshake": stop_during_handshake(spec["silent_url"]),
        "threads_left": sorted(t.name for t in threading.enumerate() if t.name.startswith("tradefeed")),
    }
    print(json.dumps(findings))


if __name__ == "__main__":
    main()
