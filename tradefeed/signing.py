"""EIP-712 signing of Synthetix requests (``docs/venues/synthetix-private.md`` section 2).

:class:`Eip712Signer` is the only object that holds a wallet key.  It keeps it inside
eth-account's ``LocalAccount`` (the ``synthetix`` extra: ``pip install
"tradefeed[synthetix]"``); nothing here hashes or signs by hand.  Its ``repr`` shows the
wallet address, never the key, and it has no ``__dict__`` to dump.  It also keeps the
two clocks the venue wants strictly increasing per wallet: auth timestamps and request
nonces (section 2.2: "a reused value fails").
"""

from __future__ import annotations

import json
import threading
from typing import Any

from .exceptions import ConfigError

__all__ = ["Eip712Signer", "DOMAIN", "AUTH_ACTION", "EXTRA"]

#: section 2.1: ``chainId`` is always 1 for signing, whatever the environment
DOMAIN = {
    "name": "Synthetix",
    "version": "1",
    "chainId": 1,
    "verifyingContract": "0x0000000000000000000000000000000000000000",
}
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_AUTH_TYPE = [
    {"name": "subAccountId", "type": "uint256"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "action", "type": "string"},
]
_ACTION_TYPE = [
    {"name": "subAccountId", "type": "uint256"},
    {"name": "action", "type": "string"},
    {"name": "nonce", "type": "uint256"},
    {"name": "expiresAfter", "type": "uint256"},
]
#: the ``action`` of the WebSocket auth message (SDK, Go SDK and server spelling)
AUTH_ACTION = "websocket_auth"
#: what to install for signing
EXTRA = 'pip install "tradefeed[synthetix]"'


def auth_typed_data(subaccount_id: int, timestamp_ms: int) -> dict[str, Any]:
    """The whole typed-data document of the auth message; the two numbers as hex
    strings, as the SDK sends them (section 2.4)."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "AuthMessage": _AUTH_TYPE},
        "primaryType": "AuthMessage",
        "domain": DOMAIN,
        "message": {"subAccountId": hex(subaccount_id), "timestamp": hex(timestamp_ms), "action": AUTH_ACTION},
    }


def action_typed_data(subaccount_id: int, action: str, nonce: int, expires_after: int) -> dict[str, Any]:
    """The typed-data document of a per-request ``SubAccountAction`` (section 2.6)."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "SubAccountAction": _ACTION_TYPE},
        "primaryType": "SubAccountAction",
        "domain": DOMAIN,
        "message": {"subAccountId": subaccount_id, "action": action, "nonce": nonce, "expiresAfter": expires_after},
    }


class Eip712Signer:
    """Signs Synthetix auth messages and ``SubAccountAction`` requests with one key.

    :param private_key: the wallet's (or a delegated signer's) secp256k1 key, 64 hex
        digits with or without ``0x``.
    :raises ConfigError: eth-account is not installed, or the key is not a key (the
        message never contains it).
    """

    __slots__ = ("_account", "address", "_lock", "_last_ms")

    def __init__(self, private_key: str) -> None:
        try:
            from eth_account import Account
        except ImportError:
            raise ConfigError(
                "synthetix: the user feed signs with eth-account, which is not installed; %s" % EXTRA,
                param="private_key",
            ) from None
        account = None
        if isinstance(private_key, str):
            try:
                account = Account.from_key(private_key.strip())
            except Exception:  # noqa: BLE001 - its message may quote the key: none of it goes on
                account = None
        if account is None:
            raise ConfigError(
                "synthetix: private_key is not a wallet key (expected 64 hex digits, optionally 0x-prefixed)",
                param="private_key",
            )
        self._account = account
        #: the signer's checksummed address (public: it identifies the wallet)
        self.address: str = account.address
        self._lock = threading.Lock()
        self._last_ms = 0

    def __repr__(self) -> str:
        return "Eip712Signer(address=%r, key=<redacted>)" % self.address

    def __reduce__(self) -> Any:  # copy/pickle would carry the key elsewhere
        raise TypeError("an Eip712Signer holds a private key and cannot be pickled or copied")

    def next_ms(self, now_ms: int) -> int:
        """A timestamp/nonce for a new request: *now_ms*, or one more than the last one
        handed out if that is not earlier (section 2.2: values are reserved per wallet)."""
        with self._lock:
            value = max(int(now_ms), self._last_ms + 1)
            self._last_ms = value
            return value

    def _sign(self, typed: dict[str, Any]) -> Any:
        from eth_account.messages import encode_typed_data

        return self._account.sign_message(encode_typed_data(full_message=typed))

    def sign_auth(self, subaccount_id: int, timestamp_ms: int) -> tuple[str, str]:
        """``(message, signature)`` for ``{"method": "auth"}``: the typed-data document
        as a JSON string and the 65-byte signature as ``0x`` + r + s + v hex."""
        typed = auth_typed_data(subaccount_id, timestamp_ms)
        signed = self._sign(typed)
        signature = "0x%064x%064x%02x" % (signed.r, signed.s, signed.v)
        return json.dumps(typed, separators=(",", ":")), signature

    def sign_action(self, subaccount_id: int, action: str, nonce: int, expires_after: int) -> dict[str, Any]:
        """The ``{"v", "r", "s"}`` signature object of a private request."""
        signed = self._sign(action_typed_data(subaccount_id, action, nonce, expires_after))
        return {"v": signed.v, "r": "0x%064x" % signed.r, "s": "0x%064x" % signed.s}
