"""A feed's credentials, turned into what its connections authenticate with.

:class:`TokenProviders` keeps a manager's bearer-token providers, one per account, so
feeds of one account share a token; :func:`make_signer` makes the request signer of a
feed that signs with a wallet key.  No secret is kept anywhere else: not in a feed's
parameters, not as a dictionary key, not in a message.  What must not go here: fetching
tokens (:mod:`tradefeed.auth`) or signing (:mod:`tradefeed.signing`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Mapping

from .adapters import Adapter
from .auth import TokenProvider
from .exceptions import ConfigError
from .signing import Eip712Signer

__all__ = ["TokenProviders", "make_signer"]


class TokenProviders:
    """A manager's token providers: one per (endpoint, key, secret).  Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # looked up by a digest, never by the secret itself: the dict is an attribute, and
        # debuggers, crash reporters and repr(vars(manager)) show attributes
        self._by_digest: dict[str, TokenProvider] = {}

    def get(self, adapter_cls: type[Adapter], credentials: dict[str, Any]) -> TokenProvider:
        """The provider for a feed with *credentials*: feeds of one account share a
        token, which keeps them under the token endpoint's rate limit.

        :raises ConfigError: a key or secret missing, or no token endpoint.
        """
        missing = [k for k in ("api_key", "api_secret") if not credentials.get(k)]
        if missing:
            if len(missing) == 1:  # one of the pair given
                reason = "api_key and api_secret go together"
            else:
                reason = "its parameters ask for the account's own data"
            raise ConfigError(
                "%s: this feed needs %s (%s)" % (adapter_cls.venue, " and ".join(missing), reason), param=missing[0]
            )
        url = credentials.get("auth_url") or adapter_cls.default_auth_url
        if not isinstance(url, str):
            raise ConfigError("%s: needs auth_url (the token endpoint)" % adapter_cls.venue)
        key = hashlib.sha256(json.dumps([url, credentials["api_key"], credentials["api_secret"]]).encode()).hexdigest()
        with self._lock:
            provider = self._by_digest.get(key)
            if provider is None:
                provider = self._by_digest[key] = TokenProvider(url, credentials["api_key"], credentials["api_secret"])
        return provider

    def providers(self) -> list[TokenProvider]:
        """Every provider made so far."""
        with self._lock:
            return list(self._by_digest.values())

    def close(self) -> None:
        """Close every provider (the manager's ``stop()``)."""
        for provider in self.providers():
            provider.close()


def make_signer(adapter_cls: type[Adapter], params: Mapping[str, Any], private_key: Any) -> Eip712Signer | None:
    """The request signer of a feed that signs with a wallet key (the Synthetix user
    feed), made here and held only by the feed's connections; None for other feeds.

    :raises ConfigError: the key is missing, not a key, given to a feed that does not
        sign, or eth-account is not installed (the message never shows the key).
    """
    if "private_key" not in adapter_cls.auth_params:
        return None
    if not adapter_cls.requires_credentials(params):
        if private_key is not None:
            raise ConfigError("%s: private_key is for stream='user' feeds only" % adapter_cls.venue, param="private_key")
        return None
    if not private_key:
        raise ConfigError(
            "%s: stream='user' needs private_key, the wallet key that owns the subaccount "
            "(in YAML: private_key: ${SYNTHETIX_PRIVATE_KEY})" % adapter_cls.venue,
            param="private_key",
        )
    return Eip712Signer(private_key)
