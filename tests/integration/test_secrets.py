"""Credentials stay inside the objects that use them (issue 15, part 2): a Rails key,
secret and bearer token and a Synthetix wallet key appear in no repr, no attribute value
(one level deep) of the manager, its feeds and their connections, no stats, status
event, error or log line."""

from __future__ import annotations

import logging

import pytest

from tradefeed import Backoff, Status

pytestmark = pytest.mark.timeout(60)

FAST = Backoff(initial=0.05, max_delay=0.2, jitter=0.1)


def reachable(*roots):
    """The reprs of *roots* and of every value in their ``vars()`` (one level deep)."""
    texts = []
    for obj in roots:
        texts.append(repr(obj))
        for value in getattr(obj, "__dict__", {}).values():
            texts.append(repr(value))
            if isinstance(value, dict):  # a dict attribute's keys are its values too
                texts.extend(repr(k) for k in value)
    return texts


def test_no_credential_of_any_venue_reaches_a_repr_attribute_stat_event_or_log(make_sim, make_manager, collector, caplog):
    caplog.set_level(logging.DEBUG)
    sim = make_sim(venues=["rails", "synthetix"], rate=0, history=5)
    rails = sim.feed_params("rails")
    user = sim.feed_params("synthetix", stream="user")
    manager = make_manager(backoff=FAST)
    collector.attach(manager)
    manager.add_feed("rails", **{**rails, "subscriptions": ["publicTrades", "trades"]})
    manager.add_feed("synthetix", **user)
    with manager:
        assert collector.wait_status(Status.CONNECTED, 2)
        assert sim.venue("synthetix").trade.wait_for_subscribers(1)
        sim.venue("synthetix").fill(2)
        sim.venue("rails").emit(3)
        assert collector.wait_for(lambda c: {t.venue for t in c.trades} == {"rails", "synthetix"})
        sim.drop_connections()  # reconnects: tokens re-used, auth signed again
        assert collector.wait_status(Status.CONNECTED, 4)
        (provider,) = manager._providers.providers()
        token = provider._token.value  # the bearer token the client holds
        connections = [c for f in manager.feeds for c in f._connections]
        texts = reachable(manager, manager._providers, *manager.feeds, *connections)
        texts += [repr(manager.stats()), repr([f.params for f in manager.feeds])]
    client_logs = [  # the client's side: the simulator plays the venue, and venues see credentials
        caplog_format(r)
        for r in caplog.records
        if not r.name.startswith(("tradefeed.simulator", "websockets", "asyncio"))
    ]
    assert any(r.name.startswith("tradefeed.") for r in caplog.records)
    texts += [repr(collector.statuses), repr(collector.errors), repr(collector.trades), *client_logs]
    secrets = {"api_key": rails["api_key"], "api_secret": rails["api_secret"], "token": token,
               "private_key": user["private_key"][2:]}  # fmt: skip
    for name, secret in secrets.items():
        leaks = [_where(text, secret) for text in texts if secret.lower() in text.lower()]
        assert leaks == [], "%s leaked: %s" % (name, leaks)


def caplog_format(record):
    text = "%s %s %s" % (record.name, record.levelname, record.getMessage())
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


def _where(text, secret):
    at = text.lower().find(secret.lower())
    return text[max(0, at - 300) : at + 50]
