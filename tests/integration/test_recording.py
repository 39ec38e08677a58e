"""Record and replay end to end: a live session from the simulator, recorded, then
replayed through the adapters, served back by the simulator, and driven by the CLI
functions."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tradefeed import VENUES, Trade
from tradefeed import config as cfg
from tradefeed._record_cli import add_record_commands, cmd_record, cmd_replay
from tradefeed.recording import Recorder, RecordingError, read, replay
from tradefeed.simulator.replay import replay_venues

from .test_all_venues import TRADE_ID_KEY

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000


def record_live(make_sim, make_manager, collector, path: Path, venues=VENUES, emit: int = 20) -> list[Trade]:
    """Stream *venues* from a fresh simulator into a recorder until every emitted trade
    has arrived; return the trades the live callbacks received."""
    sim = make_sim(rate=0, history=10)
    with Recorder(path) as recorder:
        manager = make_manager(recorder=recorder)
        collector.attach(manager)
        for venue in venues:
            manager.add_feed(venue, **sim.feed_params(venue))
        with manager:
            assert collector.wait_for(lambda c: {t.venue for t in c.trades} == set(venues))  # every snapshot
            if "synthetix" in venues:
                assert sim.venue("synthetix").wait_for_subscriptions(3)
            wanted = {(v, r[TRADE_ID_KEY[v]]) for v in venues for r in sim.venue(v).emit(emit)}
            assert collector.wait_for(lambda c: wanted <= {(t.venue, t.trade_id) for t in c.trades})
    assert recorder.error is None and recorder.frames > 0
    assert not collector.errors
    return list(collector.trades)


def by_venue(trades: list[Trade]) -> dict[str, list[tuple[Trade, int]]]:
    out: dict[str, list[tuple[Trade, int]]] = {}
    for trade in trades:
        out.setdefault(trade.venue, []).append((trade, trade.received_ns))
    return out


def test_replaying_a_live_session_gives_what_the_live_callbacks_got(make_sim, make_manager, collector, tmp_path):
    """All four venues recorded live; two replays as fast as possible give identical
    trades, and per feed exactly the live ones, in order, received_ns included."""
    path = tmp_path / "session.jsonl"
    live = record_live(make_sim, make_manager, collector, path)
    first: list[Trade] = []
    errors: list[object] = []
    stats = replay(path, first.append, on_error=errors.append)
    second: list[Trade] = []
    replay(path, second.append)

    assert [(t, t.received_ns) for t in first] == [(t, t.received_ns) for t in second]
    assert by_venue(first) == by_venue(live)  # each feed's trades: same values, order and receive times
    assert sorted(map(repr, first)) == sorted(map(repr, live))
    assert errors == [] and stats.errors == 0 and stats.trades == len(live)
    assert sorted(stats.feeds) == sorted("%s-1" % v for v in VENUES)
    assert stats.frames == sum(e.kind == "frame" for e in read(path))


def test_a_corrupted_line_of_a_live_recording_is_named(make_sim, make_manager, collector, tmp_path):
    """Truncating one frame line of a real recording makes replay stop there with the
    file and line named; the frames before it were delivered."""
    path = tmp_path / "session.jsonl"
    record_live(make_sim, make_manager, collector, path, venues=["dopp"])
    text = path.read_text().splitlines()
    bad = len(text) - 1  # the last frame line, 1-based number len(text)
    text[bad] = text[bad][: len(text[bad]) // 2]
    path.write_text("\n".join(text) + "\n")
    got: list[Trade] = []
    with pytest.raises(RecordingError) as info:
        replay(path, got.append)
    assert info.value.line == len(text)
    assert str(info.value).startswith("%s:%d: not valid JSON" % (path, len(text)))
    assert got and all(t.received_ns for t in got)


def test_the_simulator_serves_a_recording_to_a_real_client(make_sim, make_manager, collector, tmp_path):
    """sim --replay: a Dopp client connected to the ReplayVenue of the recorded feed gets
    the recorded trades, in order."""
    path = tmp_path / "dopp.jsonl"
    live = record_live(make_sim, make_manager, collector, path, venues=["dopp"])
    venues = replay_venues(path, speed=None)
    assert list(venues) == ["dopp-1"] and venues["dopp-1"].recorded_venue == "dopp"

    sim = make_sim(venues=[], custom_venues=venues)
    manager = make_manager()
    replayed = type(collector)()
    replayed.attach(manager)
    manager.add_feed("dopp", **sim.feed_params("dopp-1"))  # the URL and the recorded parameters
    with manager:
        assert replayed.wait_trades(len(live))
    assert replayed.trades == live  # Trade equality ignores received_ns: ours are new
    assert not replayed.errors


def test_the_simulator_paces_a_replay_by_the_recorded_times(make_sim, make_manager, collector, tmp_path):
    """At speed 1, four frames recorded 100 ms apart arrive spread over most of 0.3 s."""
    path = tmp_path / "paced.jsonl"
    with Recorder(path) as recorder:
        for i in range(4):
            frame = json.dumps([{"last_trades": [{"trade_id": str(i), "instrument_name": "BTC-PERPETUAL", "price": 1,
                                                  "amount": 1, "direction": "buy", "timestamp": 1_767_225_600_000 + i}]}])
            recorder("d", "dopp", {}, 0, 1_767_225_600_000 * MS + i * 100 * MS, frame)  # fmt: skip
    sim = make_sim(venues=[], custom_venues=replay_venues(path, speed=1.0))
    manager = make_manager()
    collector.attach(manager)
    manager.add_feed("dopp", sim.url("d"))
    with manager:
        assert collector.wait_trades(4)
    assert [t.trade_id for t in collector.trades] == ["0", "1", "2", "3"]
    spread = collector.trades[-1].received_ns - collector.trades[0].received_ns
    assert spread >= 0.2e9  # 0.3 s recorded; a loaded machine only makes it longer


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tradefeed")
    add_record_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_record_and_replay_commands(make_sim, tmp_path, caplog):
    """`record CONFIG --out FILE --limit 6` writes six frames; `replay FILE --max
    --format jsonl` prints the trades replay() finds in it."""
    sim = make_sim(rate=100, history=10)
    config = tmp_path / "feeds.yaml"
    config.write_text("feeds:\n  - venue: dopp\n    name: btc\n    url: %s\n    currency: BTC\n" % sim.url("dopp"))
    recording = tmp_path / "out.jsonl"
    out = io.StringIO()
    assert cmd_record(parse(["record", str(config), "--out", str(recording), "--limit", "6"]), out) == 0
    assert out.getvalue() == "recorded 6 frames of 1 feed(s) to %s\n" % recording
    assert sum(e.kind == "frame" for e in read(recording)) == 6

    expected: list[Trade] = []
    replay(recording, expected.append)
    assert expected
    out = io.StringIO()
    assert cmd_replay(parse(["replay", str(recording), "--max", "--format", "jsonl"]), out) == 0
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(p["symbol"], p["trade_id"]) for p in printed] == [(t.symbol, t.trade_id) for t in expected]
    assert [p["received_ns"] for p in printed] == [t.received_ns for t in expected]


def test_record_command_with_an_empty_shard_records_nothing(tmp_path):
    """`--shard 2/2` of a one-feed config is empty: a header-only recording, exit 0."""
    config = tmp_path / "feeds.yaml"
    config.write_text("feeds:\n  - venue: dopp\n    name: btc\n    url: ws://127.0.0.1:9\n    currency: BTC\n")
    empty = next(i for i in (1, 2) if not cfg.shard(cfg.load(config), i, 2).feeds)
    out = io.StringIO()
    recording = tmp_path / "out.jsonl"
    assert cmd_record(parse(["record", str(config), "--out", str(recording), "--shard", "%d/2" % empty]), out) == 0
    assert out.getvalue() == "recorded 0 frames of 0 feed(s) to %s\n" % recording
    assert list(read(recording)) == []


def test_record_command_refuses_a_bad_shard(tmp_path, capsys):
    """`--shard 0/3` is a usage error naming the 1-based rule."""
    with pytest.raises(SystemExit) as info:
        parse(["record", "x.yaml", "--out", "y", "--shard", "0/3"])
    assert info.value.code == 2
    assert "shards are numbered from 1" in capsys.readouterr().err


SIM_SCRIPT = """
import argparse, sys
from tradefeed._record_cli import add_sim_replay_arguments, cmd_sim_replay
parser = argparse.ArgumentParser()
add_sim_replay_arguments(parser)
sys.exit(cmd_sim_replay(parser.parse_args(sys.argv[1:]), sys.stdout))
"""


def test_sim_replay_command_serves_until_sigterm(make_sim, make_manager, collector, tmp_path):
    """`sim --replay FILE --max` prints each feed's venue, URL and parameters, serves
    the recording to a client, and exits 0 on SIGTERM."""
    path = tmp_path / "dopp.jsonl"
    live = record_live(make_sim, make_manager, collector, path, venues=["dopp"], emit=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIM_SCRIPT, "--replay", str(path), "--max"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        feed, venue, url, params = proc.stdout.readline().split(None, 3)  # type: ignore[union-attr]
        assert (feed, venue, json.loads(params)) == ("dopp-1", "dopp", {})
        assert proc.stdout.readline().startswith("simulator replaying")  # type: ignore[union-attr]
        manager = make_manager()
        replayed = type(collector)()
        replayed.attach(manager)
        manager.add_feed(venue, url, **json.loads(params))
        with manager:
            assert replayed.wait_trades(len(live))
        assert replayed.trades == live
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
