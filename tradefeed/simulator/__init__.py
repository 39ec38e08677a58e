"""Loopback simulator of the venues' WebSocket trade feeds.

This package is a real WebSocket server on loopback that speaks each venue's
protocol (``docs/venues/*.md``), so the client library can be tested end to
end without a network. It owns the public names below and the registry
:data:`VENUES`; adding a venue means one module with a :class:`Venue` subclass
plus one entry in :func:`_venues`. It must never import the client library
(anything in ``tradefeed`` outside this package): it is the client's peer, not
its mirror.

::

    from tradefeed.simulator import Simulator

    with Simulator(seed=1, rate=200) as sim:  # started on enter, stopped on exit
        base = sim.url("dopp")                # "ws://127.0.0.1:<port>"
        dopp = sim.venue("dopp")              # the DoppVenue: emit(), trades()

The names are imported on first use (:pep:`562`), not with the package: the
servers need :mod:`websockets` (the ``sim`` extra), while
:mod:`tradefeed.simulator.admin` does not, so the CLI can add the ``sim``
command's options without it. ``from tradefeed.simulator import Simulator``
raises ImportError without websockets, as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dopp import DoppVenue
    from .server import Outbox, Simulator, SimulatorError, Venue

    #: venue name -> its Venue subclass; ``Simulator(venues=None)`` serves them all
    VENUES: dict[str, type[Venue]]

__all__ = ["VENUES", "DoppVenue", "Outbox", "Simulator", "SimulatorError", "Venue"]

_LAZY = {
    "DoppVenue": ".dopp",
    "Outbox": ".server",
    "Simulator": ".server",
    "SimulatorError": ".server",
    "Venue": ".server",
}


def _venues() -> dict[str, type[Venue]]:
    from .dopp import DoppVenue
    from .rails import RailsVenue
    from .synfutures import SynfuturesVenue
    from .synthetix import SynthetixVenue

    return {
        DoppVenue.name: DoppVenue,
        RailsVenue.name: RailsVenue,
        SynthetixVenue.name: SynthetixVenue,
        SynfuturesVenue.name: SynfuturesVenue,
    }


def __getattr__(name: str) -> Any:
    try:
        if name == "VENUES":
            value: Any = _venues()
        elif name in _LAZY:
            value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] == "tradefeed":
            raise
        raise ImportError(f"the simulator needs the 'sim' extra: pip install 'tradefeed[sim]' ({err})", name=err.name) from err
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
