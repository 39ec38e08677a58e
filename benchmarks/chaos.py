"""Chaos soak: every venue at a steady rate for minutes to an hour, with a seeded fault
every few seconds; does tradefeed lose nothing silently, keep order, recover from
everything, and hold its memory and threads flat?

    python benchmarks/run.py --mode chaos                          # 10 minutes
    python benchmarks/run.py --mode chaos --chaos-minutes 60 --write-results

The venues run in a child process (``benchmarks/chaos_server.py``: the simulator,
*rate* trades per second per venue, faults on command); the client runs in this
process, so its resident memory and threads are tradefeed's: one ``FeedManager`` with
five feeds (Dopp, SynFutures, Synthetix, Rails with its private ``trades`` stream next to
``publicTrades``, and the Synthetix user feed), a SQLite sink, and callbacks that append
one short line per trade and per ``Gap`` to log files (nothing of the run is kept in
memory, however long it lasts).

Faults come one at a time, every *fault_every* seconds (+/- 50 %, seeded), in rounds
holding each kind once in a seeded order, each on a seeded venue:

============== ==========================================================================
drop           the venue's connections aborted (1006)
close-1000/1001/1011  a close frame with that code
refuse         the next handshake refused (429 or 503, ``Retry-After: 1``), then a drop
silence        data stalled and pings unanswered on the open connections: only the
               client's ping timeout notices
malformed      a frame that is not JSON, in order with the venue's trades
token-expiry   every Rails token expired (close 1008 "token expired")
sink-outage    the SQLite file locked by another connection for a few seconds
============== ==========================================================================

A fault is *recovered* when every feed it disrupted (a disconnect after it) is connected
again and has delivered a trade, every feed it left connected has delivered a trade since
(after a malformed frame: since the frame's ``ParseError``), and for a sink outage once
the lock is gone and the sink has nothing pending.  Its *recovery time* runs from the
fault (for a sink outage: from the lock's release) to that moment; the next fault waits
for it, up to :data:`RECOVERY_LIMIT` (then it counts as not recovered).

At the end (the manager stopped, the tapes dumped by the child) it checks, per
``(venue, stream, symbol)``: no trade delivered twice; the venue's order kept; every tape
trade from the first delivered one on that was not delivered lies inside a ``Gap``
reported for it (what a reconnect's back-fill could not cover is reported, never silent);
the SQLite table holds each delivered trade once and nothing else; every fault recovered;
the thread count back to what it was before the manager started; and, for runs of
:data:`MEMORY_JUDGED_AFTER` seconds or more, resident memory flat: the Theil-Sen trend of
``VmRSS`` after the warm-up (:func:`warmup`; de-duplication windows of
:data:`DEDUP_WINDOW` ids fill within it) rises by less than :data:`FLAT_GROWTH_MIB`.

Linux only (``/proc/self/status``), like the rest of the suite.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import IO, Any, Callable

from tradefeed import Backoff, FeedManager, Gap, ParseError, SinkError, Status, StatusEvent, Trade, TradefeedError
from tradefeed.sinks.sqlite import SQLiteSink

from .harness import REPO, Log, Scenario
from .procstat import os_threads, rss_kib
from .soak import FLAT_GROWTH_MIB, theil_sen_rise

__all__ = [
    "DEFAULT_FAULT_EVERY",
    "DEFAULT_MINUTES",
    "DEFAULT_RATE",
    "FAULTS",
    "chaos",
    "summarize",
    "table",
    "title",
    "verdict",
]

#: minutes of a chaos soak by default (``run.py --chaos-minutes``)
DEFAULT_MINUTES = 10.0
#: trades per second per venue by default
DEFAULT_RATE = 10.0
#: seconds between faults by default (each +/- 50 %)
DEFAULT_FAULT_EVERY = 5.0
#: the fault kinds, each once per round
FAULTS = ("drop", "close-1000", "close-1001", "close-1011", "refuse", "silence", "malformed", "token-expiry", "sink-outage")
#: venue -> the soaked feeds it serves
VENUE_FEEDS = {"dopp": ("dopp",), "synfutures": ("synfutures",), "synthetix": ("synthetix", "synthetix-user"), "rails": ("rails",)}
#: seconds a fault may take to recover before it counts as not recovered
RECOVERY_LIMIT = 60.0
#: a feed a fault did not disconnect must deliver a trade this long after it (seconds)
GRACE = 0.5
#: trade ids remembered per symbol: small, so the windows fill within the warm-up
DEDUP_WINDOW = 256
#: memory is judged on runs at least this long (seconds); shorter ones only report it
MEMORY_JUDGED_AFTER = 300.0
#: a tape trade this close to the stop (seconds) may have been in flight: not counted missing
TAIL = 10.0
#: what a malformed frame looks like
MALFORMED = '{"chaos": "this frame is not valid JSON'


def _quiet(line: str) -> None:
    """The default progress log: none."""


def warmup(duration: float) -> float:
    """Seconds of a run before memory is judged: a fifth of it, at least two minutes."""
    return max(120.0, duration / 5)


# -- the venues' process ---------------------------------------------------------------------


class Venues:
    """``benchmarks/chaos_server.py`` in a child process, one JSON command at a time."""

    def __init__(self, seed: int, rate: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.chaos_server", "--seed", str(seed), "--rate", str(rate)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO),
        )  # fmt: skip
        first = self._read()
        #: feed name -> add_feed arguments (with "venue")
        self.feeds: dict[str, dict[str, Any]] = first["feeds"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the chaos venues' process ended (exit %s)" % self._proc.poll())
        reply: dict[str, Any] = json.loads(line)
        return reply

    def command(self, op: str, **fields: Any) -> Any:
        """Run one command; its result.

        :raises RuntimeError: the command failed.
        """
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError("chaos venues: %s failed: %s" % (op, reply["error"]))
        return reply["ok"]

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                self.command("quit")
        except (OSError, RuntimeError):
            pass
        finally:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(30)


# -- what the callbacks see ------------------------------------------------------------------


class Watch:
    """The callbacks' view, kept to a few numbers per feed (memory stays flat): when each
    feed last disconnected, connected, delivered a trade and reported a ParseError, and
    its first trade after its latest connect.  Trades and gaps go to log files."""

    def __init__(self, trades: IO[str], gaps: IO[str]) -> None:
        self.cond = threading.Condition()
        self._trades, self._gaps = trades, gaps
        self.last_trade: dict[str, float] = {}
        self.last_disconnect: dict[str, float] = {}
        self.last_connect: dict[str, float] = {}
        self.first_after_connect: dict[str, float | None] = {}
        self.last_parse_error: dict[str, float] = {}
        self.count: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.gap_count = 0

    def trade(self, trade: Trade, feed_of: Callable[[Trade], str]) -> None:
        now = time.monotonic()
        feed = feed_of(trade)
        self._trades.write("%s\t%s\t%s\t%s\n" % (trade.venue, trade.stream, trade.symbol, trade.trade_id))
        with self.cond:
            self.last_trade[feed] = now
            self.count[feed] += 1
            if self.first_after_connect.get(feed, 0.0) is None:
                self.first_after_connect[feed] = now
            self.cond.notify_all()

    def status(self, event: StatusEvent) -> None:
        now = time.monotonic()
        with self.cond:
            if event.status in (Status.DISCONNECTED, Status.RECONNECTING):
                self.last_disconnect[event.feed] = now
            elif event.status is Status.CONNECTED:
                self.last_connect[event.feed] = now
                self.first_after_connect[event.feed] = None
            self.cond.notify_all()

    def error(self, error: TradefeedError) -> None:
        now = time.monotonic()
        with self.cond:
            self.errors[type(error).__name__] += 1
            feed = getattr(error, "feed", None)
            if isinstance(error, ParseError) and feed:
                self.last_parse_error[feed] = now
            self.cond.notify_all()

    def gap(self, gap: Gap) -> None:
        self._gaps.write("%s\t%s\t%s\t%d\t%d\n" % (gap.venue, gap.stream, gap.symbol, gap.from_ms, gap.to_ms))
        with self.cond:
            self.gap_count += 1

    def feed_recovered(self, feed: str, t0: float, after_error: bool) -> float | None:
        """When *feed* recovered from a fault at *t0* (monotonic), or None if not yet;
        the caller holds ``cond``."""
        disconnect = self.last_disconnect.get(feed, 0.0)
        if disconnect > t0:
            first = self.first_after_connect.get(feed)
            if self.last_connect.get(feed, 0.0) > disconnect and first is not None:
                return first
            return None
        since = t0 + GRACE
        if after_error and self.last_parse_error.get(feed, 0.0) > t0:  # the frame reached it
            since = self.last_parse_error[feed]
        return self.last_trade[feed] if self.last_trade.get(feed, 0.0) > since else None


# -- faults --------------------------------------------------------------------------------


class Fault:
    """One injected fault and what became of it."""

    def __init__(self, kind: str, venue: str | None, t0: float, feeds: tuple[str, ...]) -> None:
        self.kind, self.venue, self.t0, self.feeds = kind, venue, t0, feeds
        #: monotonic time the recovery is counted from (a sink outage: the lock's release)
        self.cause_ends = t0
        self.recovered_at: float | None = None
        self.disrupted: list[str] = []
        #: a sink outage: trades the callbacks received while it lasted
        self.trades_during: int | None = None

    @property
    def recovery(self) -> float | None:
        return None if self.recovered_at is None else max(0.0, self.recovered_at - self.cause_ends)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "venue": self.venue,
            "recovery_s": self.recovery,
            "disrupted": self.disrupted,
            "trades_during": self.trades_during,
        }


class Outage:
    """The SQLite file locked by another connection (a sink outage) until released."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._conn.execute("ROLLBACK")
        self._conn.close()


# -- the run -------------------------------------------------------------------------------


def chaos(
    duration: float,
    *,
    seed: int = 1,
    rate: float = DEFAULT_RATE,
    fault_every: float = DEFAULT_FAULT_EVERY,
    sample_every: float = 10.0,
    ping_interval: float = 4.0,
    ping_timeout: float = 2.0,
    outage: tuple[float, float] = (2.0, 8.0),
    workdir: str | Path | None = None,
    log: Log = _quiet,
) -> Scenario:
    """Run the chaos soak for *duration* seconds; one run, checked.

    :param rate: trades per second per venue.
    :param fault_every: seconds between faults (each +/- 50 %).
    :param sample_every: seconds between memory samples.
    :param ping_interval: the client's pings (a silenced connection is noticed within
        about this plus *ping_timeout*).
    :param outage: shortest and longest sink outage, seconds (the SQLite sink waits up to
        5 s for a lock: longer outages also make it fail, report and back off).
    :param workdir: where the logs, tapes and database go (default: a temporary folder,
        removed afterwards).
    """
    params = {"duration_s": duration, "seed": seed, "rate": rate, "fault_every": fault_every, "feeds": 5}
    scenario = Scenario("chaos", params)
    with tempfile.TemporaryDirectory(prefix="tradefeed-chaos-") as temporary:
        folder = Path(workdir) if workdir is not None else Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        result = _run(folder, duration, seed, rate, fault_every, sample_every, ping_interval, ping_timeout, outage, log)
    scenario.runs.append({"chaos": result})
    for line in verdict(summarize(scenario)[0]):
        log("chaos: " + line)
    return scenario


def _run(
    folder: Path,
    duration: float,
    seed: int,
    rate: float,
    fault_every: float,
    sample_every: float,
    ping_interval: float,
    ping_timeout: float,
    outage_span: tuple[float, float],
    log: Log,
) -> dict[str, Any]:
    rng = random.Random(seed)
    db, tapes = folder / "trades.db", folder / "tapes.jsonl"
    log("chaos: %g s, %g trades/s per venue, a fault every %g s (+/- 50 %%), seed %d; files in %s" % (duration, rate, fault_every, seed, folder))
    venues = Venues(seed, rate)
    trade_log = open(folder / "trades.log", "w", encoding="utf-8")
    gap_log = open(folder / "gaps.log", "w", encoding="utf-8")
    watch = Watch(trade_log, gap_log)
    threads_before = threading.active_count()
    os_threads_before = os_threads()
    samples: list[dict[str, Any]] = []
    faults: list[Fault] = []
    lock: Outage | None = None
    clean = False
    stopped_wall_ms = 0
    manager = FeedManager(
        backoff=Backoff(initial=0.2, max_delay=2.0, jitter=0.25),
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        dedup_window=DEDUP_WINDOW,
    )
    try:
        feed_names = {}
        for name, spec in venues.feeds.items():
            spec = dict(spec)
            venue = spec.pop("venue")
            manager.add_feed(venue, name=name, **spec)
            feed_names[(venue, "user" if name.endswith("-user") else "public")] = name

        def feed_of(trade: Trade) -> str:  # Rails' own fills come on the Rails feed
            return feed_names.get((trade.venue, trade.stream)) or feed_names[(trade.venue, "public")]

        manager.on_trade(lambda trade: watch.trade(trade, feed_of))
        manager.on_status(watch.status)
        manager.on_error(watch.error)
        manager.on_gap(watch.gap)
        sink_name = manager.add_sink(SQLiteSink(db, name="sqlite")).name
        start = time.monotonic()
        manager.start()
        with watch.cond:
            if not watch.cond.wait_for(lambda: set(watch.count) >= set(venues.feeds), timeout=60):
                raise RuntimeError("not every feed delivered within a minute: %s" % dict(watch.count))
        log("chaos: every feed streams; faults begin")
        end = start + duration
        last_fault_at = end - min(15.0, duration / 4)  # the last one has time to recover
        next_sample = time.monotonic()
        next_fault = time.monotonic() + fault_every * rng.uniform(0.5, 1.5)
        order: list[str] = []
        current: Fault | None = None
        release_at = 0.0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(_sample(now - start, watch, manager, sink_name))
                next_sample += sample_every
            if lock is not None and now >= release_at:
                lock.release()
                lock = None
                assert current is not None
                current.cause_ends = time.monotonic()
                with watch.cond:  # the callbacks went on meanwhile
                    current.trades_during = sum(watch.count.values()) - (current.trades_during or 0)
            if current is not None and current.recovered_at is None:
                _check(current, watch, manager, sink_name, lock is None)
                if current.recovered_at is None and now - current.cause_ends > RECOVERY_LIMIT:
                    log("chaos: %s on %s not recovered after %g s" % (current.kind, current.venue, RECOVERY_LIMIT))
                    _heal(venues, current)
                    current = None
            if current is not None and current.recovered_at is not None:
                _heal(venues, current)
                current = None
            if current is None and now >= last_fault_at and now >= end:
                break
            if current is None and now >= next_fault and now < last_fault_at:
                if not order:
                    order = list(FAULTS)
                    rng.shuffle(order)
                kind = order.pop()
                current, lock, release_at = _inject(kind, rng, venues, db, outage_span)
                if current is None:
                    order.append(kind)  # nothing to act on just now: this kind comes again
                else:
                    faults.append(current)
                    if lock is not None:
                        with watch.cond:
                            current.trades_during = sum(watch.count.values())
                next_fault = time.monotonic() + fault_every * rng.uniform(0.5, 1.5)
            with watch.cond:
                watch.cond.wait(0.05)
        samples.append(_sample(time.monotonic() - start, watch, manager, sink_name))
        stats = {name: s.trades for name, s in manager.stats().items()}
    finally:
        if lock is not None:
            lock.release()
        clean = manager.stop(timeout=30)
        stopped_wall_ms = time.time_ns() // 1_000_000
        trade_log.close()
        gap_log.close()
        try:
            venues.command("heal")
            venues.command("dump", path=str(tapes))
        finally:
            venues.close()
    threads_after = threading.active_count()
    os_threads_after = os_threads()
    sink = manager.sink_stats()["sqlite"]
    checks = verify(folder / "trades.log", folder / "gaps.log", tapes, db, stopped_wall_ms - int(TAIL * 1000))
    return {
        "complete": True,
        "elapsed_s": duration,
        "samples": samples,
        "faults": [f.to_dict() for f in faults],
        "stats": stats,
        "errors_by_type": dict(watch.errors),
        "gaps": watch.gap_count,
        "sink": {"written": sink.written, "pending": sink.pending, "failures": sink.failures, "rejected": sink.rejected},
        "stop_clean": clean,
        "threads": {"before": threads_before, "after": threads_after, "os_before": os_threads_before, "os_after": os_threads_after},
        "checks": checks,
    }


def _sample(elapsed: float, watch: Watch, manager: FeedManager, sink_name: str) -> dict[str, Any]:
    with watch.cond:
        trades = sum(watch.count.values())
    return {
        "elapsed_s": round(elapsed, 1),
        "trades": trades,
        "rss_kib": rss_kib(),
        "blocks": sys.getallocatedblocks(),
        "threads": threading.active_count(),
        "queued": manager.queue_depth(),
        "sink_pending": manager.sink_stats()[sink_name].pending,
    }


def _inject(
    kind: str, rng: random.Random, venues: Venues, db: Path, outage_span: tuple[float, float]
) -> tuple[Fault | None, Outage | None, float]:
    """Inject one fault of *kind*; (the fault, the outage lock if any, when to release it)."""
    now = time.monotonic()
    if kind == "sink-outage":
        hold = rng.uniform(*outage_span)
        return Fault(kind, None, now, ()), Outage(db), now + hold
    venue = "rails" if kind == "token-expiry" else rng.choice(sorted(VENUE_FEEDS))
    if kind == "drop":
        acted = venues.command("drop", venue=venue)
    elif kind.startswith("close-"):
        acted = venues.command("close", venue=venue, code=int(kind[6:]))
    elif kind == "refuse":
        acted = venues.command("refuse", venue=venue, n=1, status=rng.choice((429, 503)), retry_after=1)
    elif kind == "silence":
        acted = venues.command("silence", venue=venue)
    elif kind == "malformed":
        acted = venues.command("inject", venue=venue, frame=MALFORMED)
    else:
        acted = venues.command("expire", venue=venue)
    if not acted:  # nothing was connected to act on (between attempts): not a fault
        return None, None, 0.0
    return Fault(kind, venue, now, VENUE_FEEDS[venue]), None, 0.0


def _check(fault: Fault, watch: Watch, manager: FeedManager, sink_name: str, released: bool) -> None:
    """Has *fault* recovered?  Sets ``recovered_at``."""
    if fault.kind == "sink-outage":
        if released and manager.sink_stats()[sink_name].pending == 0:
            fault.recovered_at = time.monotonic()
        return
    with watch.cond:
        times = [watch.feed_recovered(feed, fault.t0, fault.kind == "malformed") for feed in fault.feeds]
        fault.disrupted = [feed for feed in fault.feeds if watch.last_disconnect.get(feed, 0.0) > fault.t0]
        errors = any(watch.last_parse_error.get(feed, 0.0) > fault.t0 for feed in fault.feeds)
    if any(t is None for t in times):
        return
    if fault.kind == "malformed" and not errors and not fault.disrupted:
        return  # the frame was reported by nobody (yet)
    if fault.kind != "malformed" and not fault.disrupted:
        return  # nothing noticed the fault yet
    fault.recovered_at = max(t for t in times if t is not None)


def _heal(venues: Venues, fault: Fault) -> None:
    if fault.kind == "silence":
        venues.command("heal", venue=fault.venue)


# -- the checks ----------------------------------------------------------------------------

#: tape -> (venue, stream, symbol key, id key, time key, time unit in ms)
_TAPES = {
    "dopp": ("dopp", "user", "instrument_name", "trade_id", "timestamp", 1),  # Dopp: users' own trades
    "synfutures": ("synfutures", "public", "symbol", "id", "timestamp", 1000),
    "synthetix": ("synthetix", "public", "symbol", "tradeId", "timestamp", 1),
    "rails": ("rails", "public", "market", "matchId", "updatedAt", 1),
    "rails-fills": ("rails", "user", "market", "matchId", "orderFilledAt", 1),
    "synthetix-fills": ("synthetix", "user", "symbol", "tradeId", "timestamp", 1),
}


def verify(trade_log: Path, gap_log: Path, tapes: Path, db: Path, settled_ms: int) -> dict[str, Any]:
    """Compare what was delivered with what the venues sent.

    :param settled_ms: tape trades newer than this (epoch ms) may have been in flight at
        the stop: not counted as missing.
    """
    tape: dict[tuple[str, str, str], list[tuple[str, int]]] = defaultdict(list)
    with open(tapes, encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            venue, stream, symbol_key, id_key, time_key, unit = _TAPES[doc["tape"]]
            record = doc["record"]
            tape[(venue, stream, str(record[symbol_key]))].append((str(record[id_key]), int(record[time_key]) * unit))
    delivered: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    with open(trade_log, encoding="utf-8") as lines:
        for line in lines:
            venue, stream, symbol, trade_id = line.rstrip("\n").split("\t")
            delivered[(venue, stream, symbol)].append(trade_id)
    gaps: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    with open(gap_log, encoding="utf-8") as lines:
        for line in lines:
            venue, stream, symbol, low, high = line.rstrip("\n").split("\t")
            gaps[(venue, stream, symbol)].append((int(low), int(high)))
    duplicates = order = unknown = lost = in_gaps = 0
    lost_examples: list[str] = []
    for key, ids in delivered.items():
        records = tape.get(key, [])
        position: dict[str, int] = {}
        for index, (trade_id, _) in enumerate(records):
            position.setdefault(trade_id, index)  # a match's maker and taker records share an id
        seen: set[str] = set()
        last = -1
        for trade_id in ids:
            if trade_id in seen:
                duplicates += 1
                continue
            seen.add(trade_id)
            where = position.get(trade_id)
            if where is None:
                unknown += 1
                continue
            if where < last:
                order += 1
            last = max(last, where)
        positions = [position[i] for i in seen if i in position]
        if not positions:
            continue
        for trade_id, stamp in records[min(positions) :]:
            if trade_id in seen or stamp > settled_ms:
                continue
            if any(low <= stamp <= high for low, high in gaps.get(key, ())):
                in_gaps += 1
            else:
                lost += 1
                if len(lost_examples) < 5:
                    lost_examples.append("%s %s" % ("/".join(key), trade_id))
    never = sorted(
        "/".join(key) for key, records in tape.items() if key not in delivered and any(s <= settled_ms for _, s in records)
    )
    wanted = {(k[0], k[1], k[2], i) for k, ids in delivered.items() for i in ids}
    with sqlite3.connect(db) as conn:
        stored = set(conn.execute("SELECT venue, stream, symbol, trade_id FROM trades"))
    return {
        "delivered": sum(len(ids) for ids in delivered.values()),
        "keys": len(delivered),
        "duplicates": duplicates,
        "order_violations": order,
        "unknown": unknown,
        "lost_outside_gaps": lost,
        "lost_examples": lost_examples,
        "missing_in_gaps": in_gaps,
        "keys_never_delivered": never,
        "sink_missing": len(wanted - stored),
        "sink_extra": len(stored - wanted),
    }


# -- the report ----------------------------------------------------------------------------


def summarize(scenario: Scenario) -> list[dict[str, Any]]:
    """One row: the checks, the faults by kind, memory and threads, and the verdict."""
    result = scenario.runs[0]["chaos"]
    duration = scenario.params["duration_s"]
    checks = result["checks"]
    faults = result["faults"]
    by_kind: dict[str, list[float | None]] = defaultdict(list)
    for fault in faults:
        by_kind[fault["kind"]].append(fault["recovery_s"])
    recovered = [f for f in faults if f["recovery_s"] is not None]
    longest = max(recovered, key=lambda f: f["recovery_s"], default=None)
    samples = result["samples"]
    settled = [s for s in samples if s["elapsed_s"] >= warmup(duration)]
    judged = duration >= MEMORY_JUDGED_AFTER and len(settled) >= 3
    trend = theil_sen_rise(settled, "rss_kib", "elapsed_s") / 1024 if len(settled) >= 2 else None
    threads = result["threads"]
    row: dict[str, Any] = {
        "consumer": "chaos",
        "runs": 1,
        "failed": 0,
        "errors": [],
        "duration_s": duration,
        "delivered": checks["delivered"],
        "stats": result["stats"],
        "checks": checks,
        "faults": len(faults),
        "unrecovered": len(faults) - len(recovered),
        "by_kind": {k: v for k, v in sorted(by_kind.items())},
        "longest": longest,
        "gaps": result["gaps"],
        "errors_by_type": result["errors_by_type"],
        "sink": result["sink"],
        "stop_clean": result["stop_clean"],
        "threads": threads,
        "threads_back": threads["after"] == threads["before"] and threads["os_after"] == threads["os_before"],
        "samples": samples,
        "rss_start_mib": samples[0]["rss_kib"] / 1024 if samples else None,
        "rss_end_mib": samples[-1]["rss_kib"] / 1024 if samples else None,
        "rss_peak_mib": max(s["rss_kib"] for s in samples) / 1024 if samples else None,
        "trend_mib": trend,
        "memory_judged": judged,
        "flat": trend is not None and trend < FLAT_GROWTH_MIB,
        "most_threads": max(s["threads"] for s in samples) if samples else None,
    }
    problems = []
    for name in ("duplicates", "order_violations", "lost_outside_gaps", "unknown", "sink_missing", "sink_extra"):
        if checks[name]:
            problems.append("%s %d" % (name.replace("_", " "), checks[name]))
    if checks["keys_never_delivered"]:
        problems.append("never delivered: %s" % ", ".join(checks["keys_never_delivered"]))
    if row["unrecovered"]:
        problems.append("%d fault(s) not recovered" % row["unrecovered"])
    if not row["threads_back"]:
        problems.append("threads %(before)d before, %(after)d after (OS: %(os_before)d, %(os_after)d)" % threads)
    if not row["stop_clean"]:
        problems.append("stop() left threads running")
    stalled = [f for f in faults if f["kind"] == "sink-outage" and f["trades_during"] == 0]
    if stalled:
        problems.append("%d sink outage(s) during which no trade reached the callbacks" % len(stalled))
    if result["sink"]["pending"] or result["sink"]["rejected"]:
        problems.append("sink left %(pending)d pending, %(rejected)d rejected" % result["sink"])
    if judged and not row["flat"]:
        problems.append("resident memory grew %+.1f MiB (trend)" % (trend or 0.0))
    row["problems"] = problems
    row["passed"] = not problems
    row["failed"] = int(bool(problems))
    return [row]


def title(scenario: Scenario) -> str:
    p = scenario.params
    return "%s min, %g trades/s per venue, %d feeds (4 venues, Rails private stream, Synthetix user), a fault every %g s +/- 50 %%, seed %d" % (
        format(p["duration_s"] / 60, ".4g"), p["rate"], p["feeds"], p["fault_every"], p["seed"],
    )  # fmt: skip


def table(row: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per fault kind: how many, recovered, the median and longest recovery."""
    headers = ["fault", "injected", "recovered", "median recovery s", "longest s"]
    body = []
    for kind, times in row["by_kind"].items():
        done = [t for t in times if t is not None]
        body.append(
            [
                kind,
                str(len(times)),
                str(len(done)),
                "%.2f" % statistics.median(done) if done else "-",
                "%.2f" % max(done) if done else "-",
            ]
        )
    return headers, body


def verdict(row: dict[str, Any]) -> list[str]:
    checks = row["checks"]
    longest = row["longest"]
    lines = [
        "%s: %s trades delivered; duplicates %d, order violations %d, lost outside a Gap %d "
        "(%d missing inside %d reported gaps), unknown ids %d"
        % (
            "PASS" if row["passed"] else "FAIL: " + "; ".join(row["problems"]),
            format(row["delivered"], ","), checks["duplicates"], checks["order_violations"],
            checks["lost_outside_gaps"], checks["missing_in_gaps"], row["gaps"], checks["unknown"],
        ),  # fmt: skip
        "faults: %d injected, %d recovered; longest recovery %s"
        % (
            row["faults"],
            row["faults"] - row["unrecovered"],
            "%.2f s (%s on %s)" % (longest["recovery_s"], longest["kind"], longest["venue"] or "the sink")
            if longest
            else "-",
        ),
        "sink: %(written)s written, %(pending)d pending at the end, %(failures)d failed attempts; "
        % {**row["sink"], "written": format(row["sink"]["written"], ",")}
        + "SQLite holds every delivered trade once: %s" % ("yes" if not checks["sink_missing"] and not checks["sink_extra"] else "NO"),
        "threads: %d before start, at most %d while running, %d after stop (OS threads %d -> %d); stop() clean: %s"
        % (
            row["threads"]["before"], row["most_threads"] or 0, row["threads"]["after"],
            row["threads"]["os_before"], row["threads"]["os_after"], row["stop_clean"],
        ),  # fmt: skip
    ]
    if row["trend_mib"] is None:
        memory = "not enough samples after the warm-up"
    else:
        memory = "trend %+.1f MiB after the %g s warm-up (Theil-Sen): %s" % (
            row["trend_mib"],
            warmup(row["duration_s"]),
            ("FLAT" if row["flat"] else "GROWING") if row["memory_judged"] else "not judged (run under %g s)" % MEMORY_JUDGED_AFTER,
        )
    lines.append(
        "memory: RSS %.1f MiB at the start, %.1f at the end, peak %.1f; %s"
        % (row["rss_start_mib"] or 0, row["rss_end_mib"] or 0, row["rss_peak_mib"] or 0, memory)
    )
    lines.append("errors reported: " + (", ".join("%s %d" % kv for kv in sorted(row["errors_by_type"].items())) or "none"))
    lines.append("trades per feed: " + ", ".join("%s %s" % (k, format(v, ",")) for k, v in sorted(row["stats"].items())))
    return lines
