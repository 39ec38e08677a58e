"""The contract every venue adapter implements, and the parsing helpers they share.

An adapter is sans-I/O, in the manner of wsproto: it builds the handshake and the
frames to send, and turns received frames into :class:`~tradefeed.models.Trade` values.
It opens no socket, starts no thread, never sleeps, reads no clock (the connection
hands it ``received_ns`` and ``now_ns``) and calls no user code.  That keeps every
venue testable over fixture frames alone.

Lifecycle, driven by ``connection.py``: one *fresh* adapter per connection attempt
(``handshake`` -> ``on_open`` -> ``parse``/``tick`` ... -> ``on_close``), so state that
must survive a reconnect (de-duplication, say) lives in the connection, not here.
The connection serializes every call into an adapter with one lock.
"""

from __future__ import annotations

import calendar
import datetime
import enum
import inspect
import json
import re
from urllib.parse import urlsplit
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException, InvalidOperation
from typing import Any, ClassVar, Collection, Mapping, Sequence

import msgspec

from .._exact import EXACT
from ..exceptions import ConfigError, ParseError, TradefeedError
from ..models import Trade

__all__ = [
    "Adapter",
    "Handshake",
    "Parsed",
    "new_parsed",
    "CloseAction",
    "to_decimal",
    "to_ms",
    "loads",
    "dumps",
    "wad_to_decimal",
    "rfc3339_to_ms",
    "record_error",
    "RECORD_ERRORS",
    "TYPED_ERRORS",
    "exact_decimal",
    "UNSET",
    "NO_DROP",
]


@dataclass(frozen=True)
class Handshake:
    """What the connection needs to open the WebSocket."""

    #: full ``ws://`` or ``wss://`` URL, query included
    url: str
    #: extra HTTP headers for the upgrade request
    headers: Mapping[str, str] = field(default_factory=dict)
    #: values for ``Sec-WebSocket-Protocol``
    subprotocols: Sequence[str] = ()

    def __repr__(self) -> str:  # headers/subprotocols may carry a token: never show them
        return "Handshake(url=%r, headers=[%s], subprotocols=%d)" % (
            self.url,
            ", ".join(self.headers),
            len(self.subprotocols),
        )


class Parsed(msgspec.Struct, frozen=True, gc=False):
    """The result of parsing one frame.

    ``trades`` are in chronological order; ``errors`` are per-record problems found in
    an otherwise usable frame (the good records are still in ``trades``: nothing is lost
    silently); ``replies`` are frames to send back; ``heartbeat`` marks a frame that only
    proves the peer is alive (it does not count as data).
    """

    trades: Sequence[Trade] = ()
    replies: Sequence[str] = ()
    errors: Sequence[TradefeedError] = ()
    heartbeat: bool = False


#: the User-Agent sent to venues that ask for a descriptive one
DEFAULT_USER_AGENT = "tradefeed (+https://pypi.org/project/tradefeed/)"

#: ``new_parsed(trades, replies, errors, heartbeat)``: ``Parsed(...)`` with every field
#: given positionally (the name the adapters' hot paths use)
new_parsed = Parsed

#: a frame that carried nothing of interest
EMPTY = Parsed()


class CloseAction(str, enum.Enum):
    """What the connection should do after the socket closed."""

    #: back off, then connect again
    RECONNECT = "reconnect"
    #: fetch a fresh credential, then connect again
    REFRESH_TOKEN = "refresh_token"
    #: do not retry: the feed ends with the close as its error
    STOP = "stop"


class Adapter:
    """Base class for venue adapters.

    Subclasses set ``venue`` and ``default_url``, validate their parameters in
    ``__init__`` (raising :class:`~tradefeed.exceptions.ConfigError`, before anything
    connects) and implement :meth:`parse`.

    :param params: venue-specific feed parameters, as given to ``FeedManager.add_feed``.
    """

    #: registry key and ``Trade.venue``
    venue: ClassVar[str] = ""
    #: production base URL (scheme and host; the adapter adds path and query)
    default_url: ClassVar[str] = ""
    #: seconds between :meth:`tick` calls, or None when the venue needs no
    #: application heartbeat (an instance may set its own)
    tick_interval: float | None = None
    #: whether :meth:`handshake` takes a bearer token (required unless
    #: :meth:`requires_credentials` says otherwise for a feed's parameters)
    needs_token: ClassVar[bool] = False
    #: whether ``Trade.sequence`` counts every trade of a symbol (a jump is a Gap); an
    #: instance may set its own (Dopp: not with a wallet filter)
    sequenced: bool = False
    #: the keyword parameters ``__init__`` takes (for validation and ``tradefeed venues``)
    params: ClassVar[tuple[str, ...]] = ()
    #: the parameter holding the list that :meth:`subscribe`/:meth:`unsubscribe` change
    #: at run time (``"pairs"``, ``"symbols"``...), or None if the venue cannot
    subscription_param: ClassVar[str | None] = None
    #: feed parameters that are credentials: the manager gives them to a token
    #: provider and never to the adapter, a repr or a log line
    auth_params: ClassVar[tuple[str, ...]] = ()
    #: what ``tradefeed venues`` says of a parameter, where its default does not tell
    #: (a value that depends on another parameter)
    param_notes: ClassVar[Mapping[str, str]] = {}
    #: the production token endpoint, for venues with ``needs_token``
    default_auth_url: ClassVar[str | None] = None
    #: a valid value for each parameter a feed must be given (named in the message when
    #: it is missing; put in place of a wrong one so :meth:`param_problems` can check the
    #: others)
    examples: ClassVar[Mapping[str, Any]] = {}
    #: parameters that choose what the others mean (Synthetix ``stream``): after a wrong
    #: one, :meth:`param_problems` checks no further
    deciding_params: ClassVar[tuple[str, ...]] = ()
    #: the request signer of feeds that sign with a wallet key (the Synthetix user feed);
    #: the connection sets it on each new adapter, the manager holds it, no one else
    signer: Any = None

    @classmethod
    def requires_credentials(cls, params: Mapping[str, Any]) -> bool:
        """Must a feed with these (valid) parameters be given credentials?  Venues whose
        token is optional for some streams (Rails' public tape) say no for those."""
        return cls.needs_token

    @classmethod
    def from_params(cls, **params: Any) -> "Adapter":
        """A new adapter from feed parameters, rejecting unknown names.

        :raises ConfigError: an unknown or missing parameter, or an invalid value
            (``.param`` names the parameter).
        """
        check_params(cls.venue, params, cls.params)
        check_required(cls, params)
        return cls(**params)

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> list[ConfigError]:
        """Every problem of these feed parameters (credentials excluded), where
        :meth:`from_params` stops at the first.  A wrong parameter is left out (it has a
        default) or replaced by its :attr:`examples` value, a missing one is given its
        example, and the rest are checked again, until they pass.  A problem that names
        no single parameter, or one of :attr:`deciding_params`, ends the search.

        :returns: one :class:`ConfigError` per problem (``.param`` set), in the order
            found; empty when the parameters are valid.
        """
        required = set(_required(cls))
        problems: list[ConfigError] = []
        trial = dict(params)
        tries: dict[str, int] = {}
        for _ in range(2 * len(cls.params) + 1):
            try:
                cls.from_params(**trial)
                break
            except ConfigError as err:
                root = re.split(r"[\[.]", err.param, maxsplit=1)[0] if err.param else ""
                if root not in tries:
                    problems.append(err)
                if not root or root in cls.deciding_params or root not in cls.params:
                    break
                if root not in tries and root in trial and root not in required:
                    del trial[root]  # its default
                elif root in cls.examples and trial.get(root) != cls.examples[root]:
                    trial[root] = cls.examples[root]
                else:  # nothing left to stand in for it: the rest cannot be checked
                    break
                tries[root] = tries.get(root, 0) + 1
        return problems

    @classmethod
    def auth_problems(cls, credentials: Mapping[str, Any]) -> list[ConfigError]:
        """The problems of a feed's credentials (:attr:`auth_params`) by their type and
        form alone (whether the feed needs them is :meth:`requires_credentials`'s call):
        a key or secret given must be a non-empty string, ``auth_url`` an http(s) URL.
        Messages never show a credential's value.
        """
        problems = []
        for name in cls.auth_params:
            value = credentials.get(name)
            if value is None:
                continue
            if name == "auth_url":
                if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                    problems.append(
                        ConfigError("%s: auth_url must be an http:// or https:// URL, not %r" % (cls.venue, value), param=name)
                    )
            elif not isinstance(value, str) or not value.strip():
                kind = type(value).__name__
                shown = "an empty string" if isinstance(value, str) else ("an " if kind[0] in "aeiou" else "a ") + kind
                problems.append(
                    ConfigError(
                        "%s: %s must be a non-empty string (in YAML: %s: ${ENV_VAR}), not %s" % (cls.venue, name, name, shown),
                        param=name,
                    )
                )
        return problems

    def handshake(self, base_url: str | None = None, token: str | None = None) -> Handshake:
        """Build the upgrade request.

        :param base_url: overrides ``default_url`` (the simulator, a proxy, a testnet).
        :param token: a bearer token, for venues with ``needs_token``.
        """
        raise NotImplementedError

    def endpoint(self, base_url: str | None, path: str) -> str:
        """*base_url* (default: the production URL) plus the venue's *path*, unless the
        URL already names a path (a proxy or gateway): then it is the whole endpoint."""
        base = (base_url or self.default_url).rstrip("/")
        return base if urlsplit(base).path not in ("", "/") else base + path

    def resume(self, last_seen: Mapping[tuple[Any, str], tuple[int, int | None]]) -> Collection[tuple[Any, str]] | None:
        """Told before :meth:`on_open` what the feed delivered before this connection:
        per ``(stream, symbol)`` the venue time (ms) and sequence of its newest trade.

        :returns: the keys whose continuity across the reconnect the connection should
            check by overlap (a Gap if a key's first trades are all new), or None for
            every key (the default).  A venue whose back-fill proves continuity by other
            means names fewer.
        """
        return None

    def on_open(self, now_ns: int = 0) -> list[str]:
        """Frames to send once the socket is open (subscriptions); none by default.

        :param now_ns: the time (``time.time_ns()``), for venues that sign a timestamp.
        """
        return []

    def parse(self, frame: str | bytes, received_ns: int) -> Parsed:
        """Turn one received frame into trades, replies and per-record errors.

        :param received_ns: local receive time (``time.time_ns()``) stamped on trades.
        :raises ParseError: the frame as a whole could not be understood.
        """
        raise NotImplementedError

    def subscribe(self, items: Sequence[str]) -> list[str]:
        """Add *items* to the subscription; returns the frames that do it on an open
        connection.  The adapter remembers them, so :meth:`on_open` includes them.

        :raises ConfigError: an invalid item, or a venue without run-time subscriptions.
        """
        raise ConfigError("%s subscriptions cannot change at run time" % self.venue)

    def unsubscribe(self, items: Sequence[str]) -> list[str]:
        """Remove *items*; returns the frames that do it.  Trades for removed items
        that are still in flight are dropped by the adapter.

        :raises ConfigError: as for :meth:`subscribe`.
        """
        raise ConfigError("%s subscriptions cannot change at run time" % self.venue)

    def tick(self, now_ns: int) -> list[str]:
        """Frames to send every ``tick_interval`` seconds (application heartbeats)."""
        return []

    def asked_for(self) -> str | None:
        """What this feed asked the venue for (its filter, its market), as
        ``"instrument_name 'BTC-PERPETUAL'"``: named in the message of a refusal that ends
        the feed (a close 1008, an upgrade refused with HTTP 400 or 404), where it is
        most likely the cause.  None (the default): nothing worth naming."""
        return None

    def on_close(self, code: int | None, reason: str) -> CloseAction:
        """Decide what a close means.  Default: 1008 (policy violation) is final, any
        other close (normal, going away, abnormal, server error) is retried."""
        if code == 1008:
            return CloseAction.STOP
        return CloseAction.RECONNECT


# -- parsing helpers shared by venues ---------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError("non-finite number %s" % name)


_STDLIB_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def stdlib_loads(frame: str | bytes) -> Any:
    """The reference decoder: the standard library's, with every float a Decimal made
    from its exact text, and ``NaN``/``Infinity`` refused.

    :raises ValueError: not JSON (``UnicodeDecodeError`` for bytes that are not UTF-8).
    """
    if not isinstance(frame, str):
        frame = bytes(frame).decode("utf-8")
    return _STDLIB_DECODER.decode(frame)


#: the typed paths' ``float_hook``: ``Decimal(text)`` for the text of a JSON number, the
#: same digits and exponent, without ``Decimal()``'s look-up of the thread's context on
#: each call (0.877 -> 0.81 us/trade for a Dopp record's three numbers).  A number no
#: Decimal holds exactly raises a :class:`decimal.DecimalException`, one of
#: :data:`TYPED_ERRORS`: the frame then takes the generic path, which reports it.
exact_decimal = EXACT.create_decimal

_FAST_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # the literal's text, exactly
_FAST_ERROR = msgspec.DecodeError


def fast_loads(frame: Any) -> Any:
    """:func:`stdlib_loads`, by msgspec: the same value for every document.  What
    msgspec refuses (``NaN``, lone surrogates, bad UTF-8...) is handed to the
    reference decoder, which accepts it or raises as it always does."""
    try:
        return _FAST_DECODER.decode(frame)
    except _FAST_ERROR:
        return stdlib_loads(bytes(frame) if type(frame) is msgspec.Raw else frame)


#: the decoder :func:`loads` uses (msgspec, a dependency; the standard library's decoder
#: is the reference a test holds it equal to)
JSON_BACKEND = "msgspec"
_loads = fast_loads


def loads(frame: str | bytes, venue: str) -> Any:
    """``json.loads`` that keeps every number exact (floats as :class:`Decimal`) and
    refuses ``NaN``/``Infinity``; any failure becomes a :class:`ParseError`.

    Decoded by msgspec; the values are the standard library's exactly (a test compares
    both decoders over every venue fixture).
    """
    try:
        return _loads(frame)
    except (ValueError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParseError("invalid JSON: %s" % err, raw=frame, venue=venue) from err
    except DecimalException as err:  # an exponent past Decimal's range: 1e9999999999999999999
        raise ParseError("a number beyond Decimal's range (%s)" % type(err).__name__, raw=frame, venue=venue) from err


def to_decimal(value: Any, name: str) -> Decimal:
    """An exact, finite Decimal from a JSON number (already Decimal/int) or a numeric
    string.

    :raises ValueError: anything else (floats included: they are already inexact).
    """
    kind = type(value)
    result: Decimal
    if kind is Decimal:
        result = value
    elif kind is int:
        return Decimal(value)
    elif kind is str:
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("%s is not a number: %r" % (name, value)) from None
    else:
        raise ValueError("%s must be a number, not %s" % (name, kind.__name__))
    if not result.is_finite():
        raise ValueError("%s is not finite: %r" % (name, value))
    return result


#: timestamps below this are taken as seconds (10^11 ms is March 1973; 10^11 s is year 5138)
SECONDS_BELOW = 10**11


def to_ms(value: Any, name: str = "timestamp") -> int:
    """Unix epoch milliseconds from an int or numeric value in ms, falling back to
    seconds for values below 10^11 (docs/venues rule); sub-ms digits are truncated.

    :raises ValueError: not a non-negative number.
    """
    if type(value) is int:
        number: Decimal | int = value
    else:
        number = to_decimal(value, name)
    if number < 0:
        raise ValueError("%s is negative: %r" % (name, value))
    if number < SECONDS_BELOW:
        number = number * 1000
    return int(number)


def require_str(record: Mapping[str, Any], key: str) -> str:
    """A non-empty string field; ints are accepted and converted (ids)."""
    value = record[key]
    kind = type(value)
    if kind is str:
        if value:
            return str(value)
        raise ValueError("%s is empty" % key)
    if kind is int:
        return str(value)
    raise ValueError("%s must be a string, not %s" % (key, kind.__name__))


#: what a record parser raises for a bad record (a missing key, a bad value or type)
RECORD_ERRORS = (KeyError, ValueError, TypeError, AttributeError)


#: what a typed fast path catches to hand a frame to the generic path instead: a frame
#: msgspec cannot decode into the venue's records, a number ``Decimal`` cannot hold, or a
#: value the mapping refuses
TYPED_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, DecimalException, *RECORD_ERRORS)
#: msgspec's marker of a field the frame did not send
UNSET: Any = msgspec.UNSET
#: a :class:`~tradefeed.models.LazyRaw` whose frame already yields the finished ``raw``
NO_DROP: frozenset[str] = frozenset()


def record_error(venue: str, err: Exception, record: Any) -> ParseError:
    """The ParseError for one bad record of an otherwise usable frame; ``raw`` is the
    record, ``__cause__`` the original error."""
    if isinstance(err, KeyError):
        message = "%s trade without field %s" % (venue, err)
    elif type(record) is not dict:
        message = "%s trade is not an object" % venue
    else:
        message = "bad %s trade: %s" % (venue, err)
    error = ParseError(message, raw=record, venue=venue)
    error.__cause__ = err
    return error


def check_params(venue: str, params: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Raise ConfigError naming any parameter the venue does not take."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            "%s: unknown parameter(s) %s; expected some of %s" % (venue, ", ".join(unknown), ", ".join(allowed)),
            param=unknown[0],
        )


def _required(cls: type[Adapter]) -> list[str]:
    """The parameters of ``cls.__init__`` without a default."""
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
    ]


def check_required(cls: type[Adapter], params: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first parameter *cls* needs that *params* lacks,
    with an example value (where Python would raise a bare ``TypeError``)."""
    for name in _required(cls):
        if name not in params:
            example = cls.examples.get(name)
            hint = " (e.g. %s=%r)" % (name, example) if example is not None else ""
            raise ConfigError("%s: missing parameter %s%s; see tradefeed venues" % (cls.venue, name, hint), param=name)


def wad_to_decimal(value: Any, name: str) -> Decimal:
    """An 18-decimal fixed-point integer string (WAD) as an exact Decimal.

    ``"90125500000000000000000"`` is 90125.5.  A string with a ``.`` or an exponent is
    taken as already scaled (synfutures.md row 5).  The result carries no trailing
    zeros beyond the units digit and never uses an exponent; no context rounding.

    :raises ValueError: not a numeric string (ints are accepted as WAD integers).
    """
    if type(value) is int:
        digits = str(value)
    elif type(value) is str:
        digits = value.strip()
    else:
        raise ValueError("%s must be a numeric string, not %s" % (name, type(value).__name__))
    if "." in digits or "e" in digits or "E" in digits:
        return to_decimal(digits, name)
    try:
        sign, numerals, exponent = Decimal(digits).as_tuple()
    except InvalidOperation:
        raise ValueError("%s is not a number: %r" % (name, value)) from None
    if not isinstance(exponent, int):
        raise ValueError("%s is not finite: %r" % (name, value))
    exponent -= 18
    numerals_list = list(numerals)
    while exponent < 0 and len(numerals_list) > 1 and numerals_list[-1] == 0:
        numerals_list.pop()
        exponent += 1
    if numerals_list == [0]:
        exponent = 0
    return Decimal((sign, tuple(numerals_list), exponent))


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))\Z"
)


def rfc3339_to_ms(value: Any, name: str = "timestamp") -> int:
    """Unix epoch milliseconds from an RFC 3339 timestamp (``2026-01-01T00:00:02.010Z``,
    any offset); digits below the millisecond are truncated.  Exact integer arithmetic.

    :raises ValueError: not an RFC 3339 date-time with an offset.
    """
    match = _RFC3339.match(value) if type(value) is str else None
    if match is None:
        raise ValueError("%s is not an RFC 3339 time: %r" % (name, value))
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        datetime.date(year, month, day)  # rejects February 30th, which timegm would roll over
    except ValueError:
        raise ValueError("%s is not a valid date: %r" % (name, value)) from None
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    fraction = (match.group(7) or "") + "000"
    return seconds * 1000 + int(fraction[:3])


def dumps(obj: Any) -> str:
    """Compact JSON for frames we send."""
    return json.dumps(obj, separators=(",", ":"))
