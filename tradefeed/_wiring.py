"""How :meth:`~tradefeed.FeedManager.add_feed` turns its arguments into a feed.

:func:`check_feed` checks them on the caller's thread, in a fixed order (the first
problem raises), and takes the credentials out of the venue parameters into a token
provider or a signer; :func:`make_feed` makes the :class:`~tradefeed.manager.Feed` and its
connections from what was checked, wired to the manager's dispatcher, scheduler and
end-of-thread callback, not started.  What must not go here: the feed's name and the
manager's registry of feeds, and starting, rotating or stopping connections
(:mod:`tradefeed.manager`, :mod:`tradefeed._rotation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .adapters import Adapter, get_adapter_class
from .auth import TokenProvider
from .backoff import Backoff
from .connection import Connection, ConnectionSettings
from ._credentials import TokenProviders, make_signer
from ._feed import Feed
from .dispatcher import Dispatcher
from .exceptions import ConfigError, TradefeedError
from .feedstate import FeedState
from .scheduler import Scheduler

__all__ = ["FeedPlan", "check_feed", "make_feed"]


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """A feed :func:`check_feed` accepted: what :func:`make_feed` makes its connections
    from.  The credentials are in the token provider and the signer only, as everywhere
    (:mod:`tradefeed._credentials`)."""

    venue: str
    url: str | None
    adapter_cls: type[Adapter]
    #: the venue parameters, credentials taken out
    params: dict[str, Any]
    settings: ConnectionSettings
    provider: TokenProvider | None = field(repr=False)
    signer: Any = field(repr=False)
    redundancy: int
    rotate_after: float | None


def check_feed(
    venue: str,
    url: str | None,
    backoff: Backoff | int | None,
    redundancy: int,
    rotate_after: float | None,
    params: dict[str, Any],
    settings: ConnectionSettings,
    providers: TokenProviders,
) -> FeedPlan:
    """Check ``add_feed``'s arguments (see there) and make what the feed needs of them.

    :param params: the venue parameters; the credentials are popped out of it.
    :param settings: the manager's; the feed's own *backoff* replaces theirs.
    :param providers: the manager's token providers (feeds of one account share one).
    :raises ConfigError: unknown venue, unknown parameter, invalid value or URL.
    """
    adapter_cls = get_adapter_class(venue)
    if isinstance(redundancy, bool) or not isinstance(redundancy, int) or not 1 <= redundancy <= 8:
        raise ConfigError("redundancy must be a whole number within 1..8, not %r" % (redundancy,))
    if rotate_after is not None and (isinstance(rotate_after, bool) or not isinstance(rotate_after, (int, float)) or rotate_after <= 0):
        raise ConfigError("rotate_after must be a positive number of seconds or None, not %r" % (rotate_after,))
    if rotate_after is not None and redundancy != 1:
        raise ConfigError("rotate_after works on single-connection feeds (redundancy=1)")
    credentials = {k: params.pop(k) for k in adapter_cls.auth_params if k in params}
    adapter_cls.from_params(**params)  # validate now, synchronously
    for problem in adapter_cls.auth_problems(credentials):  # a key of the wrong type, say
        raise problem
    keyed = any(credentials.get(k) for k in ("api_key", "api_secret"))
    needed = adapter_cls.needs_token and (keyed or adapter_cls.requires_credentials(params))
    provider = providers.get(adapter_cls, credentials) if needed else None
    signer = make_signer(adapter_cls, params, credentials.pop("private_key", None))
    del credentials
    if url is not None and (not isinstance(url, str) or not url.startswith(("ws://", "wss://"))):
        raise ConfigError("%s: url must start with ws:// or wss://, not %r" % (venue, url))
    if backoff is not None:
        settings = replace(settings, backoff=Backoff.from_value(backoff))
    return FeedPlan(venue, url, adapter_cls, params, settings, provider, signer, redundancy, rotate_after)


def make_feed(
    name: str,
    plan: FeedPlan,
    dispatcher: Dispatcher,
    scheduler: Scheduler,
    on_end: Callable[[Connection, TradefeedError | None], None],
) -> Feed:
    """The feed *name* and its connections, made from *plan*; nothing is started.  The
    feed keeps the maker of its connections (a rotation makes the next one with it).

    :param on_end: called on a connection's thread as it ends, with the error that
        ended the feed (or None).
    """
    venue, url, adapter_cls, settings = plan.venue, plan.url, plan.adapter_cls, plan.settings
    provider, signer, redundancy = plan.provider, plan.signer, plan.redundancy
    state = FeedState(settings.dedup_window, settings.join_timeout)

    def make(index: int, current_params: dict[str, Any]) -> Connection:
        connection = Connection(
            name=name,
            venue=venue,
            adapter_cls=adapter_cls,
            params=current_params,
            url=url,
            settings=settings,
            token_provider=provider,
            signer=signer,
            put=dispatcher.put,
            scheduler=scheduler,
            on_end=on_end,
            state=state,
            index=index,
        )
        connection.redundant = redundancy > 1
        connection.dropped = lambda feed_name: dispatcher.dropped().get(feed_name, 0)
        return connection

    connections = [make(index, plan.params) for index in range(1, redundancy + 1)]
    feed = Feed(name, venue, url, connections)
    feed._make_connection = make
    feed._rotate_after = plan.rotate_after
    return feed
