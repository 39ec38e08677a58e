"""What a streaming command (``run``, ``demo``, ``record``) says about its feeds, and
when: each thing once, in words.

- A feed that ends on an error is one ``tradefeed: error:`` line, said when it ends
  (the error also reaches ``on_error``: this watch does not repeat it as a warning, and
  the library logs it only at INFO).
- A feed that cannot connect is not silent: its first failed attempt is a warning with
  the reason (the retries that follow are INFO, shown by ``-v``); a feed that was up
  and then fails three attempts in a row warns once too.
- Status events under ``-v`` read as sentences (``dopp-1 reconnecting in 0.8 s
  (attempt 1)``), not dicts of floats.
- :meth:`FeedWatch.exit_code` is 1 when a feed ended on an error or no feed ever
  connected (then with a line saying why), else 0.

Nothing here writes to stdout; error lines go through the callable the command gives.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable

from .exceptions import TradefeedError
from .logs import JsonFormatter
from .manager import FeedManager
from .models import Status, StatusEvent

__all__ = ["FeedWatch", "describe", "say_error", "json_logs"]

log = logging.getLogger("tradefeed.cli")


def json_logs() -> bool:
    """Do log records go out as JSON lines (then errors are records too, not bare lines)?"""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def say_error(message: str) -> None:
    """One error line on stderr: ``tradefeed: error: ...``, or a JSON record with
    ``--log-format json`` (a log pipeline then reads every line of stderr)."""
    if json_logs():
        log.error("%s", message)
    else:
        sys.stderr.write("tradefeed: error: %s\n" % message)
        sys.stderr.flush()

#: failed attempts in a row, after a feed had connected, that are worth a warning
WARN_AFTER_ATTEMPTS = 3


def _reason(error: Any, feed: str) -> str:
    """An error's message without the feed name it starts with (the line names the feed)."""
    text = str(error)
    return text[len(feed) + 2 :] if feed and text.startswith(feed + ": ") else text


def _seconds(value: Any) -> str:
    return "%.1f s" % value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def describe(event: StatusEvent) -> str:
    """One status event as a sentence: ``dopp-1 connected``, ``rails-1 disconnected
    (code 1006): connection lost``, ``dopp-1 reconnecting in 0.8 s (attempt 2)``."""
    detail = dict(event.detail)
    status = event.status
    who = event.feed or "tradefeed"
    if "connection" in detail:
        who += " #%s" % detail.pop("connection")
    error = detail.pop("error", None)
    reason = detail.pop("reason", None)
    if reason is not None:
        detail = {"": reason, **detail}  # first in the parentheses, unlabelled
    if status is Status.CONNECTING:
        text = "%s connecting to %s" % (who, detail.pop("url", "?"))
    elif status is Status.RECONNECTING:
        text = "%s reconnecting in %s (attempt %s)" % (who, _seconds(detail.pop("delay", 0)), detail.pop("attempt", "?"))
        error = None  # said by the disconnected event just before
    elif status is Status.STOPPED:
        text = "%s stopped" % who
        error = None  # the command says it once, as an error line
    elif status is Status.DISCONNECTED and "code" in detail:
        text = "%s disconnected (code %s)" % (who, detail.pop("code"))
    elif status in (Status.STALE, Status.FRESH):
        symbol = detail.pop("symbol", None)
        text = "%s %s%s" % (who, status.value, " (%s)" % symbol if symbol else "")
        if "age" in detail:
            text += ": no trades for %s" % _seconds(detail.pop("age"))
    else:
        text = "%s %s" % (who, status.value)
    extra = ", ".join(("%s %s" % (k, _seconds(v) if isinstance(v, float) else v)).strip() for k, v in detail.items())
    if extra:
        text += " (%s)" % extra
    if error is not None:
        text += ": %s" % _reason(error, event.feed)
    return text


class FeedWatch:
    """Watches *manager*'s feeds for a command (register before ``start()``).

    :param manager: the feeds.
    :param say_error: writes one ``tradefeed: error:`` line (any thread).
    :param all_ended: set when every feed has ended on its own (default: a new event,
        :attr:`all_ended`).
    """

    def __init__(
        self, manager: FeedManager, say_error: Callable[[str], None], all_ended: threading.Event | None = None
    ) -> None:
        self._manager = manager
        self._say_error = say_error
        self._feeds = [feed.name for feed in manager.feeds]
        self._lock = threading.Lock()
        self._connected: set[str] = set()  # feeds that connected at least once
        self._up: set[str] = set()  # feeds connected now
        self._warned: set[str] = set()  # feeds whose current outage was warned about
        self._ended: set[str] = set()
        self._reported: set[str] = set()  # feeds whose ending error was said
        self._last_failure: dict[str, str] = {}
        #: set when every feed has ended on its own
        self.all_ended = all_ended if all_ended is not None else threading.Event()
        manager.on_status(self._on_status)
        manager.on_error(self._on_error)

    def _on_status(self, event: StatusEvent) -> None:
        log.info(
            "%s", describe(event),
            extra={"feed": event.feed or None, "venue": event.venue or None, "status": event.status.value},
        )  # fmt: skip
        name, status, detail = event.feed, event.status, event.detail
        error = detail.get("error")
        with self._lock:
            if status is Status.CONNECTED:
                self._connected.add(name)
                self._up.add(name)
                self._warned.discard(name)
            elif status in (Status.DISCONNECTED, Status.RECONNECTING, Status.STOPPED):
                self._up.discard(name)
            if status is Status.DISCONNECTED and error is not None:
                self._last_failure[name] = _reason(error, name)
            warn = (
                status is Status.RECONNECTING
                and name not in self._warned
                and (name not in self._connected or _attempt(detail) >= WARN_AFTER_ATTEMPTS)
            )
            if warn:
                self._warned.add(name)
            report = status is Status.STOPPED and isinstance(error, TradefeedError) and name not in self._reported
            if report:
                self._reported.add(name)
            if status is Status.STOPPED and detail.get("reason") != "rotated":
                self._ended.add(name)
                if self._feeds and self._ended >= set(self._feeds):
                    self.all_ended.set()
        if warn:
            what = "not connected yet" if name not in self._connected else "down for %d attempts" % _attempt(detail)
            log.warning(
                "%s %s: %s; retrying in %s (-v shows every attempt)",
                name, what, self._last_failure.get(name, "?"), _seconds(detail.get("delay", 0)),
                extra={"feed": name, "venue": event.venue or None},
            )  # fmt: skip
        if report:
            self._say_error("feed %s ended: %s" % (name, _reason(error, name)))

    def _on_error(self, error: TradefeedError) -> None:
        if any(feed.error is error for feed in self._manager.feeds):
            return  # it ended a feed: said once, by the stopped event
        log.warning("%s", error, extra={"feed": getattr(error, "feed", None), "venue": getattr(error, "venue", None)})

    def exit_code(self, ran: bool = True) -> int:
        """Say what is still unsaid and return the exit code: 1 when a feed ended on an
        error, or when none ever connected (*ran*: the feeds had their chance, not a
        stop before the first attempt); else 0."""
        failed = False
        for feed in self._manager.feeds:
            if feed.error is None:
                continue
            failed = True
            with self._lock:
                said = feed.name in self._reported
                self._reported.add(feed.name)
            if not said:
                self._say_error("feed %s ended: %s" % (feed.name, _reason(feed.error, feed.name)))
        with self._lock:
            never = ran and self._feeds and not self._connected
            failures = dict(self._last_failure)
        if never and not failed:
            reasons = "; ".join(
                "%s: %s" % (name, failures.get(name, "still trying to connect when the run ended")) for name in self._feeds
            )
            self._say_error("no feed connected (%s)" % reasons)
            return 1
        return 1 if failed else 0


def _attempt(detail: Any) -> int:
    attempt = detail.get("attempt", 0)
    return attempt if isinstance(attempt, int) else 0
