"""The Redis stream entry format: :func:`encode_trade` and :func:`decode_trade`.

An entry holds the ``Trade.to_dict()`` values as strings, ``None`` fields left out, and
``raw`` as JSON whose Decimals are JSON numbers with every digit (read back as
Decimal), so a trade survives the trip exactly.  Pure: no redis-py here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Mapping

from ..models import Liquidity, Side, Trade, decimal_text

__all__ = ["decode_trade", "encode_trade"]

_DECIMALS = ("price", "amount", "fee")
_INTS = ("timestamp_ms", "received_ns", "sequence")
_FIELDS = frozenset(Trade.__struct_fields__)


def _raw_json(value: Any) -> str:
    """JSON for ``raw``; a finite Decimal becomes a JSON number with every digit."""
    if isinstance(value, Decimal):
        return decimal_text(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, Mapping):
        return "{%s}" % ",".join("%s:%s" % (json.dumps(str(k), ensure_ascii=False), _raw_json(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[%s]" % ",".join(_raw_json(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def encode_trade(trade: Trade) -> dict[str, str]:
    """The stream entry for *trade*: ``to_dict()`` values as strings, ``None`` left out,
    ``raw`` as JSON (Decimals as exact JSON numbers)."""
    fields = {k: str(v) for k, v in trade.to_dict().items() if v is not None and k != "raw"}
    fields["raw"] = _raw_json(trade.raw)
    return fields


def decode_trade(fields: Mapping[str, str]) -> Trade:
    """The :class:`Trade` of a stream entry written by :func:`encode_trade`.

    :raises KeyError, ValueError, TypeError, ArithmeticError: the entry is not a trade.
    """
    values: dict[str, Any] = {k: v for k, v in fields.items() if k in _FIELDS}  # newer writers may add fields
    for key in _DECIMALS:
        if key in values:
            values[key] = Decimal(values[key])
    for key in _INTS:
        if key in values:
            values[key] = int(values[key])
    values["side"] = Side(values["side"])
    if "liquidity" in values:
        values["liquidity"] = Liquidity(values["liquidity"])
    values["raw"] = json.loads(values.get("raw", "{}"), parse_float=Decimal)
    return Trade(**values)
