"""Reading trades back from Redis streams through a consumer group:
:class:`RedisTradeReader`, and the :class:`RedisEntry` it yields.

The reader joins the group on every stream it is given (patterns looked up again from
time to time), re-reads what this consumer was given and never acknowledged, then new
entries, and takes over entries a crashed consumer held too long.  Entries are decoded by
:func:`~tradefeed.sinks.redis.decode_trade`.  What must not go here: writing
(:class:`~tradefeed.sinks.redis.RedisSink`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..exceptions import ConfigError, SinkError
from ..models import Trade
from ._redis_client import check_url, import_redis, make_client
from ._redis_format import decode_trade

__all__ = ["RedisEntry", "RedisTradeReader"]

log = logging.getLogger(__name__)


def _by_stream(reply: Any) -> list[tuple[str, list[Any]]]:
    """XREADGROUP's reply as ``(stream, entries)`` pairs (a RESP3 map, should a URL ask
    for that protocol, holds each stream's entries in one more list)."""
    if not reply:
        return []
    if isinstance(reply, Mapping):
        return [(k, v[0] if len(v) == 1 and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(stream, entries) for stream, entries in reply]


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
        import_redis()
        check_url(url)
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
        self._client = make_client(url, decode_responses=True, socket_timeout=block_ms / 1000 + timeout, socket_connect_timeout=timeout)
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
            except import_redis().exceptions.ResponseError as err:
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
            except import_redis().exceptions.RedisError as err:
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
        redis = import_redis()
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
