"""The log formatters: one JSON object per record, the human layout, and redaction in both."""

from __future__ import annotations

import datetime
import json
import logging
import sys

import pytest

from tradefeed.logs import JsonFormatter, TextFormatter, formatter, redact_text


def record(message: str = "hello %s", args: tuple = ("world",), exc_info=None, **extra) -> logging.LogRecord:
    made = logging.LogRecord("tradefeed.test", logging.WARNING, __file__, 1, message, args, exc_info)
    made.created = 1767225600.25  # 2026-01-01T00:00:00.250Z
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_json_has_time_level_logger_and_message_on_one_line():
    """time (ISO-8601 UTC, milliseconds), level, logger and the formatted message, nothing else."""
    line = JsonFormatter().format(record())
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-01-01T00:00:00.250Z", "level": "WARNING", "logger": "tradefeed.test", "message": "hello world",
    }  # fmt: skip
    parsed = datetime.datetime.fromisoformat(json.loads(line)["time"].replace("Z", "+00:00"))
    assert parsed.utcoffset() == datetime.timedelta(0)


def test_json_copies_feed_venue_and_status_when_the_record_carries_them():
    """extra= fields feed, venue, status (and symbol, sink) become keys; others do not."""
    entry = json.loads(JsonFormatter().format(record(feed="dopp-1", venue="dopp", status="reconnecting", other="x")))
    assert (entry["feed"], entry["venue"], entry["status"]) == ("dopp-1", "dopp", "reconnecting")
    assert "other" not in entry


def test_json_carries_the_traceback_when_there_is_one():
    """exc_info becomes the formatted traceback text under exc_info, still one line of JSON."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        line = JsonFormatter().format(record("failed", (), exc_info=sys.exc_info()))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed"
    assert entry["exc_info"].startswith("Traceback") and "RuntimeError: boom" in entry["exc_info"]


def test_json_escapes_non_ascii_and_survives_odd_values():
    """Non-ASCII text is escaped (each line is ASCII); a non-JSON extra becomes its str()."""
    line = JsonFormatter().format(record("price in %s", ("€",), status=object()))
    assert line.isascii() and json.loads(line)["message"] == "price in €"
    assert json.loads(line)["status"].startswith("<object object")


@pytest.mark.parametrize(
    "text, hidden",
    [
        ("api_secret='s3cr3t' api_key=k3y", ["s3cr3t", "k3y"]),
        ('{"api_key": "k3y", "token": "t0k"}', ["k3y", "t0k"]),
        ("X-Api-Secret: s3cr3t", ["s3cr3t"]),
        ("redis://user:hunter2@localhost:6379/0", ["hunter2"]),
        ("Authorization: Bearer eyJhbGciOi.x.y", ["eyJhbGciOi"]),
        ("subprotocols ['authorization#eyJhbGciOi.x.y']", ["eyJhbGciOi"]),
        ("password='two words'", ["two words", "two", "words"]),
    ],
)
def test_credentials_are_blanked(text, hidden):
    """Values named like credentials, bearer tokens and URL passwords become ***."""
    redacted = redact_text(text)
    assert "***" in redacted
    for secret in hidden:
        assert secret not in redacted


def test_ordinary_text_is_left_alone():
    """Messages without credentials pass unchanged (a token refresh is not a token)."""
    for text in ("dopp-1 reconnecting {'delay': 1.0, 'attempt': 2}", "token refresh in 30 s", "key (stream, symbol)"):
        assert redact_text(text) == text


def test_both_formats_redact_the_message_and_the_traceback():
    """A secret in the message or in an exception's text never reaches either format's output."""
    try:
        raise ValueError("bad api_secret=s3cr3t")
    except ValueError:
        made = record("sending %s", ("token=t0k",), exc_info=sys.exc_info())
    for fmt in (TextFormatter(), JsonFormatter()):
        out = fmt.format(made)
        assert "s3cr3t" not in out and "t0k" not in out and "ValueError" in out


def test_text_keeps_the_human_layout():
    """The default stays time LEVEL logger: message."""
    out = TextFormatter().format(record())
    assert out.endswith(" WARNING tradefeed.test: hello world") and out[:4].isdigit()


def test_formatter_by_name():
    """text and json name the two formatters; anything else is refused."""
    assert isinstance(formatter("json"), JsonFormatter) and isinstance(formatter("text"), TextFormatter)
    with pytest.raises(ValueError):
        formatter("xml")
