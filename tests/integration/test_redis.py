"""The Redis Streams sink and reader against a real redis-server on a unix socket.

Every test starts its own server in ``tmp_path`` (``redis_server.py``) and stops it;
reader processes are real child processes, stopped or killed and always waited for.
"""

from __future__ import annotations

import sys
import threading
from decimal import Decimal
from typing import Iterator

import pytest

from tradefeed import ConfigError, Liquidity, Side, SinkError, Trade
from tradefeed.sinks import SinkRunner
from tradefeed.sinks.redis import RedisSink, RedisTradeReader, decode_trade, encode_trade

from .redis_server import ReaderProcess, RedisServer, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def make_trade(n: int, *, venue: str = "dopp", symbol: str = "BTC-PERPETUAL", **changes) -> Trade:
    """Trade number *n*: awkward Decimals, optional fields set on even numbers only."""
    even = n % 2 == 0
    trade = Trade(
        venue=venue,
        symbol=symbol,
        trade_id=str(1000 + n),
        price=Decimal("90125.50") + Decimal(n) / 1000,
        amount=Decimal("0.00000001") * (n + 1),
        side=Side.BUY if even else Side.SELL,
        timestamp_ms=1767225600000 + n,
        received_ns=1767225600000000000 + n,
        sequence=n if even else None,
        fee=Decimal("-0.0000012E-3") if even else None,
        fee_currency="BTC" if even else None,
        liquidity=Liquidity.MAKER if even else None,
        raw={"index_price": Decimal("90100.120"), "tags": ["a", Decimal("1.10"), None, True], "n": n, "note": "é"},
    )
    return trade.replace(**changes) if changes else trade


def read_all(reader: RedisTradeReader, n: int) -> list:
    """Entries until *n* have arrived (each read waits at most block_ms)."""
    entries: list = []
    for _ in range(200):
        if len(entries) >= n:
            break
        entries.extend(reader.read())
    return entries


def stream_trades(server: RedisServer, stream: str) -> list[Trade]:
    with server.client() as client:
        return [decode_trade(fields) for _, fields in client.xrange(stream)]


def test_round_trip_is_exact(server):
    """A trade read back through the reader equals the one written, digit for digit and
    type for type, optional fields absent included."""
    trades = [make_trade(n) for n in range(6)] + [make_trade(9, symbol="ETH-PERPETUAL")]
    sink = RedisSink(server.url)
    sink.open()
    sink.write(trades)
    sink.close()
    with RedisTradeReader(server.url, ["tradefeed:dopp:*"], "g", "c1", block_ms=50) as reader:
        entries = read_all(reader, len(trades))
        assert reader.streams == ["tradefeed:dopp:BTC-PERPETUAL", "tradefeed:dopp:ETH-PERPETUAL"]
        assert reader.ack(entries) == len(trades)
    got = sorted((e.trade for e in entries), key=lambda t: t.trade_id)
    assert got == trades
    assert [t.to_dict() for t in got] == [t.to_dict() for t in trades]  # received_ns too
    assert [e.stream for e in entries] == ["tradefeed:dopp:BTC-PERPETUAL"] * 6 + ["tradefeed:dopp:ETH-PERPETUAL"]
    first = got[0]
    assert str(first.fee) == str(trades[0].fee) and str(first.amount) == "1E-8"
    assert isinstance(first.raw["index_price"], Decimal) and str(first.raw["index_price"]) == "90100.120"
    assert str(first.raw["tags"][1]) == "1.10" and first.raw["note"] == "é"
    assert got[1].fee is None and got[1].liquidity is None and "fee" not in encode_trade(trades[1])


def test_a_pattern_picks_up_streams_created_later(server):
    """A reader on ``tradefeed:dopp:*`` started before any such stream exists joins each
    one as it appears (rescan_interval=0: on every read) and reads it from its start."""
    with RedisTradeReader(server.url, "tradefeed:dopp:*", "g", "c", block_ms=50, rescan_interval=0) as reader:
        assert reader.read() == [] and reader.streams == []
        sink = RedisSink(server.url)
        sink.open()
        sink.write([make_trade(1), make_trade(2, symbol="ETH-PERPETUAL")])
        entries = read_all(reader, 2)
        sink.write([make_trade(3, symbol="SOL-PERPETUAL")])
        entries += read_all(reader, 1)
        sink.close()
        reader.ack(entries)
    assert sorted(e.trade.trade_id for e in entries) == ["1001", "1002", "1003"]


def test_duplicates_add_nothing_across_writes_and_a_new_sink(server):
    """A batch written again, partly or whole, and the same trades from a second sink
    (a restarted process) leave exactly one entry per trade, in first-write order."""
    trades = [make_trade(n) for n in range(50)]
    first = RedisSink(server.url)
    first.open()
    first.write(trades[:20])  # a batch that failed after 20 trades ...
    first.write(trades)  # ... is retried whole
    first.write(trades[10:30])
    assert (first.added, first.duplicates) == (50, 40)
    first.close()
    second = RedisSink(server.url)
    second.open()
    second.write(list(reversed(trades)) + [make_trade(50)])
    assert (second.added, second.duplicates) == (1, 50)
    second.close()
    assert stream_trades(server, "tradefeed:dopp:BTC-PERPETUAL") == trades + [make_trade(50)]


def test_one_stream_deduplicates_by_venue_symbol_and_id(server):
    """With a fixed stream name every trade shares it; equal trade ids of other symbols or
    venues are different trades and all kept."""
    trades = [make_trade(1), make_trade(1, symbol="ETH-PERPETUAL"), make_trade(1, venue="rails")]
    sink = RedisSink(server.url, stream="trades")
    sink.open()
    sink.write(trades + trades)
    sink.close()
    assert stream_trades(server, "trades") == trades


def test_a_public_trade_and_an_own_fill_of_one_match_are_both_kept(server):
    """Rails: the same matchId on publicTrades and among the account's fills (Trade.stream)
    are two records; only a true repeat is dropped."""
    public = make_trade(7, venue="rails", symbol="BTC-USDT", stream="public", raw={"stream": "publicTrades"})
    own = make_trade(7, venue="rails", symbol="BTC-USDT", stream="user", raw={"stream": "trades"})
    sink = RedisSink(server.url, stream="trades")
    sink.open()
    sink.write([public, own, public, own])
    sink.close()
    assert stream_trades(server, "trades") == [public, own]


def test_maxlen_trims_the_stream_to_about_maxlen(server):
    """2,000 trades into a stream capped at 100 leave the newest ones, at most one
    radix-tree node (stream-node-max-entries, 100 by default) beyond the cap."""
    sink = RedisSink(server.url, maxlen=100)
    sink.open()
    trades = [make_trade(n) for n in range(2000)]
    for i in range(0, 2000, 250):
        sink.write(trades[i : i + 250])
    sink.close()
    kept = stream_trades(server, "tradefeed:dopp:BTC-PERPETUAL")
    assert 100 <= len(kept) <= 200
    assert kept == trades[-len(kept) :]


def test_a_stopped_server_keeps_trades_in_the_runner_then_writes_them_once(server):
    """Through SinkRunner: with the server down the write really fails, SinkError is
    reported once and the trades wait; after a restart on the same socket (data kept,
    script cache lost) they are written exactly once, after the earlier ones."""
    now = [0.0]
    errors: list[SinkError] = []
    runner = SinkRunner(RedisSink(server.url, name="r"), errors.append, clock=lambda: now[0])
    trades = [make_trade(n) for n in range(30)]
    runner.deliver(trades[:10])
    assert runner.written == 10 and errors == []
    server.stop(save=True)
    runner.deliver(trades[10:25])
    runner.deliver(trades[25:])
    assert runner.pending == 20 and runner.failures == 1 and len(errors) == 1
    assert "r" in str(errors[0]) and "15 trades kept" in str(errors[0])  # when it failed
    server.start()
    now[0] += 60  # past the runner's backoff, without waiting for it
    runner.deliver(trades[5:10])  # the upstream repeats a few: still once each
    assert runner.pending == 0 and runner.written == 35 and len(errors) == 1
    runner.close()
    assert stream_trades(server, "tradefeed:dopp:BTC-PERPETUAL") == trades


def test_two_reader_processes_share_a_stream_without_overlap(server):
    """Two processes in one group, both waiting, split 400 trades: each gets some, none
    is processed twice, none is missed, nothing stays pending."""
    stream, n = "tradefeed:dopp:BTC-PERPETUAL", 400
    readers = [ReaderProcess(server.url, stream, "workers", name) for name in ("w1", "w2")]
    try:
        for reader in readers:
            reader.wait_ready()
        with server.client() as client:  # both blocked in XREADGROUP: new entries go to both
            assert wait_until(lambda: int(client.info("clients")["blocked_clients"]) == 2)
        sink = RedisSink(server.url)
        sink.open()
        trades = [make_trade(i) for i in range(n)]
        for i in range(0, n, 40):
            sink.write(trades[i : i + 40])
        sink.close()
        assert wait_until(lambda: sum(len(r.processed) for r in readers) >= n, timeout=30)
    finally:
        codes = [reader.stop() for reader in readers]
    assert codes == [0, 0], [r.stderr() for r in readers]
    done = [[row[0] for row in r.processed] for r in readers]
    assert all(done), "each reader processed some: %s" % [len(d) for d in done]
    assert sorted(done[0] + done[1]) == sorted(t.trade_id for t in trades)  # all, and each once
    with server.client() as client:
        assert client.xpending(stream, "workers")["pending"] == 0


def test_a_killed_readers_entries_are_claimed_by_another(server):
    """A reader SIGKILLed before acknowledging leaves its entries pending; another reader
    of the group claims them once idle, processes each exactly once, then carries on."""
    stream = "tradefeed:dopp:BTC-PERPETUAL"
    sink = RedisSink(server.url)
    sink.open()
    trades = [make_trade(i) for i in range(60)]
    sink.write(trades[:30])
    doomed = ReaderProcess(server.url, stream, "workers", "doomed", ack=False)
    survivor = None
    try:
        doomed.wait_ready()
        assert doomed.wait_for(lambda r: len(r.processed) == 30)
        assert doomed.kill() == -9
        with server.client() as client:
            pending = client.xpending(stream, "workers")
            assert pending["pending"] == 30 and pending["consumers"] == [{"name": "doomed", "pending": 30}]
        survivor = ReaderProcess(server.url, stream, "workers", "survivor", claim_idle_ms=200)
        survivor.wait_ready()
        assert survivor.wait_for(lambda r: len(r.processed) >= 30)
        sink.write(trades[30:])
        assert survivor.wait_for(lambda r: len(r.processed) >= 60)
    finally:
        sink.close()
        doomed.stop()
        if survivor is not None:
            assert survivor.stop() == 0, survivor.stderr()
    got = survivor.processed
    assert [row[0] for row in got[:30]] == [row[0] for row in doomed.processed]  # the same entries ...
    assert all(row[2] for row in got[:30])  # ... taken over, flagged redelivered
    assert [row[0] for row in got[30:]] == [t.trade_id for t in trades[30:]] and not any(row[2] for row in got[30:])
    with server.client() as client:
        assert client.xpending(stream, "workers")["pending"] == 0


def test_a_restarted_consumer_first_gets_back_what_it_had_not_acknowledged(server):
    """The same consumer name, after a restart, is given its unacknowledged entries again
    (flagged redelivered) before new ones; acknowledged ones never come back."""
    sink = RedisSink(server.url)
    sink.open()
    sink.write([make_trade(i) for i in range(10)])
    with RedisTradeReader(server.url, "tradefeed:dopp:BTC-PERPETUAL", "g", "c1", block_ms=50) as reader:
        entries = read_all(reader, 10)
        reader.ack(entries[:4])
    sink.write([make_trade(10)])
    sink.close()
    with RedisTradeReader(server.url, "tradefeed:dopp:BTC-PERPETUAL", "g", "c1", block_ms=50) as reader:
        again = read_all(reader, 7)
        reader.ack(again)
    assert [e.trade.trade_id for e in again] == [str(1000 + i) for i in range(4, 11)]
    assert [e.redelivered for e in again] == [True] * 6 + [False]


def test_entries_that_are_not_trades_are_skipped_and_acknowledged(server):
    """A foreign entry in the stream is counted in ``malformed``, acknowledged, and does
    not stop the trades after it."""
    with server.client() as client:
        client.xadd("mixed", {"hello": "world"})
        client.xadd("mixed", {**encode_trade(make_trade(1)), "side": "sideways"})
        client.xadd("mixed", encode_trade(make_trade(2)))
    with RedisTradeReader(server.url, ["mixed"], "g", "c", block_ms=50) as reader:
        entries = read_all(reader, 1)
        assert [e.trade for e in entries] == [make_trade(2)] and reader.malformed == 2
        reader.ack(entries)
    with server.client() as client:
        assert client.xpending("mixed", "g")["pending"] == 0


def test_close_from_another_thread_ends_iteration(server):
    """close() on another thread ends a ``for entry in reader`` blocked in XREADGROUP."""
    reader = RedisTradeReader(server.url, ["empty"], "g", "c", block_ms=100)
    seen: list = []
    worker = threading.Thread(target=lambda: seen.extend(reader), name="test-iterate")
    worker.start()
    with server.client() as client:
        assert wait_until(lambda: int(client.info("clients")["blocked_clients"]) == 1)
    reader.close()
    worker.join(5)
    assert not worker.is_alive() and seen == []


def test_end_to_end_from_the_simulator(server, make_sim, make_manager, collector):
    """Trades from the Dopp simulator through FeedManager.add_sink land in one stream per
    symbol, each exactly once, in delivery order, equal to what the callbacks saw."""
    sim = make_sim(rate=0, history=30)
    manager = make_manager()
    collector.attach(manager)
    sink = manager.add_sink(RedisSink(server.url, name="redis"))
    manager.add_feed("dopp", **sim.feed_params("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").emit(200)
        assert collector.wait_trades(220)
    assert collector.errors == []
    stats = manager.sink_stats()["redis"]
    assert (stats.written, stats.pending, stats.failures) == (220, 0, 0)
    symbols = sorted({t.symbol for t in collector.trades})
    for symbol in symbols:
        stored = stream_trades(server, "tradefeed:dopp:%s" % symbol)
        assert stored == [t for t in collector.trades if t.symbol == symbol]
    with server.client() as client:
        assert sorted(client.scan_iter(match="tradefeed:dopp:*", _type="stream")) == ["tradefeed:dopp:%s" % s for s in symbols]
    assert sink.added == 220


def test_configuration_mistakes_raise_config_error(monkeypatch):
    """Bad parameters, and a missing redis-py, are ConfigErrors at construction."""
    with pytest.raises(ConfigError, match="only {venue} and {symbol}"):
        RedisSink(stream="t:{exchange}")
    with pytest.raises(ConfigError, match="redis://"):
        RedisSink("http://localhost")
    with pytest.raises(ConfigError, match="maxlen"):
        RedisSink(maxlen=0)
    with pytest.raises(ConfigError, match="count"):
        RedisTradeReader("redis://localhost", ["s"], "g", "c", count=0)
    assert "secret" not in repr(RedisSink("redis://:secret@localhost:6379/0"))
    assert "secret" not in RedisSink("redis://:secret@localhost:6379/0").name
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    with pytest.raises(ConfigError, match=r"pip install 'tradefeed\[redis\]'"):
        RedisSink()
    with pytest.raises(ConfigError, match=r"pip install 'tradefeed\[redis\]'"):
        RedisTradeReader("redis://localhost", ["s"], "g", "c")


def test_a_password_in_the_url_query_is_hidden():
    """redis-py also takes ?password=; it never reaches a sink's name."""
    from tradefeed.sinks._redis_client import safe_url

    assert "hunter2" not in safe_url("redis://cache:6379/0?password=hunter2&db=1")
    assert "hunter2" not in safe_url("redis://user:hunter2@cache:6379/0")
