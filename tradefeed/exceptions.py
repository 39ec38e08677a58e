"""Every exception tradefeed raises or reports, in one tree.

::

    TradefeedError
    ├── ConfigError (+ValueError)     bad parameters or configuration, raised synchronously
    ├── AuthError                     credentials refused (never retried in a loop)
    ├── CallbackError                 a user callback raised; ``.callback``, ``.item``
    ├── SinkError (.trade)            an output failed, or cannot take one trade
    └── FeedError (.venue, .feed)     something went wrong with one feed
        ├── HandshakeError (.status_code, .retry_after)   the HTTP upgrade was refused
        ├── TransportError            network failure: refused, reset, timed out
        ├── FeedClosedError (.code, .reason)              the venue closed the socket
        ├── StaleFeedError            no data for longer than allowed
        ├── VenueError (.payload)     the venue answered with an error message
        ├── ParseError (+ValueError, .raw)                a frame could not be understood
        └── RetryExhaustedError       reconnect attempts used up; ``__cause__`` is the last error

Rules: context lives in attributes and the cause in ``raise ... from err``; no message
or ``repr`` ever contains a credential.  Errors of the libraries underneath are
translated at the boundary (websocket-client's in the connection: ``connection.py``,
``_connect.py`` and ``_attempt.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TradefeedError",
    "ConfigError",
    "AuthError",
    "CallbackError",
    "SinkError",
    "FeedError",
    "HandshakeError",
    "TransportError",
    "FeedClosedError",
    "StaleFeedError",
    "VenueError",
    "ParseError",
    "RetryExhaustedError",
]

#: how much of a raw frame an error message shows
RAW_PREVIEW_CHARS = 200


def preview(raw: Any, limit: int = RAW_PREVIEW_CHARS) -> str:
    """A one-line, truncated rendering of a raw frame for messages and logs."""
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw[: limit + 1]).decode("utf-8", "replace")
    else:
        text = str(raw)
    if len(text) > limit:
        return text[:limit] + "...(%d chars)" % len(raw)
    return text


class TradefeedError(Exception):
    """Base of every tradefeed exception."""


class ConfigError(TradefeedError, ValueError):
    """A parameter or configuration value is invalid; raised before anything connects.

    A configuration file's problems are all reported in one ConfigError, one per line of
    its message; ``problems`` holds them as ``(path, line, message)`` tuples.
    """

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        problems: "list[tuple[str, int | None, str]] | None" = None,
    ):
        super().__init__(message)
        #: the parameter at fault, relative to the feed (``"symbols[2]"``), if known
        self.param = param
        #: every problem found, as ``(path, line, message)``; empty outside config files
        self.problems = list(problems or [])


class AuthError(TradefeedError):
    """The venue or its token endpoint refused the credentials."""

    def __init__(self, message: str, *, venue: str | None = None, status_code: int | None = None):
        super().__init__(message)
        #: venue registry key, if known
        self.venue = venue
        #: HTTP status of the refusal, if any
        self.status_code = status_code


class CallbackError(TradefeedError):
    """A user callback raised; the original exception is ``__cause__``.

    Delivery goes on: the dispatcher reports this through ``on_error`` and moves on.
    """

    def __init__(self, message: str, *, callback: Any = None, item: Any = None):
        super().__init__(message)
        #: the callback that raised
        self.callback = callback
        #: what it was called with (a Trade, an error, a StatusEvent)
        self.item = item


class SinkError(TradefeedError):
    """An output (file, database, stream) failed to take trades, or refused one trade
    (``.trade``): a trade it cannot store, skipped so that the others go on."""

    def __init__(self, message: str, *, trade: Any = None):
        super().__init__(message)
        #: the trade the sink cannot take (it was skipped), or None
        self.trade = trade


class FeedError(TradefeedError):
    """Something went wrong with one feed; other feeds are not affected."""

    def __init__(self, message: str, *, venue: str | None = None, feed: str | None = None):
        super().__init__(message)
        #: venue registry key
        self.venue = venue
        #: the feed's name (``"dopp-1"``), filled in by the connection
        self.feed = feed


class HandshakeError(FeedError):
    """The server refused the WebSocket upgrade with an HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        venue: str | None = None,
        feed: str | None = None,
    ):
        super().__init__(message, venue=venue, feed=feed)
        #: the HTTP status (429, 401, 503, ...)
        self.status_code = status_code
        #: the server's ``Retry-After``, seconds, if sent
        self.retry_after = retry_after


class TransportError(FeedError):
    """The network failed under the feed: refused, reset, timed out."""


class FeedClosedError(FeedError):
    """The venue closed the WebSocket; ``code``/``reason`` are from its close frame
    (``code`` is 1006 when the connection dropped without one)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reason: str = "",
        venue: str | None = None,
        feed: str | None = None,
    ):
        super().__init__(message, venue=venue, feed=feed)
        #: WebSocket close code
        self.code = code
        #: close reason text
        self.reason = reason


class StaleFeedError(FeedError):
    """A feed or symbol sent no data for longer than allowed."""


class VenueError(FeedError):
    """The venue answered with an error message (e.g. a refused subscription)."""

    def __init__(self, message: str, *, payload: Any = None, venue: str | None = None, feed: str | None = None):
        super().__init__(message, venue=venue, feed=feed)
        #: the venue's error message, parsed
        self.payload = payload


class ParseError(FeedError, ValueError):
    """A frame could not be turned into trades.  The feed goes on; ``raw`` is the frame."""

    def __init__(self, message: str, *, raw: Any = None, venue: str | None = None, feed: str | None = None):
        if raw is not None:
            message = "%s; frame: %s" % (message, preview(raw))
        super().__init__(message, venue=venue, feed=feed)
        #: the frame as received
        self.raw = raw


class RetryExhaustedError(FeedError):
    """The feed gave up reconnecting; ``__cause__`` is the last failure."""
