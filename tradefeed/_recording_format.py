"""A recording's format as a reader checks it: the header's :data:`FORMAT` and
:data:`VERSION`, :class:`RecordingError`, and :func:`read`, which yields each line as an
:class:`Entry` once it is checked.

The format itself is described in :mod:`tradefeed.recording`, which writes it
(:class:`~tradefeed.recording.Recorder`) and re-exports every name here.  What must not go
here: writing, or feeding entries to adapters (``_replay.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

from .exceptions import ConfigError

__all__ = ["FORMAT", "VERSION", "Entry", "RecordingError", "read"]

#: the header's ``format`` value
FORMAT = "tradefeed-recording"
#: the format version written; readers accept it and older ones (2: subscription lines)
VERSION = 2
_KINDS = ("feed", "frame", "tick", "subscription")
_ACTIONS = ("subscribe", "unsubscribe")


class RecordingError(ConfigError):
    """A recording file cannot be used: unreadable, not a recording, or a bad line.

    The message reads ``path:line: problem``.
    """

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__("%s:%d: %s" % (path, line, message), problems=[("", line, message)])
        #: the file
        self.path = path
        #: the 1-based line at fault
        self.line = line


@dataclass(frozen=True)
class Entry:
    """One checked line of a recording (after the header)."""

    #: ``"feed"``, ``"frame"``, ``"tick"`` or ``"subscription"``
    kind: str
    #: its line number, from 1
    line: int
    #: receive time of the frame (the event's time for feed and tick lines), epoch ns
    t_ns: int
    feed: str
    venue: str
    #: feed lines: the connection number, from 0
    connection: int | None = None
    #: feed lines: the venue parameters
    params: dict[str, Any] | None = None
    #: frame lines: the frame as received (``str`` or ``bytes``)
    frame: str | bytes | None = None
    #: subscription lines: ``"subscribe"`` or ``"unsubscribe"``
    action: str | None = None
    #: subscription lines: the items
    items: tuple[str, ...] = ()
    #: subscription lines: the connection was open (its on_open requests sent)
    opened: bool = True


def read(path: str | os.PathLike[str]) -> Iterator[Entry]:
    """The entries of a recording, checked line by line as they are read.

    Checks: the header and its version; every line a JSON object of a known kind with
    its fields and types; a feed's frames, ticks and subscription changes after its
    first feed line, with the same venue.  Blank lines are skipped.

    :raises RecordingError: the file cannot be read, or the first line breaking a
        rule (lines before it have been yielded).
    """
    name = str(path)
    try:
        stream = open(path, "rb")
    except OSError as err:
        raise RecordingError(name, 0, "cannot read: %s" % (err.strerror or err)) from err
    venues: dict[str, str] = {}  # feed -> venue, from its feed lines
    number = 0
    with stream:
        for number, raw in enumerate(stream, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise RecordingError(name, number, "not UTF-8: %s" % err) from None
            if number == 1:
                _header(name, text)
            elif text.strip():
                yield _entry(name, number, text, venues)
    if number == 0:
        raise RecordingError(name, 1, "empty file; not a tradefeed recording")


def _header(name: str, text: str) -> None:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise RecordingError(name, 1, "not a tradefeed recording (no %r header)" % FORMAT)
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordingError(name, 1, "the header's version must be a whole number >= 1, not %r" % (version,))
    if version > VERSION:
        raise RecordingError(
            name, 1, "written in format version %d by a newer tradefeed; this one reads up to %d" % (version, VERSION)
        )


def _entry(name: str, number: int, text: str, venues: dict[str, str]) -> Entry:
    def bad(message: str) -> RecordingError:
        return RecordingError(name, number, message)

    try:
        doc = json.loads(text)
    except ValueError as err:
        raise bad("not valid JSON: %s" % err) from None
    if type(doc) is not dict:
        raise bad("a line must be a JSON object")
    kind = doc.get("kind")
    if kind not in _KINDS:
        raise bad("unknown kind %r; expected feed, frame, tick or subscription" % (kind,))
    t_ns = doc.get("t_ns")
    if isinstance(t_ns, bool) or not isinstance(t_ns, int) or t_ns < 0:
        raise bad("t_ns must be a whole number of nanoseconds >= 0, not %r" % (t_ns,))
    feed, venue = doc.get("feed"), doc.get("venue")
    for key, value in (("feed", feed), ("venue", venue)):
        if not isinstance(value, str) or not value:
            raise bad("%s must be a non-empty string, not %r" % (key, value))
    assert isinstance(feed, str) and isinstance(venue, str)
    known = venues.get(feed)
    if known is not None and known != venue:
        raise bad("feed %r is venue %r, not %r" % (feed, known, venue))
    if kind == "feed":
        connection, params = doc.get("connection"), doc.get("params")
        if isinstance(connection, bool) or not isinstance(connection, int) or connection < 0:
            raise bad("connection must be a whole number >= 0, not %r" % (connection,))
        if type(params) is not dict:
            raise bad("params must be an object, not %r" % (params,))
        venues[feed] = venue
        return Entry(kind, number, t_ns, feed, venue, connection=connection, params=params)
    if known is None:
        raise bad("a %s of feed %r before its feed line" % (kind, feed))
    if kind == "tick":
        return Entry(kind, number, t_ns, feed, venue)
    if kind == "subscription":
        action, items, opened, params = doc.get("action"), doc.get("items"), doc.get("opened", True), doc.get("params")
        if action not in _ACTIONS:
            raise bad("action must be subscribe or unsubscribe, not %r" % (action,))
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise bad("items must be a non-empty list of strings, not %r" % (items,))
        if not isinstance(opened, bool):
            raise bad("opened must be true or false, not %r" % (opened,))
        if params is not None and type(params) is not dict:
            raise bad("params must be an object, not %r" % (params,))
        return Entry(kind, number, t_ns, feed, venue, params=params, action=action, items=tuple(items), opened=opened)
    frame, encoding = doc.get("frame"), doc.get("encoding")
    if not isinstance(frame, str):
        raise bad("frame must be a string, not %r" % (frame,))
    data: str | bytes
    try:
        if encoding is None:
            data = frame
        elif encoding == "utf-8":
            data = frame.encode("utf-8")
        elif encoding == "base64":
            data = base64.b64decode(frame, validate=True)
        else:
            raise bad("unknown encoding %r; expected utf-8 or base64" % (encoding,))
    except (UnicodeEncodeError, binascii.Error) as err:
        raise bad("frame is not valid %s: %s" % (encoding, err)) from None
    return Entry(kind, number, t_ns, feed, venue, frame=data)
