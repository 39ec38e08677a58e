"""A YAML-configured script: the feeds come from a file, the code only handles trades.

Against the venues (Rails needs RAILS_API_KEY and RAILS_API_SECRET in the environment):

    python examples/run_config.py examples/feeds.yaml

Against the built-in simulator (needs the 'sim' extra; no network, no credentials):

    python examples/run_config.py --simulator --limit 20
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

from tradefeed import ConfigError, TradefeedError, config

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description="stream the feeds of a YAML file")
    parser.add_argument("config", nargs="?", default=str(HERE / "feeds.yaml"))
    parser.add_argument("--simulator", action="store_true", help="point every feed at the built-in simulator")
    parser.add_argument("--limit", type=int, default=0, help="stop after N trades (0: until Ctrl-C)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        environ = dict(os.environ)
        if args.simulator:
            from tradefeed.simulator import Simulator

            sim = stack.enter_context(Simulator(rate=20, history=5))
            environ["RAILS_API_KEY"], environ["RAILS_API_SECRET"] = sim.credentials("rails")
        settings = config.load(args.config, environ=environ)
        if args.simulator:  # same feeds, simulator addresses
            feeds = []
            for feed in settings.feeds:
                local = sim.feed_params(feed.venue)
                extra = {"auth_url": local["auth_url"]} if "auth_url" in local else {}
                feeds.append(dataclasses.replace(feed, url=local["url"], params={**feed.params, **extra}))
            settings = dataclasses.replace(settings, feeds=tuple(feeds))

        manager = settings.create_manager()
        count = 0

        @manager.on_trade
        def show(trade):  # runs on tradefeed's dispatcher thread
            nonlocal count
            if args.limit and count >= args.limit:
                return
            count += 1
            print(f"{trade.venue:<10} {trade.symbol:<20} {trade.side:<4} {trade.amount} @ {trade.price}", flush=True)
            if count == args.limit:
                manager.stop()

        manager.on_error(lambda error: print("error:", error, flush=True))
        manager.run_forever()


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
