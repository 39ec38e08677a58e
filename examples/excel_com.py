"""The single-thread pattern for Excel/COM: only the owner thread touches the workbook.

COM objects belong to the thread that created them.  So the manager runs with
``dispatch="manual"`` and the owner thread loops on ``manager.pump()``: the callbacks
run there and write rows through a small writer interface.  On Windows with pywin32 the
rows go to a live Excel workbook; elsewhere the same rows go to a CSV file, so the
example runs anywhere.

    python examples/excel_com.py --limit 50               # simulator -> Excel, else a CSV file
    python examples/excel_com.py --csv out.csv --limit 50  # force the CSV writer

Without Excel and without ``--csv`` the rows go to ``tradefeed-excel_com.csv`` in the
system's temporary directory (it says where), never into the current directory.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
import tempfile
from typing import Any, Protocol, Sequence

from tradefeed import ConfigError, FeedManager, Trade, TradefeedError
from tradefeed.output import iso_utc

HEADER = ("time (UTC)", "venue", "symbol", "side", "amount", "price", "trade id")


class RowWriter(Protocol):
    def write_row(self, values: Sequence[Any]) -> None: ...
    def close(self) -> None: ...


class CsvRows:
    """Rows to a CSV file (Excel opens it; Decimals are written with every digit)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self.write_row(HEADER)

    def write_row(self, values: Sequence[Any]) -> None:
        self._csv.writerow([str(v) for v in values])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ExcelRows:
    """Rows to a new sheet of a live Excel workbook, through COM (Windows, pywin32)."""

    def __init__(self) -> None:
        import win32com.client  # pywin32; only on Windows

        self._excel = win32com.client.Dispatch("Excel.Application")
        self._excel.Visible = True
        self._sheet = self._excel.Workbooks.Add().Worksheets(1)
        self._row = 1
        self.write_row(HEADER)

    def write_row(self, values: Sequence[Any]) -> None:
        for column, value in enumerate(values, start=1):
            self._sheet.Cells(self._row, column).Value = str(value)  # text keeps every digit
        self._row += 1

    def close(self) -> None:
        pass  # leave the workbook open for the user


def open_writer(csv_path: str | None) -> RowWriter:
    if csv_path is None:
        try:
            return ExcelRows()
        except ImportError:
            csv_path = os.path.join(tempfile.gettempdir(), "tradefeed-excel_com.csv")
    print("writing rows to", csv_path, flush=True)
    return CsvRows(csv_path)


def main() -> None:
    parser = argparse.ArgumentParser(description="trades into Excel (or a CSV) from the owner thread")
    parser.add_argument("--csv", help="write this CSV instead of Excel")
    parser.add_argument("--limit", type=int, default=0, help="stop after N rows (0: until Ctrl-C)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        from tradefeed.simulator import Simulator

        sim = stack.enter_context(Simulator(rate=50, history=10))
        manager = FeedManager(dispatch="manual")
        for venue in ("dopp", "synthetix"):
            manager.add_feed(venue, **sim.feed_params(venue))
        writer = open_writer(args.csv)
        stack.callback(writer.close)
        rows = 0

        @manager.on_trade
        def write(trade: Trade) -> None:  # runs here, on the owner thread, inside pump()
            nonlocal rows
            if args.limit and rows >= args.limit:
                return
            writer.write_row(
                (iso_utc(trade.timestamp_ms), trade.venue, trade.symbol, trade.side.value, trade.amount, trade.price, trade.trade_id)
            )
            rows += 1

        with manager:
            try:
                while not args.limit or rows < args.limit:
                    manager.pump(timeout=0.5)  # a COM program would also pump its messages here
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
