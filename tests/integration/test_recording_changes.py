"""Replay after run-time subscription changes (issue 15, part 3): a live session of every
venue, recorded while SynFutures pairs, Synthetix symbols and Rails streams are changed at
run time (among them a Synthetix unsubscribe followed at once by a subscribe), replays to
exactly the trades the live callbacks got, trade for trade."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradefeed import VENUES, Trade
from tradefeed.recording import Recorder, read, replay

from .test_all_venues import TRADE_ID_KEY

pytestmark = pytest.mark.timeout(120)


def per_feed(trades: list[Trade]) -> dict[str, list[tuple[Trade, int]]]:
    out: dict[str, list[tuple[Trade, int]]] = {}
    for trade in trades:
        out.setdefault(trade.venue, []).append((trade, trade.received_ns))
    return out


def test_a_replay_after_run_time_subscription_changes_gives_the_live_trades(make_sim, make_manager, collector, tmp_path: Path):
    """Changes between frames and back to back, before and after trades of the changed items:
    each feed's replayed trades equal the live ones (values, order, receive times)."""
    sim = make_sim(rate=0, history=10, max_connects=None)
    path = tmp_path / "session.jsonl"
    with Recorder(path) as recorder:
        manager = make_manager(recorder=recorder)
        collector.attach(manager)
        feeds = {venue: manager.add_feed(venue, **sim.feed_params(venue)) for venue in VENUES}
        pairs = sim.feed_params("synfutures")["pairs"]
        steady = {  # a record of each venue whose item is never changed: it shows a batch has arrived
            "dopp": lambda r: True,
            "synfutures": lambda r: "%s_%s" % (r["instrumentAddress"], r["expiry"]) == pairs[0],
            "synthetix": lambda r: r["symbol"] == "BTC-USDT",
            "rails": lambda r: True,
        }

        def settle() -> None:
            """Emit on every venue; wait until each venue's newest steady trade arrived."""
            wanted = set()
            for venue in VENUES:
                records = [r for r in sim.venue(venue).emit(30) if steady[venue](r)]
                if records:
                    wanted.add((venue, records[-1][TRADE_ID_KEY[venue]]))
            assert collector.wait_for(lambda c: wanted <= {(t.venue, t.trade_id) for t in c.trades}, timeout=30)

        with manager:
            assert collector.wait_for(lambda c: {t.venue for t in c.trades} == set(VENUES))
            assert sim.venue("synthetix").wait_for_subscriptions(3)
            settle()
            snx, sfx, rails = feeds["synthetix"], feeds["synfutures"], feeds["rails"]
            snx.unsubscribe("ETH-USDT")
            snx.subscribe("ETH-USDT")  # back to back: the parameters end as they began
            sfx.unsubscribe(pairs[1])
            rails.subscribe("trades")
            settle()
            snx.unsubscribe("SOL-USDT")
            settle()
            snx.subscribe("SOL-USDT")
            sfx.subscribe(pairs[1])
            rails.unsubscribe("trades")
            settle()
            eth = [t for t in collector.trades if t.symbol == "ETH-USDT"]
    assert recorder.error is None and not collector.errors
    live = list(collector.trades)
    changes = [(e.feed, e.action, e.items) for e in read(path) if e.kind == "subscription"]
    assert changes == [
        ("synthetix-1", "unsubscribe", ("ETH-USDT",)),
        ("synthetix-1", "subscribe", ("ETH-USDT",)),
        ("synfutures-1", "unsubscribe", (pairs[1],)),
        ("rails-1", "subscribe", ("trades",)),
        ("synthetix-1", "unsubscribe", ("SOL-USDT",)),
        ("synthetix-1", "subscribe", ("SOL-USDT",)),
        ("synfutures-1", "subscribe", (pairs[1],)),
        ("rails-1", "unsubscribe", ("trades",)),
    ]
    assert eth and eth[-1].received_ns > min(e.t_ns for e in read(path) if e.kind == "subscription")  # ETH came back
    replayed: list[Trade] = []
    errors: list[object] = []
    stats = replay(path, replayed.append, on_error=errors.append)
    assert errors == [] and stats.trades == len(live)
    assert per_feed(replayed) == per_feed(live)
