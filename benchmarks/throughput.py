"""Throughput of tradefeed's hot path against the bare websocket-client loop it is built on.

A loopback server sends pre-built Dopp frames (unique trade ids, so de-duplication drops
nothing) as fast as the socket takes them; each consumer counts trades until it has N.
Consumers alternate and repeat; the ratio to the floor is taken within each repetition.

    python benchmarks/throughput.py                 # 1 and 20 trades per frame
    python benchmarks/throughput.py --trades 50000 --repeat 5

The "floor" is websocket-client's ``create_connection`` + ``recv()`` + ``json.loads`` with
nothing else: no Decimal, no Trade, no thread hand-off.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import socket
import statistics
import sys
import threading
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import websocket  # noqa: E402

from tradefeed import FeedManager  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def dopp_frame(first_id: int, trades: int) -> bytes:
    records = []
    for i in range(first_id, first_id + trades):
        records.append(
            '{"wallet_address":"0x9b1e4f0c2a7d3e8b5f6a1c2d3e4f5a6b7c8d9e0f","amount":0.25,"base_currency":"BTC",'
            '"direction":"buy","fee":11.27,"fee_currency":"USDC","index_price":90110.42,'
            '"instrument_name":"BTC-PERPETUAL","iv":0,"liquidity":"T","mark_price":90118.65,"order_id":%d,'
            '"order_type":"limit","price":90125.5,"tick_direction":0,"timestamp":%d,"trade_direction":"buy",'
            '"trade_id":"%d","trade_seq":%d}' % (i, 1767225600000 + i, i, i)
        )
    return ('[{"last_trades":[%s]}]' % ",".join(records)).encode()


def ws_text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


class FrameServer:
    """Accepts WebSocket upgrades and streams one pre-built buffer to each client."""

    def __init__(self, total_trades: int, per_frame: int) -> None:
        frames = [ws_text_frame(dopp_frame(1 + i * per_frame, per_frame)) for i in range(total_trades // per_frame)]
        self.buffer = b"".join(frames)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._client, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _client(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            try:
                conn.sendall(self.buffer)
                while conn.recv(65536):  # until the client goes away
                    pass
            except OSError:
                pass

    @property
    def url(self) -> str:
        return "ws://127.0.0.1:%d" % self.port

    def close(self) -> None:
        self.sock.close()


def bare(url: str, n: int) -> float:
    start = time.perf_counter()
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    count = 0
    while count < n:
        for element in json.loads(ws.recv()):
            count += len(element["last_trades"])
    elapsed = time.perf_counter() - start
    ws.close(timeout=0)
    return elapsed


def tradefeed_thread(url: str, n: int) -> float:
    done = threading.Event()
    count = [0]
    manager = FeedManager(ping_interval=0)

    @manager.on_trade
    def on_trade(trade: object) -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    manager.add_feed("dopp", url=url)
    start = time.perf_counter()
    manager.start()
    done.wait(120)
    elapsed = time.perf_counter() - start
    manager.stop()
    return elapsed


def tradefeed_pump(url: str, n: int) -> float:
    count = [0]
    manager = FeedManager(ping_interval=0, dispatch="manual")
    manager.on_trade(lambda trade: count.__setitem__(0, count[0] + 1))
    manager.add_feed("dopp", url=url)
    start = time.perf_counter()
    manager.start()
    while count[0] < n:
        manager.pump(timeout=1)
    elapsed = time.perf_counter() - start
    manager.stop()
    return elapsed


CONSUMERS: dict[str, Callable[[str, int], float]] = {
    "bare websocket-client (floor)": bare,
    "tradefeed, dispatcher thread": tradefeed_thread,
    "tradefeed, pump mode": tradefeed_pump,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-frame", type=int, action="append")
    args = parser.parse_args()
    print("python %s, websocket-client %s, %d cores" % (sys.version.split()[0], websocket.__version__, os.cpu_count()))
    for per_frame in args.per_frame or [1, 20]:
        server = FrameServer(args.trades, per_frame)
        rates: dict[str, list[float]] = {name: [] for name in CONSUMERS}
        ratios: dict[str, list[float]] = {name: [] for name in CONSUMERS}
        for _ in range(args.repeat):
            floor = None
            for name, consumer in CONSUMERS.items():
                rate = args.trades / consumer(server.url, args.trades)
                floor = floor or rate
                rates[name].append(rate)
                ratios[name].append(rate / floor)
        server.close()
        print("\n%d trade(s) per frame, %d trades, %d repetitions" % (per_frame, args.trades, args.repeat))
        print("%-32s %12s %12s %12s %8s" % ("consumer", "median/s", "min/s", "max/s", "x floor"))
        for name in CONSUMERS:
            r = rates[name]
            print(
                "%-32s %12.0f %12.0f %12.0f %8.2f"
                % (name, statistics.median(r), min(r), max(r), statistics.median(ratios[name]))
            )


if __name__ == "__main__":
    main()
