"""A recording served as a venue (``tradefeed sim --replay FILE``).

This module owns :class:`ReplayVenue`, which sends the recorded frames of one feed,
in order, to every client that connects (at any path), and :func:`load` /
:func:`replay_venues`, which read a recording made by ``tradefeed record``.  The
format is defined by ``tradefeed.recording``; it is read here again, in a few lines,
because the simulator must not import the client (it is the client's peer): keep
:data:`FORMAT` and :data:`VERSION` in step with it.  Nothing venue-specific goes here:
the frames are sent as recorded, whatever the venue.

::

    from tradefeed.simulator import Simulator
    from tradefeed.simulator.replay import replay_venues

    venues = replay_venues("session.jsonl", speed=None)        # feed name -> ReplayVenue
    with Simulator(venues=[], custom_venues=venues) as sim:
        sim.url("dopp-1")          # "ws://127.0.0.1:<port>": any path serves the feed
        sim.feed_params("dopp-1")  # {"url": ..., **the recorded parameters}

Not registered in :data:`tradefeed.simulator.VENUES`: ``Simulator()`` serves what it
always did.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ._base import SimConnection, Venue

__all__ = ["FORMAT", "VERSION", "RecordedFeed", "ReplayVenue", "load", "replay_venues"]

logger = logging.getLogger(__name__)

#: the header's ``format`` value (as in ``tradefeed.recording``)
FORMAT = "tradefeed-recording"
#: the newest format version this reader understands (2 adds subscription lines,
#: which say nothing about what the venue sent: skipped)
VERSION = 2


@dataclass(frozen=True)
class RecordedFeed:
    """The frames of one feed of a recording."""

    #: the client's feed name (``"dopp-1"``)
    name: str
    #: the client's venue (``"dopp"``)
    venue: str
    #: the venue parameters of its first connection
    params: dict[str, Any] = field(default_factory=dict)
    #: ``(receive time in epoch ns, frame)``, in order: text as ``str``, binary as ``bytes``
    frames: tuple[tuple[int, str | bytes], ...] = ()


def load(path: str | os.PathLike[str]) -> dict[str, RecordedFeed]:
    """Every feed of a recording, by feed name, in order of appearance.

    Frames of every connection of a feed are kept, in order; ``tick`` lines are
    skipped (they matter to the client's adapter, not to the wire).

    :raises ValueError: ``path:line: problem`` for the first line that is not a
        recording's (the header, JSON, a field's type, an unknown encoding).
    :raises OSError: the file cannot be read.
    """
    name = str(path)
    venues: dict[str, str] = {}
    params: dict[str, dict[str, Any]] = {}
    frames: dict[str, list[tuple[int, str | bytes]]] = {}
    with open(path, encoding="utf-8") as stream:
        for number, text in enumerate(stream, 1):
            if number > 1 and not text.strip():
                continue
            try:
                doc = json.loads(text)
            except ValueError as err:
                raise ValueError(f"{name}:{number}: not valid JSON: {err}") from None
            if type(doc) is not dict:
                raise ValueError(f"{name}:{number}: a line must be a JSON object")
            if number == 1:
                _check_header(name, doc)
                continue
            _read_line(name, number, doc, venues, params, frames)
    if not venues:
        raise ValueError(f"{name}:1: the recording holds no feed")
    return {
        feed: RecordedFeed(feed, venues[feed], params[feed], tuple(frames.get(feed, ()))) for feed in venues
    }


def _check_header(name: str, doc: dict[str, Any]) -> None:
    if doc.get("format") != FORMAT:
        raise ValueError(f"{name}:1: not a tradefeed recording (no {FORMAT!r} header)")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(f"{name}:1: format version {version!r} is not one this simulator reads (1..{VERSION})")


def _read_line(
    name: str,
    number: int,
    doc: dict[str, Any],
    venues: dict[str, str],
    params: dict[str, dict[str, Any]],
    frames: dict[str, list[tuple[int, str | bytes]]],
) -> None:
    kind, feed, venue, t_ns = doc.get("kind"), doc.get("feed"), doc.get("venue"), doc.get("t_ns")
    if not isinstance(feed, str) or not feed or not isinstance(venue, str) or not venue:
        raise ValueError(f"{name}:{number}: feed and venue must be non-empty strings")
    if isinstance(t_ns, bool) or not isinstance(t_ns, int):
        raise ValueError(f"{name}:{number}: t_ns must be a whole number, not {t_ns!r}")
    if kind == "feed":
        if type(doc.get("params")) is not dict:
            raise ValueError(f"{name}:{number}: params must be an object")
        venues.setdefault(feed, venue)
        params.setdefault(feed, doc["params"])
    elif kind == "frame":
        if feed not in venues:
            raise ValueError(f"{name}:{number}: a frame of feed {feed!r} before its feed line")
        frame, encoding = doc.get("frame"), doc.get("encoding")
        if not isinstance(frame, str):
            raise ValueError(f"{name}:{number}: frame must be a string")
        data: str | bytes = frame  # "utf-8": text on the wire, handed over as bytes by the client
        if encoding == "base64":
            try:
                data = base64.b64decode(frame, validate=True)
            except binascii.Error as err:
                raise ValueError(f"{name}:{number}: frame is not valid base64: {err}") from None
        elif encoding not in (None, "utf-8"):
            raise ValueError(f"{name}:{number}: unknown encoding {encoding!r}")
        frames.setdefault(feed, []).append((t_ns, data))
    elif kind not in ("tick", "subscription"):
        raise ValueError(f"{name}:{number}: unknown kind {kind!r}; expected feed, frame, tick or subscription")


class _AnyPath(frozenset[str]):
    """Contains every path: the simulator's 404 check lets every request through."""

    def __contains__(self, item: object) -> bool:
        return True


class ReplayVenue(Venue):
    """Sends one recorded feed to every client, from its first frame, at any path.

    Frames go out in the recorded order, paced by their receive times (divided by
    *speed*) or back to back (``speed=None``, still waiting for the socket to take
    each one).  Whatever the client sends is read and ignored: the recording already
    holds the venue's answers (subscription acks, snapshots).  After the last frame
    the connection stays open, quiet, until the client or the simulator closes it.
    :meth:`emit` sends nothing (the tape is the recording) and :meth:`inject` reaches
    no replay connection. Faults: a stalled connection skips the frames due while it
    is stalled; muted protocol pings, drops, closes and refused handshakes work as
    for any venue; trade faults (:meth:`fault`) are not supported.

    :param feed: what to send (see :func:`load`).
    :param speed: 1.0: the recorded pace; 2.0: twice as fast; None: as fast as possible.
    """

    name: ClassVar[str] = "replay"
    paths: ClassVar[frozenset[str]] = _AnyPath()
    #: a reconnecting client gets the recording again, however often it comes
    connect_limit: ClassVar[bool] = False

    def __init__(self, feed: RecordedFeed, *, speed: float | None = 1.0) -> None:
        super().__init__(rate=0, history=0)
        if speed is not None and (
            isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed < math.inf
        ):
            raise ValueError(f"speed must be a number > 0 or None, not {speed!r}")
        #: the recorded feed served
        self.feed = feed
        self.speed = speed

    @property
    def recorded_venue(self) -> str:
        """The client venue the recording came from (the adapter to connect with)."""
        return self.feed.venue

    def demo_params(self) -> dict[str, Any]:
        """The recorded parameters: with the URL, what the client's ``add_feed`` needs."""
        return dict(self.feed.params)

    def select_subprotocol(self, connection: ServerConnection, offered: Sequence[str]) -> str | None:
        """Accept the client's first subprotocol (a Rails token, say), unchecked."""
        return offered[0] if offered else None

    def generate(self, count: int) -> list[dict[str, Any]]:
        return []

    async def handler(self, connection: ServerConnection) -> None:
        """Send the frames, then idle until the connection closes. Loop thread."""
        reader = asyncio.create_task(self._ignore_input(connection))
        try:
            await self._play(connection)
            await connection.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()

    async def _play(self, connection: ServerConnection) -> None:
        frames = self.feed.frames
        if not frames:
            return
        loop = asyncio.get_running_loop()
        start, first_ns = loop.time(), frames[0][0]
        for t_ns, frame in frames:
            if self.speed is not None:
                delay = start + (t_ns - first_ns) / 1e9 / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if isinstance(connection, SimConnection) and connection.faults.stalled:
                connection.faults.dropped += 1  # a stalled replay skips what it would have sent meanwhile
                continue
            await connection.send(frame)
        logger.debug("replay %s: sent %d frames to %s", self.feed.name, len(frames), connection.remote_address)

    @staticmethod
    async def _ignore_input(connection: ServerConnection) -> None:
        try:
            async for _ in connection:  # reading keeps pings and the close handshake flowing
                pass
        except ConnectionClosed:
            pass


def replay_venues(
    path: str | os.PathLike[str], *, speed: float | None = 1.0, feeds: Collection[str] | None = None
) -> dict[str, ReplayVenue]:
    """A :class:`ReplayVenue` per feed of a recording, by feed name, for
    ``Simulator(custom_venues=...)``.

    :param feeds: only these feed names.
    :raises ValueError: a bad recording (see :func:`load`), or a name in *feeds* that
        it does not hold.
    """
    recorded = load(path)
    if feeds is not None:
        missing = sorted(set(feeds) - set(recorded))
        if missing:
            raise ValueError(f"{path}: no feed(s) {missing}; it holds {sorted(recorded)}")
    return {name: ReplayVenue(feed, speed=speed) for name, feed in recorded.items() if feeds is None or name in feeds}
