"""The smallest tradefeed script: register a callback, print every trade.

Against the built-in simulator (needs the 'sim' extra: pip install -e '.[sim]'):

    python examples/callbacks.py --limit 10

Against Dopp itself (network needed):

    python examples/callbacks.py --live --instrument BTC-PERPETUAL
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading

from tradefeed import ConfigError, FeedManager, TradefeedError


def main() -> None:
    parser = argparse.ArgumentParser(description="print trades from a callback")
    parser.add_argument("--live", action="store_true", help="connect to the venue instead of the simulator")
    parser.add_argument("--instrument", default="BTC-PERPETUAL")
    parser.add_argument("--limit", type=int, default=0, help="stop after N trades (0: until Ctrl-C)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        url = None
        if not args.live:
            from tradefeed.simulator import Simulator

            url = stack.enter_context(Simulator(rate=50)).url("dopp")

        manager = FeedManager()
        manager.add_feed("dopp", url=url, instrument_name=args.instrument)
        count = 0
        enough = threading.Event()

        def on_trade(trade):  # called on tradefeed's dispatcher thread
            nonlocal count
            if enough.is_set():
                return
            print(trade.timestamp_ms, trade.symbol, trade.side, trade.amount, "@", trade.price, flush=True)
            count += 1
            if count == args.limit:
                enough.set()
                manager.stop()  # safe from inside a callback

        manager.on_trade(on_trade)
        manager.on_error(lambda error: print("error:", error, flush=True))
        manager.run_forever()  # until stop(), Ctrl-C, or the feed ends


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
