"""Log records as text or as JSON lines, with credentials blanked.

This module owns formatting, not configuration: the command line (the only place that
configures logging) puts one of these formatters on its stderr handler, and a program
embedding tradefeed may put them on its own handlers::

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)

Both formatters pass the whole formatted text, traceback included, through
:func:`redact_text`, which blanks what looks like a credential: a value named like a
secret, key, token or password (``api_secret='...'``, ``"token": "..."``,
``X-Api-Key: ...``), a bearer token, a password in a URL.  tradefeed never puts a
credential in a message on purpose; this is the second line of defence, for text that
other libraries (or exceptions) bring along.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Any, Mapping

__all__ = ["JsonFormatter", "TextFormatter", "redact", "redact_text", "LOG_FORMATS", "formatter"]

#: the ``--log-format`` / ``logging.format`` choices
LOG_FORMATS = ("text", "json")
#: the human-readable layout of ``TextFormatter``'s default
TEXT_LAYOUT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# a value after a name like a credential's: api_secret='x', "token": "x", X-Api-Key: x, password=x
_NAMED = re.compile(
    r"""(?ix)
    (\b[\w.-]*(?:secret|token|password|passwd|passphrase|api[_-]?key|private[_-]?key|signature)[\w.-]*
     ["']?\s*[:=]\s*)
    ("[^"]*"|'[^']*'|[^\s"',;&)}\]]+)
    """
)
# bearer tokens: HTTP headers, and the Rails subprotocol (authorization#<jwt>)
_BEARER = re.compile(r"(authorization#|Bearer\s+|Authorization:\s*\S+\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@", re.IGNORECASE)


_SECRET_WORDS = ("secret", "key", "token", "password", "passphrase")


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """*params* with every value named like a key, secret or token replaced by ``***``."""
    return {k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in params.items()}


def redact_text(text: str) -> str:
    """*text* with every credential-looking value replaced by ``***``.

    >>> redact_text("POST api_secret='s3cr3t' to redis://:pw@host/0, Bearer eyJabc")
    "POST api_secret='***' to redis://:***@host/0, Bearer ***"
    """
    if not text:
        return text
    text = _BEARER.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _NAMED.sub(_blank, text)


def _blank(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return "%s%s***%s" % (match.group(1), quote, quote)


class TextFormatter(logging.Formatter):
    """The human-readable layout (``time LEVEL logger: message``), redacted."""

    def __init__(self, fmt: str | None = TEXT_LAYOUT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line::

        {"time": "2026-12-06T21:51:34.120Z", "level": "WARNING", "logger": "tradefeed.cli",
         "message": "dopp-1 reconnecting {...}", "feed": "dopp-1", "venue": "dopp",
         "status": "reconnecting"}

    ``time`` is ISO-8601 UTC with milliseconds; ``feed``, ``venue``, ``status``,
    ``symbol`` and ``sink`` are copied when the record carries them (``extra=``);
    ``exc_info`` holds the formatted traceback and ``stack_info`` the stack, when present.
    Non-ASCII text is escaped, so every line is ASCII whatever the console's code page.
    """

    #: record attributes copied into the object when set (``logging``'s ``extra=``)
    FIELDS = ("feed", "venue", "status", "symbol", "sink")

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            entry["exc_info"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc_info"] = redact_text(record.exc_text)
        if record.stack_info:
            entry["stack_info"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=True, default=str)


def formatter(name: str) -> logging.Formatter:
    """The formatter for a ``--log-format`` choice: ``text`` or ``json``.

    :raises ValueError: another name.
    """
    if name == "json":
        return JsonFormatter()
    if name == "text":
        return TextFormatter()
    raise ValueError("log format must be one of %s, not %r" % (", ".join(LOG_FORMATS), name))
