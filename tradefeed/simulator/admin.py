"""The simulator's fault-injection admin endpoint: faults over HTTP, for the CLI.

This module owns the routes of the admin endpoint (:class:`AdminApi`) and the
``sim`` command's option for it (:func:`add_admin_arguments`). It maps each
route onto a public method of :class:`~tradefeed.simulator.Simulator` or of a
venue and adds no fault of its own: the semantics are those methods'. The
endpoint is served by the generic :class:`~tradefeed.simulator._http.HttpServer`
on the simulator's own loop (``Simulator(admin_port=0)``, ``sim.admin_url()``),
so it needs no thread. It imports neither :mod:`websockets` nor the rest of the
simulator, so the CLI can build its parser without the ``sim`` extra.

Routes (``venue`` is optional, meaning every venue, except where marked; all
answers are JSON; a bad parameter is a 400 ``{"error": ...}``):

- ``GET /faults``: every venue's ``Simulator.fault_status``.
- ``POST /faults/drop?venue=&port=``: abort the connections (the client sees 1006);
  with ``port``, only the one from that client port.
- ``POST /faults/close?venue=&code=&reason=&port=``: close frame with ``code`` (required).
- ``POST /faults/refuse?venue=&n=1&status=429&retry_after=1``: refuse the next
  ``n`` handshakes (``Simulator.refuse_handshakes``); ``retry_after=none``: no header.
- ``POST /faults/stall?venue=&new_connections=0``, ``POST /faults/resume?venue=``:
  ``Simulator.stall`` / ``resume``.
- ``POST /faults/mute_pings?venue=&new_connections=0``, ``POST /faults/unmute_pings?venue=``:
  ``Simulator.mute_pings`` / ``unmute_pings``.
- ``POST /faults/trades?venue=V&duplicate=&reorder=&skip_sequence=&seed=``:
  ``Venue.fault`` (venue required; absent knobs are 0, so this replaces the setting).
- ``POST /faults/inject?venue=&binary=0`` with a body: ``Venue.inject`` of the
  body as one frame (UTF-8 text; bytes with ``binary=1``).
- ``POST /faults/expire_tokens?venue=rails``: ``RailsVenue.expire_tokens`` (venue required).
- ``POST /faults/clear?venue=``: ``Simulator.clear_faults``.

``POST`` answers ``{"fault": <name>, "venue": <name or null>, ...}`` with the
method's result (``"connections"``: how many it acted on, ``"refusals"``:
pending). From a shell::

    curl -X POST "$(admin)/faults/refuse?venue=dopp&n=3&status=503&retry_after=2"
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ._base import Venue
from ._http import HttpRequest, HttpResponse



class Simulator(Protocol):
    """What the admin API calls on :class:`~tradefeed.simulator.Simulator` (a protocol, so
    this module does not import the server module that imports it)."""

    @property
    def venue_names(self) -> list[str]: ...
    def venue(self, name: str) -> Venue: ...
    def fault_status(self, venue: str) -> dict[str, Any]: ...
    def drop_connections(
        self, venue: str | None = None, code: int | None = None, reason: str = "", *, port: int | None = None
    ) -> int: ...
    def refuse_handshakes(self, n: int, status: int = 429, retry_after: int | None = 1, venue: str | None = None) -> int: ...
    def stall(self, venue: str | None = None, *, new_connections: bool = False) -> int: ...
    def resume(self, venue: str | None = None) -> int: ...
    def mute_pings(self, venue: str | None = None, *, new_connections: bool = False) -> int: ...
    def unmute_pings(self, venue: str | None = None) -> int: ...
    def clear_faults(self, venue: str | None = None) -> None: ...

__all__ = ["FAULTS", "AdminApi", "add_admin_arguments"]

PREFIX = "/faults"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class _BadRequest(ValueError):
    """A request the endpoint answers with 400."""


class AdminApi:
    """Answers the admin endpoint's requests by calling the simulator's fault methods.

    ::

        server = HttpServer(AdminApi(sim).handle, "admin")  # what Simulator(admin_port=...) does

    :param sim: the simulator whose faults are driven.
    """

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._routes: dict[str, Callable[[str | None, _Query, bytes], dict[str, Any]]] = {
            "drop": self._drop,
            "close": self._close,
            "refuse": self._refuse,
            "stall": self._stall,
            "resume": self._resume,
            "mute_pings": self._mute_pings,
            "unmute_pings": self._unmute_pings,
            "trades": self._trades,
            "inject": self._inject,
            "expire_tokens": self._expire_tokens,
            "clear": self._clear,
        }

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request. Loop thread (the simulator's methods then run inline)."""
        path = request.path.rstrip("/")
        query = _Query(parse_qs(urlsplit(request.target).query, keep_blank_values=True))
        if path == PREFIX:
            if request.method != "GET":
                return _json(405, {"error": "use GET"}, {"Allow": "GET"})
            return _json(200, {"venues": {name: self._sim.fault_status(name) for name in self._sim.venue_names}})
        name = path[len(PREFIX) + 1 :] if path.startswith(PREFIX + "/") else None
        if name not in self._routes:
            return _json(404, {"error": f"no such fault; faults: {', '.join(FAULTS)}"})
        if request.method != "POST":
            return _json(405, {"error": "use POST"}, {"Allow": "POST"})
        try:
            venue = query.text("venue")
            if venue is not None and venue not in self._sim.venue_names:
                raise _BadRequest(f"unknown venue {venue!r}; served: {', '.join(self._sim.venue_names)}")
            result = self._routes[name](venue, query, request.body)
        except ValueError as err:  # _BadRequest, and the methods' own checks
            return _json(400, {"error": str(err)})
        return _json(200, {"fault": name, "venue": venue, **result})

    # -- routes (loop thread) ------------------------------------------------------

    def _drop(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        return {"connections": self._sim.drop_connections(venue, None, port=query.integer("port"))}

    def _close(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        code = query.integer("code")
        if code is None:
            raise _BadRequest("close needs code=<close code>, e.g. code=1011")
        reason = query.text("reason") or ""
        return {"connections": self._sim.drop_connections(venue, code, reason, port=query.integer("port"))}

    def _refuse(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        n, status = query.integer("n", 1), query.integer("status", 429)
        assert n is not None and status is not None
        retry_after: int | None = None
        if (query.text("retry_after") or "1").lower() != "none":
            retry_after = query.integer("retry_after", 1)
        return {"refusals": self._sim.refuse_handshakes(n, status=status, retry_after=retry_after, venue=venue)}

    def _stall(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        return {"connections": self._sim.stall(venue, new_connections=query.flag("new_connections"))}

    def _resume(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        return {"connections": self._sim.resume(venue)}

    def _mute_pings(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        return {"connections": self._sim.mute_pings(venue, new_connections=query.flag("new_connections"))}

    def _unmute_pings(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        return {"connections": self._sim.unmute_pings(venue)}

    def _trades(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        target = self._sim.venue(_required(venue, "trades"))
        target.fault(
            duplicate=query.probability("duplicate"),
            reorder=query.probability("reorder"),
            skip_sequence=query.probability("skip_sequence"),
            seed=query.integer("seed"),
        )
        return {"trade_faults": target.fault_settings()}

    def _inject(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        frame: str | bytes = body
        if not query.flag("binary"):
            try:
                frame = body.decode()
            except UnicodeDecodeError:
                raise _BadRequest("the body is not UTF-8; add binary=1 to send it as a binary frame") from None
        names = self._sim.venue_names if venue is None else [venue]
        return {"connections": sum(self._sim.venue(name).inject(frame) for name in names)}

    def _expire_tokens(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        expire = getattr(self._sim.venue(_required(venue, "expire_tokens")), "expire_tokens", None)
        if expire is None:
            raise _BadRequest(f"venue {venue!r} issues no tokens")
        return {"connections": expire()}

    def _clear(self, venue: str | None, query: _Query, body: bytes) -> dict[str, Any]:
        self._sim.clear_faults(venue)
        return {}


#: the fault names served under ``POST /faults/<name>``
FAULTS: tuple[str, ...] = (
    "drop", "close", "refuse", "stall", "resume", "mute_pings", "unmute_pings", "trades", "inject", "expire_tokens",
    "clear",
)  # fmt: skip


class _Query:
    """Typed access to a parsed query string; a bad value raises :class:`_BadRequest`."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def text(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[-1] if values else None

    def integer(self, name: str, default: int | None = None) -> int | None:
        text = self.text(name)
        if text is None or text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise _BadRequest(f"{name} must be a whole number, not {text!r}") from None

    def probability(self, name: str) -> float:
        text = self.text(name)
        if text is None or text == "":
            return 0.0
        try:
            return float(text)
        except ValueError:
            raise _BadRequest(f"{name} must be a number between 0 and 1, not {text!r}") from None

    def flag(self, name: str) -> bool:
        text = (self.text(name) or "").lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _BadRequest(f"{name} must be 1 or 0, not {text!r}")


def _required(venue: str | None, fault: str) -> str:
    if venue is None:
        raise _BadRequest(f"{fault} needs venue=<name>")
    return venue


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    # stdlib json: fault probabilities are floats, which the simulator's exact encoder refuses
    body = json.dumps(payload).encode()
    return HttpResponse(status, body, {"Content-Type": "application/json", **(headers or {})})


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 0-65535 (0: any free port)")
    return port


def add_admin_arguments(sim_parser: argparse.ArgumentParser) -> None:
    """Add ``--admin-port PORT`` to the ``sim`` command's parser (``args.admin_port``,
    ``None`` when absent); pass it on as ``Simulator(admin_port=args.admin_port)``."""
    sim_parser.add_argument(
        "--admin-port",
        type=_port,
        metavar="PORT",
        help="serve the fault-injection endpoint (POST /faults/<name>, GET /faults) on this loopback port; "
        "0: any free port",
    )
