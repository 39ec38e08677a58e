"""A downstream service: read the sharded trades from Redis in a consumer group.

Start as many as you like with different ``--consumer`` names: the group shares the
streams between them, each trade is processed by one of them, and entries a crashed
consumer did not acknowledge are claimed by the others.

    python examples/sharded/consume.py --redis redis://localhost:6379/0 --consumer worker-1
"""

from __future__ import annotations

import argparse
import os
import sys

from tradefeed import ConfigError, TradefeedError
from tradefeed.sinks.redis import RedisTradeReader


def main() -> None:
    parser = argparse.ArgumentParser(description="consume trades from Redis Streams")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    parser.add_argument("--group", default="trade-consumers")
    parser.add_argument("--consumer", default="worker-1")
    parser.add_argument("--limit", type=int, default=0, help="stop after N trades (0: forever)")
    parser.add_argument("--idle-exit", type=float, default=0, help="stop after S seconds without a trade")
    args = parser.parse_args()

    count = 0
    with RedisTradeReader(args.redis, ["tradefeed:*"], args.group, args.consumer, block_ms=500) as reader:
        idle = 0.0
        while not args.limit or count < args.limit:
            entries = reader.read()
            if not entries:
                idle += 0.5
                if args.idle_exit and idle >= args.idle_exit:
                    break
                continue
            idle = 0.0
            for entry in entries:
                trade = entry.trade
                print(trade.venue, trade.symbol, trade.trade_id, trade.side.value, trade.amount, trade.price, flush=True)
                entry.ack()  # after the work is done: a crash before this hands the trade to another consumer
                count += 1


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
