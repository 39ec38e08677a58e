"""Child process of ``test_sqlite_crash.py``: a Dopp feed streamed into a SQLiteSink.

Usage: ``python sqlite_crash_child.py DB FEED_PARAMS_JSON [UNTIL_TRADE_ID]``

The sink prints one JSON line per committed batch, ``{"ids": [...], "inserted": n}``
(stdout, flushed): a line on stdout means its batch is committed.  With UNTIL_TRADE_ID
the child stops cleanly (``manager.stop()`` closes the sink) once a committed batch
holds that id or a later one, prints ``{"stopped": true}`` and exits 0; without it, it
streams until it is killed.  Either way it ends by itself after :data:`LIFETIME`
seconds (exit 3), so a child whose test has died does not linger.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Sequence

from tradefeed import FeedManager, Trade
from tradefeed.sinks.sqlite import SQLiteSink

#: seconds the child runs at most
LIFETIME = 60.0


class ReportingSink(SQLiteSink):
    """A SQLiteSink that says which trades each committed batch held."""

    def __init__(self, path: str, until: int | None) -> None:
        super().__init__(path)
        self.until = until
        #: set once a batch reaching ``until`` is committed
        self.reached = threading.Event()

    def write(self, trades: Sequence[Trade]) -> None:
        before = self.inserted
        super().write(trades)  # returns once the transaction is committed
        ids = [t.trade_id for t in trades]
        print(json.dumps({"ids": ids, "inserted": self.inserted - before}), flush=True)
        if self.until is not None and any(int(i) >= self.until for i in ids):
            self.reached.set()


def main(argv: list[str]) -> int:
    path, params = argv[0], json.loads(argv[1])
    until = int(argv[2]) if len(argv) > 2 else None
    manager = FeedManager()
    sink = manager.add_sink(ReportingSink(path, until))
    manager.on_error(lambda err: print("error: %s" % err, file=sys.stderr, flush=True))
    manager.add_feed("dopp", **params)
    manager.start()
    try:
        reached = sink.reached.wait(LIFETIME)
    finally:
        manager.stop()
    print(json.dumps({"stopped": reached}), flush=True)
    return 0 if reached else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
