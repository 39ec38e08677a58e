"""Bytes on the wire: Dopp trade frames and the little of RFC 6455 the servers speak.

Pure functions, one sans-I/O reader and the soak stream's generator; no sockets here.
Trade ids run 1..N, so ``int(trade_id) - 1`` indexes per-trade arrays and
de-duplication drops nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from typing import Iterator, Sequence

__all__ = [
    "OP_CLOSE",
    "OP_PING",
    "SOAK_INSTRUMENTS",
    "ClientFrameReader",
    "burst_stream",
    "client_upgrade_request",
    "close_frame",
    "dopp_frame",
    "pong_frame",
    "request_path",
    "soak_chunks",
    "upgrade_response",
    "ws_text_frame",
]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: one Dopp trade record (``docs/venues/dopp.md``); ``%(id)d`` fills the ids and sequence
_RECORD = (
    '{"wallet_address":"0x9b1e4f0c2a7d3e8b5f6a1c2d3e4f5a6b7c8d9e0f","amount":0.25,"base_currency":"BTC",'
    '"direction":"buy","fee":11.27,"fee_currency":"USDC","index_price":90110.42,'
    '"instrument_name":"BTC-PERPETUAL","iv":0,"liquidity":"T","mark_price":90118.65,"order_id":%(id)d,'
    '"order_type":"limit","price":90125.5,"tick_direction":0,"timestamp":%(ms)d,"trade_direction":"buy",'
    '"trade_id":"%(id)d","trade_seq":%(id)d}'
)
_FIRST_MS = 1767225600000  # 2026-01-01T00:00:00Z; trade i is i ms later


def dopp_frame(first_id: int, trades: int) -> bytes:
    """A Dopp push frame (UTF-8 JSON) with trades ``first_id .. first_id + trades - 1``,
    oldest first."""
    records = ",".join(_RECORD % {"id": i, "ms": _FIRST_MS + i} for i in range(first_id, first_id + trades))
    return ('[{"last_trades":[%s]}]' % records).encode()


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked (server-to-client) text frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def close_frame(code: int = 1000) -> bytes:
    """An unmasked close frame carrying *code*."""
    return struct.pack("!BBH", 0x80 | OP_CLOSE, 2, code)


def pong_frame(payload: bytes) -> bytes:
    """An unmasked pong answering a ping with *payload* (at most 125 bytes)."""
    return struct.pack("!BB", 0x80 | OP_PONG, len(payload)) + payload


def burst_stream(trades: int, per_frame: int) -> bytes:
    """Every frame of a throughput run back to back: trades 1..*trades*, *per_frame* each.

    :raises ValueError: *trades* is not a positive multiple of *per_frame*.
    """
    if per_frame < 1 or trades < per_frame or trades % per_frame:
        raise ValueError("trades (%d) must be a positive multiple of per_frame (%d)" % (trades, per_frame))
    return b"".join(ws_text_frame(dopp_frame(first, per_frame)) for first in range(1, trades + 1, per_frame))


#: the soak stream's instruments, one frame each in turn: (instrument_name, base_currency)
SOAK_INSTRUMENTS = tuple(
    (coin + "-PERPETUAL", coin) for coin in ("BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX", "LINK", "LTC")
)  # fmt: skip


def _soak_template(instrument: str, currency: str, per_frame: int) -> bytes:
    """A frame of *per_frame* records of *instrument*, with positional ``%d`` slots:
    order_id, timestamp, trade_id and trade_seq of each record, in that order."""
    record = _RECORD
    for old, new in (
        ('"base_currency":"BTC"', '"base_currency":"%s"' % currency),
        ('"instrument_name":"BTC-PERPETUAL"', '"instrument_name":"%s"' % instrument),
        ('"trade_seq":%(id)d', '"trade_seq":%(seq)d'),
        ("%(id)d", "%d"),
        ("%(ms)d", "%d"),
        ("%(seq)d", "%d"),
    ):
        assert old in record, old  # _RECORD changed: so must this
        record = record.replace(old, new)
    return ('[{"last_trades":[%s]}]' % ",".join([record] * per_frame)).encode()


def soak_chunks(
    trades: int, per_frame: int, instruments: Sequence[tuple[str, str]] = SOAK_INSTRUMENTS
) -> Iterator[bytes]:
    """The soak stream, a round at a time: trades 1..*trades*, *per_frame* per frame,
    each frame of one instrument, the instruments in turn.  Each chunk is one frame per
    instrument (the last may be shorter), so memory does not grow with *trades*.

    Trade ids (and order ids) are unique across the stream and timestamps rise with
    them, so de-duplication keeps every trade; ``trade_seq`` counts each instrument's
    own trades (1, 2, ...), so a sequenced venue sees no gap.

    :raises ValueError: *trades* is not a positive multiple of *per_frame*.
    """
    if per_frame < 1 or trades < per_frame or trades % per_frame:
        raise ValueError("trades (%d) must be a positive multiple of per_frame (%d)" % (trades, per_frame))
    templates = [_soak_template(name, currency, per_frame) for name, currency in instruments]
    return _soak_rounds(trades // per_frame, per_frame, templates)


def _soak_rounds(frames: int, per_frame: int, templates: list[bytes]) -> Iterator[bytes]:
    """:func:`soak_chunks` once its arguments are checked: *frames* frames from
    *templates* (one per instrument, :func:`_soak_template`), a round per chunk."""
    width = len(templates)
    round_trades, step = width * per_frame, 4 * per_frame
    values: list[int] = [0] * (4 * round_trades)  # the slots of one round, refilled in place
    for first_frame in range(0, frames, width):
        first = first_frame * per_frame + 1  # the round's first trade id
        seq = first_frame // width * per_frame + 1  # each instrument's first trade_seq in it
        ids = range(first, first + round_trades)
        values[0::4] = ids  # order_id
        values[1::4] = range(_FIRST_MS + first, _FIRST_MS + first + round_trades)  # timestamp
        values[2::4] = ids  # trade_id
        values[3::4] = list(range(seq, seq + per_frame)) * width  # trade_seq
        yield b"".join(
            ws_text_frame(template % tuple(values[i * step : (i + 1) * step]))
            for i, template in enumerate(templates[: frames - first_frame])
        )


def upgrade_response(request: bytes) -> bytes:
    """The ``101 Switching Protocols`` answer to a client's upgrade *request* (no
    extensions, so no compression).

    :raises ValueError: the request has no ``Sec-WebSocket-Key``.
    """
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            accept = base64.b64encode(hashlib.sha1(value.strip() + GUID).digest())
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
    raise ValueError("not a WebSocket upgrade request")


def request_path(request: bytes) -> str:
    """The path of an HTTP request (``GET /run/7?x=1 HTTP/1.1`` gives ``/run/7``)."""
    parts = request.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].split(b"?", 1)[0].decode("latin-1") if len(parts) == 3 else ""


def client_upgrade_request(host: str, port: int, path: str) -> bytes:
    """A minimal client upgrade request, for clients that speak raw sockets."""
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ) % (path.encode(), host.encode(), port, key)


class ClientFrameReader:
    """Splits the bytes a client sends into ``(opcode, payload)`` frames, unmasked.

    >>> reader = ClientFrameReader()
    >>> reader.feed(bytes((0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8)))
    [(8, b'\\x03\\xe8')]
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add *data*; return every frame now complete (fragments are not joined: the
        servers only act on control frames, which are never fragmented)."""
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> tuple[int, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
        masked = buf[1] & 0x80
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            offset = 10
        mask = b""
        if masked:
            mask = bytes(buf[offset : offset + 4])
            offset += 4
        if len(buf) < offset + length:
            return None
        payload = bytes(buf[offset : offset + length])
        del buf[: offset + length]
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, payload
