"""Every venue parameter is checked where it enters: a missing, wrong-typed or
out-of-range value is a ConfigError naming the parameter, from ``add_feed`` and from a
YAML file alike, and a file reports every wrong parameter of a feed, not the first."""

from __future__ import annotations

import math

import pytest

from tradefeed import ConfigError, FeedManager
from tradefeed import config as cfg
from tradefeed.adapters import REGISTRY

PAIR = "0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295"
WALLET_KEY = "0x" + "11" * 32

#: a valid feed of each kind, the base every case changes one parameter of
GOOD = {
    "dopp": ("dopp", {}),
    "synfutures": ("synfutures", {"pairs": [PAIR]}),
    "synthetix": ("synthetix", {"symbols": ["BTC-USDT"]}),
    "synthetix-user": ("synthetix", {"stream": "user", "subaccount_id": "1", "private_key": WALLET_KEY}),
    "rails": ("rails", {"market": "BTC-USDT"}),
    "rails-keyed": ("rails", {"market": "BTC-USDT", "api_key": "k", "api_secret": "s"}),
}

MISSING = object()

#: (feed kind, parameter, value or MISSING, the parameter the error names)
CASES = [
    ("dopp", "instrument_name", 5, "instrument_name"),
    ("dopp", "instrument_name", "", "instrument_name"),
    ("dopp", "currency", ["BTC"], "currency"),
    ("dopp", "wallet_address", " 0xabc", "wallet_address"),
    ("dopp", "nonsense", 1, "nonsense"),
    ("synfutures", "pairs", MISSING, "pairs"),
    ("synfutures", "pairs", PAIR, "pairs"),
    ("synfutures", "pairs", [], "pairs"),
    ("synfutures", "pairs", ["BTC/USDC"], "pairs[0]"),
    ("synfutures", "chain_id", "143", "chain_id"),
    ("synfutures", "chain_id", 0, "chain_id"),
    ("synfutures", "chain_id", 2**64, "chain_id"),
    ("synfutures", "trades_limit", 101, "trades_limit"),
    ("synfutures", "trades_limit", True, "trades_limit"),
    ("synfutures", "user_agent", 5, "user_agent"),
    ("synfutures", "user_agent", " ", "user_agent"),
    ("synfutures", "origin", "api.monday.trade", "origin"),
    ("synthetix", "symbols", MISSING, "symbols"),
    ("synthetix", "symbols", "BTC-USDT", "symbols"),
    ("synthetix", "symbols", ["BTC USDT"], "symbols[0]"),
    ("synthetix", "symbols", ["X" * 21], "symbols[0]"),
    ("synthetix", "limit", 0, "limit"),
    ("synthetix", "limit", 101, "limit"),
    ("synthetix", "limit", 5.0, "limit"),
    ("synthetix", "live", "yes", "live"),
    ("synthetix", "poll_interval", 0, "poll_interval"),
    ("synthetix", "poll_interval", math.nan, "poll_interval"),
    ("synthetix", "poll_interval", 10**9, "poll_interval"),
    ("synthetix", "user_agent", "", "user_agent"),
    ("synthetix", "stream", "private", "stream"),
    ("synthetix", "subaccount_id", "1", "subaccount_id"),
    ("synthetix", "private_key", WALLET_KEY, "private_key"),
    ("synthetix-user", "subaccount_id", MISSING, "subaccount_id"),
    ("synthetix-user", "subaccount_id", "-1", "subaccount_id"),
    ("synthetix-user", "subaccount_id", 1.5, "subaccount_id"),
    ("synthetix-user", "limit", 1001, "limit"),
    ("synthetix-user", "live", True, "live"),
    ("synthetix-user", "private_key", MISSING, "private_key"),
    ("synthetix-user", "private_key", "0x1234", "private_key"),
    ("rails", "market", MISSING, "market"),
    ("rails", "market", 5, "market"),
    ("rails", "market", "", "market"),
    ("rails", "subscriptions", [], "subscriptions"),
    ("rails", "subscriptions", ["orders"], "subscriptions[0]"),
    ("rails", "subscriptions", ["trades"], "api_key"),  # own fills without credentials
    ("rails", "snapshot_markets", ["BTC-USDT"], "snapshot_markets"),  # only with market ALL
    ("rails", "snapshot_markets", "BTC-USDT", "snapshot_markets"),
    ("rails", "auth_url", "ftp://example.com/token", "auth_url"),
    ("rails-keyed", "api_key", "", "api_key"),
    ("rails-keyed", "api_key", 12345, "api_key"),
    ("rails-keyed", "api_secret", ["s"], "api_secret"),
    ("rails-keyed", "auth_url", 5, "auth_url"),
]


def _params(kind: str, name: str, value: object) -> tuple[str, dict]:
    venue, base = GOOD[kind]
    params = dict(base)
    if value is MISSING:
        del params[name]
    else:
        params[name] = value
    return venue, params


def test_the_base_feeds_are_valid():
    """Each case's starting point is accepted, so each case tests one parameter."""
    manager = FeedManager()
    for venue, params in GOOD.values():
        manager.add_feed(venue, **params)
    manager.stop()


@pytest.mark.parametrize("kind, name, value, param", CASES, ids=lambda v: repr(v)[:24] if v is not MISSING else "missing")
def test_add_feed_refuses_a_wrong_parameter_with_a_config_error(kind, name, value, param):
    """add_feed raises ConfigError (never TypeError or a later failure) naming the parameter."""
    venue, params = _params(kind, name, value)
    manager = FeedManager()
    with pytest.raises(ConfigError) as info:
        manager.add_feed(venue, **params)
    manager.stop()
    message = str(info.value)
    assert _stem(param or name) in message and "\n" not in message
    assert info.value.param == param
    if name in ("api_key", "api_secret", "private_key") and value not in (MISSING, ""):
        assert str(value) not in message  # a credential's value is never shown


def _stem(param: str) -> str:
    """``pairs[0]`` -> ``pair``: what a message about that parameter says."""
    return param.split("[")[0].rstrip("s")


@pytest.mark.parametrize("kind, name, value, param", CASES, ids=lambda v: repr(v)[:24] if v is not MISSING else "missing")
def test_a_config_file_reports_the_same_parameter(kind, name, value, param):
    """The same mistake in a YAML document is a problem at that parameter's path."""
    venue, params = _params(kind, name, value)
    with pytest.raises(ConfigError) as info:
        cfg.from_dict({"feeds": [{"venue": venue, **params}]})
    paths = [path for path, _, _ in info.value.problems]
    assert paths[0].startswith("feeds[0].%s" % (param or name).split("[")[0]), paths


def test_a_missing_parameter_says_which_and_gives_an_example():
    """The Rails market has no default: its absence is named, with an example, not a TypeError."""
    with pytest.raises(ConfigError, match=r"rails: missing parameter market \(e\.g\. market='ALL'\)") as info:
        FeedManager().add_feed("rails", api_key="k", api_secret="s")
    assert info.value.param == "market"


def test_every_wrong_parameter_of_one_feed_is_reported():
    """A feed with four wrong parameters gives four problems, not the first alone."""
    document = {
        "feeds": [
            {"venue": "synfutures", "pairs": ["nope"], "chain_id": -1, "trades_limit": 1000, "user_agent": 5},
            {"venue": "synthetix", "limit": 0, "live": "maybe", "poll_interval": -1},
        ]
    }
    with pytest.raises(ConfigError) as info:
        cfg.from_dict(document)
    paths = [path for path, _, _ in info.value.problems]
    assert paths == [
        "feeds[0].pairs[0]",
        "feeds[0].chain_id",
        "feeds[0].trades_limit",
        "feeds[0].user_agent",
        "feeds[1].symbols",
        "feeds[1].limit",
        "feeds[1].live",
        "feeds[1].poll_interval",
    ]


def test_a_wrong_stream_ends_the_search_without_guessing_the_rest():
    """After a wrong ``stream`` the other Synthetix parameters mean nothing yet: one problem."""
    problems = REGISTRY["synthetix"].param_problems({"stream": "privat", "subaccount_id": "1"})
    assert [p.param for p in problems] == ["stream"]


def test_an_unset_variable_is_one_problem_not_two(tmp_path):
    """``market: ${MARKET}`` unset is reported once (not again as an empty market), and the
    feed's other parameters are still checked."""
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - venue: rails\n    market: ${MARKET}\n    subscriptions: [bogus]\n")
    with pytest.raises(ConfigError) as info:
        cfg.load(path, environ={})
    assert [(p, line) for p, line, _ in info.value.problems] == [("feeds[0].market", 3), ("feeds[0].subscriptions[0]", 4)]
    assert "environment variable MARKET is not set" in str(info.value)


def test_a_key_written_twice_is_a_problem(tmp_path):
    """YAML keeps the later of two equal keys silently; the file check names both lines."""
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - venue: dopp\n    currency: BTC\n    currency: ETH\n")
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    assert info.value.problems == [
        ("feeds[0].currency", 4, "key 'currency' is given twice (also on line 3); keep one of them")
    ]
