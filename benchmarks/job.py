"""What a consumer process is told to do, and the state it fills in while doing it."""

from __future__ import annotations

import array
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .procstat import Stopwatch

__all__ = ["Consumer", "Job", "Run", "Stamps"]

#: errors kept verbatim per run (the rest are only counted)
_ERRORS_KEPT = 5


@dataclass
class Job:
    """What one consumer process does (sent as JSON on its stdin)."""

    #: a consumer name (:func:`benchmarks.consumers.consumer`) or an idle one (:mod:`benchmarks.idle`)
    consumer: str
    url: str
    #: trades to count before stopping (streaming consumers)
    trades: int = 0
    #: seconds before giving up
    timeout: float = 60.0
    #: record per-trade receive times here (int64 ``time.time_ns()`` by trade id - 1)
    stamps_file: str | None = None
    #: bytes the server streams after the upgrade (``discard`` only)
    stream_bytes: int = 0
    #: idle: connections to open
    connections: int = 0
    #: idle: seconds to measure once every connection is open
    window: float = 0.0
    #: soak: sample memory every this many trades (tradefeed consumers; 0: never)
    sample_every: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


class Stamps:
    """The receive time of each trade, indexed by trade id (1..N)."""

    def __init__(self, trades: int) -> None:
        #: ``time.time_ns()`` per trade; 0 for a trade not (yet) received
        self.times = array.array("q", bytes(8 * trades))
        #: trades received again after their first time
        self.duplicates = 0

    def record(self, trade_id: str | int, now_ns: int) -> None:
        index = int(trade_id) - 1
        if self.times[index]:
            self.duplicates += 1
        else:
            self.times[index] = now_ns

    def record_all(self, records: Iterable[dict[str, Any]]) -> None:
        """Stamp raw Dopp records, all with one time (they arrived in one frame)."""
        now = time.time_ns()
        for record in records:
            self.record(record["trade_id"], now)

    def missing(self) -> int:
        return self.times.count(0)


@dataclass
class Run:
    """A consumer's state, readable even when the consumer fails half way."""

    job: Job
    watch: Stopwatch = field(default_factory=Stopwatch)
    stamps: Stamps | None = None
    #: trades counted so far (consumers set it when they return or fail)
    count: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    #: figures only some consumers give (soak: ``samples``, ``stats``), added to the result
    extra: dict[str, Any] = field(default_factory=dict)

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < _ERRORS_KEPT:
            self.errors.append(message)


Consumer = Callable[[Run], None]
