"""Run-time subscription changes in a recording (format version 2): recorded where the live
adapter took them, replayed there (issue 15, part 3).  Written by calling the Recorder as a
connection does."""

from __future__ import annotations

import json

import pytest

from tradefeed import Trade
from tradefeed.models import SubscriptionChange
from tradefeed.recording import Recorder, RecordingError, read, replay

from .test_recording import T0, ids, lines, snx_live, snx_reply

pytestmark = pytest.mark.timeout(30)

BOTH = {"symbols": ["BTC-USDT", "ETH-USDT"]}
BTC = {"symbols": ["BTC-USDT"]}
BACK = {"symbols": ["BTC-USDT", "ETH-USDT"]}  # ETH again, a new dict: as the connection makes it


def change(subscribe: bool, items: list[str], before: dict, opened: bool = True) -> SubscriptionChange:
    return SubscriptionChange(subscribe, tuple(items), opened, before)


def test_an_unsubscribe_then_subscribe_without_a_frame_between_is_replayed_with_its_request_ids(tmp_path):
    """Live: on_open asks subscription-1, trades-2 (BTC), subscription-3, trades-4 (ETH); then
    unsubscribe ETH (subscription-5) and subscribe it again (subscription-6, trades-7) with no
    frame between.  The parameters end as they began, so only the recorded changes tell a
    replay to make those calls: ETH's back-fill is the reply to trades-7."""
    path = tmp_path / "r.jsonl"
    with Recorder(path) as recorder:
        recorder("s", "synthetix", BOTH, 0, T0, snx_reply("trades-2", 1))
        recorder("s", "synthetix", BOTH, 0, T0 + 1, snx_reply("trades-4", 2, symbol="ETH-USDT"))
        recorder("s", "synthetix", BTC, 0, T0 + 2, change(False, ["ETH-USDT"], BOTH))
        recorder("s", "synthetix", BACK, 0, T0 + 3, change(True, ["ETH-USDT"], BTC))
        recorder("s", "synthetix", BACK, 0, T0 + 4, snx_reply("trades-7", 3, 4, symbol="ETH-USDT"))
        recorder("s", "synthetix", BACK, 0, T0 + 5, snx_live(5, "ETH-USDT"))
    kinds = [(line["kind"], line.get("action")) for line in lines(path)[1:]]
    assert kinds == [
        ("feed", None), ("frame", None), ("frame", None),
        ("subscription", "unsubscribe"), ("subscription", "subscribe"),
        ("frame", None), ("frame", None),
    ]  # fmt: skip
    unsubscribe = lines(path)[4]
    assert unsubscribe["items"] == ["ETH-USDT"] and unsubscribe["opened"] is True and unsubscribe["params"] == BTC
    got: list[Trade] = []
    replay(path, got.append)
    assert ids(got) == ["1", "2", "3", "4", "5"]


def test_a_change_before_the_connection_opened_is_part_of_its_on_open(tmp_path):
    """A subscribe between connect and open: the live adapter took it first and its on_open
    then asked for both symbols (subscription-3.., trades-4 for BTC, trades-6 for ETH), so the
    replay makes the change before on_open.  The connection's feed line holds the parameters
    its adapter was made from."""
    path = tmp_path / "r.jsonl"
    with Recorder(path) as recorder:
        recorder("s", "synthetix", BOTH, 0, T0, change(True, ["ETH-USDT"], BTC, opened=False))
        recorder("s", "synthetix", BOTH, 0, T0 + 1, snx_reply("trades-4", 1))
        recorder("s", "synthetix", BOTH, 0, T0 + 2, snx_reply("trades-6", 2, symbol="ETH-USDT"))
    feed = lines(path)[1]
    assert feed["kind"] == "feed" and feed["params"] == BTC
    got: list[Trade] = []
    replay(path, got.append)
    assert ids(got) == ["1", "2"]


def test_a_later_connection_starts_from_the_changed_parameters(tmp_path):
    """After an unsubscribe the next connection's feed line has the new parameters, and its
    adapter asks only for what is left (trades-2 is BTC's back-fill again)."""
    path = tmp_path / "r.jsonl"
    with Recorder(path) as recorder:
        recorder("s", "synthetix", BOTH, 0, T0, snx_reply("trades-2", 1))
        recorder("s", "synthetix", BTC, 0, T0 + 1, change(False, ["ETH-USDT"], BOTH))
        recorder("s", "synthetix", BTC, 0, T0 + 2, snx_live(2, "ETH-USDT"))  # in flight: dropped, as live
        recorder("s", "synthetix", BTC, 1, T0 + 3, snx_reply("trades-2", 1, 3))
    assert [e.params for e in read(path) if e.kind == "feed"] == [BOTH, BTC]
    got: list[Trade] = []
    replay(path, got.append)
    assert ids(got) == ["1", "3"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"action": "resubscribe"}, "action must be subscribe or unsubscribe"),
        ({"items": []}, "items must be a non-empty list of strings"),
        ({"items": "ETH-USDT"}, "items must be a non-empty list of strings"),
        ({"opened": "yes"}, "opened must be true or false"),
    ],
)
def test_a_bad_subscription_line_is_named(tmp_path, fields, message):
    good = {"kind": "subscription", "t_ns": T0, "feed": "s", "venue": "synthetix", "action": "unsubscribe",
            "items": ["ETH-USDT"], "opened": True, "params": BTC}  # fmt: skip
    feed = {"kind": "feed", "t_ns": T0, "feed": "s", "venue": "synthetix", "connection": 0, "params": BOTH}
    path = tmp_path / "bad.jsonl"
    header = {"format": "tradefeed-recording", "version": 2}
    path.write_text("\n".join(json.dumps(x) for x in (header, feed, {**good, **fields})) + "\n")
    with pytest.raises(RecordingError, match=":3: " + message):
        list(read(path))


def test_a_change_the_adapter_refuses_is_a_recording_error(tmp_path):
    """A change the adapter refuses (a symbol that cannot be one) is named with its line."""
    path = tmp_path / "r.jsonl"
    with Recorder(path) as recorder:
        recorder("s", "synthetix", BTC, 0, T0, snx_reply("trades-2", 1))
        recorder("s", "synthetix", BTC, 0, T0 + 1, change(True, ["not a symbol!"], BTC))
    with pytest.raises(RecordingError, match=":4: feed 's'"):
        replay(path, [].append)
