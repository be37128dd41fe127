"""Counters in Django's cache, shared by every app instance, and the client's address they are
often keyed by. The proxy API's throttles, the sign-in throttle and the invitation and sign-up
limits all count here.
"""

import ipaddress
import logging

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)


# Add one, and give a counter that did not exist its expiry: one command, atomic on the server
# (a script runs alone), one round trip.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def _redis_increment(backend: RedisCache):
    """The increment script bound to the backend's client, made once per backend.

    Django's RedisCache.incr() checks EXISTS first and add() is another trip: three round
    trips on the proxy's hot path. Django also builds a new client object for every command,
    which costs more than the command; the script keeps one."""
    cache_client = backend._cache
    script = getattr(cache_client, "_keyvault_increment", None)
    if script is None:
        client = cache_client.get_client(None, write=True)
        script = cache_client._keyvault_increment = client.register_script(_INCREMENT)
    return script


def increment(key: str, *, timeout: int) -> int:
    """Add one to the counter `key` (created to expire in `timeout` seconds when absent) and
    return it. Raises whatever the cache raises."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        redis_key = backend.make_and_validate_key(key)
        return int(_redis_increment(backend)(keys=[redis_key], args=[timeout]))
    # Other backends: incr() is atomic where the backend can make it so (memcached, locmem);
    # a missing counter is created by add(), and losing that race just means incr() again.
    try:
        return backend.incr(key)
    except ValueError:
        if backend.add(key, 1, timeout=timeout):
            return 1
        return backend.incr(key)


def count(key: str, *, timeout: int) -> int | None:
    """`increment`, or None when the cache cannot be reached.

    Limits fail open: with the cache down, proxies keep getting their keys and people keep
    signing in (the limits guard against abuse; access control still runs in full), and the
    outage is logged instead of turning every request into a 500.
    """
    try:
        return increment(key, timeout=timeout)
    except Exception:
        logger.warning("Counter cache unavailable; allowed without counting.", exc_info=True)
        return None


def current(keys: list[str]) -> dict[str, int]:
    """The counters' values now ({} when the cache cannot be reached)."""
    try:
        return caches[DEFAULT_CACHE_ALIAS].get_many(keys)
    except Exception:
        logger.warning("Counter cache unavailable; not counting.", exc_info=True)
        return {}


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


def address_bucket(request) -> str | None:
    """The client's address for counting; for IPv6 its /64, which one client usually holds
    whole (counting single addresses would let it spread over 2^64 of them). None when the
    address is unknown: one shared bucket would let a stranger exhaust everybody's limit."""
    address = client_address(request)
    if address is None:
        return None
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address
