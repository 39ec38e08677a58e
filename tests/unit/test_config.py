"""YAML configuration: what loads, and the exact report for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradefeed import Backoff, ConfigError, FeedManager
from tradefeed import config as cfg

FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"
ENV = {"RAILS_API_KEY": "key-123", "RAILS_API_SECRET": "secret-456"}


def problems(name: str, environ=None) -> list[str]:
    """The report lines for a fixture, without the file name prefix."""
    path = FIXTURES / name
    with pytest.raises(ConfigError) as info:
        cfg.load(path, environ=ENV if environ is None else environ)
    lines = str(info.value).splitlines()
    assert lines[0] == "%d problem(s) in %s:" % (len(lines) - 1, path)
    assert len(info.value.problems) == len(lines) - 1
    return [line.replace(str(path), "F") for line in lines[1:]]


def test_a_file_with_every_venue_and_section_loads():
    """The reference file loads: feeds, settings, outputs, logging; ${VAR:-default} resolves."""
    config = cfg.load(FIXTURES / "all_venues.yaml", environ=ENV)
    assert [f.venue for f in config.feeds] == ["dopp", "synfutures", "synthetix", "rails"]
    rails = config.feeds[3]
    assert rails.params["api_key"] == "key-123" and rails.params["api_secret"] == "secret-456"
    assert rails.params["auth_url"] == "https://api-auth.sandbox.rails.xyz/api/v1/token"
    assert config.feeds[2].name == "snx" and config.feeds[2].backoff == Backoff(initial=0.5, max_delay=10)
    assert config.settings == {
        "dispatch": "thread",
        "backoff": Backoff(max_retries=5),
        "ping_interval": 15.0,
        "ping_timeout": 5.0,
    }
    assert [(o.type, o.format, o.path) for o in config.outputs] == [("stdout", "table", None), ("file", "csv", "trades.csv")]
    assert config.log_level == "INFO"
    assert "secret-456" not in repr(config) and "key-123" not in repr(config)


def test_create_manager_adds_every_feed():
    """from_config() builds the manager with each feed, names and parameters as written."""
    config = cfg.load(FIXTURES / "all_venues.yaml", environ=ENV)
    manager = config.create_manager()
    assert [f.name for f in manager.feeds] == ["dopp-1", "synfutures-1", "snx", "rails-1"]
    assert manager.feeds[2].params["symbols"] == ["btc-usdt", "ETH-USDT"]
    assert "api_key" not in manager.feeds[3].params  # credentials live in the token provider
    manager.stop()


def test_from_config_accepts_a_dict():
    """A parsed document works as well as a file."""
    manager = FeedManager.from_config({"feeds": [{"venue": "dopp", "currency": "ETH"}]}, dispatch="manual")
    assert manager.dispatch == "manual" and manager.feeds[0].params == {"currency": "ETH"}
    manager.stop()


def test_unknown_key_with_did_you_mean():
    assert problems("unknown_key.yaml") == [
        "F:2: feeds[0].symbols: synthetix: symbols must be a non-empty list such as ['BTC-USDT']",
        "F:3: feeds[0].symbol: unknown key 'symbol'; did you mean 'symbols'?",
    ]


def test_unknown_venue():
    assert problems("unknown_venue.yaml") == ["F:2: feeds[0].venue: unknown venue 'synthetics'; did you mean 'synthetix'?"]


def test_wrong_types():
    assert problems("wrong_type.yaml") == [
        "F:3: feeds[0].symbols: synthetix: symbols must be a non-empty list such as ['BTC-USDT']",
        "F:5: settings.ping_interval: must be a number, not a string",
    ]


def test_values_out_of_range_name_the_element():
    assert problems("out_of_range.yaml") == [
        "F:5: feeds[0].symbols[1]: synthetix: symbol 'THIS-SYMBOL-IS-FAR-TOO-LONG' is longer than 20 characters",
        "F:8: feeds[1].limit: synthetix: limit must be an integer within 1..100, not 0",
        "F:11: feeds[2].trades_limit: synfutures: trades_limit must be an integer within 1..100, not 500",
    ]


def test_missing_environment_variables_are_named_never_sent_empty():
    assert problems("missing_env.yaml", environ={}) == [
        "F:4: feeds[0].api_key: environment variable TRADEFEED_TEST_UNSET_KEY is not set",
        "F:5: feeds[0].api_secret: environment variable TRADEFEED_TEST_UNSET_SECRET is not set",
    ]


def test_every_problem_is_reported_at_once_in_line_order():
    assert problems("many_problems.yaml") == [
        "F:4: feeds[0].currency: dopp: give instrument_name or currency, not both (they are two endpoints; open two feeds for both)",
        "F:6: feeds[1].pairs[0]: synfutures: invalid pair 'BTC/USDC'; expected '0x' + 40 hex digits + '_' + expiry, "
        "e.g. '0x73ada1ea346cc3908f41cf67a040f0acd7808be0_4294967295'",
        "F:7: feeds[2]: missing key 'venue' (one of dopp, rails, synfutures, synthetix)",
        "F:7: feeds[2].vneue: unknown key 'vneue'; did you mean 'venue'?",
        "F:9: outputs[0].format: format must be one of jsonl, csv, not 'xml'",
        "F:9: outputs[0].path: a file output needs a path",
        "F:11: logging.level: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'loud'",
        "F:12: extra: unknown key 'extra'; expected one of feeds, settings, outputs, logging",
    ]


def test_no_feeds():
    assert problems("no_feeds.yaml") == ["F: feeds: feeds must be a non-empty list"]


def test_invalid_yaml_names_the_line():
    path = FIXTURES / "bad_yaml.yaml"
    with pytest.raises(ConfigError, match=r"bad_yaml.yaml:4: not valid YAML: expected ',' or ']'"):
        cfg.load(path)


def test_unreadable_file():
    with pytest.raises(ConfigError, match="cannot read .*nope.yaml"):
        cfg.load(FIXTURES / "nope.yaml")


def test_only_safe_yaml_is_loaded(tmp_path):
    """Python object tags are refused (yaml.safe_load semantics), not executed."""
    path = tmp_path / "evil.yaml"
    path.write_text("feeds: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        cfg.load(path)


def test_numbers_stay_numbers_and_env_defaults_apply():
    """${VAR:-default} works inside longer strings; numeric values keep their type."""
    config = cfg.from_dict(
        {"feeds": [{"venue": "synthetix", "symbols": ["${SYM:-BTC}-USDT"], "limit": 7}]}, environ={}
    )
    assert config.feeds[0].params == {"symbols": ["BTC-USDT"], "limit": 7}
    assert type(config.feeds[0].params["limit"]) is int


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"connect_timeout": float("nan")}, "settings.connect_timeout: must be a finite number"),
        ({"ping_interval": float("inf")}, "settings.ping_interval: must be a finite number"),
        ({"backoff": {"initial": float("nan")}}, "settings.backoff.initial: must be a finite number"),
        ({"dedup_window": 10**30}, "settings.dedup_window: must be a whole number within 1..10000000"),
    ],
)
def test_values_that_would_fail_at_run_time_are_refused(settings, message):
    """NaN, infinity and absurd sizes pass no check (they would break timers and memory later)."""
    with pytest.raises(ConfigError, match=message):
        cfg.from_dict({"feeds": [{"venue": "dopp"}], "settings": settings})


def test_output_repr_hides_a_redis_password():
    config = cfg.from_dict(
        {"feeds": [{"venue": "dopp"}], "outputs": [{"type": "redis", "url": "redis://:hunter2@cache:6379/0"}]}
    )
    assert "hunter2" not in repr(config)


def test_rails_public_trades_need_no_credentials_and_own_fills_do(tmp_path):
    """rails.md row 3 (resolved 2026-12-06): a key-less publicTrades feed is valid; asking
    for the account's own fills without api_key/api_secret names both keys."""
    path = tmp_path / "rails.yaml"
    path.write_text("feeds:\n  - {venue: rails, market: BTC-USDT, subscriptions: [publicTrades]}\n")
    (feed,) = cfg.load(path, environ={}).feeds
    assert feed.params == {"market": "BTC-USDT", "subscriptions": ["publicTrades"]}
    path.write_text("feeds:\n  - {venue: rails, market: BTC-USDT, subscriptions: [publicTrades, trades]}\n")
    with pytest.raises(ConfigError) as info:
        cfg.load(path, environ={})
    assert "feeds[0].api_key: rails needs api_key" in str(info.value)
    assert "feeds[0].api_secret: rails needs api_secret" in str(info.value)


def test_metrics_stale_after_and_log_format_load():
    """settings.metrics becomes serve_metrics' arguments (not a FeedManager setting);
    settings.stale_after a FeedManager setting; logging.format the log format."""
    config = cfg.from_dict(
        {
            "feeds": [{"venue": "dopp"}],
            "settings": {
                "stale_after": 120,
                "metrics": {"port": 0, "host": "127.0.0.1", "reconnect_grace": 30, "sink_pending_limit": 500},
            },
            "logging": {"format": "json"},
        }
    )
    assert config.settings == {"stale_after": 120.0}
    assert config.metrics == {"port": 0, "host": "127.0.0.1", "reconnect_grace": 30.0, "sink_pending_limit": 500}
    assert config.log_format == "json" and config.log_level == "WARNING"
    plain = cfg.from_dict({"feeds": [{"venue": "dopp"}]})
    assert plain.metrics is None and plain.log_format is None


def test_create_manager_serves_the_configured_metrics():
    """A config with settings.metrics gives a manager already serving them; stop() closes it."""
    manager = cfg.from_dict({"feeds": [{"venue": "dopp"}], "settings": {"metrics": {"port": 0}}}).create_manager()
    try:
        server = manager._metrics
        assert server is not None and server.port > 0 and server.url.startswith("http://127.0.0.1:")
    finally:
        assert manager.stop()
    assert server.closed


@pytest.mark.parametrize(
    "document, message",
    [
        ({"settings": {"metrics": {"host": "0.0.0.0"}}}, "settings.metrics.port: needs a port"),
        ({"settings": {"metrics": {"port": 70000}}}, "settings.metrics.port: needs a port"),
        ({"settings": {"metrics": {"port": 1, "prot": 2}}}, "settings.metrics.prot: unknown key 'prot'; did you mean 'port'"),
        ({"settings": {"metrics": {"port": 1, "reconnect_grace": -1}}}, "settings.metrics.reconnect_grace: must be >= 0"),
        ({"settings": {"metrics": {"port": 1, "sink_pending_limit": 1.5}}}, "settings.metrics.sink_pending_limit: must be a whole"),
        ({"settings": {"metrics": 9870}}, "settings.metrics: metrics must be a mapping"),
        ({"settings": {"stale_after": 0}}, "settings.stale_after: must be > 0"),
        ({"logging": {"format": "xml"}}, "logging.format: must be one of text, json, not 'xml'"),
    ],
)
def test_metrics_and_logging_mistakes_are_reported(document, message):
    """Each mistake in the new keys is reported with its path, as for every other key."""
    with pytest.raises(ConfigError, match=message):
        cfg.from_dict({"feeds": [{"venue": "dopp"}], **document})
