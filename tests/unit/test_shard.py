"""Sharding and splitting a configuration: pure functions over Config values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradefeed import ConfigError
from tradefeed import config as cfg

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def pair(n: int) -> str:
    """A valid SynFutures pair key, distinct per *n*."""
    return "0x%040x_4294967295" % n


def many_feeds(count: int = 40) -> cfg.Config:
    """A config with *count* feeds of three venues, some named."""
    feeds = []
    for i in range(count):
        if i % 3 == 0:
            feeds.append({"venue": "dopp", "instrument_name": "INST-%d" % i})
        elif i % 3 == 1:
            feeds.append({"venue": "synthetix", "name": "snx-%d" % i, "symbols": ["S%d-USDT" % i]})
        else:
            feeds.append({"venue": "synfutures", "pairs": [pair(i)]})
    return cfg.from_dict({"feeds": feeds})


SHARD_SCRIPT = """
import json, sys
from tradefeed import config as cfg
sys.path.insert(0, %(tests)r)
from unit.test_shard import many_feeds
config = many_feeds()
print(json.dumps([[repr(f) for f in cfg.shard(config, i, 3).feeds] for i in (1, 2, 3)]))
"""


# -- parse_shard ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("1/3", (1, 3)), ("3/3", (3, 3)), (" 2 / 5 ", (2, 5)), ("1/1", (1, 1))])
def test_parse_shard_reads_one_based_i_of_n(text, expected):
    """"I/N" is read as 1-based shard I of N; spaces around the numbers are allowed."""
    assert cfg.parse_shard(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("0/3", "shard 0/3: the index must be within 1..3 (shards are numbered from 1)"),
        ("4/3", "shard 4/3: the index must be within 1..3"),
        ("-1/3", "shard -1/3: the index must be within 1..3"),
        ("1/0", "the shard count must be at least 1, not 0"),
        ("1", "a shard is I/N with whole numbers, 1-based (1/3 is the first of three), not '1'"),
        ("a/b", "a shard is I/N with whole numbers, 1-based (1/3 is the first of three), not 'a/b'"),
        ("1.5/3", "a shard is I/N with whole numbers, 1-based (1/3 is the first of three), not '1.5/3'"),
        ("", "a shard is I/N with whole numbers, 1-based (1/3 is the first of three), not ''"),
    ],
)
def test_parse_shard_explains_each_mistake(text, message):
    """A malformed or out-of-range "I/N" is a ConfigError that says what is expected."""
    with pytest.raises(ConfigError) as info:
        cfg.parse_shard(text)
    assert str(info.value) == message


@pytest.mark.parametrize("index, count", [(0, 2), (3, 2), (1, 0), (True, 2), (1, 2.0)])
def test_shard_refuses_bad_index_or_count(index, count):
    """shard() checks its numbers as parse_shard() does (bools and floats are not counts)."""
    with pytest.raises(ConfigError):
        cfg.shard(many_feeds(3), index, count)


# -- shard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 40, 41])
def test_shards_are_disjoint_complete_balanced_and_keep_order(count):
    """Every feed lands in exactly one shard, shard sizes differ by at most one, and a
    shard keeps the configuration's order."""
    config = many_feeds()
    shards = [cfg.shard(config, i, count) for i in range(1, count + 1)]
    positions = [[config.feeds.index(f) for f in s.feeds] for s in shards]
    everything = sorted(p for ps in positions for p in ps)
    assert everything == list(range(len(config.feeds)))  # complete and disjoint
    sizes = [len(s.feeds) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert all(ps == sorted(ps) for ps in positions)
    assert all(s.settings == config.settings and s.outputs == config.outputs for s in shards)


def test_a_shard_is_the_same_in_every_process():
    """The partition uses SHA-256, not hash(): processes with different PYTHONHASHSEEDs
    compute the same shards as this one."""
    config = many_feeds()
    here = [[repr(f) for f in cfg.shard(config, i, 3).feeds] for i in (1, 2, 3)]
    script = SHARD_SCRIPT % {"tests": str(ROOT / "tests")}
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30, check=True
        )
        assert json.loads(result.stdout) == here


def test_shard_assignment_is_pinned():
    """Hosts may run different tradefeed versions: the digest recipe (SHA-256 of the
    canonical JSON identity) and the dealing are pinned, so a change is deliberate."""
    key = cfg.feed_key(cfg.FeedConfig("dopp", {"instrument_name": "BTC-PERPETUAL"}))
    assert key == "89b67bfc862b58120179a7bdaf2c91914f8e6cfc491f21e14854fac607d3b306"
    config = cfg.from_dict({"feeds": [{"venue": "dopp", "name": "f%d" % i, "currency": "BTC"} for i in range(6)]})
    assert [[f.name for f in cfg.shard(config, i, 3).feeds] for i in (1, 2, 3)] == [["f3", "f5"], ["f0", "f2"], ["f1", "f4"]]


def test_feed_key_ignores_credentials_and_url_but_not_name_or_params():
    """Hosts may use their own API keys and proxies: those do not move a feed; its
    venue, name and parameters do."""
    base = cfg.FeedConfig("rails", {"market": "BTC-USDT", "api_key": "k1", "api_secret": "s1"})
    same = cfg.FeedConfig("rails", {"api_secret": "s2", "market": "BTC-USDT", "api_key": "k2"}, url="ws://proxy:1")
    assert cfg.feed_key(base) == cfg.feed_key(same)
    assert cfg.feed_key(base) != cfg.feed_key(cfg.FeedConfig("rails", {"market": "ETH-USDT", "api_key": "k1"}))
    assert cfg.feed_key(base) != cfg.feed_key(cfg.FeedConfig("rails", base.params, name="r"))
    assert len(cfg.feed_key(base)) == 64


def test_more_shards_than_feeds_leaves_some_empty():
    """Two feeds over three shards: two shards of one and an empty one."""
    config = many_feeds(2)
    assert sorted(len(cfg.shard(config, i, 3).feeds) for i in (1, 2, 3)) == [0, 1, 1]


# -- split_feeds ---------------------------------------------------------------------------


def test_split_feeds_cuts_synfutures_at_its_documented_100_pairs():
    """250 pairs exceed SynFutures' 100 per request: three feeds of 83, 83 and 84 pairs,
    named <name>.1..3, with the other parameters kept; the pairs are all there, in order."""
    pairs = [pair(i) for i in range(250)]
    config = cfg.from_dict({"feeds": [{"venue": "synfutures", "name": "sf", "pairs": pairs, "trades_limit": 20}]})
    split = cfg.split_feeds(config)
    assert [len(f.params["pairs"]) for f in split.feeds] == [83, 83, 84]
    assert [f.name for f in split.feeds] == ["sf.1", "sf.2", "sf.3"]
    assert all(f.params["trades_limit"] == 20 for f in split.feeds)
    assert sum((f.params["pairs"] for f in split.feeds), []) == pairs


def test_split_feeds_leaves_short_lists_and_dopp_alone():
    """Without a limit of the caller's, only venues with a documented limit are split,
    and only above it; Dopp has no subscription list."""
    config = many_feeds(6)
    assert cfg.split_feeds(config) == config


def test_split_feeds_applies_the_callers_limit_to_every_list():
    """max_items_per_feed=1: one Synthetix symbol and one Rails stream per connection;
    credentials go with every part; unnamed feeds stay unnamed."""
    config = cfg.from_dict(
        {
            "feeds": [
                {"venue": "synthetix", "symbols": ["BTC-USDT", "ETH-USDT", "SOL-USDT"], "limit": 10},
                {"venue": "rails", "name": "r", "market": "BTC-USDT", "subscriptions": ["publicTrades", "trades"],
                 "api_key": "k", "api_secret": "s"},
                {"venue": "dopp", "currency": "BTC"},
            ]
        }
    )  # fmt: skip
    split = cfg.split_feeds(config, max_items_per_feed=1)
    assert [(f.venue, f.name) for f in split.feeds] == [
        ("synthetix", None), ("synthetix", None), ("synthetix", None), ("rails", "r.1"), ("rails", "r.2"), ("dopp", None)
    ]  # fmt: skip
    assert [f.params["symbols"] for f in split.feeds[:3]] == [["BTC-USDT"], ["ETH-USDT"], ["SOL-USDT"]]
    assert all(f.params["limit"] == 10 for f in split.feeds[:3])
    assert [f.params["subscriptions"] for f in split.feeds[3:5]] == [["publicTrades"], ["trades"]]
    assert all(f.params["api_key"] == "k" for f in split.feeds[3:5])


def test_split_feeds_never_exceeds_the_venue_limit():
    """A caller's limit above the venue's is capped by the venue's."""
    config = cfg.from_dict({"feeds": [{"venue": "synfutures", "pairs": [pair(i) for i in range(150)]}]})
    assert [len(f.params["pairs"]) for f in cfg.split_feeds(config, 1000).feeds] == [75, 75]


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_split_feeds_refuses_a_bad_limit(limit):
    """The limit is a whole number >= 1."""
    with pytest.raises(ConfigError, match="max_items_per_feed must be a whole number >= 1"):
        cfg.split_feeds(many_feeds(3), limit)


def test_split_feeds_refuses_names_that_would_clash():
    """A part named like another feed is an error, not two feeds of one name."""
    config = cfg.from_dict(
        {"feeds": [{"venue": "synthetix", "name": "s", "symbols": ["A-USDT", "B-USDT"]}, {"venue": "dopp", "name": "s.2"}]}
    )
    with pytest.raises(ConfigError, match=r"feed name\(s\) s.2 would be used twice"):
        cfg.split_feeds(config, 1)


def test_split_then_shard_covers_every_item_once():
    """The parts of split feeds are spread over the shards like any feed."""
    config = cfg.from_dict({"feeds": [{"venue": "synthetix", "symbols": ["S%d-USDT" % i for i in range(12)]}]})
    split = cfg.split_feeds(config, 1)
    symbols = [s for i in (1, 2, 3) for f in cfg.shard(split, i, 3).feeds for s in f.params["symbols"]]
    assert sorted(symbols) == sorted("S%d-USDT" % i for i in range(12))
    assert [len(cfg.shard(split, i, 3).feeds) for i in (1, 2, 3)] == [4, 4, 4]
