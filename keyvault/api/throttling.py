"""Throttles that keep their state in Django's cache, so all app instances share it.

Fixed one-minute windows counted with an atomic increment: one cache round trip per request on
Redis (`SET NX EX` and `INCR` pipelined in one `MULTI`), instead of the timestamp lists DRF's
stock throttles rewrite on every request.
"""

import ipaddress
import logging
import time

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Counters outlive their window a little, so a late increment never revives a stale count.
COUNTER_TIMEOUT = WINDOW_SECONDS * 2


def _window() -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    now = time.time()
    return int(now // WINDOW_SECONDS), WINDOW_SECONDS - int(now % WINDOW_SECONDS)


def _increment(key: str) -> int:
    """Add one to the counter `key` (created with an expiry when absent) and return it."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        # Django's RedisCache.incr() checks EXISTS first and add() is another trip: three round
        # trips on the hot path. One transactional pipeline does the same atomically, in one.
        redis_key = backend.make_and_validate_key(key)
        client = backend._cache.get_client(redis_key, write=True)
        pipe = client.pipeline()
        pipe.set(redis_key, 0, ex=COUNTER_TIMEOUT, nx=True)
        pipe.incr(redis_key)
        return int(pipe.execute()[1])
    # Other backends: incr() is atomic where the backend can make it so (memcached, locmem);
    # a missing counter is created by add(), and losing that race just means incr() again.
    try:
        return backend.incr(key)
    except ValueError:
        if backend.add(key, 1, timeout=COUNTER_TIMEOUT):
            return 1
        return backend.incr(key)


def _counted(key: str) -> int | None:
    """The incremented counter, or None when the cache cannot be reached.

    Throttles fail open: with the cache down, proxies keep getting their keys (the throttle is
    a guard against abuse, not the access control, which still runs in full) and the outage
    is logged instead of turning every request into a 500.
    """
    try:
        return _increment(key)
    except Exception:
        logger.warning(
            "Throttle cache unavailable; request allowed without counting.", exc_info=True
        )
        return None


def client_address(request) -> str | None:
    """The client's address: `REMOTE_ADDR`, or the header named by `KEYVAULT_CLIENT_IP_HEADER`
    (a `request.META` key such as `HTTP_X_FORWARDED_FOR`) when a trusted proxy sets it. Of a
    list, the last entry counts: the one the nearest proxy appended, which a client cannot
    forge. None when neither holds an IP address (a server on a Unix socket may send an empty
    `REMOTE_ADDR`): the audit trail stores only real addresses."""
    header = settings.KEYVAULT_CLIENT_IP_HEADER
    value = request.META.get(header, "") if header else ""
    forwarded = value.split(",")[-1].strip() if value else ""
    for candidate in (forwarded, request.META.get("REMOTE_ADDR") or ""):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


class TokenRateThrottle(BaseThrottle):
    """Requests per minute per token: `KEYVAULT_API_TOKEN_RATE_PER_MINUTE` (0 turns it off)."""

    def allow_request(self, request, view):
        limit = settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE
        token = request.auth
        if not limit or token is None:
            return True
        window, self._left = _window()
        count = _counted(f"kv:throttle:token:{token.pk}:{window}")
        return count is None or count <= limit

    def wait(self):
        return getattr(self, "_left", WINDOW_SECONDS)


class AuthFailureThrottle:
    """Failed authentications per minute per client address:
    `KEYVAULT_API_AUTH_FAILURES_PER_MINUTE`."""

    def record_failure(self, request) -> bool:
        """Count one failure; False once the address is over its limit."""
        limit = settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE
        if not limit:
            return True
        window, self._left = _window()
        address = client_address(request) or "unknown"
        count = _counted(f"kv:throttle:authfail:{address}:{window}")
        return count is None or count <= limit

    def wait_seconds(self) -> int:
        return getattr(self, "_left", WINDOW_SECONDS)
