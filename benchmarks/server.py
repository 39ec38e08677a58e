"""The loopback servers, each run as its own process so that its CPU is never billed to
(or shares a GIL with) the client being measured::

    python -m benchmarks.server burst --trades 60000 --per-frame 1
    python -m benchmarks.server paced --trades 20000 --rate 10000 --log-dir /tmp/x
    python -m benchmarks.server soak --trades 10000000 --per-frame 20
    python -m benchmarks.server idle

Each binds 127.0.0.1 on a port the OS chooses, prints ``ready <port> <stream bytes>``
and serves until its stdin closes.

- ``burst``: every client gets the same pre-built frames (trades 1..N) in one
  ``sendall``, as fast as the socket takes them.
- ``paced``: every client gets N one-trade frames at *rate* frames per second; the
  ``time.time_ns()`` just before each send is logged to ``<log-dir>/<run>.send`` (an
  int64 array; ``<run>`` is the last segment of the URL path, ``ws://host:port/run/<run>``),
  then ``sent <run> <frames per second achieved>`` is printed (``failed <run>`` if the
  client went away first).
- ``soak``: every client gets N trades, *per-frame* per frame, generated a round at a
  time (:func:`benchmarks.frames.soak_chunks`: unique ids, instruments in turn), so the
  server's memory does not grow with N; then ``sent <run> <trades per second>
  <busy>`` is printed, *busy* being the fraction of the streaming time the server's
  thread spent on the CPU (well below 1: the client, not the server, set the pace), or
  ``failed <run>``.  ``<run>`` is the URL path's last segment, as for ``paced``.
- ``idle``: an asyncio (``websockets``) server that accepts thousands of connections,
  answers their pings and sends nothing.

After streaming, the raw servers answer pings and the close handshake, so clients
close promptly, and hang up when the client does.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import os
import re
import socket
import sys
import threading
import time
from typing import Callable

from .frames import (
    OP_CLOSE,
    OP_PING,
    ClientFrameReader,
    burst_stream,
    close_frame,
    dopp_frame,
    pong_frame,
    request_path,
    soak_chunks,
    upgrade_response,
    ws_text_frame,
)
from .procstat import raise_fd_limit

__all__ = ["FrameServer", "PacedStream", "SoakStream", "main"]

_RUN_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_print_lock = threading.Lock()


def announce(*words: object) -> None:
    """One line on stdout, whole (several client threads may announce at once)."""
    with _print_lock:
        print(*words, flush=True)


class FrameServer:
    """A raw-socket WebSocket server: a thread per client, which completes the upgrade,
    calls ``stream(sock, path)`` to send, then answers pings and the close handshake.

    :param stream: sends this client its frames; runs on the client's thread.
    """

    def __init__(self, stream: Callable[[socket.socket, str], None]) -> None:
        self._stream = stream
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        #: the port the OS chose
        self.port: int = self._sock.getsockname()[1]

    def serve_forever(self) -> None:
        """Accept clients until :meth:`close` (from another thread)."""
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._client, args=(conn,), name="bench-client", daemon=True).start()

    def close(self) -> None:
        """Stop accepting; clients already connected are served on."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not, on Linux)
        except OSError:
            pass
        self._sock.close()

    def _client(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small paced frames go out at once
        with conn:
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(upgrade_response(request))
                self._stream(conn, request_path(request))
                self._until_closed(conn)
            except (OSError, ValueError):
                pass  # the client went away, or was not a WebSocket client: its own problem

    @staticmethod
    def _until_closed(conn: socket.socket) -> None:
        reader = ClientFrameReader()
        while data := conn.recv(65536):
            for opcode, payload in reader.feed(data):
                if opcode == OP_PING:
                    conn.sendall(pong_frame(payload))
                elif opcode == OP_CLOSE:
                    conn.sendall(close_frame())
                    return


class PacedStream:
    """Sends one-trade frames at a fixed rate and logs each frame's send time.

    The schedule is absolute (frame i is due at start + i / rate), so a late wake-up is
    followed by frames sent back to back rather than by a slower rate.
    """

    def __init__(self, trades: int, rate: float, log_dir: str) -> None:
        self._frames = [ws_text_frame(dopp_frame(i, 1)) for i in range(1, trades + 1)]
        self._interval_ns = 1e9 / rate
        self._log_dir = log_dir

    def __call__(self, conn: socket.socket, path: str) -> None:
        run = path.rsplit("/", 1)[-1]
        if not _RUN_NAME.match(run):
            raise ValueError("paced clients connect to /run/<name>, not %r" % path)
        sent = array.array("q", bytes(8 * len(self._frames)))
        try:
            self._send(conn, sent)
        except Exception:
            announce("failed", run)  # the parent waits for a word on every run it started
            raise
        with open(os.path.join(self._log_dir, run + ".send"), "wb") as log:
            sent.tofile(log)
        span = (sent[-1] - sent[0]) / 1e9
        announce("sent", run, "%.0f" % ((len(sent) - 1) / span if span > 0 else 0.0))

    def _send(self, conn: socket.socket, sent: array.array[int]) -> None:
        interval, clock, now_ns, send = self._interval_ns, time.perf_counter_ns, time.time_ns, conn.sendall
        start = clock()
        for i, frame in enumerate(self._frames):
            delay = start + int(i * interval) - clock()
            if delay > 0:
                time.sleep(delay / 1e9)
            sent[i] = now_ns()
            send(frame)


class SoakStream:
    """Sends a long stream generated as it goes (a round of frames per ``sendall``),
    then reports its rate and how busy it was."""

    def __init__(self, trades: int, per_frame: int) -> None:
        soak_chunks(trades, per_frame)  # raises ValueError now, not in a client thread
        self._trades, self._per_frame = trades, per_frame

    def __call__(self, conn: socket.socket, path: str) -> None:
        run = path.rsplit("/", 1)[-1] or "-"
        try:
            wall, cpu = time.perf_counter(), time.thread_time()
            for chunk in soak_chunks(self._trades, self._per_frame):
                conn.sendall(chunk)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        except Exception:
            announce("failed", run)
            raise
        announce("sent", run, "%.0f" % (self._trades / wall), "%.3f" % (cpu / wall))


def _serve_raw(stream: Callable[[socket.socket, str], None], stream_bytes: int) -> None:
    server = FrameServer(stream)
    acceptor = threading.Thread(target=server.serve_forever, name="bench-accept")
    acceptor.start()
    announce("ready", server.port, stream_bytes)
    sys.stdin.read()  # until the parent closes our stdin
    server.close()
    acceptor.join()


async def _serve_idle() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def hold(connection: ServerConnection) -> None:
        await connection.wait_closed()

    # no server pings: the clients' own keepalive is what is measured
    async with serve(hold, "127.0.0.1", 0, ping_interval=None, compression=None, backlog=4096) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        announce("ready", port, 0)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A loopback WebSocket server for the benchmarks.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    burst = kinds.add_parser("burst", help="send pre-built frames as fast as possible")
    burst.add_argument("--trades", type=int, required=True)
    burst.add_argument("--per-frame", type=int, required=True)
    paced = kinds.add_parser("paced", help="send one-trade frames at a fixed rate, logging send times")
    paced.add_argument("--trades", type=int, required=True)
    paced.add_argument("--rate", type=float, required=True, help="frames per second")
    paced.add_argument("--log-dir", required=True)
    soak = kinds.add_parser("soak", help="send a long stream of unique trades, generated as it goes")
    soak.add_argument("--trades", type=int, required=True)
    soak.add_argument("--per-frame", type=int, required=True)
    idle = kinds.add_parser("idle", help="accept many connections, send nothing")
    idle.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.kind == "burst":
        stream = burst_stream(args.trades, args.per_frame)
        _serve_raw(lambda conn, path: conn.sendall(stream), len(stream))
    elif args.kind == "paced":
        _serve_raw(PacedStream(args.trades, args.rate, args.log_dir), 0)
    elif args.kind == "soak":
        _serve_raw(SoakStream(args.trades, args.per_frame), 0)
    else:
        raise_fd_limit(args.connections + 64)
        asyncio.run(_serve_idle())


if __name__ == "__main__":
    main()
