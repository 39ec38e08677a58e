"""Redis Streams: :class:`RedisSink` writes trades to streams, :class:`RedisTradeReader`
reads them back as :class:`~tradefeed.models.Trade` objects through a consumer group.

This module owns the stream entry format (:func:`encode_trade`, :func:`decode_trade`):
the ``Trade.to_dict()`` values as strings, ``None`` fields left out, ``raw`` as JSON whose
Decimals are JSON numbers with every digit (read back as Decimal), so a trade survives
the trip exactly.  redis-py is imported only when a sink or reader is built (extra
``redis``); nothing here runs at import time, and no other module imports redis.

Idempotence: each trade is added by one Lua script that skips it when its
de-duplication key (stream, venue, symbol, trade id) exists, else XADDs it and sets the
key with a TTL, atomically.  A batch is one pipelined round trip, so a retried batch, a
reconnect or a restarted process adds no entry twice (within ``dedup_ttl``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import string
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ConfigError, SinkError
from ..models import Liquidity, Side, Trade, decimal_text
from . import Sink

__all__ = ["RedisSink", "RedisTradeReader", "RedisEntry", "encode_trade", "decode_trade"]

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
_URL_SCHEMES = ("redis", "rediss", "unix")
_DECIMALS = ("price", "amount", "fee")
_INTS = ("timestamp_ms", "received_ns", "sequence")
_FIELDS = frozenset(Trade.__struct_fields__)


def _redis() -> Any:
    """The redis package, or a ConfigError saying how to install it."""
    try:
        import redis
    except ImportError as err:
        raise ConfigError("the Redis sink and reader need redis-py: pip install 'tradefeed[redis]'") from err
    return redis


def _client(url: str, retries: int = 1, **options: Any) -> Any:
    """A redis-py client for *url*.  It retries a broken connection *retries* times, at
    once (a server restart leaves stale sockets in the pool); real backoff is the caller's."""
    redis = _redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # RESP2: the reply shapes this module reads are the same in every redis-py >= 5
    return redis.Redis.from_url(url, protocol=2, retry=Retry(NoBackoff(), retries), **options)


def _by_stream(reply: Any) -> list[tuple[str, list[Any]]]:
    """XREADGROUP's reply as ``(stream, entries)`` pairs (a RESP3 map, should a URL ask
    for that protocol, holds each stream's entries in one more list)."""
    if not reply:
        return []
    if isinstance(reply, Mapping):
        return [(k, v[0] if len(v) == 1 and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(stream, entries) for stream, entries in reply]


def _check_url(url: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in _URL_SCHEMES:
        raise ConfigError("Redis URL must start with redis://, rediss:// or unix://")
    return url


def _safe_url(url: str) -> str:
    """*url* without its password, for names and messages."""
    parts = urlsplit(url)
    query = "&".join(
        "password=***" if item.split("=", 1)[0].lower() == "password" else item for item in parts.query.split("&")
    ) if parts.query else parts.query
    parts = parts._replace(query=query)
    if parts.password is None:
        return urlunsplit(parts)
    netloc = "%s:***@%s" % (parts.username or "", parts.hostname or "")
    if parts.port:
        netloc += ":%d" % parts.port
    return urlunsplit(parts._replace(netloc=netloc))


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
        _redis()
        self.url = _check_url(url)
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
        self.name = name or "redis:%s" % _safe_url(url)
        #: entries added by this instance
        self.added = 0
        #: trades skipped because their stream already had them
        self.duplicates = 0
        self._templated = bool(placeholders)
        self._client: Any = None
        self._sha: str | None = None
        self._aborted = threading.Event()

    def __repr__(self) -> str:
        return "RedisSink(%r, stream=%r)" % (_safe_url(self.url), self.stream)

    def stream_for(self, trade: Trade) -> str:
        """The stream *trade* goes to."""
        return self.stream.format(venue=trade.venue, symbol=trade.symbol) if self._templated else self.stream

    def open(self) -> None:
        self.close()  # a failed open() is called again
        self._aborted.clear()
        # no retry inside redis-py: write() retries a stale connection itself, unless aborted
        self._client = _client(self.url, 0, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        self._sha = self._client.script_load(_ADD_ONCE)

    def write(self, trades: Sequence[Trade]) -> None:
        if not trades:
            return
        redis = _redis()
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


@dataclass(frozen=True)
class RedisEntry:
    """One trade read by :class:`RedisTradeReader`; call :meth:`ack` once it is processed."""

    #: the stream it came from
    stream: str
    #: its stream entry id (``"1767225600123-0"``)
    entry_id: str
    trade: Trade
    #: True when it was delivered before (to this consumer before a restart, or claimed
    #: from a consumer that held it too long): its processing may have begun already
    redelivered: bool = False
    _reader: "RedisTradeReader | None" = field(default=None, repr=False, compare=False)

    def ack(self) -> None:
        """Acknowledge this entry (XACK): the group will not deliver it again."""
        if self._reader is None:
            raise ValueError("this entry was not read by a RedisTradeReader")
        self._reader.ack([self])


class RedisTradeReader:
    """Reads trades from Redis streams as one consumer of a consumer group, so several
    processes (on several machines) share the load: each entry goes to one consumer.

    A downstream service::

        import socket
        from tradefeed.sinks.redis import RedisTradeReader

        with RedisTradeReader("redis://cache:6379/0", ["tradefeed:dopp:*"],
                              group="vwap", consumer=socket.gethostname()) as reader:
            for entry in reader:            # blocks; reader.close() ends the loop
                update_vwap(entry.trade)    # exact Decimals, as the venue sent them
                entry.ack()                 # unacknowledged entries are redelivered

    The group is created where missing (on new streams too: patterns are looked up
    again every *rescan_interval*), starting at the stream's first entry.  A consumer
    first re-reads what it was given before and never acknowledged (its previous life,
    same *consumer* name), then new entries.  Every ``claim_idle_ms / 2`` (at most 10
    s) it takes over entries another consumer has held unacknowledged longer than
    *claim_idle_ms* (XAUTOCLAIM), i.e. the work of a crashed consumer; process and
    acknowledge within that time, or the entry goes to someone else as well.  Entries
    that are not trades are logged, acknowledged and counted in ``malformed``.

    Needs Redis 6.2 or newer (XAUTOCLAIM).  One thread iterates; :meth:`close` (and :meth:`ack`) may be called from any thread.

    :param url: as for :class:`RedisSink`.
    :param streams: stream names, or glob patterns (``tradefeed:dopp:*``).
    :param group: consumer group name; consumers of one group share the entries.
    :param consumer: this consumer's name, unique in the group and stable across restarts.
    :param block_ms: milliseconds one read waits for new entries.
    :param count: most entries per stream per read.
    :param claim_idle_ms: milliseconds after which another consumer's unacknowledged
        entry is taken over; None never claims.
    :param rescan_interval: seconds between looks for new streams matching patterns.
    :param timeout: seconds to wait for a connection or a reply (beyond *block_ms*).
    :raises ConfigError: a bad parameter, or redis-py is not installed.
    :raises SinkError: Redis failed (``__cause__`` is redis-py's error); from here and
        from reading.
    """

    def __init__(
        self,
        url: str,
        streams: str | Iterable[str],
        group: str,
        consumer: str,
        *,
        block_ms: int = 1000,
        count: int = 100,
        claim_idle_ms: int | None = 30000,
        rescan_interval: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        _redis()
        _check_url(url)
        names = [streams] if isinstance(streams, str) else list(streams)
        if not names or not all(isinstance(s, str) and s for s in names):
            raise ConfigError("streams must be one or more stream names or patterns")
        for label, text in (("group", group), ("consumer", consumer)):
            if not isinstance(text, str) or not text:
                raise ConfigError("%s must be a non-empty string" % label)
        for label, number in (("block_ms", block_ms), ("count", count), ("claim_idle_ms", claim_idle_ms)):
            if number is None and label == "claim_idle_ms":
                continue
            if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
                raise ConfigError("%s must be a positive int, not %r" % (label, number))
        self.group = group
        self.consumer = consumer
        self.block_ms = block_ms
        self.count = count
        self.claim_idle_ms = claim_idle_ms
        self.rescan_interval = rescan_interval
        #: entries that were not trades (logged and acknowledged)
        self.malformed = 0
        self._names = [s for s in names if not any(c in s for c in "*?[")]
        self._patterns = [s for s in names if s not in self._names]
        self._streams: list[str] = []  # joined, in order
        self._history: dict[str, str] = {}  # stream -> last id re-read from our own pending list
        self._claim_from: dict[str, str] = {}  # stream -> XAUTOCLAIM cursor
        self._claim_interval = None if claim_idle_ms is None else min(max(claim_idle_ms / 2000, 0.01), 10.0)
        self._next_claim = 0.0
        self._next_scan = 0.0
        self._closed = threading.Event()
        self._io = threading.Lock()  # one exchange with Redis at a time (close() included)
        self._client = _client(url, decode_responses=True, socket_timeout=block_ms / 1000 + timeout, socket_connect_timeout=timeout)
        with self._using("joining the group"):
            self._join(time.monotonic())

    def __enter__(self) -> "RedisTradeReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def streams(self) -> list[str]:
        """The streams read so far (patterns resolved)."""
        return list(self._streams)

    def __iter__(self) -> Iterator[RedisEntry]:
        """Entries, one by one, until :meth:`close`."""
        while not self._closed.is_set():
            for entry in self.read():
                if self._closed.is_set():
                    return  # unacknowledged: redelivered to us on restart, or claimed
                yield entry

    def read(self) -> list[RedisEntry]:
        """One batch: claimed entries, else our own earlier ones, else new entries,
        waiting up to *block_ms* for them; an empty list when nothing came (or closed)."""
        with self._using("reading"):
            if self._closed.is_set():
                return []
            try:
                return self._read()
            except _redis().exceptions.ResponseError as err:
                if not str(err).startswith("NOGROUP"):
                    raise
                log.warning("a stream or its group was deleted (%s); joining again", err)
                self._streams.clear()
                self._history.clear()
                self._claim_from.clear()
                self._join(time.monotonic())
                return []

    def ack(self, entries: Iterable[RedisEntry | tuple[str, str]]) -> int:
        """Acknowledge *entries* (or ``(stream, entry_id)`` pairs); returns how many were
        still pending."""
        pairs = [(e.stream, e.entry_id) if isinstance(e, RedisEntry) else e for e in entries]
        if not pairs:
            return 0
        with self._using("acknowledging"):
            return self._ack(pairs)

    def close(self) -> None:
        """Stop: iteration ends and the connection closes.  Safe from any thread; waits
        for a read in progress (at most *block_ms*).  Idempotent; :meth:`ack` still works
        afterwards (it connects for the call)."""
        self._closed.set()
        with self._io:
            self._client.close()

    # -- internals ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _using(self, doing: str) -> Iterator[None]:
        """One exchange with Redis: never at the same time as :meth:`close` (which would
        pull the socket from under it), redis-py errors translated to SinkError, and the
        connection dropped afterwards if the reader was closed meanwhile."""
        with self._io:
            try:
                yield
            except _redis().exceptions.RedisError as err:
                raise SinkError("Redis reader %s/%s failed %s: %s" % (self.group, self.consumer, doing, err)) from err
            finally:
                if self._closed.is_set():
                    self._client.close()

    def _ack(self, pairs: Iterable[tuple[str, str]]) -> int:
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in pairs:
            by_stream.setdefault(stream, []).append(entry_id)
        pipe = self._client.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        return sum(pipe.execute())

    def _join(self, now: float) -> None:
        """Create the group on streams not joined yet (patterns looked up again)."""
        redis = _redis()
        found = list(self._names)
        for pattern in self._patterns:
            found.extend(sorted(set(self._client.scan_iter(match=pattern, count=1000, _type="stream"))))
        self._next_scan = now + self.rescan_interval
        for stream in found:
            if stream in self._streams:
                continue
            try:
                self._client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as err:
                if not str(err).startswith("BUSYGROUP"):
                    raise
            self._streams.append(stream)
            self._history[stream] = "0"
            self._claim_from[stream] = "0-0"

    def _read(self) -> list[RedisEntry]:
        now = time.monotonic()
        if self._patterns and now >= self._next_scan:
            self._join(now)
        if self._claim_interval is not None and now >= self._next_claim:
            entries = self._claim()
            if entries:
                return entries
        if self._history:
            reply = self._client.xreadgroup(self.group, self.consumer, dict(self._history), count=self.count)
            entries = self._entries(reply, redelivered=True)
            got = dict(_by_stream(reply))
            for stream in list(self._history):
                if got.get(stream):
                    self._history[stream] = got[stream][-1][0]
                else:
                    del self._history[stream]  # all of our earlier entries seen
            return entries
        if not self._streams:
            self._closed.wait(self.block_ms / 1000)
            return []
        reply = self._client.xreadgroup(
            self.group, self.consumer, {s: ">" for s in self._streams}, count=self.count, block=self.block_ms
        )
        return self._entries(reply, redelivered=False)

    def _claim(self) -> list[RedisEntry]:
        """Take over entries idle longer than claim_idle_ms, at most *count* per stream."""
        entries: list[RedisEntry] = []
        again = False
        for stream in self._streams:
            reply = self._client.xautoclaim(
                stream, self.group, self.consumer, self.claim_idle_ms, start_id=self._claim_from[stream], count=self.count
            )
            self._claim_from[stream] = reply[0]
            again = again or reply[0] != "0-0"  # more to look at: come back at once
            entries.extend(self._entries([(stream, reply[1])], redelivered=True))
        if entries:
            log.info("%s claimed %d idle entries", self.consumer, len(entries))
        if not again:
            self._next_claim = time.monotonic() + (self._claim_interval or 0)
        return entries

    def _entries(self, reply: Any, *, redelivered: bool) -> list[RedisEntry]:
        entries: list[RedisEntry] = []
        bad: list[tuple[str, str]] = []
        for stream, messages in _by_stream(reply):
            for entry_id, fields in messages:
                if entry_id is None:
                    continue
                if not fields:  # trimmed (MAXLEN) before anyone acknowledged it
                    log.warning("entry %s of %s was trimmed before it was processed", entry_id, stream)
                    bad.append((stream, entry_id))
                    continue
                try:
                    trade = decode_trade(fields)
                except (KeyError, ValueError, ArithmeticError, TypeError) as err:
                    log.error("entry %s of %s is not a trade (%s: %s); acknowledged, skipped", entry_id, stream, type(err).__name__, err)
                    self.malformed += 1
                    bad.append((stream, entry_id))
                    continue
                entries.append(RedisEntry(stream, entry_id, trade, redelivered, self))
        if bad:
            self._ack(bad)
        return entries
