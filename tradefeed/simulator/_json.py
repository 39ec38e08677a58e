"""A JSON encoder that writes :class:`~decimal.Decimal` as an exact number literal.

This module owns the simulator's wire encoding of values. The standard
:mod:`json` module writes numbers through ``float``, which cannot hold most
decimal fractions exactly and drops trailing zeros (``0.250`` becomes
``0.25``). Here a ``Decimal`` is written as its plain
(non-exponent) literal, digit for digit, so that a client parsing with
``json.loads(text, parse_float=Decimal)`` gets back an identical ``Decimal``.

Supported values: ``dict`` (``str`` keys), ``list``, ``tuple``, ``str``,
``int``, ``bool``, ``None``, ``Decimal`` and :class:`Raw`. ``float`` is refused
on purpose: a float on the simulator's wire would be a bug. The separators are
those of :func:`json.dumps` (``", "`` and ``": "``).

Nothing venue-specific goes in here.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from json.encoder import encode_basestring_ascii  # C-accelerated when available
from typing import Any

__all__ = ["Raw", "decimal_literal", "dumps"]


class Raw(str):
    """Already-encoded JSON, written verbatim by :func:`dumps`.

    Lets a venue encode each trade once and splice the text into every frame
    that carries it::

        >>> dumps([{"last_trades": [Raw('{"price": 1.50}')]}])
        '[{"last_trades": [{"price": 1.50}]}]'
    """

    __slots__ = ()


def decimal_literal(value: Decimal) -> str:
    """Return the JSON number literal of ``value``, keeping every digit.

    ``Decimal("0.0215")`` gives ``0.0215`` and ``Decimal("0.250")`` gives
    ``0.250``; an exponent is expanded (``Decimal("1E+3")`` gives ``1000``).
    A value with no fractional digits is an integer literal, which JSON parsers
    return as ``int`` (equal in value).

    :param value: a finite decimal.
    :raises ValueError: for NaN and infinities, which JSON cannot express.
    """
    if not value.is_finite():
        raise ValueError(f"JSON has no literal for {value!r}")
    return format(value, "f")


def dumps(value: Any) -> str:
    """Encode ``value`` as JSON text.

    :param value: a tree of the supported types listed in the module docstring.
    :raises TypeError: for an unsupported type (``float`` included) or a
        non-``str`` dict key.
    :raises ValueError: for a non-finite ``Decimal``.
    """
    chunks: list[str] = []
    _encode(value, chunks.append)
    return "".join(chunks)


def _encode(value: Any, write: Callable[[str], None]) -> None:
    # Order matters: Raw before str, bool before int (bool is an int subclass).
    if isinstance(value, str):
        write(value if type(value) is Raw else encode_basestring_ascii(value))
    elif value is None:
        write("null")
    elif value is True:
        write("true")
    elif value is False:
        write("false")
    elif isinstance(value, int):
        write(int.__repr__(value))
    elif isinstance(value, Decimal):
        write(decimal_literal(value))
    elif isinstance(value, dict):
        _encode_object(value, write)
    elif isinstance(value, (list, tuple)):
        write("[")
        for position, item in enumerate(value):
            if position:
                write(", ")
            _encode(item, write)
        write("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as exact JSON")


def _encode_object(value: dict[Any, Any], write: Callable[[str], None]) -> None:
    write("{")
    for position, (key, item) in enumerate(value.items()):
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
        if position:
            write(", ")
        write(encode_basestring_ascii(key))
        write(": ")
        _encode(item, write)
    write("}")
