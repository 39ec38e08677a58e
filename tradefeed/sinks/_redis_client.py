"""redis-py for the Redis sink and reader: imported only when one is built (extra
``redis``), with a clear error when it is missing, and the rules both share for a URL
and a client.  This is the only module that imports redis.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ConfigError

__all__ = ["check_url", "import_redis", "make_client", "safe_url"]

_URL_SCHEMES = ("redis", "rediss", "unix")


def import_redis() -> Any:
    """The redis package, or a ConfigError saying how to install it."""
    try:
        import redis
    except ImportError as err:
        raise ConfigError("the Redis sink and reader need redis-py: pip install 'tradefeed[redis]'") from err
    return redis


def make_client(url: str, retries: int = 1, **options: Any) -> Any:
    """A redis-py client for *url*.  It retries a broken connection *retries* times, at
    once (a server restart leaves stale sockets in the pool); real backoff is the caller's."""
    redis = import_redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # RESP2: the reply shapes this module reads are the same in every redis-py >= 5
    return redis.Redis.from_url(url, protocol=2, retry=Retry(NoBackoff(), retries), **options)


def check_url(url: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in _URL_SCHEMES:
        raise ConfigError("Redis URL must start with redis://, rediss:// or unix://")
    return url


def safe_url(url: str) -> str:
    """*url* without its password, for names and messages."""
    parts = urlsplit(url)
    query = "&".join(
        "password=***" if item.split("=", 1)[0].lower() == "password" else item for item in parts.query.split("&")
    ) if parts.query else parts.query
    parts = parts._replace(query=query)
    if parts.password is None:
        return urlunsplit(parts)
    netloc = "%s:***@%s" % (parts.username or "", parts.hostname or "")
    if parts.port:
        netloc += ":%d" % parts.port
    return urlunsplit(parts._replace(netloc=netloc))
