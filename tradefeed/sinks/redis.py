"""Redis Streams: :class:`RedisSink` writes trades to streams, :class:`RedisTradeReader`
reads them back as :class:`~tradefeed.models.Trade` objects through a consumer group.

This module owns the sink.  The stream entry format (:func:`encode_trade`,
:func:`decode_trade`: the ``Trade.to_dict()`` values as strings, ``None`` fields left out,
``raw`` as JSON whose Decimals are JSON numbers with every digit, read back as Decimal, so
a trade survives the trip exactly) is ``_redis_format.py``'s and the reader is
``_redis_reader.py``'s; their public names are imported from here.  redis-py is imported
only when a sink or reader is built (extra ``redis``), by ``_redis_client.py`` and no
other module; nothing runs at import time.

Idempotence: each trade is added by one Lua script that skips it when its
de-duplication key (stream, venue, symbol, trade id) exists, else XADDs it and sets the
key with a TTL, atomically.  A batch is one pipelined round trip, so a retried batch, a
reconnect or a restarted process adds no entry twice (within ``dedup_ttl``).
"""

from __future__ import annotations

import json
import logging
import string
import threading
from typing import Any, Sequence

from .._public import document_in
from ..exceptions import ConfigError
from ..models import Trade
from . import Sink
from ._redis_client import check_url, import_redis, make_client, safe_url
from ._redis_format import decode_trade, encode_trade
from ._redis_reader import RedisEntry, RedisTradeReader

__all__ = ["RedisSink", "RedisTradeReader", "RedisEntry", "encode_trade", "decode_trade"]

# documented here: their reprs, tracebacks and pickles name this module
document_in(__name__, RedisEntry, RedisTradeReader)

log = logging.getLogger(__name__)

#: KEYS: dedup key, stream; ARGV: ttl (ms), maxlen ('' for none), field, value, ...
#: XADD comes before SET: if XADD fails the key is not set, so the retry adds the trade.
_ADD_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local id
if ARGV[2] == '' then
  id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return id
"""


class RedisSink(Sink):
    """Adds every trade to a Redis stream (XADD, ``MAXLEN ~`` trimming), at most once.

    >>> manager.add_sink(RedisSink("redis://cache:6379/0", maxlen=100_000))   # doctest: +SKIP

    Entries (see :func:`encode_trade`) go to the stream named by *stream*, one per
    venue and symbol by default.  A trade whose ``(venue, symbol, trade_id)`` is already
    in that stream is skipped, so the runner's retries and a restarted process add
    nothing twice; the marker key ``<stream>:seen:["venue","stream","symbol","id"]`` (the trade's ``stream``, so a
    Rails match on the public tape and among the account's fills are both kept) lives
    *dedup_ttl* seconds.  The connection is made in :meth:`open`, on the sink's writer
    thread; any Redis failure raises from :meth:`write`, and the runner keeps and retries
    the batch.  A server that stops answering makes a write wait up to *timeout*;
    :meth:`abort` (at ``stop()``'s deadline) ends that wait at once.

    :param url: ``redis://[:password@]host:port/db``, ``rediss://...`` or
        ``unix:///path/redis.sock?db=0``.
    :param stream: stream name; ``{venue}`` and ``{symbol}`` are replaced per trade.
        A name without them puts every trade in one stream.
    :param maxlen: approximate upper bound on each stream's length (``MAXLEN ~``);
        None keeps everything.
    :param dedup_ttl: seconds a trade id is remembered (float allowed).
    :param timeout: seconds to wait for a connection or a reply.
    :param name: the sink's name in stats and errors (default ``redis:<url>``,
        password hidden).
    :raises ConfigError: a bad parameter, or redis-py is not installed.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        stream: str = "tradefeed:{venue}:{symbol}",
        maxlen: int | None = 1_000_000,
        dedup_ttl: float = 86400,
        timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        import_redis()
        self.url = check_url(url)
        try:
            placeholders = {f for _, f, _, _ in string.Formatter().parse(stream) if f is not None}
        except ValueError as err:
            raise ConfigError("bad Redis stream template %r: %s" % (stream, err)) from err
        if not stream or not placeholders <= {"venue", "symbol"}:
            raise ConfigError("Redis stream template may use only {venue} and {symbol}, not %r" % (stream,))
        if maxlen is not None and (not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen <= 0):
            raise ConfigError("maxlen must be a positive int or None, not %r" % (maxlen,))
        if not isinstance(dedup_ttl, (int, float)) or isinstance(dedup_ttl, bool) or dedup_ttl * 1000 < 1:
            raise ConfigError("dedup_ttl must be a positive number of seconds, not %r" % (dedup_ttl,))
        #: stream name template
        self.stream = stream
        self.maxlen = maxlen
        self.dedup_ttl = dedup_ttl
        self.timeout = timeout
        self.name = name or "redis:%s" % safe_url(url)
        #: entries added by this instance
        self.added = 0
        #: trades skipped because their stream already had them
        self.duplicates = 0
        self._templated = bool(placeholders)
        self._client: Any = None
        self._sha: str | None = None
        self._aborted = threading.Event()

    def __repr__(self) -> str:
        return "RedisSink(%r, stream=%r)" % (safe_url(self.url), self.stream)

    def stream_for(self, trade: Trade) -> str:
        """The stream *trade* goes to."""
        return self.stream.format(venue=trade.venue, symbol=trade.symbol) if self._templated else self.stream

    def open(self) -> None:
        self.close()  # a failed open() is called again
        self._aborted.clear()
        # no retry inside redis-py: write() retries a stale connection itself, unless aborted
        self._client = make_client(self.url, 0, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        self._sha = self._client.script_load(_ADD_ONCE)

    def write(self, trades: Sequence[Trade]) -> None:
        if not trades:
            return
        redis = import_redis()
        if self._client is None:
            self.open()
        try:
            results = self._add(trades)
        except redis.exceptions.NoScriptError:  # the server restarted and lost its script cache
            self._sha = self._client.script_load(_ADD_ONCE)
            results = self._add(trades)  # idempotent: whatever went in is skipped now
        except redis.exceptions.ConnectionError:
            if self._aborted.is_set():
                raise
            # a server restart leaves stale sockets in the pool: once more, at once
            # (idempotent); a timeout is not retried here, it would only wait again
            results = self._add(trades)
        added = sum(1 for r in results if r is not None)
        self.added += added
        self.duplicates += len(results) - added

    def _add(self, trades: Sequence[Trade]) -> list[Any]:
        ttl_ms = str(max(1, int(self.dedup_ttl * 1000)))
        maxlen = "" if self.maxlen is None else str(self.maxlen)
        pipe = self._client.pipeline(transaction=False)
        for trade in trades:
            stream = self.stream_for(trade)
            key = "%s:seen:%s" % (
                stream,
                json.dumps(
                    [trade.venue, trade.stream, trade.symbol, trade.trade_id],
                    separators=(",", ":"),
                    ensure_ascii=False,
                ),
            )
            args = [ttl_ms, maxlen]
            for item in encode_trade(trade).items():
                args.extend(item)
            pipe.evalsha(self._sha, 2, key, stream, *args)
        return list(pipe.execute())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def abort(self) -> None:
        """Cut the connections (any thread): a write waiting for a server that stopped
        answering fails at once, and is not retried."""
        self._aborted.set()
        client = self._client
        if client is not None:
            try:
                client.connection_pool.disconnect()
            except Exception:  # noqa: BLE001 - best effort, from another thread
                log.debug("redis sink %s: disconnect on abort failed", self.name, exc_info=True)
