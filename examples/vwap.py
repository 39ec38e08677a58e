"""Rolling per-symbol VWAP and trade counts, printed every second.

Against the built-in simulator (needs the 'sim' extra), all four venues, for 5 seconds:

    python examples/vwap.py --duration 5

Against the venues themselves, from a YAML file:

    python examples/vwap.py --config examples/feeds.yaml

VWAP = sum(price * amount) / sum(amount) over the last --window seconds, in exact
Decimal arithmetic.  Callbacks run on tradefeed's dispatcher thread; the main thread
only reads a snapshot under a lock.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections import defaultdict, deque
from decimal import Decimal

from tradefeed import ConfigError, FeedManager, Trade, TradefeedError


class RollingVWAP:
    """Per (venue, symbol): trades of the last *window* seconds (venue time)."""

    def __init__(self, window: float) -> None:
        self.window_ms = int(window * 1000)
        self._trades: dict[tuple[str, str], deque[Trade]] = defaultdict(deque)
        self._lock = threading.Lock()

    def add(self, trade: Trade) -> None:
        with self._lock:
            self._trades[(trade.venue, trade.symbol)].append(trade)

    def snapshot(self, now_ms: int) -> list[tuple[str, str, int, Decimal, Decimal]]:
        """(venue, symbol, count, volume, vwap) for every symbol with trades in the window."""
        rows = []
        with self._lock:
            for key, trades in sorted(self._trades.items()):
                while trades and trades[0].timestamp_ms < now_ms - self.window_ms:
                    trades.popleft()
                if trades:
                    volume = sum((t.amount for t in trades), Decimal(0))
                    notional = sum((t.price * t.amount for t in trades), Decimal(0))
                    rows.append((key[0], key[1], len(trades), volume, notional / volume))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="rolling VWAP per symbol")
    parser.add_argument("--config", help="a YAML config (default: the built-in simulator)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of trades in the VWAP (default 60)")
    parser.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: until Ctrl-C)")
    args = parser.parse_args()

    vwap = RollingVWAP(args.window)
    with contextlib.ExitStack() as stack:
        if args.config:
            manager = FeedManager.from_config(args.config)
        else:
            from tradefeed.simulator import Simulator

            sim = stack.enter_context(Simulator(rate=50, history=20))
            manager = FeedManager()
            for venue in ("dopp", "synfutures", "synthetix", "rails"):
                manager.add_feed(venue, **sim.feed_params(venue))
        manager.on_trade(vwap.add)
        stack.enter_context(manager)
        deadline = time.monotonic() + args.duration if args.duration else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(1.0)
                print("%-10s %-20s %6s %16s %18s" % ("venue", "symbol", "trades", "volume", "vwap"))
                for venue, symbol, count, volume, price in vwap.snapshot(int(time.time() * 1000)):
                    print("%-10s %-20s %6d %16s %18s" % (venue, symbol, count, volume, price.quantize(Decimal("0.0001"))))
                print(flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: whatever was open has been closed on the way out
        pass
    except ImportError as error:  # an extra that is not installed (the simulator's: 'sim')
        sys.exit("%s: error: %s" % (sys.argv[0], error))
    except TradefeedError as error:  # a bad config, a feed that ended: one line, as the CLI says it
        print("%s: error: %s" % (sys.argv[0], error), file=sys.stderr)
        sys.exit(2 if isinstance(error, ConfigError) else 1)
