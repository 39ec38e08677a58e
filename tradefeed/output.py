"""Writing trades as text: a readable ``table``, ``jsonl`` (one ``Trade.to_dict()`` per
line) or Excel-friendly ``csv``.  Used by the command line; usable from scripts.

CSV rules: a header row (written once, not again when appending to a non-empty file),
an ISO-8601 UTC time column next to the exact millisecond column, Decimals written with
every digit they have (never through float), empty cells for absent values.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from typing import TextIO

from .models import Trade, decimal_text

__all__ = ["TradeWriter", "iso_utc", "CSV_COLUMNS", "FORMATS"]

FORMATS = ("table", "jsonl", "csv")
CSV_COLUMNS = (
    "time_utc",
    "timestamp_ms",
    "venue",
    "symbol",
    "trade_id",
    "side",
    "price",
    "amount",
    "fee",
    "fee_currency",
    "liquidity",
    "sequence",
    "stream",
)
_TABLE = "%-24s %-10s %-20s %-4s %16s %14s  %-12s %s\n"


def iso_utc(timestamp_ms: int) -> str:
    """``2026-01-01T00:00:00.123Z`` for a Unix-ms instant.

    :raises ValueError: an instant outside the years 1 to 9999.
    """
    try:
        when = dt.datetime.fromtimestamp(timestamp_ms // 1000, tz=dt.timezone.utc)
    except (OverflowError, OSError) as err:  # OSError: the C library's range, on some systems
        raise ValueError("timestamp_ms %r is out of range" % (timestamp_ms,)) from err
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (timestamp_ms % 1000)


class TradeWriter:
    """Writes trades to a text stream in one of :data:`FORMATS`.

    :param stream: where to write (flushed after every trade, so a crash loses nothing
        already handed to the writer).
    :param fmt: ``table``, ``jsonl`` or ``csv``.
    :param header: write the table/CSV header now (False when appending to a file that
        has one).
    :param autoflush: flush after every trade (False: the owner flushes, e.g. per batch).
    :param defer_header: write the header just before the first trade instead, so a
        command that fails or finds nothing leaves no header behind.
    """

    def __init__(
        self, stream: TextIO, fmt: str, *, header: bool = True, autoflush: bool = True, defer_header: bool = False
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError("format must be one of %s, not %r" % (", ".join(FORMATS), fmt))
        self.stream = stream
        self.format = fmt
        self.autoflush = autoflush
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        self._header = header and fmt != "jsonl"
        if not defer_header:
            self._write_header()

    def _write_header(self) -> None:
        if not self._header:
            return
        self._header = False
        if self._csv is not None:
            self._csv.writerow(CSV_COLUMNS)
        else:
            self.stream.write(_TABLE % ("time (UTC)", "venue", "symbol", "side", "amount", "price", "trade id", "stream"))

    def write(self, trade: Trade) -> None:
        if self._header:
            self._write_header()
        if self.format == "jsonl":
            self.stream.write(json.dumps(trade.to_dict(), separators=(",", ":")) + "\n")
        elif self._csv is not None:
            self._csv.writerow(
                (
                    iso_utc(trade.timestamp_ms),
                    trade.timestamp_ms,
                    trade.venue,
                    trade.symbol,
                    trade.trade_id,
                    trade.side.value,
                    decimal_text(trade.price),
                    decimal_text(trade.amount),
                    "" if trade.fee is None else decimal_text(trade.fee),
                    trade.fee_currency or "",
                    "" if trade.liquidity is None else trade.liquidity.value,
                    "" if trade.sequence is None else trade.sequence,
                    trade.stream,
                )
            )
        else:
            self.stream.write(
                _TABLE
                % (
                    iso_utc(trade.timestamp_ms),
                    trade.venue,
                    trade.symbol,
                    trade.side.value,
                    decimal_text(trade.amount),
                    decimal_text(trade.price),
                    trade.trade_id,
                    trade.stream,
                )
            )
        if self.autoflush:
            self.stream.flush()
