"""Bearer tokens for authenticated venues (Rails), fetched with ``requests``.

This module owns :class:`TokenProvider` and :class:`Token` and is the only importer of
``requests``; its exceptions are translated here.  Rules: the API key and secret go in
request headers only and never into a log line, a ``repr`` or an exception message; a
refused credential (401/403) raises :class:`AuthError` at once (retrying cannot help
and would hammer a rate-limited endpoint); 429 and 5xx are retried with backoff,
honouring ``Retry-After`` as a floor.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import threading
import time
from urllib.parse import urlsplit, urlunsplit
from dataclasses import dataclass, field
from typing import Callable

import requests

from .backoff import Backoff
from .exceptions import AuthError, ConfigError, TradefeedError, TransportError

__all__ = ["Token", "TokenProvider"]

log = logging.getLogger(__name__)

#: retries of one fetch (429/5xx/network); the connection's own backoff covers the rest
DEFAULT_FETCH_BACKOFF = Backoff(initial=0.5, max_delay=10.0, max_retries=4)
#: refresh this long before expiry at most (seconds)...
MAX_REFRESH_MARGIN = 60.0
#: ...and at most this fraction of the token's lifetime
REFRESH_FRACTION = 0.2


@dataclass(frozen=True)
class Token:
    """A bearer token and when it expires.  Its ``repr`` hides the value."""

    #: the token itself
    value: str = field(repr=False)
    #: when it was obtained, Unix seconds
    obtained_at: float
    #: when it expires, Unix seconds (None: unknown)
    expires_at: float | None

    @property
    def lifetime(self) -> float | None:
        """Seconds between issue and expiry, if known."""
        return None if self.expires_at is None else self.expires_at - self.obtained_at

    def refresh_at(self) -> float | None:
        """Unix seconds at which a fresh token should be used instead: ahead of expiry
        by 20 % of the lifetime, at most 60 s."""
        lifetime = self.lifetime
        if lifetime is None or self.expires_at is None:
            return None
        return self.expires_at - min(MAX_REFRESH_MARGIN, max(0.0, lifetime) * REFRESH_FRACTION)


def _jwt_exp(value: str) -> float | None:
    """The ``exp`` claim of a JWT, without verifying it (we are not its audience)."""
    parts = value.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class TokenProvider:
    """Fetches, caches and refreshes one account's bearer token.

    Thread-safe: feeds that share credentials share one provider and one token.

    >>> provider = TokenProvider("https://api-auth.trade.rails.xyz/api/v1/token", "key", "secret")
    >>> provider
    TokenProvider(url='https://api-auth.trade.rails.xyz/api/v1/token', api_key=***)

    :param url: the token endpoint (``POST``, credentials in ``X-Api-Key``/``X-Api-Secret``).
    :param api_key: the API key.
    :param api_secret: the API secret.
    :param session: a ``requests.Session`` to use (default: one of its own).
    :param timeout: seconds for each HTTP request.
    :param backoff: retries of 429/5xx/network failures within one fetch.
    :param clock: returns Unix seconds (tests pass their own).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        backoff: Backoff = DEFAULT_FETCH_BACKOFF,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("auth_url must be an http(s) URL")
        for name, value in (("api_key", api_key), ("api_secret", api_secret)):
            if not isinstance(value, str) or not value:
                raise ConfigError("%s must be a non-empty string" % name)  # never show the value
        self.url = url
        self.__key = api_key
        self.__secret = api_secret
        self._session = session or requests.Session()
        self._own_session = session is None
        self._timeout = timeout
        self._backoff = backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        #: tokens fetched so far (for stats and tests)
        self.fetches = 0

    def __repr__(self) -> str:
        return "TokenProvider(url=%r, api_key=***)" % self.url

    def token(self, wait: Callable[[float], bool] | None = None) -> Token:
        """A token valid for a while yet: the cached one, or a freshly fetched one.

        :param wait: ``wait(seconds) -> bool`` used between retries; True means "stop"
            (pass a feed's ``stop_event.wait`` so stopping interrupts the retries).
        :raises AuthError: the endpoint refused the credentials, or answered nonsense.
        :raises TransportError: the endpoint could not be reached or kept failing.
        """
        with self._lock:
            cached = self._token
            if cached is not None:
                refresh_at = cached.refresh_at()
                if refresh_at is None or self._clock() < refresh_at:
                    return cached
            self._token = self._fetch(wait or _no_stop)
            return self._token

    def invalidate(self, token: Token | None = None) -> None:
        """Forget the cached token (only if it is *token*, when given), so the next
        :meth:`token` fetches a new one.  Another feed may already have refreshed it."""
        with self._lock:
            if token is None or self._token is token:
                self._token = None

    def close(self) -> None:
        """Close the HTTP session if this provider created it."""
        if self._own_session:
            self._session.close()

    def _fetch(self, wait: Callable[[float], bool]) -> Token:
        backoff = self._backoff
        while True:
            result = self._try_once()
            if isinstance(result, Token):
                return result
            error, retry_after = result
            if not isinstance(error, TransportError) or backoff.exhausted:
                raise error
            rand = random.random()
            delay = backoff.delay(rand)
            if retry_after is not None:  # a floor: jitter only adds
                delay = max(delay, retry_after * (1 + backoff.jitter * rand))
            backoff = backoff.increment()
            # the first failure in a row is worth a warning; its repeats are routine
            log.log(logging.WARNING if backoff.retries == 1 else logging.INFO, "%s; retrying in %.1f s", error, delay)
            if wait(delay):
                raise TransportError("stopped while waiting to retry the token endpoint")

    def _try_once(self) -> Token | tuple[TradefeedError, float | None]:
        """One POST: a token, or the error with the server's ``Retry-After``."""
        try:
            response = self._session.post(
                self.url,
                headers={"X-Api-Key": self.__key, "X-Api-Secret": self.__secret},
                data=b"",
                timeout=self._timeout,
            )
        except requests.RequestException as err:
            # named by class only: the message of a requests error may quote the request
            return TransportError("token endpoint %s unreachable (%s)" % (_shown(self.url), type(err).__name__)), None
        status = response.status_code
        if status == 200:
            return self._token_from(response)
        url = _shown(self.url)
        if status in (401, 403):
            message = "token endpoint %s refused the API key/secret with HTTP %d: check api_key and api_secret"
            return AuthError(message % (url, status), status_code=status), None
        if status == 429 or status >= 500:
            return TransportError("token endpoint %s answered HTTP %d" % (url, status)), _retry_after(response)
        phrase = {404: " (not found)", 405: " (method not allowed)", 410: " (gone)"}.get(status, "")
        message = "token endpoint %s answered HTTP %d%s: check auth_url"
        return AuthError(message % (url, status, phrase), status_code=status), None

    def _token_from(self, response: requests.Response) -> Token:
        try:
            body = response.json()
            value = body["access_token"]
        except (ValueError, KeyError, TypeError):
            message = "token endpoint %s answered 200 without an access_token: check auth_url"
            raise AuthError(message % _shown(self.url)) from None
        if not isinstance(value, str) or not value:
            raise AuthError("token endpoint %s answered 200 with an empty access_token" % _shown(self.url))
        now = self._clock()
        expires_in = body.get("expires_in")
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
            expires_at: float | None = now + float(expires_in)
        else:
            expires_at = _jwt_exp(value)
        self.fetches += 1
        log.info("fetched a token from %s, expires in %s s", self.url, "?" if expires_at is None else round(expires_at - now))
        return Token(value=value, obtained_at=now, expires_at=expires_at)


def _shown(url: str) -> str:
    """*url* as messages show it: without a user, password or query (they may be secrets)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _retry_after(response: requests.Response) -> float | None:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


_NEVER = threading.Event()


def _no_stop(seconds: float) -> bool:
    """Wait without a stop signal (a direct caller of ``token()``)."""
    _NEVER.wait(seconds)
    return False
