"""Venue adapters (sans-I/O) and the registry that maps venue names to them.

One module per venue, named by its registry key.  Adding a venue means one module here,
one entry in :data:`REGISTRY`, and its simulator twin in ``tradefeed/simulator/``.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import ConfigError
from .base import Adapter, CloseAction, Handshake, Parsed
from .dopp import DoppAdapter
from .rails import RailsAdapter
from .synfutures import SynfuturesAdapter
from .synthetix import SynthetixAdapter

__all__ = ["Adapter", "CloseAction", "Handshake", "Parsed", "REGISTRY", "get_adapter_class", "create_adapter"]

#: venue name -> adapter class
REGISTRY: dict[str, type[Adapter]] = {
    cls.venue: cls for cls in (DoppAdapter, SynfuturesAdapter, SynthetixAdapter, RailsAdapter)
}


def get_adapter_class(venue: str) -> type[Adapter]:
    """The adapter class for *venue*.

    :raises ConfigError: no such venue.
    """
    try:
        return REGISTRY[venue]
    except (KeyError, TypeError):
        raise ConfigError(
            "unknown venue %r; known venues: %s" % (venue, ", ".join(sorted(REGISTRY)))
        ) from None


def create_adapter(venue: str, params: dict[str, Any]) -> Adapter:
    """A new adapter for *venue*, its parameters validated.

    :raises ConfigError: unknown venue, unknown parameter or invalid value.
    """
    cls = get_adapter_class(venue)
    return cls.from_params(**params)
