"""SQLiteSink, its reader and the query command, on real database files in tmp_path."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
from decimal import Decimal

import pytest

from tradefeed import ConfigError, Liquidity, Side, SinkError, Trade
from tradefeed.sinks import SinkRunner
from tradefeed.sinks.sqlite import COLUMNS, SQLiteSink, add_query_command, cmd_query, last_trades, read_trades

pytestmark = pytest.mark.timeout(30)

T0 = 1767225600000  # 2026-01-01T00:00:00Z


def trade(i: int, venue: str = "dopp", symbol: str = "BTC-PERPETUAL", ts: int | None = None, **changes) -> Trade:
    """Trade number *i*, every field set; Decimals carry trailing zeros and tiny exponents."""
    values = dict(
        venue=venue,
        symbol=symbol,
        trade_id=str(771200 + i),
        price=Decimal("90125.50"),
        amount=Decimal("0.000000001"),
        side=Side.BUY if i % 2 else Side.SELL,
        timestamp_ms=T0 + i if ts is None else ts,
        received_ns=1767225600123456789 + i,
        sequence=40 + i,
        fee=Decimal("-0.0000012300"),
        fee_currency="USDC",
        liquidity=Liquidity.MAKER,
        raw={"order_id": 1048576 + i, "wallet": "0x9b1e", "note": "größe"},
    )
    values.update(changes)
    return Trade(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stored_ids(path, **filters) -> list[str]:
    return [t.trade_id for t in read_trades(path, **filters)]


def connect(path) -> sqlite3.Connection:
    """The test's own connection, as another process would have."""
    return sqlite3.connect(path, isolation_level=None)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "trades.db"


@pytest.fixture
def sink(db):
    sink = SQLiteSink(db)
    sink.open()
    yield sink
    sink.close()


# -- writing --------------------------------------------------------------------------


def test_every_field_round_trips_exactly(db, sink):
    """Decimals keep every digit and their exponent, enums and optional fields come back as written."""
    full = trade(1, raw={"order_id": 7, "note": "größe", "tags": ["a", None, True]})
    bare = trade(2, sequence=None, fee=None, fee_currency=None, liquidity=None, raw={})
    sink.write([full, bare])
    back = read_trades(db)
    assert back == [full, bare]
    assert [t.to_dict() for t in back] == [full.to_dict(), bare.to_dict()]  # received_ns too
    got = back[0]
    assert str(got.price) == "90125.50" and got.price.as_tuple() == full.price.as_tuple()
    assert got.amount.as_tuple() == Decimal("0.000000001").as_tuple()
    assert got.fee.as_tuple() == Decimal("-0.0000012300").as_tuple()
    assert type(got.side) is Side and type(got.liquidity) is Liquidity
    assert type(got.timestamp_ms) is int and got.received_ns == full.received_ns


def test_money_is_stored_as_text_never_real(db, sink):
    """price, amount and fee are TEXT cells with every digit, in plain notation."""
    sink.write([trade(1, price=Decimal("1E-9"), amount=Decimal("123456789012345678901234.5"))])
    with connect(db) as conn:
        row = conn.execute("SELECT typeof(price), price, typeof(amount), amount, typeof(fee), fee FROM trades").fetchone()
    assert row == ("text", "0.000000001", "text", "123456789012345678901234.5", "text", "-0.0000012300")


def test_decimals_in_raw_come_back_as_strings(db, sink):
    """raw is JSON with Decimals as strings, as in Trade.to_dict(), so SQL reads them exactly too."""
    original = trade(1, raw={"index_price": Decimal("90120.250"), "nested": [{"iv": Decimal("48.5")}]})
    sink.write([original])
    (back,) = read_trades(db)
    assert back.raw == {"index_price": "90120.250", "nested": [{"iv": "48.5"}]}
    assert back.to_dict() == original.to_dict()
    with connect(db) as conn:
        assert conn.execute("SELECT json_extract(raw, '$.index_price') FROM trades").fetchone() == ("90120.250",)


def test_duplicates_are_ignored_across_writes_and_across_reopen(db):
    """A retried, partly written or replayed batch stores each (venue, symbol, trade_id) once;
    the first stored row is kept."""
    sink = SQLiteSink(db)
    sink.open()
    sink.write([trade(1), trade(2), trade(3)])
    sink.write([trade(2), trade(3), trade(4)])  # a retry of a batch that was partly written
    assert (sink.inserted, sink.duplicates) == (4, 2)
    sink.close()
    again = SQLiteSink(db)
    again.open()
    again.write([trade(1, price=Decimal("1"), received_ns=5), trade(5)])  # after a restart: a replay
    assert (again.inserted, again.duplicates) == (1, 1)
    again.close()
    back = read_trades(db)
    assert [t.trade_id for t in back] == ["771201", "771202", "771203", "771204", "771205"]
    assert back[0].to_dict() == trade(1).to_dict()


def test_the_same_trade_id_on_another_symbol_or_venue_is_another_trade(db, sink):
    """The key is (venue, symbol, trade_id), not trade_id alone."""
    sink.write([trade(1), trade(1, symbol="ETH-PERPETUAL"), trade(1, venue="rails")])
    assert len(read_trades(db)) == 3 and sink.duplicates == 0


def test_a_failing_open_keeps_the_trades_and_writes_them_once_it_can(tmp_path):
    """Through SinkRunner: a file stands where the database's directory should be, so open()
    fails; nothing is lost, one SinkError is reported, and once the file is gone every trade is
    stored once, in order."""
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    path = blocker / "trades.db"
    clock, errors = Clock(), []
    runner = SinkRunner(SQLiteSink(path, name="db"), errors.append, clock=clock)
    runner.deliver([trade(1), trade(2)])
    runner.deliver([trade(3)])  # before the retry time: kept, not attempted
    assert runner.pending == 3 and runner.failures == 1
    assert len(errors) == 1 and isinstance(errors[0], SinkError) and "db" in str(errors[0])
    assert isinstance(errors[0].__cause__, SinkError) and "cannot open" in str(errors[0].__cause__)
    blocker.unlink()
    clock.now += runner.retry_in()
    runner.drain()
    runner.close()
    assert runner.pending == 0 and runner.stats().written == 3
    assert stored_ids(path) == ["771201", "771202", "771203"]


def test_a_refused_write_commits_nothing_and_is_retried_until_accepted(db):
    """Through SinkRunner: a trigger refuses one trade of a batch; the whole batch is rolled back
    (the rows before it too), kept, and written exactly once after the trigger is dropped."""
    clock, errors = Clock(), []
    sink = SQLiteSink(db)
    runner = SinkRunner(sink, errors.append, clock=clock)
    runner.deliver([trade(1), trade(2)])
    with connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON trades WHEN NEW.trade_id = '771205' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    runner.deliver([trade(3), trade(4), trade(5), trade(6)])
    assert runner.pending == 4 and len(errors) == 1
    assert "refused by the test" in str(errors[0]) and isinstance(errors[0].__cause__.__cause__, sqlite3.Error)
    assert stored_ids(db) == ["771201", "771202"]  # 3 and 4 were inserted, then rolled back
    runner.deliver([trade(7)])  # before the retry time: kept, not attempted
    assert runner.pending == 5 and runner.failures == 1 and len(errors) == 1
    with connect(db) as conn:
        conn.execute("DROP TRIGGER refuse")
    clock.now += runner.retry_in()
    runner.drain()
    runner.close()
    assert stored_ids(db) == ["771201", "771202", "771203", "771204", "771205", "771206", "771207"]
    assert runner.stats().written == 7 and runner.pending == 0 and sink.duplicates == 0


@pytest.mark.parametrize("poisoned", [(0,), (2,), (1, 2), (4,)], ids=["first", "middle", "two-in-a-row", "last"])
def test_poison_trades_are_reported_and_skipped_and_the_others_stored(db, poisoned):
    """Through SinkRunner: a trade whose sequence does not fit SQLite's 64-bit integer fails every
    batch it is in; after the retry the batch is written one trade at a time, and each such trade
    is reported (a SinkError carrying it), counted and skipped, while every other trade is stored
    once, in order (a poison trade at the end waits for a later trade to be judged)."""
    clock, errors = Clock(), []
    runner = SinkRunner(SQLiteSink(db), errors.append, clock=clock)
    batch = [trade(i, sequence=2**63) if i in poisoned else trade(i) for i in range(5)]
    runner.deliver(batch)
    assert runner.pending == 5 and len(errors) == 1  # a first failure: kept and retried as it is
    clock.now += runner.retry_in()
    runner.drain()
    runner.deliver([trade(5)])
    for _ in range(5):  # a retry at each backoff time, until nothing waits
        if runner.retry_in() is None:
            break
        clock.now += runner.retry_in()
        runner.drain()
    runner.close()
    assert stored_ids(db) == [str(771200 + i) for i in range(6) if i not in poisoned]
    refused = [e for e in errors if e.trade is not None]
    assert [e.trade for e in refused] == [batch[i] for i in poisoned]
    assert all(isinstance(e.__cause__, OverflowError) and "cannot take trade" in str(e) for e in refused)
    assert runner.stats().rejected == len(poisoned) and runner.pending == 0


def test_a_locked_database_is_an_outage_not_poison(db, monkeypatch):
    """Through SinkRunner: while another connection holds the write lock every write fails, alone
    too; the runner keeps retrying with backoff and blames no trade, and once the lock is gone
    every trade is stored once, in order."""
    monkeypatch.setattr("tradefeed.sinks.sqlite.BUSY_TIMEOUT", 0.05)  # fail fast on the lock
    clock, errors = Clock(), []
    runner = SinkRunner(SQLiteSink(db), errors.append, clock=clock)
    runner.deliver([trade(1), trade(2)])
    holder = connect(db)
    holder.execute("BEGIN IMMEDIATE")
    runner.deliver([trade(3), trade(4), trade(5)])
    for _ in range(3):  # the retry, then passes one trade at a time: all refused
        clock.now += runner.retry_in()
        runner.drain()
    assert runner.pending == 3 and runner.stats().rejected == 0
    holder.execute("COMMIT")
    holder.close()
    clock.now += runner.retry_in()
    runner.drain()
    runner.close()
    assert stored_ids(db) == ["771201", "771202", "771203", "771204", "771205"]
    assert runner.stats().rejected == 0 and runner.pending == 0
    assert [e.trade for e in errors] == [None] and "locked" in str(errors[0])


def test_another_constraint_failing_is_an_error_not_a_silently_dropped_row(db):
    """Only the key conflict is skipped: a row breaking a CHECK fails the batch (INSERT OR IGNORE
    would have dropped it without a word)."""
    columns = ", ".join(COLUMNS)
    with connect(db) as conn:
        conn.execute(
            "CREATE TABLE trades (%s, CHECK (symbol <> 'BAD'), PRIMARY KEY (venue, stream, symbol, trade_id))" % columns
        )
    sink = SQLiteSink(db)
    sink.open()
    with pytest.raises(SinkError, match="CHECK constraint failed"):
        sink.write([trade(1), trade(2, symbol="BAD"), trade(3)])
    sink.write([trade(1), trade(3)])
    sink.close()
    assert stored_ids(db) == ["771201", "771203"]


def test_a_batch_sqlite_cannot_hold_fails_without_leaving_a_transaction_open(db, sink):
    """A value SQLite refuses before any SQL runs (an integer past 64 bits) fails the batch;
    the next batch is written as usual."""
    with pytest.raises(OverflowError):
        sink.write([trade(1), trade(2, sequence=2**63)])
    sink.write([trade(1), trade(3)])
    assert stored_ids(db) == ["771201", "771203"]


def test_a_table_of_another_layout_is_refused_at_open(db):
    """An existing table without the trade columns or key is named in a clear SinkError."""
    with connect(db) as conn:
        conn.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY, price REAL)")
    sink = SQLiteSink(db)
    with pytest.raises(SinkError, match="another layout.*missing columns: venue, stream, symbol, trade_id, amount"):
        sink.open()
    sink.close()  # nothing open: does nothing


def test_wal_mode_and_the_indexes(db):
    """The database is in WAL mode; each table has an index on timestamp_ms (and one per symbol)."""
    sink = SQLiteSink(db, table="fills")
    sink.open()
    sink.close()
    with connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(fills)")}
        assert {"fills_timestamp_ms", "fills_symbol_time"} <= indexes
        assert [r[2] for r in conn.execute("PRAGMA index_info(fills_timestamp_ms)")] == ["timestamp_ms"]
        assert [r[2] for r in conn.execute("PRAGMA index_info(fills_symbol_time)")] == ["venue", "symbol", "timestamp_ms"]
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM fills WHERE timestamp_ms >= 5"))
        assert "fills_timestamp_ms" in plan


@pytest.mark.parametrize("table", ["", "1trades", "trades; DROP TABLE x", 'tr"ades', "sqlite_master", "t" * 64, None])
def test_a_table_name_that_is_not_a_plain_identifier_is_a_config_error(db, table):
    """The table name is spliced into SQL, so anything but an identifier is refused up front."""
    with pytest.raises(ConfigError, match="table must be a plain identifier") as info:
        SQLiteSink(db, table=table)
    assert info.value.param == "table"
    with pytest.raises(ConfigError):
        read_trades(db, table=table)


def test_other_settings_are_checked_up_front(db):
    """An empty path or an unknown synchronous level is a ConfigError; names default to the path."""
    with pytest.raises(ConfigError, match="path"):
        SQLiteSink("")
    with pytest.raises(ConfigError, match="synchronous must be one of OFF, NORMAL, FULL, EXTRA"):
        SQLiteSink(db, synchronous="sometimes")
    assert SQLiteSink(db, synchronous="full").synchronous == "FULL"
    assert SQLiteSink(db).name == "sqlite:%s" % db
    assert SQLiteSink(db, table="fills").name == "sqlite:%s#fills" % db
    assert SQLiteSink(db, name="archive").name == "archive"


def test_write_before_open_is_a_sink_error(db):
    """The connection belongs to the delivery thread's open(); write() does not open it behind the runner."""
    with pytest.raises(SinkError, match="not open"):
        SQLiteSink(db).write([trade(1)])


# -- reading --------------------------------------------------------------------------


@pytest.fixture
def filled(db, sink):
    """Two venues, two symbols on one, written out of time order."""
    sink.write(
        [
            trade(1, ts=T0 + 30),
            trade(2, ts=T0 + 10),
            trade(3, symbol="ETH-PERPETUAL", ts=T0 + 20),
            trade(4, venue="rails", symbol="BTC-USDT", ts=T0 + 5),
            trade(5, ts=T0 + 40),
            trade(6, symbol="ETH-PERPETUAL", ts=T0 + 50),
            trade(7, ts=T0 + 40),  # same millisecond as 5: kept in the order stored
        ]
    )
    return db


def test_read_trades_filters_and_returns_the_oldest_first(filled):
    """venue, symbol, since_ms (inclusive) and limit (the first ones) combine."""
    assert stored_ids(filled) == ["771204", "771202", "771203", "771201", "771205", "771207", "771206"]
    assert stored_ids(filled, venue="rails") == ["771204"]
    assert stored_ids(filled, symbol="ETH-PERPETUAL") == ["771203", "771206"]
    assert stored_ids(filled, venue="dopp", symbol="BTC-PERPETUAL", since_ms=T0 + 30) == ["771201", "771205", "771207"]
    assert stored_ids(filled, since_ms=T0 + 20, limit=2) == ["771203", "771201"]
    assert stored_ids(filled, venue="nowhere") == []


def test_last_trades_gives_the_latest_per_symbol_oldest_first(filled):
    """Keys are sorted (venue, symbol) pairs; each list holds the newest per_symbol, in time order."""
    last = last_trades(filled, per_symbol=2)
    assert list(last) == [("dopp", "BTC-PERPETUAL"), ("dopp", "ETH-PERPETUAL"), ("rails", "BTC-USDT")]
    assert {k: [t.trade_id for t in v] for k, v in last.items()} == {
        ("dopp", "BTC-PERPETUAL"): ["771205", "771207"],
        ("dopp", "ETH-PERPETUAL"): ["771203", "771206"],
        ("rails", "BTC-USDT"): ["771204"],
    }
    assert list(last_trades(filled, 1, venue="dopp")) == [("dopp", "BTC-PERPETUAL"), ("dopp", "ETH-PERPETUAL")]
    assert list(last_trades(filled, 1, symbol="BTC-USDT")) == [("rails", "BTC-USDT")]
    assert [t.trade_id for t in last_trades(filled, 5, since_ms=T0 + 35)[("dopp", "BTC-PERPETUAL")]] == ["771205", "771207"]
    assert last_trades(filled, 3, venue="nowhere") == {}


def test_a_reader_sees_committed_trades_while_the_sink_writes(db, sink):
    """WAL: a reader in another connection works while the sink's connection is open."""
    sink.write([trade(1)])
    assert stored_ids(db) == ["771201"]
    sink.write([trade(2)])
    assert stored_ids(db) == ["771201", "771202"]


def test_the_reader_never_creates_a_database(tmp_path, filled):
    """A missing file, a file that is not a database, a missing table or a bad limit is a
    ConfigError, and no empty database is left behind."""
    missing = tmp_path / "nope.db"
    with pytest.raises(ConfigError, match="no database file at .*nope.db"):
        read_trades(missing)
    with pytest.raises(ConfigError, match="no database file"):
        last_trades(missing)
    assert not missing.exists()
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(ConfigError, match="not a SQLite database"):
        read_trades(text)
    with pytest.raises(ConfigError, match="has no table fills"):
        read_trades(filled, table="fills")
    assert len(read_trades(filled, table="TRADES")) == 7  # SQL names ignore case
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        read_trades(filled, limit=0)
    with pytest.raises(ConfigError, match="per_symbol must be a positive integer"):
        last_trades(filled, per_symbol=0)


# -- the query command -----------------------------------------------------------------


def query(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tradefeed")
    add_query_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["query", *argv])


def test_query_arguments_and_defaults(db):
    """add_query_command adds query DB with --venue, --symbol, --last (default 10), --format, --table."""
    args = query([str(db)])
    assert (args.db, args.venue, args.symbol, args.last, args.format, args.table) == (str(db), None, None, 10, "table", "trades")
    args = query([str(db), "--venue", "dopp", "--symbol", "X", "--last", "3", "--format", "csv", "--table", "fills"])
    assert (args.venue, args.symbol, args.last, args.format, args.table) == ("dopp", "X", 3, "csv", "fills")
    with pytest.raises(SystemExit):
        query([str(db), "--last", "0"])


def test_query_jsonl_prints_the_last_trades_of_each_symbol(filled):
    """One Trade.to_dict() per line, grouped by (venue, symbol), each group oldest first."""
    out = io.StringIO()
    assert cmd_query(query([str(filled), "--last", "1", "--format", "jsonl"]), out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["symbol"], d["trade_id"]) for d in lines] == [
        ("BTC-PERPETUAL", "771207"),
        ("ETH-PERPETUAL", "771206"),
        ("BTC-USDT", "771204"),
    ]
    assert lines[0] == trade(7, ts=T0 + 40).to_dict()


def test_query_csv_is_exact_and_filtered(filled):
    """CSV rows carry every digit; --venue/--symbol narrow the output."""
    out = io.StringIO()
    assert cmd_query(query([str(filled), "--venue", "dopp", "--symbol", "ETH-PERPETUAL", "--format", "csv"]), out) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["trade_id"] for r in rows] == ["771203", "771206"]
    assert (rows[0]["price"], rows[0]["amount"], rows[0]["fee"]) == ("90125.50", "0.000000001", "-0.0000012300")
    assert rows[0]["time_utc"] == "2026-01-01T00:00:00.020Z"


def test_query_table_has_a_header_and_one_line_per_trade(filled):
    """The default format is the readable table."""
    out = io.StringIO()
    assert cmd_query(query([str(filled), "--last", "2"]), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("time (UTC)") and len(lines) == 1 + 5
    assert "771206" in lines[4] and "ETH-PERPETUAL" in lines[4]


def test_query_on_a_missing_database_is_a_config_error(tmp_path):
    """cli.main turns the ConfigError into one line on stderr and exit code 2."""
    with pytest.raises(ConfigError, match="no database file"):
        cmd_query(query([str(tmp_path / "nope.db")]), io.StringIO())
    assert not (tmp_path / "nope.db").exists()
