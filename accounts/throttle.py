"""Failed sign-ins, counted in the shared cache so that every app instance sees them.

Two counters per window: one per (client address, account), which stops guessing one person's
password from one place without letting a stranger lock that person out from elsewhere, and one
per address, which stops one place from guessing across many accounts. A successful sign-in
clears the first. Like the API's throttles, a cache outage fails open: sign-in keeps working
(passwords are still checked), it is only the counting that stops.
"""

import hashlib
import ipaddress
import logging

from django.conf import settings
from django.core.cache import cache

from keyvault.api.throttling import client_address

logger = logging.getLogger(__name__)


def _address_bucket(request) -> str:
    """The client's address; for IPv6 its /64, which one client usually holds whole (counting
    single addresses would let it guess from 2^64 of them)."""
    address = client_address(request)
    if address is None:
        return ""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def _keys(request, username: str) -> tuple[str, str | None]:
    """The (address, account) counter's key and the address counter's. With no known address
    (a server on a Unix socket, no trusted header) there is no address counter: one shared
    bucket would let a stranger lock everybody out."""
    address = _address_bucket(request)
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"kv:signin:{address}:{account}", (f"kv:signin:{address}" if address else None)


def _limits() -> tuple[int, int]:
    return (
        settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT,
        settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS,
    )


def is_throttled(request, username: str) -> bool:
    keys = _keys(request, username)
    try:
        counts = cache.get_many([key for key in keys if key])
    except Exception:
        logger.warning("Sign-in throttle cache unavailable; not counting.", exc_info=True)
        return False
    return any(
        key and limit and counts.get(key, 0) >= limit
        for key, limit in zip(keys, _limits(), strict=True)
    )


def record_failure(request, username: str) -> None:
    window = settings.KEYVAULT_SIGNIN_WINDOW_SECONDS
    try:
        for key in filter(None, _keys(request, username)):
            # `add` starts the window; `incr` then counts atomically on every cache backend.
            cache.add(key, 0, timeout=window)
            try:
                cache.incr(key)
            except ValueError:  # expired between the two calls
                cache.set(key, 1, timeout=window)
    except Exception:
        logger.warning("Sign-in throttle cache unavailable; not counting.", exc_info=True)


def clear(request, username: str) -> None:
    try:
        cache.delete(_keys(request, username)[0])
    except Exception:
        logger.warning("Sign-in throttle cache unavailable.", exc_info=True)


def window_minutes() -> int:
    return max(1, settings.KEYVAULT_SIGNIN_WINDOW_SECONDS // 60)
