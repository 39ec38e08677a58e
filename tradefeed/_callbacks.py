"""FeedManager's registration API: the callbacks and sinks that receive what the
feeds deliver.

:class:`CallbackApi` is the base class of :class:`~tradefeed.FeedManager`: these are its
public ``on_*`` and sink methods, kept apart from the feeds and the threads
(``manager.py``) so each reads on its own.  Every one hands over to the manager's
dispatcher, which keeps them and runs them in registration order on the dispatcher
thread (or the ``pump()`` caller).  Safe from any thread.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, TypeVar, overload

from .adapters import get_adapter_class
from .dispatcher import Dispatcher
from .sinks import Sink, SinkStats

__all__ = ["CallbackApi"]

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=Sink)


class CallbackApi:
    """Callbacks and sinks of a manager (see :class:`~tradefeed.FeedManager`)."""

    _dispatcher: Dispatcher

    @overload
    def on_trade(self, cb: F, venue: str | None = None, symbol: str | None = None) -> F: ...

    @overload
    def on_trade(self, cb: None = None, venue: str | None = None, symbol: str | None = None) -> Callable[[F], F]: ...

    def on_trade(self, cb: Any = None, venue: str | None = None, symbol: str | None = None) -> Any:
        """Call ``cb(trade: Trade)`` for every trade, optionally only for one venue
        and/or symbol.  Runs on the dispatcher thread (or the ``pump()`` caller).

        Returns *cb*; works as ``@manager.on_trade`` and ``@manager.on_trade(venue=...)``.

        :raises ConfigError: unknown venue.
        """
        if venue is not None:
            get_adapter_class(venue)
        if cb is None:
            return lambda f: self.on_trade(f, venue, symbol)
        self._dispatcher.add_trade_callback(cb, venue, symbol)
        return cb

    def on_error(self, cb: F) -> F:
        """Call ``cb(error: TradefeedError)`` for every reported problem: unparsable
        frames (:class:`ParseError`), raising callbacks (:class:`CallbackError`) and the
        error that ends a feed.  Runs on the dispatcher thread.  Returns *cb*."""
        self._dispatcher.add_error_callback(cb)
        return cb

    def on_status(self, cb: F) -> F:
        """Call ``cb(event: StatusEvent)`` on every connection state change
        (connecting, connected, disconnected, reconnecting, stopped).  Runs on the
        dispatcher thread.  Returns *cb*."""
        self._dispatcher.add_status_callback(cb)
        return cb

    def add_sink(
        self,
        sink: S,
        *,
        limit: int | None = None,
        overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        high_water: int | None = None,
    ) -> S:
        """Write every trade to *sink* (a :class:`tradefeed.sinks.Sink`), batched, after
        the callbacks, from the sink's own queue on its own thread
        (``tradefeed-sink-<name>``): neither the callbacks nor the other sinks ever wait
        for it.  It is opened on that thread before its first batch and closed when the
        manager stops.  A failing sink keeps its trades, in order, and is retried; the
        failure reaches ``on_error`` as :class:`SinkError`.  Returns *sink*.

        :param limit: most trades kept for the sink (None: every one, the default); at
            the limit trades are dropped, counted in ``sink_stats()`` (``dropped``) and
            announced by a ``lagging`` status event.
        :param overflow: what goes at the limit: the oldest waiting trades
            (``drop_oldest``) or the incoming ones (``drop_newest``).
        :param high_water: pending trades past which a ``lagging`` status event (detail
            ``sink``) says the sink is behind, and ``caught_up`` follows under half of it
            (default: the manager's ``high_water``).
        :raises ConfigError: a bad *limit*, *overflow* or *high_water*.
        """
        self._dispatcher.add_sink(sink, limit, overflow, high_water)
        return sink

    def sink_stats(self) -> dict[str, SinkStats]:
        """Per sink: trades written, pending (not written yet; after :meth:`stop`: not
        written at all), failures, rejected, dropped and the oldest pending trade's age."""
        return {w.sink.name: w.stats() for w in self._dispatcher.sink_writers()}

    def on_gap(self, cb: F) -> F:
        """Call ``cb(gap: Gap)`` when trades of a symbol may be missing: the venue's
        sequence jumped, or a reconnect's back-fill did not reach back to the last trade
        seen.  Runs on the dispatcher thread.  Without any on_gap callback, gaps are
        logged as warnings.  Returns *cb*."""
        self._dispatcher.add_gap_callback(cb)
        return cb

    def remove_callback(self, cb: Callable[..., Any]) -> bool:
        """Unregister *cb* wherever it is registered; True if it was."""
        return self._dispatcher.remove_callback(cb)
