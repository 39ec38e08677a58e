"""HS256 JSON Web Tokens (RFC 7519) with the standard library only.

This module owns the token format: compact serialization, base64url without
padding, HMAC-SHA256 signatures. It reads no clock and knows no venue: which
claims a token carries and whether it has expired is the caller's business
(e.g. :mod:`tradefeed.simulator._rails_auth`). The simulator may not depend on
PyJWT, so signing and verifying are done here with :mod:`hmac`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["JwtError", "decode", "encode"]

#: the header of every token, as in the venues' documented examples
HEADER: dict[str, str] = {"alg": "HS256", "typ": "JWT"}


class JwtError(ValueError):
    """A token is malformed, uses another algorithm, or no key verifies its signature."""


def encode(claims: Mapping[str, Any], key: bytes) -> str:
    """Return the compact HS256 token of ``claims`` signed with ``key``.

    :param claims: JSON-serializable claims (ints, strings, lists...).
    :param key: the HMAC secret.
    """
    signing_input = _b64encode(_json(HEADER)) + "." + _b64encode(_json(claims))
    return signing_input + "." + _b64encode(_sign(signing_input, key))


def decode(token: str, keys: Sequence[bytes]) -> tuple[dict[str, Any], int]:
    """Verify ``token`` against each of ``keys`` and return its claims.

    :param token: a compact JWT.
    :param keys: candidate HMAC secrets, tried in order.
    :return: the claims and the index in ``keys`` of the key that signed it.
    :raises JwtError: if the token is malformed, is not HS256, or no key
        verifies its signature.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("malformed token: expected three dot-separated parts")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, binascii.Error) as err:  # bad base64, bad UTF-8 or bad JSON
        raise JwtError(f"malformed token: {err}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("malformed token: header and claims must be JSON objects")
    if header.get("alg") != HEADER["alg"]:
        raise JwtError(f"unsupported token algorithm {header.get('alg')!r}")
    signing_input = parts[0] + "." + parts[1]
    for index, key in enumerate(keys):
        if hmac.compare_digest(signature, _sign(signing_input, key)):
            return claims, index
    raise JwtError("invalid token signature")


def _sign(signing_input: str, key: bytes) -> bytes:
    return hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or text.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        raise JwtError("malformed token: a part is empty or not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
