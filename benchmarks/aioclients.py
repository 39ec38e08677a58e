"""The asyncio consumers: the ``websockets`` client and cryptofeed's connection layer.

Each does, per frame, the work its library does for a trade feed (see
:mod:`benchmarks.consumers`), counting as it goes.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any, Callable

from .job import Consumer, Run

__all__ = ["cryptofeed", "websockets_consumer"]


def websockets_consumer(decoder: str) -> Consumer:
    """The ``websockets`` asyncio client (default event loop), decoding with *decoder*
    (``json`` or ``orjson``)."""

    def consume(run: Run) -> None:
        loads: Callable[[Any], Any] = json.loads
        if decoder == "orjson":
            import orjson

            loads = orjson.loads
        asyncio.run(asyncio.wait_for(_websockets(run, loads), run.job.timeout))

    return consume


async def _websockets(run: Run, loads: Callable[[Any], Any]) -> None:
    from websockets.asyncio.client import connect

    n, stamps = run.job.trades, run.stamps
    count = 0
    run.watch.start()
    try:
        async with connect(run.job.url, ping_interval=None, compression=None, max_size=None) as ws:
            async for message in ws:
                for element in loads(message):
                    records = element["last_trades"]
                    count += len(records)
                    if stamps is not None:
                        stamps.record_all(records)
                if count >= n:
                    run.watch.stop()
                    break
    finally:
        run.count = count


def cryptofeed(run: Run) -> None:
    """cryptofeed's connection layer and per-trade work, on uvloop when installed (the
    FeedHandler default)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(asyncio.wait_for(_cryptofeed(run), run.job.timeout))
    else:
        uvloop.run(asyncio.wait_for(_cryptofeed(run), run.job.timeout))


async def _cryptofeed(run: Run) -> None:
    from cryptofeed.callback import TradeCallback
    from cryptofeed.connection import WSAsyncConn
    from cryptofeed.defines import BUY, SELL
    from cryptofeed.types import Trade
    from yapic import json as cryptofeed_json

    n, stamps = run.job.trades, run.stamps
    symbols = {"BTC-PERPETUAL": "BTC-USD-PERP"}  # the exchange-to-standard symbol lookup
    count = 0

    async def on_trade(trade: Any, receipt_timestamp: float) -> None:
        nonlocal count
        count += 1
        if stamps is not None:
            stamps.record(trade.id, time.time_ns())

    callback = TradeCallback(on_trade)
    # WSAsyncConn accepts wss:// only; the check is in __init__, the address is used later
    conn = WSAsyncConn("wss://placeholder", "dopp", ping_interval=None, compression=None, max_size=None)
    conn.address = run.job.url
    run.watch.start()
    try:
        async with conn.connect() as connection:
            async for message in connection.read():
                receipt = connection.last_message
                for element in cryptofeed_json.loads(message, parse_float=Decimal):
                    for record in element["last_trades"]:
                        trade = Trade(
                            "DOPP",
                            symbols[record["instrument_name"]],
                            BUY if record["direction"] == "buy" else SELL,
                            Decimal(record["amount"]),
                            Decimal(record["price"]),
                            record["timestamp"] / 1000.0,
                            id=record["trade_id"],
                            raw=record,
                        )
                        await callback(trade, receipt)
                if count >= n:
                    run.watch.stop()
                    break
    finally:
        run.count = count
