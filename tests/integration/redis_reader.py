"""A downstream service in miniature, run as a child process by the Redis tests.

    python redis_reader.py URL STREAM GROUP CONSUMER ack|hold CLAIM_IDLE_MS

Joins GROUP as CONSUMER, prints ``ready``, then for each entry prints
``trade <trade_id> <entry_id> <redelivered 0|1>`` (flushed) and, in ``ack`` mode,
acknowledges it; ``hold`` mode never acknowledges (a consumer that dies mid-work).
When stdin closes, the reader is closed and the process exits 0.
"""

from __future__ import annotations

import sys
import threading

from tradefeed.sinks.redis import RedisTradeReader


def main(argv: list[str]) -> int:
    url, stream, group, consumer, mode, claim_idle_ms = argv
    reader = RedisTradeReader(url, [stream], group, consumer, block_ms=100, count=10, claim_idle_ms=int(claim_idle_ms))

    def until_stdin_closes() -> None:
        sys.stdin.read()
        reader.close()

    threading.Thread(target=until_stdin_closes, name="stdin-watch", daemon=True).start()
    print("ready", flush=True)
    for entry in reader:
        print("trade %s %s %d" % (entry.trade.trade_id, entry.entry_id, entry.redelivered), flush=True)
        if mode == "ack":
            entry.ack()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
