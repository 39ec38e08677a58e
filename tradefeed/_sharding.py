"""Sharding: one configuration, N processes, disjoint shares.

:func:`split_feeds` cuts long subscription lists over several feeds (within the venues'
documented limits, :data:`SUBSCRIPTION_LIMITS`), and :func:`shard` deals the feeds out to
shard *I* of *N* by a digest of each feed's identity (:func:`feed_key`), so that N
processes given the same configuration cover it all, each feed once (``tradefeed run
CONFIG --shard I/N``).  Pure: nothing here reads a file or starts anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

from ._config_types import Config, FeedConfig
from .adapters import REGISTRY
from .exceptions import ConfigError

__all__ = ["SUBSCRIPTION_LIMITS", "feed_key", "parse_shard", "shard", "split_feeds"]

#: most subscription items (``REGISTRY[venue].subscription_param``) one connection should
#: carry, where the venue documents a limit: SynFutures takes 100 pairs per SUBSCRIBE
#: (synfutures.md row 13; the adapter already sends one request per 100, a feed per 100
#: also spreads them over connections and shards).  Synthetix counts subscriptions per
#: IP, not per connection; Rails carries one market per connection (a feed per market
#: already) and at most its four stream names; Dopp has one filter set per connection
#: (nothing to split).
SUBSCRIPTION_LIMITS: dict[str, int] = {"synfutures": 100}


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1-based: ``1/3``, ``2/3``, ``3/3``) as ``(I, N)``.

    :raises ConfigError: not of that form, N below 1, or I outside 1..N.
    """
    match = re.fullmatch(r"\s*(-?\d+)\s*/\s*(-?\d+)\s*", text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError("a shard is I/N with whole numbers, 1-based (1/3 is the first of three), not %r" % (text,))
    index, count = int(match.group(1)), int(match.group(2))
    _check_shard(index, count)
    return index, count


def _check_shard(index: int, count: int) -> None:
    for value in (index, count):
        if isinstance(value, bool) or not isinstance(value, int):  # from Python callers
            raise ConfigError("shard index and count must be whole numbers, not %r" % (value,))
    if count < 1:
        raise ConfigError("the shard count must be at least 1, not %d" % count)
    if not 1 <= index <= count:
        hint = " (shards are numbered from 1)" if index == 0 else ""
        raise ConfigError("shard %d/%d: the index must be within 1..%d%s" % (index, count, count, hint))


def feed_key(feed: FeedConfig) -> str:
    """A digest of the feed's identity: venue, name and parameters (keys sorted;
    credentials and ``url`` left out, since hosts may use their own keys or proxies).

    SHA-256 of canonical JSON, never Python's ``hash()`` (salted per process): the same
    feed gets the same key on every host, run and Python version.
    """
    cls = REGISTRY.get(feed.venue)
    secret = set(cls.auth_params) if cls is not None else set()
    identity = {
        "venue": feed.venue,
        "name": feed.name,
        "params": {k: v for k, v in feed.params.items() if k not in secret},
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard(config: Config, index: int, count: int) -> Config:
    """The feeds of shard *index* of *count* (1-based), in their order in *config*.

    Feeds are ranked by :func:`feed_key` and dealt out in turn, so every feed is in
    exactly one shard, shard sizes differ by at most one, and the result depends only
    on the feed list: every process must be given the same configuration (then N
    processes, on one host or many, cover it all, each feed once).  Adding or removing
    a feed may move others to another shard: restart every shard with the new file.
    A shard may be empty when there are fewer feeds than shards.  Split long
    subscription lists first (:func:`split_feeds`) to spread a big feed's load.

    >>> [len(shard(config, i, 3).feeds) for i in (1, 2, 3)]  # doctest: +SKIP
    [2, 2, 1]

    :raises ConfigError: *count* below 1 or *index* outside 1..count.
    """
    _check_shard(index, count)
    ranked = sorted(range(len(config.feeds)), key=lambda i: (feed_key(config.feeds[i]), i))
    mine = sorted(i for rank, i in enumerate(ranked) if rank % count == index - 1)
    return dataclasses.replace(config, feeds=tuple(config.feeds[i] for i in mine))


def split_feeds(config: Config, max_items_per_feed: int | None = None) -> Config:
    """*config* with long subscription lists split over several feeds (connections).

    A feed whose venue has a subscription list (``pairs``, ``symbols``,
    ``subscriptions``) longer than the limit becomes ``ceil(len / limit)`` feeds
    with consecutive, equal-sized chunks of it (101 pairs at 100 make 50 + 51) and the
    feed's other parameters; a named feed's parts are named ``<name>.1``,
    ``<name>.2``...  Feeds without such a list (Dopp) are kept as they are.

    :param max_items_per_feed: the limit for every venue with a subscription list
        (never above the venue's own limit); None: only the venues' documented limits
        (:data:`SUBSCRIPTION_LIMITS`).
    :raises ConfigError: a limit below 1, a part the venue refuses, or a part's
        name already used by another feed.
    """
    if max_items_per_feed is not None and (
        isinstance(max_items_per_feed, bool) or not isinstance(max_items_per_feed, int) or max_items_per_feed < 1
    ):
        raise ConfigError("max_items_per_feed must be a whole number >= 1, not %r" % (max_items_per_feed,))
    feeds: list[FeedConfig] = []
    for feed in config.feeds:
        cls = REGISTRY[feed.venue]
        param = cls.subscription_param
        items = feed.params.get(param) if param is not None else None
        limits = [n for n in (SUBSCRIPTION_LIMITS.get(feed.venue), max_items_per_feed) if n is not None]
        if param is None or not limits or not isinstance(items, (list, tuple)) or len(items) <= min(limits):
            feeds.append(feed)
            continue
        parts = -(-len(items) // min(limits))
        bounds = [number * len(items) // parts for number in range(parts + 1)]  # sizes differ by 1 at most
        for number in range(parts):
            params = {**feed.params, param: list(items[bounds[number] : bounds[number + 1]])}
            cls.from_params(**{k: v for k, v in params.items() if k not in cls.auth_params})  # still valid?
            name = None if feed.name is None else "%s.%d" % (feed.name, number + 1)
            feeds.append(dataclasses.replace(feed, params=params, name=name))
    names = [f.name for f in feeds if f.name is not None]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError("split_feeds: feed name(s) %s would be used twice; rename the feeds" % ", ".join(clash))
    return dataclasses.replace(config, feeds=tuple(feeds))
