"""Rails' token endpoint and the checks of its JWTs, as in ``docs/venues/rails.md``.

This module owns the simulated venue's API keys, ``POST /api/v1/token``
(credentials in ``X-Api-Key`` / ``X-Api-Secret``, 401, 429 with
``Retry-After``, injected failures), the claims of the tokens it issues and
their verification at the WebSocket handshake, including revocation by
:meth:`TokenIssuer.revoke_all`. Frames and connections are
:mod:`tradefeed.simulator.rails`' business; the JWT format is
:mod:`tradefeed.simulator._jwt`'s.

Thread-safe: the HTTP handler runs on the simulator's loop, the fault and
introspection methods in any thread; one lock guards the mutable state.
"""

from __future__ import annotations

import hashlib
import hmac
import http
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass

from . import _jwt
from ._http import HttpRequest, HttpResponse, json_response
from ._ratelimit import ConnectLimiter

__all__ = ["ACCOUNT_TYPE", "AUDIENCE", "ISSUER", "TOKEN_PATH", "AuthError", "Grant", "TokenIssuer"]

logger = logging.getLogger(__name__)

TOKEN_PATH = "/api/v1/token"
ISSUER = "sim.rails.local"
AUDIENCE = ["sim-app.rails.local"]
ACCOUNT_TYPE = "retail"
TOKEN_EXPIRED = "token expired"
RATE_WINDOW = 60.0  # seconds over which token_rate_limit counts


class AuthError(Exception):
    """A token is missing, malformed, badly signed, expired or revoked; ``str()`` says which."""


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    #: the token's ``sub``: the API key's principal
    subject: str
    read_only: bool
    #: the token's ``exp``, Unix seconds
    expires_at: int
    #: the signing-key generation it was issued under (see :meth:`TokenIssuer.revoke_all`)
    epoch: int


@dataclass(frozen=True)
class _ApiKey:
    secret: str
    subject: str
    read_only: bool


class TokenIssuer:
    """Issues and verifies the simulated venue's HS256 access tokens.

    :param seed: seeds the API keys and the signing secret.
    :param lifetime: seconds from a token's ``iat`` to its ``exp`` (``expires_in``).
    :param rate_limit: token requests admitted per API key per minute; more get 429.
    """

    def __init__(self, seed: int, lifetime: int, rate_limit: int) -> None:
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ValueError(f"token_lifetime must be a whole number of seconds >= 1, not {lifetime!r}")
        if rate_limit < 1:
            raise ValueError(f"token_rate_limit must be at least 1, not {rate_limit}")
        self.lifetime = lifetime
        self._seed = seed
        rng = random.Random(f"rails-api-keys-{seed}")
        self._keys: dict[str, _ApiKey] = {}
        for read_only in (False, True):
            api_key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            subject = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            self._keys[api_key] = _ApiKey(f"{rng.getrandbits(128):032x}", subject, read_only)
        self._lock = threading.Lock()
        self._limiter = ConnectLimiter(rate_limit, RATE_WINDOW)  # keyed by API key, not IP
        self._signing_keys = [self._signing_key(0)]  # the last one signs; older ones mean "revoked"
        self._requests = 0
        self._failures = 0
        self._failure_status = 0

    def credentials(self, *, read_only: bool = False) -> tuple[str, str]:
        """Return the ``(api_key, api_secret)`` pair that may trade, or the read-only one."""
        return next((key, entry.secret) for key, entry in self._keys.items() if entry.read_only == read_only)

    @property
    def requests(self) -> int:
        """Requests to the token path so far, failed ones included."""
        with self._lock:
            return self._requests

    @property
    def signing_key(self) -> bytes:
        """The HMAC secret that signs new tokens (for tests that check or forge signatures)."""
        with self._lock:
            return self._signing_keys[-1]

    @property
    def epoch(self) -> int:
        """The current signing-key generation; grants of older ones are revoked."""
        with self._lock:
            return len(self._signing_keys) - 1

    def fail_next(self, count: int, status: int = 503) -> None:
        """Make the next ``count`` token requests fail with ``status`` (replaces any pending)."""
        if count < 0 or not 400 <= status <= 599:
            raise ValueError(f"need count >= 0 and an HTTP error status, not {count}, {status}")
        with self._lock:
            self._failures, self._failure_status = count, status

    def revoke_all(self) -> None:
        """Invalidate every token issued so far: sign later ones with a new key."""
        with self._lock:
            self._signing_keys.append(self._signing_key(len(self._signing_keys)))

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request to the token side-server. Loop thread."""
        if request.path != TOKEN_PATH:
            return _error(http.HTTPStatus.NOT_FOUND, "not found")
        if request.method != "POST":
            return _error(http.HTTPStatus.METHOD_NOT_ALLOWED, "use POST", {"Allow": "POST"})
        with self._lock:
            self._requests += 1
            if self._failures > 0:
                self._failures -= 1
                return _error(self._failure_status, "injected failure")
            api_key = request.headers.get("x-api-key", "")
            entry = self._keys.get(api_key)
            if entry is None:
                return _error(http.HTTPStatus.UNAUTHORIZED, "invalid API key or secret")
            # Every request with a known key counts, a wrong secret included.
            retry_after = self._limiter.admit(api_key, time.monotonic())
            if retry_after is not None:
                logger.info("rails: token request 429 for key %s..., retry after %d s", api_key[:8], retry_after)
                return _error(
                    http.HTTPStatus.TOO_MANY_REQUESTS, "too many token requests", {"Retry-After": str(retry_after)}
                )
            if not hmac.compare_digest(request.headers.get("x-api-secret", ""), entry.secret):
                return _error(http.HTTPStatus.UNAUTHORIZED, "invalid API key or secret")
            issued_at = int(time.time())
            claims = {
                "accountType": ACCOUNT_TYPE,
                "iss": ISSUER,
                "sub": entry.subject,
                "aud": AUDIENCE,
                "exp": issued_at + self.lifetime,
                "iat": issued_at,
            }
            token = _jwt.encode(claims, self._signing_keys[-1])
        return json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime})

    def verify(self, token: str) -> Grant:
        """Check a token offered at the WebSocket handshake.

        :raises AuthError: if it is malformed, badly signed, revoked, expired or
            not one of this venue's.
        """
        with self._lock:
            keys = self._signing_keys[::-1]  # newest first
        try:
            claims, age = _jwt.decode(token, keys)
        except _jwt.JwtError as err:
            raise AuthError(str(err)) from None
        if age > 0:
            raise AuthError(TOKEN_EXPIRED)  # revoked by revoke_all()
        entry = next((key for key in self._keys.values() if key.subject == claims.get("sub")), None)
        if claims.get("iss") != ISSUER or claims.get("aud") != AUDIENCE or entry is None:
            raise AuthError("token not issued for this venue")
        expires_at = claims.get("exp")
        if isinstance(expires_at, bool) or not isinstance(expires_at, int):
            raise AuthError("token has no valid exp claim")
        if time.time() >= expires_at:
            raise AuthError(TOKEN_EXPIRED)
        return Grant(entry.subject, entry.read_only, expires_at, len(keys) - 1)

    def _signing_key(self, epoch: int) -> bytes:
        return hashlib.sha256(f"tradefeed-sim-rails-signing-{self._seed}-{epoch}".encode()).digest()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return json_response(int(status), {"statusCode": int(status), "message": message}, headers)
