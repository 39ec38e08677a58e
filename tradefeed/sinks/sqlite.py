"""The SQLite sink (stdlib :mod:`sqlite3`, WAL), its reader, and ``tradefeed query``.

This module owns the table layout, the sink that fills it, the functions that read it
back as :class:`~tradefeed.models.Trade` objects and the ``query`` subcommand
(:func:`add_query_command`, :func:`cmd_query`; ``cli.py`` registers them).  Rules:

- money (``price``, ``amount``, ``fee``) is TEXT with every digit, never REAL; ``raw``
  is JSON with Decimals as strings, as in :meth:`Trade.to_dict` (so ``json_extract``
  in SQL reads them exactly too);
- one transaction per ``write``, and a trade already stored is skipped by its key
  ``(venue, symbol, trade_id)``, so a retried, replayed or re-received batch writes no
  duplicate.  Only that key conflict is skipped (``ON CONFLICT (...) DO NOTHING``):
  ``INSERT OR IGNORE`` would also drop, silently, a row that breaks any other
  constraint of the table;
- the sink's connection lives on its writer thread (opened in ``open``); readers
  open the file read-only and never create it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO, TypeVar

from ..exceptions import ConfigError, SinkError
from ..models import PUBLIC, STREAMS, USER, Liquidity, Side, Trade
from ..output import FORMATS, TradeWriter
from . import Sink

__all__ = ["SQLiteSink", "read_trades", "last_trades", "add_query_command", "cmd_query", "COLUMNS"]

log = logging.getLogger(__name__)

#: the table's columns, in order; the primary key is (venue, stream, symbol, trade_id):
#: ``stream`` is ``Trade.stream`` ("public" or "user"), so a Rails match on the public
#: tape and the same match among the account's own fills are both kept
COLUMNS = (
    "venue",
    "stream",
    "symbol",
    "trade_id",
    "price",
    "amount",
    "side",
    "timestamp_ms",
    "received_ns",
    "sequence",
    "fee",
    "fee_currency",
    "liquidity",
    "raw",
)
_KEY = ("venue", "stream", "symbol", "trade_id")
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
T = TypeVar("T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
#: seconds a statement waits for another connection's write lock before failing
BUSY_TIMEOUT = 5.0
#: ...in steps of this many seconds, between which abort() is noticed
LOCK_STEP = 0.1

_TABLE = """
CREATE TABLE IF NOT EXISTS "{t}" (
    venue        TEXT    NOT NULL,
    stream       TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    trade_id     TEXT    NOT NULL,
    price        TEXT    NOT NULL,
    amount       TEXT    NOT NULL,
    side         TEXT    NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    received_ns  INTEGER NOT NULL,
    sequence     INTEGER,
    fee          TEXT,
    fee_currency TEXT,
    liquidity    TEXT,
    raw          TEXT    NOT NULL,
    PRIMARY KEY (venue, stream, symbol, trade_id)
)"""
# time ranges; and the latest trades of one symbol (``last_trades``, ``tradefeed query``)
_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "{t}_timestamp_ms" ON "{t}" (timestamp_ms)',
    'CREATE INDEX IF NOT EXISTS "{t}_symbol_time" ON "{t}" (venue, symbol, timestamp_ms)',
)


def _table_name(table: Any) -> str:
    """*table* if it is a plain SQL identifier (it is spliced into statements)."""
    if not isinstance(table, str) or not _IDENTIFIER.match(table) or table.lower().startswith("sqlite_"):
        raise ConfigError(
            "sqlite: table must be a plain identifier (letters, digits, _; not starting with a digit "
            "or sqlite_; at most 63 characters), not %r" % (table,),
            param="table",
        )
    return table


class SQLiteSink(Sink):
    """Stores trades in a SQLite table, one transaction per batch, without duplicates.

    >>> sink = manager.add_sink(SQLiteSink("trades.db"))   # doctest: +SKIP
    >>> last_trades("trades.db", per_symbol=5)              # doctest: +SKIP

    Every method but :meth:`abort` runs on the sink's writer thread, which owns the
    connection.  A committed batch survives the process being killed; with
    ``synchronous="NORMAL"`` (WAL) the last batches can be lost to a power cut or OS
    crash, with ``"FULL"`` they cannot.  A database locked by another connection makes
    a write wait up to ``BUSY_TIMEOUT`` seconds; :meth:`abort` ends that wait.

    :param path: the database file; created with its parent directories if missing.
    :param table: table name (a plain identifier); created with its indexes if missing.
    :param name: the sink's name in stats and errors (default ``sqlite:<path>``, plus
        ``#<table>`` for another table than ``trades``).
    :param synchronous: SQLite's ``PRAGMA synchronous``: ``OFF``, ``NORMAL``, ``FULL``
        or ``EXTRA``.
    :raises ConfigError: an empty path, an invalid table name or synchronous value.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "trades",
        name: str | None = None,
        synchronous: str = "NORMAL",
    ) -> None:
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ConfigError("sqlite: path must name a database file, not %r" % (path,), param="path")
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in _SYNCHRONOUS:
            raise ConfigError(
                "sqlite: synchronous must be one of %s, not %r" % (", ".join(_SYNCHRONOUS), synchronous),
                param="synchronous",
            )
        #: the database file
        self.path = path
        #: the table written
        self.table = _table_name(table)
        #: ``PRAGMA synchronous`` of the connection
        self.synchronous = mode
        self.name = name or "sqlite:%s%s" % (path, "" if table == "trades" else "#" + table)
        #: trades stored since the sink was created
        self.inserted = 0
        #: trades skipped because their key was stored already (retries, replays)
        self.duplicates = 0
        self._conn: sqlite3.Connection | None = None
        self._aborted = threading.Event()
        self._insert = 'INSERT INTO "%s" (%s) VALUES (%s) ON CONFLICT (%s) DO NOTHING' % (
            self.table,
            ", ".join(COLUMNS),
            ", ".join("?" * len(COLUMNS)),
            ", ".join(_KEY),
        )

    def open(self) -> None:
        """Connect (WAL mode), create the table and indexes if missing, check the layout.

        :raises SinkError: the file cannot be opened or created, or the table exists
            with another layout.
        """
        if self._conn is not None:
            return
        self._aborted.clear()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT);
            # a short busy timeout, so that waiting for a lock can be aborted (_locked)
            conn = sqlite3.connect(self.path, timeout=LOCK_STEP, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise SinkError("sqlite: cannot open %s: %s" % (self.path, err)) from err
        try:
            journal = self._locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            conn.execute("PRAGMA synchronous=%s" % self.synchronous)
            self._locked(lambda: conn.execute("BEGIN IMMEDIATE"))
            conn.execute(_TABLE.format(t=self.table))
            _check_layout(conn, self.table, self.path)
            for statement in _INDEXES:
                conn.execute(statement.format(t=self.table))
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            conn.close()
            raise SinkError("sqlite: cannot prepare table %s in %s: %s" % (self.table, self.path, err)) from err
        except BaseException:
            conn.close()
            raise
        if str(journal).lower() != "wal":
            log.warning("sqlite sink %s: journal mode is %s, not wal (readers may block the writer)", self.name, journal)
        self._conn = conn
        log.info("sqlite sink %s: opened table %s in %s", self.name, self.table, self.path)

    def write(self, trades: Sequence[Trade]) -> None:
        """Store *trades* in one transaction; trades already stored are skipped.

        :raises SinkError: the transaction failed; nothing of this batch is committed.
        """
        if self._conn is None:
            raise SinkError("sqlite sink %s is not open" % self.name)
        rows = [_row(trade) for trade in trades]
        conn = self._conn
        try:
            self._locked(lambda: conn.execute("BEGIN IMMEDIATE"))
            inserted = conn.executemany(self._insert, rows).rowcount
            conn.execute("COMMIT")
        except BaseException as err:
            # whatever failed (an int too large for SQLite raises OverflowError), a
            # transaction left open would make every later BEGIN fail
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # SQLite may have rolled back already (e.g. on a full disk)
                    log.debug("sqlite sink %s: rollback failed", self.name, exc_info=True)
            if not isinstance(err, sqlite3.Error):
                raise
            raise SinkError("sqlite: %d trades not written to %s in %s: %s" % (len(rows), self.table, self.path, err)) from err
        self.inserted += inserted
        self.duplicates += len(rows) - inserted
        log.debug("sqlite sink %s: %d stored, %d already there", self.name, inserted, len(rows) - inserted)

    def flush(self) -> None:
        """Nothing to do: each :meth:`write` commits (durable as ``synchronous`` says)."""

    def abort(self) -> None:
        """End a wait for another connection's lock, or a statement in progress (any
        thread): the write fails now rather than after ``BUSY_TIMEOUT``."""
        self._aborted.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.interrupt()
            except sqlite3.Error:  # closed meanwhile
                pass

    def _locked(self, statement: Callable[[], T]) -> T:
        """Run *statement*, waiting up to ``BUSY_TIMEOUT`` while another connection holds
        the lock it needs: SQLite's own wait (``LOCK_STEP`` at a time) cannot be
        interrupted, so it is repeated here, and :meth:`abort` ends it."""
        give_up = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                return statement()
            except sqlite3.OperationalError as err:
                if not _busy(err) or self._aborted.is_set() or time.monotonic() >= give_up:
                    raise

    def close(self) -> None:
        """Close the connection (a second call does nothing)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            log.info("sqlite sink %s: closed (%d stored, %d duplicates skipped)", self.name, self.inserted, self.duplicates)

    def __repr__(self) -> str:
        return "<SQLiteSink %s table=%s>" % (self.path, self.table)


def _busy(err: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED)."""
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (5, 6)  # extended codes keep the primary one in the low byte
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _check_layout(conn: sqlite3.Connection, table: str, path: str) -> None:
    """Refuse an existing table that lacks a column or has another primary key."""
    info = conn.execute('PRAGMA table_info("%s")' % table).fetchall()  # cid, name, type, notnull, default, pk
    missing = [c for c in COLUMNS if c not in {row[1] for row in info}]
    key = tuple(row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
    if missing or key != _KEY:
        raise SinkError(
            "sqlite: table %s in %s has another layout (missing columns: %s; primary key: %s, expected %s); "
            "use another table" % (table, path, ", ".join(missing) or "none", ", ".join(key) or "none", ", ".join(_KEY))
        )


def _row(trade: Trade) -> tuple[Any, ...]:
    """The values for :data:`COLUMNS`: Decimals as text with every digit, enums as values."""
    values = trade.to_dict()
    # default=str: one odd value in raw must not make the batch fail on every retry
    values["raw"] = json.dumps(values["raw"], separators=(",", ":"), ensure_ascii=False, default=str)
    return tuple(values[column] for column in COLUMNS)


def _trade(row: Sequence[Any]) -> Trade:
    """A :class:`Trade` from a row of :data:`COLUMNS`."""
    venue, stream, symbol, trade_id, price, amount, side, ts, received, seq, fee, fee_ccy, liquidity, raw = row
    if stream not in STREAMS:  # written before Trade.stream existed: the venue's stream name, or ""
        stream = USER if stream == "trades" or (venue == "dopp" and not stream) else PUBLIC
    return Trade(
        venue=venue,
        symbol=symbol,
        trade_id=trade_id,
        price=Decimal(price),
        amount=Decimal(amount),
        side=Side(side),
        timestamp_ms=ts,
        received_ns=received,
        sequence=seq,
        fee=None if fee is None else Decimal(fee),
        fee_currency=fee_ccy,
        liquidity=None if liquidity is None else Liquidity(liquidity),
        stream=stream,
        raw=json.loads(raw),
    )


# -- reading ------------------------------------------------------------------------


def _connect_read_only(path: str | os.PathLike[str], table: str) -> sqlite3.Connection:
    """A read-only connection to an existing database holding *table*.

    :raises ConfigError: no such file, not a SQLite database, or no such table.
    :raises SinkError: the database cannot be read.
    """
    table = _table_name(table)
    file = Path(path)
    if not file.is_file():
        raise ConfigError("sqlite: no database file at %s" % file, param="path")
    # mode=ro: never create a file, never write; a WAL database is read with its log
    uri = file.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as err:
        raise SinkError("sqlite: cannot open %s: %s" % (file, err)) from err
    try:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE"
        found = conn.execute(sql, (table,)).fetchone()
    except sqlite3.DatabaseError as err:
        conn.close()
        if "not a database" in str(err):
            raise ConfigError("sqlite: %s is not a SQLite database" % file, param="path") from err
        raise SinkError("sqlite: cannot read %s: %s" % (file, err)) from err
    if found is None:
        conn.close()
        raise ConfigError("sqlite: %s has no table %s" % (file, table), param="table")
    return conn


def _select(conn: sqlite3.Connection, table: str, sql: str, params: Sequence[Any], path: Any) -> list[Trade]:
    try:
        rows = conn.execute('SELECT %s FROM "%s" %s' % (", ".join(COLUMNS), table, sql), params).fetchall()
    except sqlite3.Error as err:
        raise SinkError("sqlite: cannot read %s from %s: %s" % (table, path, err)) from err
    return [_trade(row) for row in rows]


def _where(venue: str | None, symbol: str | None, since_ms: int | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("venue = ?", venue), ("symbol = ?", symbol), ("timestamp_ms >= ?", since_ms)):
        if value is not None:
            clauses.append(column)
            params.append(value)
    return clauses, params


def _positive(value: Any, name: str) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ConfigError("sqlite: %s must be a positive integer, not %r" % (name, value), param=name)


def read_trades(
    path: str | os.PathLike[str],
    *,
    table: str = "trades",
    venue: str | None = None,
    symbol: str | None = None,
    since_ms: int | None = None,
    limit: int | None = None,
) -> list[Trade]:
    """The stored trades that match, oldest first (by ``timestamp_ms``, then by the
    order they were stored), as :class:`Trade` objects with exact Decimals.

    ``raw`` comes back as stored: JSON values, with Decimals as strings (as in
    :meth:`Trade.to_dict`); every other field is as written.

    :param since_ms: only trades with ``timestamp_ms >= since_ms``.
    :param limit: at most this many: the *first* ones from ``since_ms`` on (for the
        latest trades see :func:`last_trades`).
    :raises ConfigError: no such database file or table, or an invalid limit.
    :raises SinkError: the database cannot be read.
    """
    _positive(limit, "limit")
    clauses, params = _where(venue, symbol, since_ms)
    sql = ("WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY timestamp_ms, rowid"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    conn = _connect_read_only(path, table)
    try:
        return _select(conn, table, sql, params, path)
    finally:
        conn.close()


def last_trades(
    path: str | os.PathLike[str],
    per_symbol: int = 10,
    *,
    table: str = "trades",
    venue: str | None = None,
    symbol: str | None = None,
    since_ms: int | None = None,
) -> dict[tuple[str, str], list[Trade]]:
    """The latest *per_symbol* trades of every stored ``(venue, symbol)``, each list
    oldest first; keys in sorted order.  Filters as in :func:`read_trades`.

    :raises ConfigError: no such database file or table, or an invalid *per_symbol*.
    :raises SinkError: the database cannot be read.
    """
    _positive(per_symbol, "per_symbol")
    conn = _connect_read_only(path, table)
    try:
        result: dict[tuple[str, str], list[Trade]] = {}
        for pair in _pairs(conn, table, venue, symbol, path):
            clauses, params = _where(*pair, since_ms)
            sql = "WHERE %s ORDER BY timestamp_ms DESC, rowid DESC LIMIT ?" % " AND ".join(clauses)
            trades = _select(conn, table, sql, params + [per_symbol], path)
            if trades:
                result[pair] = trades[::-1]
        return result
    finally:
        conn.close()


def _pairs(conn: sqlite3.Connection, table: str, venue: str | None, symbol: str | None, path: Any) -> list[tuple[str, str]]:
    """Every stored (venue, symbol) that matches, sorted: one index seek per pair rather
    than a scan of the whole table."""
    clauses, params = _where(venue, symbol, None)
    pairs: list[tuple[str, str]] = []
    try:
        while True:
            after = list(clauses)
            if pairs:
                after.append("(venue, symbol) > (?, ?)")
            sql = 'SELECT venue, symbol FROM "%s" %s ORDER BY venue, symbol LIMIT 1' % (
                table,
                "WHERE " + " AND ".join(after) if after else "",
            )
            row = conn.execute(sql, params + list(pairs[-1] if pairs else ())).fetchone()
            if row is None:
                return pairs
            pairs.append((row[0], row[1]))
    except sqlite3.Error as err:
        raise SinkError("sqlite: cannot read %s from %s: %s" % (table, path, err)) from err


# -- the query command --------------------------------------------------------------


def add_query_command(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add ``query DB [--venue V] [--symbol S] [--last N] [--format F] [--table T]`` to
    the ``tradefeed`` command's subparsers; returns the new parser."""
    query = subparsers.add_parser("query", help="print the last trades per symbol from a SQLite sink's database")
    query.add_argument("db", help="the database file written by the sqlite sink")
    query.add_argument("--venue", help="only this venue")
    query.add_argument("--symbol", help="only this symbol")
    from .._args import positive_int  # the command line's shared option types

    query.add_argument("--last", type=positive_int, default=10, metavar="N", help="trades per symbol (default 10)")
    query.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    query.add_argument("--table", default="trades", help="the table (default trades)")
    return query


def cmd_query(args: argparse.Namespace, out: TextIO) -> int:
    """Print the last ``args.last`` trades of each symbol, grouped by (venue, symbol),
    each group oldest first.  Returns the exit code (0).

    :raises ConfigError: no such database file or table.
    :raises SinkError: the database cannot be read.
    """
    groups = last_trades(
        args.db, args.last, table=getattr(args, "table", "trades"), venue=args.venue, symbol=args.symbol
    )
    writer = TradeWriter(out, args.format, autoflush=False, defer_header=True)
    for trades in groups.values():
        for trade in trades:
            writer.write(trade)
    out.flush()
    return 0
