"""Sharding end to end: three sharded managers together deliver what one unsharded does."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from tradefeed import FeedManager, Trade
from tradefeed import config as cfg

pytestmark = pytest.mark.timeout(90)

WAIT = 30.0  # seconds, the bound on every wait below
TRADE_ID_KEY = {"dopp": "trade_id", "synfutures": "id", "synthetix": "tradeId", "rails": "matchId"}
SYMBOL_KEY = {"dopp": "instrument_name", "synfutures": "symbol", "synthetix": "symbol", "rails": "market"}
DOPP_INSTRUMENTS = ("BTC-PERPETUAL", "ETH-PERPETUAL", "BTC-27MAR26-95000-C")


class FirstFrames:
    """A recorder hook that only notes which feeds have received a frame (a snapshot or
    an acknowledgement: the venue has registered the subscription)."""

    def __init__(self) -> None:
        self.feeds: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, feed: str, venue: str, params: Any, connection: int, time_ns: int, frame: Any) -> None:
        if frame is not None:
            with self._cond:
                self.feeds.add(feed)
                self._cond.notify_all()

    def wait(self, manager: FeedManager) -> bool:
        names = {f.name for f in manager.feeds}
        with self._cond:
            return self._cond.wait_for(lambda: names <= self.feeds, WAIT)


class Deliveries:
    """``(venue, symbol, trade_id)`` of the trades each run delivered, under one
    condition, so a wait can cover several runs."""

    def __init__(self, runs: int) -> None:
        self.keys: list[list[tuple[str, str, str]]] = [[] for _ in range(runs)]
        self._cond = threading.Condition()

    def callback(self, run: int) -> Callable[[Trade], None]:
        def trade(trade: Trade) -> None:
            with self._cond:
                self.keys[run].append((trade.venue, trade.symbol, trade.trade_id))
                self._cond.notify_all()

        return trade

    def wait_for(self, wanted: set[tuple[str, str, str]], runs: range) -> bool:
        """Wait until the runs together have delivered every key of *wanted*."""
        with self._cond:
            return self._cond.wait_for(lambda: wanted <= set().union(*(self.keys[r] for r in runs)), WAIT)


def the_config(sim: Any) -> cfg.Config:
    """Six feeds of four venues: three Dopp instruments, one Synthetix feed and one
    SynFutures feed with three markets each, one Rails feed per market."""
    rails = sim.feed_params("rails")
    credentials = {k: rails[k] for k in ("api_key", "api_secret", "auth_url")}
    synfutures = sim.feed_params("synfutures")
    feeds: list[dict[str, Any]] = [{"venue": "dopp", "url": sim.url("dopp"), "instrument_name": i} for i in DOPP_INSTRUMENTS]
    feeds.append({"venue": "synthetix", "name": "snx", **sim.feed_params("synthetix")})
    feeds.append({"venue": "synfutures", "name": "sf", **synfutures})
    for market in ("BTC-USDT", "ETH-USDT"):  # one market per Rails connection
        feeds.append({"venue": "rails", "url": rails["url"], "market": market, **credentials})
    return cfg.from_dict({"feeds": feeds})


def test_three_shards_deliver_exactly_what_one_unsharded_run_delivers(make_sim):
    """Split to one market per feed (11 feeds) and sharded 1/3, 2/3, 3/3, the managers
    together receive each emitted trade exactly once, and the same set as one manager
    running the unsplit, unsharded configuration; no trade reaches two shards."""
    sim = make_sim(rate=0, history=0, max_connects=None)
    config = the_config(sim)
    split = cfg.split_feeds(config, max_items_per_feed=1)
    assert [f.venue for f in split.feeds].count("synthetix") == 3 and len(split.feeds) == 11
    shards = [cfg.shard(split, i, 3) for i in (1, 2, 3)]
    assert sorted(len(s.feeds) for s in shards) == [3, 4, 4]

    deliveries = Deliveries(4)  # run 0: unsharded; runs 1-3: the shards
    runs: list[tuple[FeedManager, FirstFrames]] = []
    try:
        for index, part in enumerate([config] + shards):
            frames = FirstFrames()
            manager = part.create_manager(recorder=frames, backoff=None)
            manager.on_trade(deliveries.callback(index))
            runs.append((manager, frames))
        for manager, _ in runs:
            manager.start()
        for manager, frames in runs:
            assert frames.wait(manager), "a feed got no first frame"
        assert sim.venue("synthetix").wait_for_subscriptions(6)  # 3 symbols unsharded + 3 in shards

        wanted: set[tuple[str, str, str]] = set()
        for venue in ("dopp", "synthetix", "synfutures", "rails"):
            for record in sim.venue(venue).emit(30):
                if venue != "dopp" or record["instrument_name"] in DOPP_INSTRUMENTS:
                    wanted.add((venue, record[SYMBOL_KEY[venue]], record[TRADE_ID_KEY[venue]]))
        assert {v for v, _, _ in wanted} == {"dopp", "synthetix", "synfutures", "rails"}

        assert deliveries.wait_for(wanted, range(0, 1)), "the unsharded run missed trades"
        assert deliveries.wait_for(wanted, range(1, 4)), "the shards together missed trades"
    finally:
        for manager, _ in runs:
            assert manager.stop(timeout=10)

    unsharded, sharded = deliveries.keys[0], deliveries.keys[1:]
    assert set(unsharded) == wanted and len(unsharded) == len(wanted)
    shard_sets = [set(keys) for keys in sharded]
    assert set().union(*shard_sets) == set(unsharded)
    assert sum(len(keys) for keys in sharded) == len(wanted), "a trade reached two shards (or one twice)"
    for i in range(3):
        for j in range(i + 1, 3):
            assert not shard_sets[i] & shard_sets[j]
