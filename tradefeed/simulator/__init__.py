"""Loopback simulator of the venues' WebSocket trade feeds.

This package is a real WebSocket server on loopback that speaks each venue's
protocol (``shared/venues/*.md``), so the client library can be tested end to
end without a network. It owns the public names below and the registry
:data:`VENUES`; adding a venue means one module with a :class:`Venue` subclass
plus one entry here. It must never import the client library (anything in
``tradefeed`` outside this package): it is the client's peer, not its mirror.

::

    from tradefeed.simulator import Simulator

    with Simulator(seed=1, rate=200) as sim:  # started on enter, stopped on exit
        base = sim.url("dopp")                # "ws://127.0.0.1:<port>"
        dopp = sim.venue("dopp")              # the DoppVenue: emit(), trades()
"""

from .dopp import DoppVenue
from .rails import RailsVenue
from .server import Outbox, Simulator, SimulatorError, Venue
from .synthetix import SynthetixVenue
from .synfutures import SynfuturesVenue

__all__ = ["VENUES", "DoppVenue", "Outbox", "Simulator", "SimulatorError", "Venue"]

#: venue name -> its Venue subclass; ``Simulator(venues=None)`` serves them all
VENUES: dict[str, type[Venue]] = {
    DoppVenue.name: DoppVenue,
    RailsVenue.name: RailsVenue,
    SynthetixVenue.name: SynthetixVenue,
    SynfuturesVenue.name: SynfuturesVenue,
}
