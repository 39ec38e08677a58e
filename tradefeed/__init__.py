"""tradefeed: real-time crypto trades over WebSocket, normalized, delivered to callbacks.

>>> from tradefeed import FeedManager
>>> manager = FeedManager()
>>> feed = manager.add_feed("dopp", instrument_name="BTC-PERPETUAL")
>>> manager.on_trade(print)   # doctest: +ELLIPSIS
<built-in function print>

Only the names in ``__all__`` are public; submodules are implementation.
"""

import logging

from .adapters import REGISTRY as _REGISTRY
from .backoff import Backoff
from .exceptions import (
    AuthError,
    CallbackError,
    ConfigError,
    FeedClosedError,
    FeedError,
    HandshakeError,
    ParseError,
    RetryExhaustedError,
    SinkError,
    StaleFeedError,
    TradefeedError,
    TransportError,
    VenueError,
)
from .manager import Feed, FeedManager
from .models import FeedStats, Gap, Liquidity, Side, Status, StatusEvent, Trade

__version__ = "0.1.0"

#: the venue names ``add_feed`` accepts
VENUES = tuple(sorted(_REGISTRY))

__all__ = [
    "__version__",
    "VENUES",
    "FeedManager",
    "Feed",
    "Trade",
    "Side",
    "Liquidity",
    "Status",
    "StatusEvent",
    "FeedStats",
    "Gap",
    "Backoff",
    "TradefeedError",
    "ConfigError",
    "AuthError",
    "CallbackError",
    "SinkError",
    "FeedError",
    "HandshakeError",
    "TransportError",
    "FeedClosedError",
    "StaleFeedError",
    "VenueError",
    "ParseError",
    "RetryExhaustedError",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
