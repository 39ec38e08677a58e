"""File sinks: trades appended as JSON lines or CSV, optionally one file per UTC day.

Each batch is encoded to bytes before anything is written (so a trade that cannot be
written, a CSV time beyond the calendar say, fails its batch with the file
untouched), then handed to the OS with unbuffered writes whose byte counts are kept.
A write that fails part-way (a full disk) leaves the sink knowing exactly which bytes
of that batch are in the file: the runner's retry, of the same batch or of its first
trades, writes exactly the rest, so no line is doubled, lost or cut.  ``fsync`` (when
asked) is part of the write, so a failing ``fsync`` is retried without writing again.
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import BinaryIO, Callable, Sequence, TextIO, cast

from ..exceptions import ConfigError, SinkError
from ..models import Trade
from ..output import TradeWriter, iso_utc
from . import Sink

__all__ = ["FileSink"]

#: one trade's line: the trade, the file it goes to, its bytes (with the CSV header
#: when it starts a new file)
_Line = tuple[Trade, str, bytes]


def _append(path: str) -> BinaryIO:
    return open(path, "ab", buffering=0)


class _Rows(io.TextIOBase):
    """A text stream that keeps what is written, one string per ``write``: the trade
    writer writes each trade's jsonl or CSV line in one call."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []

    def write(self, text: str) -> int:
        self.rows.append(text)
        return len(text)


class FileSink(Sink):
    """Appends trades to *path* as ``jsonl`` (``Trade.to_dict()`` per line) or ``csv``
    (the command line's Excel-friendly columns, a header in each new file).

    >>> sink = FileSink("trades-{date}.csv", format="csv")   # one file per UTC day

    :param path: the file; ``{date}`` in it (``2026-01-01``, the trade's UTC date) rotates
        daily.  Parent directories are created.
    :param format: ``jsonl`` or ``csv``.
    :param fsync: also ``os.fsync`` after each batch.
    :param name: the sink's name in stats and errors (default: the path).
    :param open_file: opens a file for appending, unbuffered and binary (default
        ``open(path, "ab", buffering=0)``).  Its ``write(data)`` may write part of
        *data* and return the count, or raise ``OSError``, as a raw file does; tests
        pass a file that simulates a full disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str = "jsonl",
        *,
        fsync: bool = False,
        name: str | None = None,
        open_file: Callable[[str], BinaryIO] = _append,
    ):
        if format not in ("jsonl", "csv"):
            raise ConfigError("file sink format must be jsonl or csv, not %r" % (format,))
        self.path = str(path)
        self.format = format
        self.fsync = fsync
        self.name = name or self.path
        self._open_file = open_file
        self._rotating = "{date}" in self.path
        self._target: str | None = None
        self._file: BinaryIO | None = None
        self._rows = _Rows()  # the encoder writes one row per trade into it
        self._encoder = TradeWriter(cast(TextIO, self._rows), format, header=False, autoflush=False)
        self._header = b""
        if format == "csv":
            header = io.StringIO()
            TradeWriter(header, "csv")
            self._header = header.getvalue().encode("utf-8")
        # the lines of a failed write still owed (its trades will be given again), and
        # how many of their bytes are in the files already
        self._pending: list[_Line] = []
        self._sent = 0

    def write(self, trades: Sequence[Trade]) -> None:
        """Append the lines of *trades*; after a failure, the next call, given the same
        trades or the first of them, writes exactly what is missing.

        :raises OSError: the file could not be opened or written (a retry goes on
            from the last byte written).
        :raises SinkError: part of a line of an earlier batch is in the file but this
            call does not start with that trade.
        :raises ValueError, OverflowError: a trade cannot be encoded; nothing written.
        """
        self._pending = lines = self._lines(trades)
        self._write_out(lines[: len(trades)])
        if self.fsync and self._file is not None:
            os.fsync(self._file.fileno())
        self._sent -= sum(len(data) for _, _, data in lines[: len(trades)])
        del lines[: len(trades)]

    def flush(self) -> None:
        """Nothing to do: :meth:`write` hands every byte to the OS (and syncs if asked)."""

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _lines(self, trades: Sequence[Trade]) -> list[_Line]:
        """The lines for *trades* first: the pending ones where *trades* continues them,
        then new ones; then the pending lines after those (*trades* is their start)."""
        pending = self._pending
        same = 0
        while same < len(trades) and same < len(pending) and trades[same] is pending[same][0]:
            same += 1
        if same == len(trades):
            return pending
        if self._sent > sum(len(data) for _, _, data in pending[:same]):
            raise SinkError(
                "file sink %s: the line of trade %s is partly written; it must be written next"
                % (self.name, pending[same][0].trade_id)
            )
        return pending[:same] + self._encode(trades[same:], {target for _, target, _ in pending[:same]})

    def _encode(self, trades: Sequence[Trade], headed: set[str]) -> list[_Line]:
        """The lines of *trades*; a CSV header starts each file not in *headed* that is
        empty or missing."""
        rows = self._rows.rows
        rows.clear()
        for trade in trades:
            self._encoder.write(trade)
        lines = []
        for trade, row in zip(trades, rows):
            target = self.path.replace("{date}", iso_utc(trade.timestamp_ms)[:10]) if self._rotating else self.path
            data = row.encode("utf-8")
            if self._header and target not in headed:
                headed.add(target)
                if not os.path.exists(target) or os.path.getsize(target) == 0:
                    data = self._header + data
            lines.append((trade, target, data))
        return lines

    def _write_out(self, lines: list[_Line]) -> None:
        """Write *lines* from byte ``_sent`` on, counting every byte that goes out."""
        start = 0  # of this file's bytes among the lines'
        for target, group in itertools.groupby(lines, key=lambda line: line[1]):
            data = b"".join(line[2] for line in group)
            end = start + len(data)
            if end > self._sent:
                file = self._file_for(target)
                rest = memoryview(data)[self._sent - start :]
                while rest:
                    written = file.write(rest)  # a full disk: a short count, then OSError
                    self._sent += written
                    rest = rest[written:]
            start = end

    def _file_for(self, target: str) -> BinaryIO:
        if target != self._target or self._file is None:
            self.close()
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._file = self._open_file(target)
            self._target = target
        return self._file
