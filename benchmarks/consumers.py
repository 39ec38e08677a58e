"""The clients measured.  Each run is its own process, so the CPU time and peak RSS it
reports are that client's alone::

    echo '{"consumer": "floor", "url": "ws://127.0.0.1:8765", "trades": 1000}' | python -m benchmarks.consumers

A job (JSON on stdin, :class:`benchmarks.job.Job`) names a consumer; the result (JSON, the last line on
stdout) says how many trades it counted, the wall and CPU seconds from just before
connecting to the moment the last trade was counted, and peak RSS.  With
``stamps_file`` the consumer also records ``time.time_ns()`` as each trade reaches it,
by trade id, and reports trade ids received twice or never.

Every consumer reads the same Dopp frames and does the least its design allows:

- ``discard``: a raw socket that reads and drops bytes after the upgrade (proves the
  server is not the bottleneck: it must be far faster than everything else);
- ``floor``: websocket-client ``create_connection(skip_utf8_validation=True)`` +
  ``recv()`` + ``json.loads``, counting records: the loop tradefeed is built on;
- ``tradefeed-<dispatch>``: a FeedManager (``ping_interval=0``) with one Dopp feed and a
  counting ``on_trade`` callback; ``manual`` is driven by ``pump()`` on the main thread.
  With ``sample_every`` (the soak) the callback also samples memory every that many
  trades (:func:`memory_sample`, plus ``backlog``: the most trades the feed had handed
  to the dispatcher but the callback not yet had, looked at every
  :data:`BACKLOG_EVERY` trades), and the result carries ``samples`` and the feed's
  ``stats()`` counters;
- ``tradefeed-metrics``: ``tradefeed-thread`` with ``serve_metrics(0)`` open (extra
  ``metrics``), so the cost of the delivery histogram shows against it (nothing scrapes);
- ``websockets-json``, ``websockets-orjson``: the ``websockets`` asyncio client;
- ``cryptofeed``: cryptofeed's connection layer (``WSAsyncConn``, uvloop as its
  FeedHandler sets it up) and the work its Deribit trade handler does per record:
  ``yapic.json`` with Decimal floats, a ``Trade`` object, an awaited ``TradeCallback``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket
import sys
import threading
import time
import typing
from typing import Any
from urllib.parse import urlsplit

from .frames import client_upgrade_request
from .job import Consumer, Job, Run, Stamps
from .procstat import peak_rss_kib, raise_fd_limit, rss_kib

__all__ = [
    "BACKLOG_EVERY",
    "LABELS",
    "STAMPLESS",
    "available",
    "consumer",
    "label",
    "main",
    "memory_sample",
    "run_job",
    "tradefeed_dispatch_modes",
]

#: display names of the consumers that are not tradefeed
LABELS = {
    "discard": "discard bytes (server check)",
    "floor": "websocket-client bare (floor)",
    "websockets-json": "websockets asyncio + json",
    "websockets-orjson": "websockets asyncio + orjson",
    "cryptofeed": "cryptofeed (uvloop)",
}
#: consumers that cannot record per-trade receive times (they never parse a trade)
STAMPLESS = frozenset({"discard"})
#: soak: trades between looks at the dispatcher's backlog (``FeedStats.trades`` minus
#: the trades counted), at most every sample
BACKLOG_EVERY = 10_000


def discard(run: Run) -> None:
    """Read and drop every byte the server streams; no WebSocket parsing at all."""
    url = urlsplit(run.job.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    buffer = bytearray(1 << 20)
    run.watch.start()
    with socket.create_connection((host, port), timeout=run.job.timeout) as sock:
        sock.sendall(client_upgrade_request(host, port, url.path or "/"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed during the upgrade")
            head += chunk
        remaining = run.job.stream_bytes - len(head.split(b"\r\n\r\n", 1)[1])
        while remaining > 0:
            received = sock.recv_into(buffer)
            if not received:
                raise ConnectionError("server closed with %d bytes unsent" % remaining)
            remaining -= received
        run.watch.stop()
        run.count = run.job.trades


def floor(run: Run) -> None:
    """websocket-client's blocking loop with nothing else: the floor."""
    import websocket

    n, stamps, loads = run.job.trades, run.stamps, json.loads
    count = 0
    run.watch.start()
    ws = websocket.create_connection(run.job.url, skip_utf8_validation=True)  # a hang: the parent kills it
    try:
        while count < n:
            for element in loads(ws.recv()):
                records = element["last_trades"]
                count += len(records)
                if stamps is not None:
                    stamps.record_all(records)
        run.watch.stop()
    finally:
        run.count = count
        ws.close(timeout=2)


def memory_sample(trades: int, elapsed_s: float) -> dict[str, float]:
    """This process's memory after *trades* trades and *elapsed_s* seconds: resident
    (``VmRSS``, KiB), its high-water mark so far (``VmHWM``, KiB), and the blocks
    Python's small-object allocator has handed out (``sys.getallocatedblocks()``:
    objects kept alive, whatever the allocators and the OS do with freed memory)."""
    return {
        "trades": trades,
        "elapsed_s": elapsed_s,
        "rss_kib": rss_kib(),
        "hwm_kib": peak_rss_kib(),
        "blocks": sys.getallocatedblocks(),
    }


def _counters(stats: Any) -> dict[str, int]:
    """The whole-number fields of a ``FeedStats`` (messages, trades, duplicates...)."""
    values = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return {name: value for name, value in values.items() if type(value) is int}


def tradefeed_consumer(dispatch: str, metrics: bool = False) -> Consumer:
    """A FeedManager in *dispatch* mode: ``manual`` is pumped on this thread; any other
    mode runs the callbacks on the manager's own threads.  With *metrics*, its metrics
    endpoint is open throughout."""

    def consume(run: Run) -> None:
        from tradefeed import FeedManager

        n, stamps, every = run.job.trades, run.stamps, run.job.sample_every
        done = threading.Event()
        count = 0
        samples: list[dict[str, float]] = []

        def on_trade(trade: Any) -> None:
            nonlocal count
            count += 1
            if count == n:
                done.set()

        def on_trade_stamped(trade: Any) -> None:
            assert stamps is not None
            stamps.record(trade.trade_id, time.time_ns())
            on_trade(trade)

        look_every, backlog = min(every, BACKLOG_EVERY), 0

        def on_trade_sampled(trade: Any) -> None:
            nonlocal backlog
            on_trade(trade)
            if count % look_every == 0:
                backlog = max(backlog, feed.stats().trades - count)
            if count % every == 0:
                samples.append({**memory_sample(count, run.watch.lap()), "backlog": backlog})
                backlog = 0

        manager = FeedManager(dispatch=dispatch, ping_interval=0)  # type: ignore[arg-type]
        manager.on_trade(on_trade_stamped if stamps is not None else on_trade_sampled if every else on_trade)
        manager.on_error(lambda error: run.error("on_error: %r" % (error,)))
        feed = manager.add_feed("dopp", url=run.job.url)
        if metrics:
            manager.serve_metrics(0)
        run.watch.start()
        manager.start()
        try:
            if dispatch == "manual":
                deadline = time.monotonic() + run.job.timeout
                while count < n and (left := deadline - time.monotonic()) > 0:
                    manager.pump(timeout=left)
            else:
                done.wait(run.job.timeout)
            if count >= n:
                run.watch.stop()
        finally:
            run.count = count
            if every:
                run.extra.update(samples=samples, stats=_counters(feed.stats()))
            if not manager.stop(timeout=10):
                run.error("stop() left threads running after 10 s")

    return consume


def consumer(name: str) -> Consumer:
    """The consumer called *name*.  Only the asyncio consumers import asyncio (it
    would count in the others' peak RSS).

    :raises KeyError: no such consumer.
    """
    if name == "tradefeed-metrics":
        return tradefeed_consumer("thread", metrics=True)
    if name.startswith("tradefeed-"):
        return tradefeed_consumer(name[len("tradefeed-") :])
    if name in ("discard", "floor"):
        return discard if name == "discard" else floor
    from . import aioclients

    asyncio_consumers = {
        "websockets-json": aioclients.websockets_consumer("json"),
        "websockets-orjson": aioclients.websockets_consumer("orjson"),
        "cryptofeed": aioclients.cryptofeed,
    }
    return asyncio_consumers[name]


def label(name: str) -> str:
    """How tables show consumer *name*."""
    if name == "tradefeed-metrics":
        return "tradefeed dispatch=thread + metrics"
    if name.startswith("tradefeed-"):
        return "tradefeed dispatch=%s" % name[len("tradefeed-") :]
    return LABELS.get(name, name)


def tradefeed_dispatch_modes() -> list[str]:
    """The ``dispatch`` values this tradefeed accepts: the ones its signature declares,
    plus ``inline`` if it takes it (a mode may be added before the annotation is)."""
    from tradefeed import ConfigError, FeedManager

    candidates = ["thread", "manual"]
    try:
        declared = typing.get_type_hints(FeedManager.__init__)["dispatch"]
        candidates += [mode for mode in typing.get_args(declared) if isinstance(mode, str)]
    except (KeyError, NameError, TypeError):
        pass  # an annotation that does not evaluate here: rely on trying the names
    candidates.append("inline")
    modes = []
    for mode in dict.fromkeys(candidates):
        try:
            FeedManager(dispatch=mode)  # type: ignore[arg-type]  # constructing starts no thread
        except ConfigError:
            continue
        modes.append(mode)
    return modes


def available() -> list[str]:
    """Every streaming consumer runnable here, in table order (the floor first)."""
    names = ["discard", "floor"] + ["tradefeed-%s" % mode for mode in tradefeed_dispatch_modes()]
    if importlib.util.find_spec("prometheus_client"):
        names.append("tradefeed-metrics")
    names.append("websockets-json")
    if importlib.util.find_spec("orjson"):
        names.append("websockets-orjson")
    if importlib.util.find_spec("cryptofeed") and importlib.util.find_spec("yapic"):
        names.append("cryptofeed")
    return names


def run_job(job: Job) -> dict[str, Any]:
    """Run one streaming job in this process and describe the outcome."""
    run = Run(job, stamps=Stamps(job.trades) if job.stamps_file else None)
    try:
        consumer(job.consumer)(run)
    except Exception as err:  # reported, not raised: the parent goes on with the others
        run.error("%s: %s" % (type(err).__name__, err))
    result: dict[str, Any] = {
        "consumer": job.consumer,
        "counted": run.count,
        "complete": run.watch.stopped,
        "elapsed_s": run.watch.elapsed,
        "cpu_s": run.watch.cpu,
        "peak_rss_kib": peak_rss_kib(),
        "errors": run.errors,
        "error_count": run.error_count,
        **run.extra,
    }
    if run.stamps is not None and job.stamps_file:
        with open(job.stamps_file, "wb") as out:
            run.stamps.times.tofile(out)
        result["duplicates"] = run.stamps.duplicates
        result["missing"] = run.stamps.missing()
    return result


def main() -> None:
    """Read a :class:`Job` from stdin, run it, print the result as one JSON line."""
    job = Job(**json.load(sys.stdin))
    if job.connections:
        from .idle import run_idle

        raise_fd_limit(job.connections + 64)
        result = run_idle(job)
    else:
        result = run_job(job)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
