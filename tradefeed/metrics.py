"""Operations endpoints of a running manager: Prometheus metrics and a health check.

:meth:`FeedManager.serve_metrics` starts a :class:`MetricsServer`: one HTTP server on
its own daemon thread (``tradefeed-metrics``) answering

- ``/metrics``: every ``tradefeed_*`` family in the Prometheus text format (OpenMetrics
  when the scraper asks for it), built by prometheus_client (extra ``metrics``) from the
  manager's own counters at scrape time (see :mod:`tradefeed._prometheus`);
- ``/healthz``: 200 and a JSON body while the manager is healthy, 503 and the same body
  naming the problems otherwise (the rules are :mod:`tradefeed.health`'s).

What must not go here: work per trade.  The one thing measured on the delivery path is
the :class:`DeliveryHistogram`, observed once per *batch*, from the batch's first
trade, and only while a server is open.  Labels and values are feed names, venue keys
and sink names: never a URL's password, a key or a token.

The server's thread waits on the listening socket and a wake socket with no timeout (an
idle process does not wake up); :meth:`MetricsServer.close` wakes it, and the thread
closes the listening socket as it ends, so the port is free once ``close()`` returns.
Requests are answered on short-lived daemon threads, with a socket timeout, so a stuck
client holds up neither other scrapes nor ``stop()``.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import selectors
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from ._transport import Selector, drain, wake
from .exceptions import ConfigError
from .health import RECONNECT_GRACE, SINK_PENDING_LIMIT, Health, Observed

__all__ = ["MetricsServer", "DeliveryHistogram", "DELIVERY_BUCKETS"]

log = logging.getLogger(__name__)

#: upper bounds (seconds) of the ``tradefeed_delivery_seconds`` buckets: sub-millisecond
#: on a quiet machine, up to seconds behind a slow callback or sink
DELIVERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: seconds a request's socket may stay silent before its thread gives up on it
REQUEST_TIMEOUT = 10.0
#: what the extra is called, for the error without prometheus_client
INSTALL_HINT = 'pip install "tradefeed[metrics]"'


class DeliveryHistogram:
    """Seconds from a batch's first trade being received (``Trade.received_ns``) to the
    start of the batch's delivery to the callbacks, per venue.

    :meth:`observe` runs on the delivery thread (one at a time: the dispatcher thread, or
    the ``pump()`` caller under its lock), lock-free; :meth:`snapshot` runs on a scrape
    thread.  The counts are read in one copy per venue, and the ``+Inf`` bucket is their
    total, so a scrape is always consistent (the sum may miss the latest observation).
    """

    def __init__(self, bounds: Iterable[float] = DELIVERY_BUCKETS) -> None:
        #: the buckets' upper bounds, seconds
        self.bounds = tuple(bounds)
        self._bounds_ns = tuple(round(bound * 1e9) for bound in self.bounds)
        # per venue: a count per bucket (the last one for values above every bound), then
        # the sum in ns; integers throughout, so observe() does no float arithmetic
        self._cells: dict[str, list[int]] = {}
        self._lock = threading.Lock()  # for a new venue's cells, and for snapshot()

    def observe(
        self, venue: str, received_ns: int, _now: Callable[[], int] = time.time_ns, _bucket: Any = bisect.bisect_left
    ) -> None:
        """Count one batch whose first trade was received at *received_ns* (Unix ns)."""
        if received_ns <= 0:  # a trade built by hand, without a receive time
            return
        cells = self._cells.get(venue)
        if cells is None:
            with self._lock:
                cells = self._cells.setdefault(venue, [0] * (len(self._bounds_ns) + 2))
        elapsed = _now() - received_ns
        if elapsed < 0:  # the wall clock stepped back
            elapsed = 0
        cells[_bucket(self._bounds_ns, elapsed)] += 1
        cells[-1] += elapsed

    def snapshot(self) -> list[tuple[str, list[tuple[float, float]], float]]:
        """Per venue: the cumulative ``(upper bound, count)`` pairs, ``+Inf`` last, and the
        sum in seconds."""
        with self._lock:
            venues = [(venue, list(cells)) for venue, cells in self._cells.items()]
        result = []
        for venue, cells in venues:
            cumulative, buckets = 0, []
            for bound, count in zip(self.bounds + (math.inf,), cells[:-1]):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            result.append((venue, buckets, cells[-1] / 1e9))
        return result


def _exporter_class() -> Any:
    """:class:`tradefeed._prometheus.Exporter`, or a ConfigError naming the extra."""
    try:
        from ._prometheus import Exporter
    except ImportError as err:
        if not (err.name or "").startswith("prometheus_client"):
            raise
        raise ConfigError("metrics need prometheus_client: %s" % INSTALL_HINT) from err
    return Exporter


class MetricsServer:
    """``/metrics`` and ``/healthz`` of one manager over HTTP, on a daemon thread.

    Made by :meth:`FeedManager.serve_metrics`, which returns it; the manager's
    ``stop()`` closes it.

    >>> server = manager.serve_metrics(9870)          # doctest: +SKIP
    >>> server.url                                    # doctest: +SKIP
    'http://127.0.0.1:9870'

    :param port: TCP port; 0 lets the OS choose one (then read :attr:`port`).
    :param host: address to bind: loopback by default; ``0.0.0.0`` (or ``::``) exposes
        the endpoints to the network, for a Prometheus on another host.
    :param reconnect_grace: seconds a feed may be disconnected or reconnecting before
        ``/healthz`` reports it.
    :param sink_pending_limit: unwritten trades a sink may hold before ``/healthz``
        reports it.
    :param on_close: called once, on the closing thread, when the server has closed.
    :raises ConfigError: a bad value, the port cannot be bound, or prometheus_client is
        not installed.
    """

    def __init__(
        self,
        manager: Observed,
        port: int,
        host: str = "127.0.0.1",
        *,
        reconnect_grace: float = RECONNECT_GRACE,
        sink_pending_limit: int = SINK_PENDING_LIMIT,
        on_close: Callable[[], Any] | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("metrics port must be a whole number within 0..65535, not %r" % (port,))
        if not isinstance(host, str) or not host:
            raise ConfigError("metrics host must be a non-empty string, not %r" % (host,))
        if isinstance(reconnect_grace, bool) or not isinstance(reconnect_grace, (int, float)) or not 0 <= reconnect_grace < math.inf:
            raise ConfigError("reconnect_grace must be a finite number of seconds >= 0, not %r" % (reconnect_grace,))
        if isinstance(sink_pending_limit, bool) or not isinstance(sink_pending_limit, int) or sink_pending_limit < 0:
            raise ConfigError("sink_pending_limit must be a whole number >= 0, not %r" % (sink_pending_limit,))
        self._manager = manager
        #: seconds a feed may be down before ``/healthz`` reports it
        self.reconnect_grace = float(reconnect_grace)
        #: unwritten trades a sink may hold before ``/healthz`` reports it
        self.sink_pending_limit = sink_pending_limit
        #: the ``tradefeed_delivery_seconds`` histogram (the manager feeds it)
        self.delivery = DeliveryHistogram()
        self._exporter = _exporter_class()(manager, self.delivery)
        self._on_close = on_close
        server_class = _Server6 if ":" in host else _Server
        try:
            self._httpd = server_class((host, port), _Handler)
        except (OSError, OverflowError) as err:
            raise ConfigError("cannot serve metrics on %s port %d: %s" % (host, port, getattr(err, "strerror", None) or err)) from err
        self._httpd.owner = self
        self._httpd.timeout = 0.5  # handle_request()'s own wait, if a ready connection vanished
        #: the address bound
        self.host = host
        #: the port bound (the OS's choice when 0 was asked for)
        self.port: int = self._httpd.server_address[1]
        self._closing = threading.Event()
        self._close_lock = threading.Lock()
        self._closed_once = False
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._thread = threading.Thread(target=self._serve, name="tradefeed-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port`` (add ``/metrics`` or ``/healthz``)."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (host, self.port)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closing.is_set()

    def health(self) -> Health:
        """The verdict ``/healthz`` serves now (see :meth:`FeedManager.health`)."""
        return self._manager.health(reconnect_grace=self.reconnect_grace, sink_pending_limit=self.sink_pending_limit)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The ``/metrics`` body for an ``Accept`` header, and its content type."""
        body, content_type = self._exporter.render(accept)
        return bytes(body), str(content_type)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop serving, free the port and join the thread.  Idempotent; safe from any
        thread.

        :param timeout: seconds to wait for the thread.
        :returns: True if the thread has ended (the port is then free).
        """
        with self._close_lock:
            first = not self._closed_once
            self._closed_once = True
            self._closing.set()
        wake(self._wake_w)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        ended = not self._thread.is_alive()
        if first:
            log.info("metrics server %s closed", self.url)
            if self._on_close is not None:
                self._on_close()
        return ended

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<MetricsServer %s%s>" % (self.url, " closed" if self.closed else "")

    def _serve(self) -> None:
        """Accept requests until closed; each is answered on a thread of its own."""
        listener = self._httpd.socket
        try:
            with Selector() as selector:
                selector.register(listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._closing.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is listener and not self._closing.is_set():
                            self._httpd.handle_request()
                    drain(self._wake_r)
        except Exception:  # noqa: BLE001 - a bug of ours ends the endpoint, loudly, not the process
            log.exception("metrics server %s failed", self.url)
        finally:
            self._httpd.server_close()
            for end in (self._wake_r, self._wake_w):
                end.close()


class _Server(ThreadingHTTPServer):
    """One thread per request, daemon ones: a stuck client never holds up ``close()``."""

    daemon_threads = True
    owner: MetricsServer

    def server_bind(self) -> None:
        # HTTPServer's own also looks up the host's name (socket.getfqdn): a DNS query
        # that can hang for seconds where no resolver answers, for a name nobody reads
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print the traceback to stderr; a library logs it instead
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # a client that hung up or timed out: routine
            log.debug("metrics: request from %s ended: %s", client_address[0], error)
        else:
            log.warning("metrics: request from %s failed", client_address[0], exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "tradefeed"
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        try:
            self._get(urlsplit(self.path).path)
        except OSError:
            raise  # the client went away: handle_error says so
        except Exception:  # noqa: BLE001 - a bug of ours answers 500 and is logged, the server goes on
            log.exception("metrics: answering GET %s failed", self.path)
            self._answer(500, b"internal error; see the process's log\n", "text/plain; charset=utf-8")

    def _get(self, path: str) -> None:
        owner = self.server.owner
        if path == "/metrics":
            body, content_type = owner.render(self.headers.get("Accept", ""))
            self._answer(200, body, content_type)
        elif path == "/healthz":
            health = owner.health()
            text = json.dumps(health.to_dict(), indent=2, sort_keys=True) + "\n"
            self._answer(200 if health.ok else 503, text.encode("utf-8"), "application/json")
        elif path == "/":
            page = "tradefeed: /metrics (Prometheus), /healthz (JSON; 200 or 503)\n"
            self._answer(200, page.encode("ascii"), "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    def _answer(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("metrics: %s %s", self.address_string(), format % args)
