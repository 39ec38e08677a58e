"""Fault arithmetic: which trades are duplicated, reordered or skip a sequence
number, and which handshakes are refused.

This module owns decisions only. It does no I/O, reads no clock and knows no
venue, frame or connection: a venue hands :meth:`TradeFaults.arrange` whatever
unit it sends (a trade, a match, a per-trade push) and puts the result on the
wire itself; :mod:`tradefeed.simulator.server` turns a :class:`Refusal` into an
HTTP response. The switches that act on connections (stall, muted pings) live
with the connection in :mod:`tradefeed.simulator._base`.

Determinism: a :class:`TradeFaults` draws exactly three numbers per trade from
``random.Random(seed)``, in trade order and always in the same order (skip,
duplicate, reorder), whatever the probabilities. So the k-th trade generated
after :meth:`~tradefeed.simulator.Venue.fault` was called (k from 0) skips a
sequence number iff draw ``3k`` < ``skip_sequence``, is duplicated iff draw
``3k + 1`` < ``duplicate`` and is swapped with its predecessor iff draw
``3k + 2`` < ``reorder`` (and the predecessor was not itself just swapped).
The decisions depend on the seed and on the trade's position only, never on
timing, connections or how generation is split into batches (except that a
swap needs a predecessor in the same batch).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["KNOBS", "Mark", "Refusal", "TradeFaults", "check_count", "check_probability"]

U = TypeVar("U")

#: the trade-level fault knobs, in draw order
KNOBS: tuple[str, ...] = ("skip_sequence", "duplicate", "reorder")


def check_probability(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a probability, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Mark:
    """The fault decisions for one generated trade."""

    #: its sequence number jumps by 2 instead of 1 (the number in between is never used)
    skip: bool = False
    #: it is sent again with the next batch
    duplicate: bool = False
    #: it trades places with the trade before it in its batch
    swap: bool = False


class TradeFaults(Generic[U]):
    """Seeded trade-level faults of one venue. Not thread-safe: the venue serializes calls.

    ::

        >>> faults = TradeFaults(duplicate=1.0, reorder=1.0, seed=7)
        >>> faults.arrange(["t1", "t2", "t3"], faults.marks(3))
        ['t2', 't1', 't3']
        >>> faults.arrange(["t4"], faults.marks(1))  # t1..t3 again (oldest first), then t4
        ['t1', 't2', 't3', 't4']

    :param duplicate: probability that a trade is sent a second time, with the
        next batch (before that batch's own trades).
    :param reorder: probability that a trade trades places with the one before
        it in its batch; swaps do not overlap, so a trade moves one place at most.
    :param skip_sequence: probability that a trade's sequence number is its
        predecessor's + 2 (the venue applies it; see :meth:`marks`).
    :param seed: seeds every decision.
    :raises ValueError: if a probability is not within [0, 1].
    """

    def __init__(
        self, *, duplicate: float = 0.0, reorder: float = 0.0, skip_sequence: float = 0.0, seed: int = 1
    ) -> None:
        self.duplicate = check_probability("duplicate", duplicate)
        self.reorder = check_probability("reorder", reorder)
        self.skip_sequence = check_probability("skip_sequence", skip_sequence)
        self.seed = seed
        self._rng = random.Random(seed)
        self._pending: list[U] = []  # duplicates still to send, oldest first
        #: trades decided on so far (three draws each)
        self.trades = 0

    @property
    def active(self) -> bool:
        """Whether any probability is above zero."""
        return max(self.duplicate, self.reorder, self.skip_sequence) > 0.0

    def describe(self) -> dict[str, Any]:
        """The knobs as plain data (for the admin endpoint)."""
        return {"duplicate": self.duplicate, "reorder": self.reorder, "skip_sequence": self.skip_sequence,
                "seed": self.seed, "trades": self.trades}  # fmt: skip

    def marks(self, count: int) -> list[Mark]:
        """Decide the faults of the next ``count`` trades, in generation order."""
        rng, marks = self._rng, []
        for _ in range(count):
            skip, duplicate, swap = rng.random(), rng.random(), rng.random()  # always three, in KNOBS order
            marks.append(Mark(skip < self.skip_sequence, duplicate < self.duplicate, swap < self.reorder))
        self.trades += count
        return marks

    def arrange(self, units: Sequence[U], marks: Sequence[Mark]) -> list[U]:
        """Return what to send for one batch: the duplicates kept from the previous
        batch, then ``units`` with the marked swaps applied; remember this batch's
        marked units as the next batch's duplicates.

        :param units: one per trade, in generation order (what the unit is, is up to the venue).
        :param marks: from :meth:`marks`, one per unit.
        """
        if len(units) != len(marks):
            raise ValueError(f"{len(units)} units but {len(marks)} marks")
        ordered = list(units)
        i = 1
        while i < len(ordered):
            if marks[i].swap:
                ordered[i - 1], ordered[i] = ordered[i], ordered[i - 1]
                i += 2  # the pair is done; the next trade may not swap back into it
            else:
                i += 1
        sent, self._pending = self._pending + ordered, [unit for unit, mark in zip(units, marks) if mark.duplicate]
        return sent


@dataclass(frozen=True)
class Refusal:
    """How one refused handshake is answered."""

    #: HTTP status, 400-599
    status: int
    #: seconds for ``Retry-After`` (sent with 429 and 503 only); None: no header
    retry_after: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {self.status!r}")
        if self.retry_after is not None and (
            isinstance(self.retry_after, bool) or not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError(f"retry_after must be whole seconds >= 0 or None, not {self.retry_after!r}")

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers: ``Retry-After`` for 429 and 503 when set."""
        if self.retry_after is not None and self.status in (429, 503):
            return {"Retry-After": str(self.retry_after)}
        return {}


def check_count(name: str, value: int) -> int:
    """Return ``value`` if it is a whole number >= 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return value
