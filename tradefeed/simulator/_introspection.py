"""The simulator's introspection API: where each venue is served (its WebSocket and HTTP
URLs, the admin endpoint), how a client logs in there (credentials, ready-made
``add_feed`` parameters), and how many clients it has.

:class:`IntrospectionApi` is a base class of :class:`~tradefeed.simulator.Simulator`:
these are its public read-only methods, kept apart from serving (``server.py``) and from
fault injection (``_fault_api.py``) so each reads on its own.  Every method is safe from
any thread.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ._base import SimulatorError, Venue
from ._fault_api import Slot
from ._http import HttpVenue

__all__ = ["IntrospectionApi"]


class IntrospectionApi:
    """Addresses, credentials and connection counts (see :class:`~tradefeed.simulator.Simulator`)."""

    host: str
    _slots: dict[str, Slot]
    _cond: threading.Condition
    _admin_port: int | None
    _slot: Callable[[str], Slot]  # FaultApi's

    def venue(self, name: str) -> Venue:
        """Return the venue object registered as ``name``."""
        return self._slot(name).venue

    def port(self, venue: str) -> int:
        """Return the TCP port of ``venue``'s server.

        :raises SimulatorError: if the OS has not chosen it yet (never started).
        """
        port = self._slot(venue).port
        if port == 0:
            raise SimulatorError(f"venue {venue!r} has no port yet; call start() first")
        return port

    def url(self, venue: str) -> str:
        """Return ``ws://host:port`` for ``venue``; its production paths go under it."""
        return f"ws://{self.host}:{self.port(venue)}"

    def http_url(self, venue: str) -> str:
        """Return ``http://host:port`` of ``venue``'s HTTP side-server.

        :raises SimulatorError: if the venue has no HTTP side or was never started.
        """
        self._http_venue(venue)
        port = self._slot(venue).http_port
        if port == 0:
            raise SimulatorError(f"venue {venue!r} has no HTTP port yet; call start() first")
        return f"http://{self.host}:{port}"

    def auth_url(self, venue: str) -> str:
        """Return the full URL of ``venue``'s token endpoint, e.g. ``http://127.0.0.1:<port>/api/v1/token``."""
        return self.http_url(venue) + self._http_venue(venue).auth_path

    def credentials(self, venue: str, *, read_only: bool = False) -> tuple[str, str]:
        """Return a valid ``(api_key, api_secret)`` of ``venue``; a read-only pair if asked.
        For ``"synthetix"``: ``(private_key, subaccount_id)`` of the simulated wallet, for
        the user feed (a public test key, never a real one).

        :raises SimulatorError: if the venue has neither.
        """
        served = self._slot(venue).venue
        if not isinstance(served, HttpVenue) and hasattr(served, "wallet_credentials"):
            private_key, subaccount_id = served.wallet_credentials()  # Synthetix
            return str(private_key), str(subaccount_id)
        return self._http_venue(venue).credentials(read_only=read_only)

    def feed_params(self, venue: str, stream: str = "public") -> dict[str, Any]:
        """Keyword arguments for the client's ``FeedManager.add_feed(venue, **...)`` that
        stream this simulated venue: its URL, a subscription that covers its markets, and
        for venues with a token endpoint the endpoint and a valid key pair.

        ``stream="user"``: the Synthetix subaccount's own-fills feed instead (with the
        simulated wallet's ``private_key`` and ``subaccount_id``).

        This is plain data, so the simulator still imports nothing of the client.
        """
        served = self._slot(venue).venue
        if stream == "user":
            user = getattr(served, "user_feed_params", None)
            if user is None:
                raise SimulatorError(f"venue {venue!r} has no simulated user feed")
            return {"url": self.url(venue), **user()}
        params: dict[str, Any] = {"url": self.url(venue), **served.demo_params()}
        if isinstance(self._slot(venue).venue, HttpVenue):
            params["auth_url"] = self.auth_url(venue)
            params["api_key"], params["api_secret"] = self.credentials(venue)
        return params

    def _http_venue(self, name: str) -> HttpVenue:
        venue = self._slot(name).venue
        if not isinstance(venue, HttpVenue):
            raise SimulatorError(f"venue {name!r} serves no HTTP")
        return venue

    def connection_count(self, venue: str) -> int:
        """Return how many clients are connected (handshake completed) to ``venue``."""
        with self._cond:
            return len(self._slot(venue).connections)

    def handshakes(self, venue: str) -> int:
        """Return how many handshakes ``venue`` has seen, refused ones included."""
        with self._cond:
            return self._slot(venue).handshakes

    def wait_for_connections(self, n: int, venue: str = "dopp", timeout: float = 5.0) -> bool:
        """Wait until at least ``n`` clients are connected to ``venue``.

        :param timeout: seconds to wait.
        :return: whether the count was reached in time.
        """
        slot = self._slot(venue)
        with self._cond:
            return self._cond.wait_for(lambda: len(slot.connections) >= n, timeout)

    def admin_url(self) -> str:
        """Return ``http://host:port`` of the admin endpoint (``POST /faults/<name>``).

        :raises SimulatorError: without ``admin_port``, or before the first :meth:`start`.
        """
        if self._admin_port is None:
            raise SimulatorError("the simulator has no admin endpoint; pass admin_port=0 (or a port)")
        if self._admin_port == 0:
            raise SimulatorError("the admin endpoint has no port yet; call start() first")
        return f"http://{self.host}:{self._admin_port}"

    @property
    def venue_names(self) -> list[str]:
        """The names of the venues served, in serving order."""
        return list(self._slots)
