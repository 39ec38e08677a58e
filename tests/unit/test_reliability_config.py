"""YAML keys of issue 15: a sink's queue (outputs[].limit, outputs[].overflow)."""

from __future__ import annotations

import pytest

from tradefeed import ConfigError
from tradefeed import config as cfg


def test_a_sink_output_takes_a_limit_and_an_overflow_for_its_queue(tmp_path):
    """limit/overflow go to add_sink (the sink's queue), not to the sink's constructor."""
    config = cfg.from_dict(
        {
            "feeds": [{"venue": "dopp"}],
            "outputs": [
                {"type": "sqlite", "path": str(tmp_path / "t.db"), "limit": 1000, "overflow": "drop_newest"},
                {"type": "file", "path": str(tmp_path / "t.jsonl")},
            ],
        }
    )
    sqlite, file = config.outputs
    assert sqlite.queue_options() == {"limit": 1000, "overflow": "drop_newest"}
    assert file.queue_options() == {}
    manager = config.create_manager()
    try:
        writers = {w.sink.name: w for w in manager._dispatcher.sink_writers()}
        db = writers["sqlite:%s" % (tmp_path / "t.db")]
        assert (db.limit, db.overflow) == (1000, "drop_newest")
        assert writers[str(tmp_path / "t.jsonl")].limit is None
    finally:
        manager.stop()


@pytest.mark.parametrize(
    "output, message",
    [
        ({"limit": 0}, r"outputs\[0\].limit: must be a whole number >= 1"),
        ({"limit": "10"}, r"outputs\[0\].limit: must be a whole number >= 1"),
        ({"overflow": "drop_all"}, r"outputs\[0\].overflow: must be one of drop_oldest, drop_newest"),
    ],
)
def test_bad_sink_queue_keys_are_named(tmp_path, output, message):
    with pytest.raises(ConfigError, match=message):
        cfg.from_dict({"feeds": [{"venue": "dopp"}], "outputs": [{"type": "file", "path": "t.jsonl", **output}]})


def test_stdout_has_no_queue():
    with pytest.raises(ConfigError, match=r"outputs\[0\].limit: unknown key"):
        cfg.from_dict({"feeds": [{"venue": "dopp"}], "outputs": [{"type": "stdout", "limit": 5}]})


def test_join_timeout_is_a_manager_keyword_and_a_yaml_setting():
    """settings.join_timeout reaches FeedManager(join_timeout=...), and from there every feed's arbitration."""
    config = cfg.from_dict({"feeds": [{"venue": "dopp"}], "settings": {"join_timeout": 2.5}})
    assert config.settings["join_timeout"] == 2.5
    manager = config.create_manager()
    try:
        assert manager._settings.join_timeout == 2.5
        assert manager.feeds[0]._connection.state.join_timeout == 2.5
    finally:
        manager.stop()


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "10", True])
def test_a_bad_join_timeout_is_refused(value):
    from tradefeed import FeedManager

    with pytest.raises(ConfigError, match="join_timeout"):
        FeedManager(join_timeout=value)
    with pytest.raises(ConfigError, match="settings.join_timeout"):
        cfg.from_dict({"feeds": [{"venue": "dopp"}], "settings": {"join_timeout": value}})
