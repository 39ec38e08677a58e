"""File sinks: trades appended as JSON lines or CSV, optionally one file per UTC day.

Writes are flushed after every batch (and ``fsync``-ed when asked, for durability over
speed).  A batch that fails half-way (a full disk, say) is retried by the runner; the
sink remembers how much of that batch it already wrote, so the retry writes no line twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, TextIO

from ..exceptions import ConfigError
from ..models import Trade
from ..output import TradeWriter, iso_utc
from . import Sink

__all__ = ["FileSink"]


class FileSink(Sink):
    """Appends trades to *path* as ``jsonl`` (``Trade.to_dict()`` per line) or ``csv``
    (the command line's Excel-friendly columns, a header in each new file).

    >>> sink = FileSink("trades-{date}.csv", format="csv")   # one file per UTC day

    :param path: the file; ``{date}`` in it (``2026-01-01``, the trade's UTC date) rotates
        daily.  Parent directories are created.
    :param format: ``jsonl`` or ``csv``.
    :param fsync: also ``os.fsync`` after each batch.
    :param name: the sink's name in stats and errors (default: the path).
    """

    def __init__(self, path: str | os.PathLike[str], format: str = "jsonl", *, fsync: bool = False, name: str | None = None):
        if format not in ("jsonl", "csv"):
            raise ConfigError("file sink format must be jsonl or csv, not %r" % (format,))
        self.path = str(path)
        self.format = format
        self.fsync = fsync
        self.name = name or self.path
        self._rotating = "{date}" in self.path
        self._target: str | None = None
        self._file: TextIO | None = None
        self._writer: TradeWriter | None = None
        self._partial: tuple[int, int] | None = None  # (id of the batch's first trade, lines written)

    def write(self, trades: Sequence[Trade]) -> None:
        skip = 0
        if self._partial is not None and trades and id(trades[0]) == self._partial[0]:
            skip = self._partial[1]  # the runner retries a batch we wrote part of
        self._partial = None
        written = skip
        try:
            for trade in trades[skip:] if skip else trades:
                self._writer_for(trade).write(trade)
                written += 1
        except BaseException:
            if trades:
                self._partial = (id(trades[0]), written)
            raise

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def _writer_for(self, trade: Trade) -> TradeWriter:
        target = self.path.replace("{date}", iso_utc(trade.timestamp_ms)[:10]) if self._rotating else self.path
        if target != self._target or self._writer is None:
            self.close()
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            fresh = not os.path.exists(target) or os.path.getsize(target) == 0
            self._file = open(target, "a", encoding="utf-8", newline="")
            self._writer = TradeWriter(self._file, self.format, header=fresh, autoflush=False)
            self._target = target
        return self._writer
