"""The recording format, Recorder and replay(), without sockets: recordings are
written by calling the Recorder as a connection does."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tradefeed import FeedManager, ParseError, Trade
from tradefeed.recording import FORMAT, Recorder, RecordingError, read, replay

pytestmark = pytest.mark.timeout(30)

MS = 1_000_000  # ns
T0 = 1_767_225_600_000 * MS


# -- frame factories ------------------------------------------------------------------------


def dopp_frame(*trade_ids: int, instrument: str = "BTC-PERPETUAL") -> str:
    """A Dopp push with one trade per id, oldest first, one millisecond apart."""
    trades = [
        {"trade_id": str(i), "instrument_name": instrument, "price": 90000, "amount": 0.5, "direction": "buy",
         "timestamp": 1_767_225_600_000 + i}
        for i in trade_ids
    ]  # fmt: skip
    return json.dumps([{"last_trades": trades}])


def snx_trade(trade_id: int, symbol: str = "BTC-USDT") -> dict[str, Any]:
    return {"tradeId": str(trade_id), "symbol": symbol, "side": "buy", "price": "90127.0", "quantity": "0.010",
            "timestamp": 1_767_225_600_000 + trade_id, "isMaker": False}  # fmt: skip


def snx_reply(request_id: str, *trade_ids: int, symbol: str = "BTC-USDT") -> str:
    """A getLastTrades reply (newest first, as on the wire)."""
    trades = [snx_trade(i, symbol) for i in sorted(trade_ids, reverse=True)]
    return json.dumps({"id": request_id, "status": 200, "result": {"response": {"trades": trades}, "status": "success"}})


def snx_live(trade_id: int, symbol: str = "BTC-USDT") -> str:
    return json.dumps({"channel": "trade", "data": snx_trade(trade_id, symbol), "timestamp": 1_767_225_600_000 + trade_id})


def record(path: Path, events: list[tuple[Any, ...]]) -> Path:
    """Write a recording: each event is ``(feed, venue, params, connection, t_ns, frame)``."""
    with Recorder(path) as recorder:
        for event in events:
            recorder(*event)
    assert recorder.error is None
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def ids(trades: list[Trade]) -> list[str]:
    return [t.trade_id for t in trades]


# -- writing and reading -------------------------------------------------------------------


def test_recorder_writes_a_header_then_feed_frame_and_tick_lines(tmp_path):
    """Line 1 is the versioned header; a feed line precedes the first event of each
    connection; str, UTF-8 bytes and binary frames are kept apart."""
    params = {"instrument_name": "BTC-PERPETUAL"}
    path = record(
        tmp_path / "r.jsonl",
        [
            ("d", "dopp", params, 0, T0, "text"),
            ("d", "dopp", params, 0, T0 + 1, b'{"caf\xc3\xa9": 1}'),
            ("d", "dopp", params, 0, T0 + 2, b"\xff\x00binary"),
            ("d", "dopp", params, 0, T0 + 3, None),
            ("d", "dopp", params, 1, T0 + 4, "again"),
        ],
    )
    header, *rest = lines(path)
    assert header["format"] == FORMAT and header["version"] == 2 and isinstance(header["created_ns"], int)
    assert rest == [
        {"kind": "feed", "t_ns": T0, "feed": "d", "venue": "dopp", "connection": 0, "params": params},
        {"kind": "frame", "t_ns": T0, "feed": "d", "venue": "dopp", "frame": "text"},
        {"kind": "frame", "t_ns": T0 + 1, "feed": "d", "venue": "dopp", "frame": '{"café": 1}', "encoding": "utf-8"},
        {"kind": "frame", "t_ns": T0 + 2, "feed": "d", "venue": "dopp", "frame": "/wBiaW5hcnk=", "encoding": "base64"},
        {"kind": "tick", "t_ns": T0 + 3, "feed": "d", "venue": "dopp"},
        {"kind": "feed", "t_ns": T0 + 4, "feed": "d", "venue": "dopp", "connection": 1, "params": params},
        {"kind": "frame", "t_ns": T0 + 4, "feed": "d", "venue": "dopp", "frame": "again"},
    ]
    frames = [e.frame for e in read(path) if e.kind == "frame"]
    assert frames == ["text", '{"café": 1}'.encode(), b"\xff\x00binary", "again"]  # types survive


def test_a_feed_line_marks_a_parameter_change_not_a_new_dict_of_equal_content(tmp_path):
    """The connection replaces its params dict on a run-time subscribe: a changed one is
    recorded, an equal copy is not."""
    first, copy, changed = {"symbols": ["BTC-USDT"]}, {"symbols": ["BTC-USDT"]}, {"symbols": ["BTC-USDT", "ETH-USDT"]}
    path = record(
        tmp_path / "r.jsonl",
        [("s", "synthetix", first, 0, T0, "a"), ("s", "synthetix", copy, 0, T0, "b"), ("s", "synthetix", changed, 0, T0, "c")],
    )
    kinds = [(e.kind, e.params) for e in read(path)]
    assert kinds == [("feed", first), ("frame", None), ("frame", None), ("feed", changed), ("frame", None)]


def test_recorder_stops_at_its_limit_and_sets_full(tmp_path):
    """limit=3: three frames are written, the event is set, later frames are dropped."""
    full = threading.Event()
    with Recorder(tmp_path / "r.jsonl", limit=3, full=full) as recorder:
        for i in range(5):
            recorder("d", "dopp", {}, 0, T0 + i, "f%d" % i)
    assert full.is_set() and recorder.frames == 3
    assert [e.frame for e in read(tmp_path / "r.jsonl") if e.kind == "frame"] == ["f0", "f1", "f2"]


def test_recorder_never_raises_into_the_connection(tmp_path):
    """A value JSON cannot hold stops the recording with .error set, and no exception."""
    with Recorder(tmp_path / "r.jsonl") as recorder:
        recorder("d", "dopp", {}, 0, T0, "kept")
        recorder("x", "dopp", {"bad": object()}, 0, T0, "lost")
        recorder("d", "dopp", {}, 0, T0, "dropped after the failure")
    assert isinstance(recorder.error, TypeError) and recorder.frames == 1
    recorder("d", "dopp", {}, 0, T0, "after close")  # dropped, no error


def test_recorder_is_safe_from_many_threads(tmp_path):
    """Four threads write 500 frames each: 2000 whole lines, each feed's in its order."""
    start = threading.Barrier(4)

    def write(recorder: Recorder, feed: str) -> None:
        start.wait(5)
        for i in range(500):
            recorder(feed, "dopp", {}, 0, T0 + i, "%s-%d" % (feed, i))

    with Recorder(tmp_path / "r.jsonl") as recorder:
        threads = [threading.Thread(target=write, args=(recorder, "f%d" % n)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    entries = [e for e in read(tmp_path / "r.jsonl") if e.kind == "frame"]
    assert len(entries) == 2000
    for n in range(4):
        assert [e.frame for e in entries if e.feed == "f%d" % n] == ["f%d-%d" % (n, i) for i in range(500)]


HEADER = json.dumps({"format": FORMAT, "version": 1})
FEED = json.dumps({"kind": "feed", "t_ns": T0, "feed": "d", "venue": "dopp", "connection": 0, "params": {}})
FRAME = json.dumps({"kind": "frame", "t_ns": T0, "feed": "d", "venue": "dopp", "frame": dopp_frame(1)})


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", 1, "empty file; not a tradefeed recording"),
        ('{"some": "json"}\n', 1, "not a tradefeed recording (no 'tradefeed-recording' header)"),
        (json.dumps({"format": FORMAT, "version": 3}) + "\n", 1,
         "written in format version 3 by a newer tradefeed; this one reads up to 2"),
        (HEADER + "\n" + FEED + "\n{not json\n", 3, "not valid JSON: Expecting property name enclosed in double quotes"),
        (HEADER + "\n" + FEED + "\n[1, 2]\n", 3, "a line must be a JSON object"),
        (HEADER + "\n" + FEED + '\n{"kind": "trade"}\n', 3, "unknown kind 'trade'; expected feed, frame, tick or subscription"),
        (HEADER + "\n" + FRAME + "\n", 2, "a frame of feed 'd' before its feed line"),
        (HEADER + "\n" + FEED + "\n" + FRAME.replace('"t_ns": %d' % T0, '"t_ns": "soon"') + "\n", 3,
         "t_ns must be a whole number of nanoseconds >= 0, not 'soon'"),
        (HEADER + "\n" + FEED + "\n" + FRAME.replace('"venue": "dopp"', '"venue": "rails"') + "\n", 3,
         "feed 'd' is venue 'dopp', not 'rails'"),
        (HEADER + "\n" + FEED + "\n" + FRAME[:-1] + ', "encoding": "base64"}\n', 3, "frame is not valid base64"),
        (HEADER + "\n" + FEED + "\n" + FRAME[:-1] + ', "encoding": "gzip"}\n', 3,
         "unknown encoding 'gzip'; expected utf-8 or base64"),
        (HEADER + "\n" + FEED.replace('"params": {}', '"params": []') + "\n", 2, "params must be an object, not []"),
    ],
)  # fmt: skip
def test_a_malformed_recording_names_the_file_and_line(tmp_path, text, line, message):
    """Each kind of bad line is a RecordingError reading ``path:line: problem``."""
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(RecordingError) as info:
        list(read(path))
    assert info.value.line == line
    assert str(info.value).startswith("%s:%d: %s" % (path, line, message))


def test_replay_delivers_what_precedes_a_bad_line_then_raises(tmp_path):
    """Frames before the bad line reach the callback; the error names line 4."""
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([HEADER, FEED, FRAME, "{oops", FRAME]) + "\n")
    got: list[Trade] = []
    with pytest.raises(RecordingError, match=r"r\.jsonl:4: not valid JSON"):
        replay(path, got.append)
    assert ids(got) == ["1"]


def test_replay_of_a_missing_file_is_a_recording_error(tmp_path):
    """An unreadable file is reported as such, not as a traceback."""
    with pytest.raises(RecordingError, match="cannot read"):
        replay(tmp_path / "missing.jsonl", print)


def test_replay_refuses_an_unknown_venue_and_bad_parameters(tmp_path):
    """The feed line's venue and parameters are checked by the registry and the adapter."""
    path = tmp_path / "r.jsonl"
    path.write_text(HEADER + "\n" + FEED.replace('"venue": "dopp"', '"venue": "nasdaq"') + "\n")
    with pytest.raises(RecordingError, match=r":2: unknown venue 'nasdaq'"):
        replay(path, print)
    path.write_text(HEADER + "\n" + FEED.replace('"params": {}', '"params": {"colour": "red"}') + "\n")
    with pytest.raises(RecordingError, match=r":2: feed 'd': dopp: unknown parameter\(s\) colour"):
        replay(path, print)


# -- replaying -----------------------------------------------------------------------------


def test_replay_deduplicates_and_keeps_the_recorded_receive_times(tmp_path):
    """Trades carry t_ns as received_ns; a resent trade is dropped as live; two replays
    are equal, received_ns included."""
    path = record(
        tmp_path / "r.jsonl",
        [("d", "dopp", {}, 0, T0, dopp_frame(1, 2)), ("d", "dopp", {}, 0, T0 + 5 * MS, dopp_frame(2, 3))],
    )
    first: list[Trade] = []
    stats = replay(path, first.append)
    second: list[Trade] = []
    replay(path, second.append)
    assert ids(first) == ["1", "2", "3"]
    assert [t.received_ns for t in first] == [T0, T0, T0 + 5 * MS]
    assert [(t, t.received_ns) for t in first] == [(t, t.received_ns) for t in second]
    assert (stats.feeds, stats.frames, stats.trades, stats.duplicates, stats.errors) == (("d",), 2, 3, 1, 0)


def test_a_bad_frame_reaches_on_error_with_its_feed_and_the_replay_goes_on(tmp_path):
    """An unparsable frame is a ParseError naming the feed, as live."""
    path = record(tmp_path / "r.jsonl", [("d", "dopp", {}, 0, T0, "{nope"), ("d", "dopp", {}, 0, T0, dopp_frame(7))])
    got: list[Trade] = []
    errors: list[Any] = []
    stats = replay(path, got.append, on_error=errors.append)
    assert ids(got) == ["7"] and stats.errors == 1
    assert isinstance(errors[0], ParseError) and errors[0].feed == "d" and errors[0].raw == "{nope"


def test_each_recorded_connection_gets_a_fresh_adapter_that_has_sent_its_requests(tmp_path):
    """Synthetix matches getLastTrades replies by request id: replay calls on_open() on a
    fresh adapter per connection, so "trades-2" is the back-fill on both connections."""
    params = {"symbols": ["BTC-USDT"]}
    path = record(
        tmp_path / "r.jsonl",
        [
            ("s", "synthetix", params, 0, T0, snx_reply("trades-2", 1, 2)),
            ("s", "synthetix", params, 0, T0, snx_live(3)),
            ("s", "synthetix", params, 1, T0, snx_reply("trades-2", 3, 4)),
        ],
    )
    got: list[Trade] = []
    replay(path, got.append)
    assert ids(got) == ["1", "2", "3", "4"]


def test_ticks_are_replayed(tmp_path):
    """In polling mode a tick asks for trades: its reply is matched only if the tick
    is replayed where it happened."""
    params = {"symbols": ["BTC-USDT"], "live": False}
    path = record(
        tmp_path / "r.jsonl",
        [
            ("s", "synthetix", params, 0, T0, snx_reply("trades-1", 1)),
            ("s", "synthetix", params, 0, T0, None),  # tick: ping-2, then trades-3
            ("s", "synthetix", params, 0, T0, snx_reply("trades-3", 1, 2)),
        ],
    )
    got: list[Trade] = []
    replay(path, got.append)
    assert ids(got) == ["1", "2"]


def test_a_run_time_unsubscribe_is_replayed_on_the_same_connection(tmp_path):
    """A feed line with fewer symbols on the same connection unsubscribes the adapter:
    the removed symbol's trades in flight are dropped, as live."""
    both, btc = {"symbols": ["BTC-USDT", "ETH-USDT"]}, {"symbols": ["BTC-USDT"]}
    path = record(
        tmp_path / "r.jsonl",
        [
            ("s", "synthetix", both, 0, T0, snx_reply("trades-2", 1)),
            ("s", "synthetix", both, 0, T0, snx_reply("trades-4", 2, symbol="ETH-USDT")),
            ("s", "synthetix", both, 0, T0, snx_live(3, "ETH-USDT")),
            ("s", "synthetix", btc, 0, T0, snx_live(4, "ETH-USDT")),
            ("s", "synthetix", btc, 0, T0, snx_live(5)),
        ],
    )
    got: list[Trade] = []
    replay(path, got.append)
    assert ids(got) == ["1", "2", "3", "5"]


def test_feeds_selects_what_is_replayed(tmp_path):
    """feeds=["b"] replays only feed b."""
    path = record(tmp_path / "r.jsonl", [("a", "dopp", {}, 0, T0, dopp_frame(1)), ("b", "dopp", {}, 0, T0, dopp_frame(2))])
    got: list[Trade] = []
    assert replay(path, got.append, feeds=["b"]).feeds == ("b",)
    assert ids(got) == ["2"]


class FakeClock:
    """clock() and wait() for replay(): waiting advances the time, instantly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def paced_recording(path: Path) -> Path:
    """Six frames of one trade each, 100 ms apart: a 0.5 s span."""
    return record(path, [("d", "dopp", {}, 0, T0 + i * 100 * MS, dopp_frame(i)) for i in range(6)])


def test_speed_paces_by_the_recorded_receive_times(tmp_path):
    """speed=2: each trade is delivered (the recorded offset / 2) after the first, and
    the replay waits 0.25 s in all."""
    clock = FakeClock()
    delivered: list[tuple[str, float]] = []
    replay(paced_recording(tmp_path / "r.jsonl"), lambda t: delivered.append((t.trade_id, clock.now - 100.0)),
           speed=2.0, clock=clock.clock, wait=clock.wait)  # fmt: skip
    assert [tid for tid, _ in delivered] == ["0", "1", "2", "3", "4", "5"]
    assert [round(at, 6) for _, at in delivered] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    assert round(sum(clock.waits), 6) == 0.25


def test_without_speed_the_replay_never_waits(tmp_path):
    """speed=None is as fast as possible: wait() is never called."""
    clock = FakeClock()
    got: list[Trade] = []
    replay(paced_recording(tmp_path / "r.jsonl"), got.append, clock=clock.clock, wait=clock.wait)
    assert len(got) == 6 and clock.waits == []


def test_a_real_paced_replay_takes_about_the_scaled_span(tmp_path):
    """On the real clock, speed=4 over a 0.5 s span waits at least most of 0.125 s."""
    import time

    got: list[Trade] = []
    started = time.monotonic()
    replay(paced_recording(tmp_path / "r.jsonl"), got.append, speed=4.0)
    assert time.monotonic() - started >= 0.1 and len(got) == 6


def test_stop_ends_a_paced_replay_early(tmp_path):
    """Setting stop from the callback ends the replay at its next step."""
    stop = threading.Event()
    got: list[Trade] = []

    def on_trade(trade: Trade) -> None:
        got.append(trade)
        if len(got) == 2:
            stop.set()

    stats = replay(paced_recording(tmp_path / "r.jsonl"), on_trade, speed=1.0, stop=stop)
    assert stats.stopped and ids(got) == ["0", "1"]


def test_replay_into_a_manual_manager_reaches_its_filtered_callbacks_and_sinks(tmp_path):
    """A FeedManager target gets the batches on its queue: pump() runs its callbacks
    (venue/symbol filters apply) and sinks."""
    from tradefeed.sinks import Sink

    class ListSink(Sink):
        name = "list"

        def __init__(self) -> None:
            self.trades: list[Trade] = []

        def write(self, trades: Any) -> None:
            self.trades.extend(trades)

    path = record(
        tmp_path / "r.jsonl",
        [("d", "dopp", {}, 0, T0, dopp_frame(1, 2)), ("d", "dopp", {}, 0, T0, dopp_frame(3, instrument="ETH-PERPETUAL"))],
    )
    manager = FeedManager(dispatch="manual")
    btc: list[Trade] = []
    manager.on_trade(btc.append, symbol="BTC-PERPETUAL")
    sink = manager.add_sink(ListSink())
    with manager:
        replay(path, manager)
        assert manager.pump() == 3
    assert ids(btc) == ["1", "2"] and ids(sink.trades) == ["1", "2", "3"]


def test_replay_checks_its_arguments(tmp_path):
    """A bad speed, an on_error beside a manager, or a target that is neither are refused."""
    path = paced_recording(tmp_path / "r.jsonl")
    for speed in (0, -1.0, float("inf"), True):
        with pytest.raises(ValueError, match="speed must be a number > 0"):
            replay(path, print, speed=speed)
    manager = FeedManager(dispatch="manual")
    with pytest.raises(ValueError, match="its own on_error"):
        replay(path, manager, on_error=print)
    manager.stop()
    with pytest.raises(ValueError, match="must be a FeedManager or a trade callback"):
        replay(path, 42)  # type: ignore[arg-type]
