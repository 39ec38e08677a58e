"""Decimal arithmetic that is exact or raises.

:data:`EXACT` is a :class:`decimal.Context` with the largest precision and exponent
range and every signal trapped: a result that would be rounded, clamped or out of range
raises a :class:`decimal.DecimalException` instead.  The thread's own context (28 digits
unless the user changed it) would round silently.
"""

from __future__ import annotations

import decimal

__all__ = ["EXACT"]

EXACT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, clamp=0,
    traps=[decimal.Clamped, decimal.Inexact, decimal.Overflow, decimal.Rounded, decimal.Subnormal, decimal.Underflow,
           decimal.InvalidOperation, decimal.DivisionByZero, decimal.FloatOperation],
)  # fmt: skip
