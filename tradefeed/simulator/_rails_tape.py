"""Rails' seeded tape: matches, their public records and the account's own fills.

This module owns what is drawn for the simulated Rails venue
(``docs/venues/rails.md``): markets, prices, quantities, match ids, which
matches show maker records and which are the account's own fills. It does no
I/O, reads no clock (callers pass ``timestamp`` in ms) and knows nothing of
frames or connections; :mod:`tradefeed.simulator.rails` puts records on the wire.

Every draw comes from one :class:`random.Random` in a fixed order, so the
content depends only on the seed (and on ``own_fill_share``); the maker-record
shape of a match is drawn whether or not maker records are shown, so the
matches are the same in both modes.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

__all__ = ["MARKETS", "Match", "Tape"]

#: the markets listed on the simulated venue
MARKETS: tuple[str, ...] = ("BTC-USDT", "ETH-USDT")

_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_FEE_RATE = {"taker": Decimal("0.0005"), "maker": Decimal("0.0002")}  # of notional, in USDT
_FEE_QUANTUM = Decimal("0.00000001")
_LEVERAGE = Decimal("1")
_NO_TRIGGER_PRICE = Decimal("0")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # ULID alphabet, for order ids
_MAKER_ALONE, _MAKER_THEN_TAKER = 0, 1  # of _SHAPES: the rest are taker-only matches
_SHAPES = 6


@dataclass(frozen=True)
class _Spec:
    """A listed market and how its matches are drawn."""

    tick: Decimal  # price step
    start_ticks: int
    walk: int  # largest price move between two matches, in ticks
    lot: Decimal  # quantity step
    max_lots: int
    weight: int  # relative frequency


_SPECS = {
    "BTC-USDT": _Spec(Decimal("0.1"), 900_000, 20, Decimal("0.001"), 2000, 60),
    "ETH-USDT": _Spec(Decimal("0.01"), 300_000, 30, Decimal("0.01"), 3000, 40),
}
_WEIGHTS = [_SPECS[market].weight for market in MARKETS]


@dataclass(frozen=True)
class Match:
    """One generated match with its public records and, maybe, the account's fill.

    Records and fills are dicts in the wire's key order (records also carry
    ``market`` first); money values are :class:`~decimal.Decimal`.
    """

    market: str
    #: what the public tape shows by default: the taker record only
    taker_records: tuple[dict[str, Any], ...]
    #: what it shows in maker-records mode: maybe a maker record, alone or before the taker's
    maker_mode_records: tuple[dict[str, Any], ...]
    fill: dict[str, Any] | None


class Tape:
    """Draws matches from a seed. Not thread-safe: the caller serializes calls.

    :param seed: seeds every draw.
    :param own_fill_share: probability that a match is one of the account's own fills.
    """

    def __init__(self, seed: int, own_fill_share: float) -> None:
        if not 0.0 <= own_fill_share <= 1.0:
            raise ValueError(f"own_fill_share must be within [0, 1], not {own_fill_share}")
        self._rng = random.Random(seed)
        self._own_fill_share = own_fill_share
        self._ticks = {market: spec.start_ticks for market, spec in _SPECS.items()}
        self._last_timestamp = 0

    def next_match(self, timestamp: int) -> Match:
        """Draw the next match, executed at ``timestamp`` (Unix ms).

        Timestamps never go back, even if the wall clock does.
        """
        with localcontext(_CONTEXT):  # whatever the calling thread's decimal context
            return self._draw(timestamp)

    def _draw(self, timestamp: int) -> Match:
        rng = self._rng
        market = rng.choices(MARKETS, weights=_WEIGHTS)[0]
        spec = _SPECS[market]
        start = spec.start_ticks
        ticks = self._ticks[market] + rng.randint(-spec.walk, spec.walk)
        self._ticks[market] = ticks = min(max(ticks, start // 2), start * 3 // 2)
        price = ticks * spec.tick
        quantity = rng.randint(1, spec.max_lots) * spec.lot
        aggressor = rng.choice(("buy", "sell"))
        match_id = _uuid(rng)
        shape = rng.randrange(_SHAPES)
        self._last_timestamp = timestamp = max(timestamp, self._last_timestamp)

        def record(execution_type: str, side: str) -> dict[str, Any]:
            return {
                "market": market,
                "executionType": execution_type,
                "matchId": match_id,
                "orderType": side,
                "price": price,
                "quantity": quantity,
                "updatedAt": timestamp,
            }

        taker = record("taker", aggressor)
        maker = record("maker", _opposite(aggressor))
        maker_mode = {_MAKER_ALONE: (maker,), _MAKER_THEN_TAKER: (maker, taker)}.get(shape, (taker,))
        fill = None
        if rng.random() < self._own_fill_share:
            fill = self._fill(market, match_id, aggressor, price, quantity, timestamp)
        return Match(market, (taker,), maker_mode, fill)

    def _fill(
        self, market: str, match_id: str, aggressor: str, price: Decimal, quantity: Decimal, timestamp: int
    ) -> dict[str, Any]:
        """The account's side of the match, as a private ``completedOrdersDelta`` item."""
        rng = self._rng
        role = rng.choice(("taker", "maker"))
        trade_type = rng.choice(("market", "limit")) if role == "taker" else "limit"
        resting_ms = rng.randint(5, 50) if trade_type == "market" else rng.randint(100, 60_000)
        fees = (price * quantity * _FEE_RATE[role]).quantize(_FEE_QUANTUM)
        return {
            "market": market,
            "orderId": _order_id(rng),
            "matchId": match_id,
            "orderType": aggressor if role == "taker" else _opposite(aggressor),
            "tradeType": trade_type,
            "executionType": role,
            "fillType": rng.choice(("partial", "complete")),
            "price": price,
            "quantity": quantity,
            "leverage": _LEVERAGE,
            "fees": fees,
            "orderCreatedAt": timestamp - resting_ms,
            "orderFilledAt": timestamp,
            "triggerType": "none",
            "triggerPrice": _NO_TRIGGER_PRICE,
            "triggerCreatedAt": 0,
        }


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _order_id(rng: random.Random) -> str:
    """A ULID-shaped id (26 Crockford base32 characters, the first at most 7), all drawn."""
    return rng.choice(_CROCKFORD[:8]) + "".join(rng.choices(_CROCKFORD, k=25))


def _opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"
