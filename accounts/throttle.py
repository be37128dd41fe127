"""Failed sign-ins, counted in the shared cache (`core.counters`) so that every app instance
sees them.

Two counters per window: one per (client address, account), which stops guessing one person's
password from one place without letting a stranger lock that person out from elsewhere, and one
per address, which stops one place from guessing across many accounts. A successful sign-in
clears the first. With no known address there is only the first: a shared "unknown" bucket
would let anyone lock everybody out. A cache outage fails open: passwords are still checked,
only the counting stops.
"""

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache

from core import counters

logger = logging.getLogger(__name__)


def _keys(request, username: str) -> list[tuple[str, int]]:
    """`(counter key, limit)` pairs that a sign-in as `username` from `request` counts into."""
    address = counters.address_bucket(request)
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    keys = [(f"kv:signin:{address or ''}:{account}", settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT)]
    if address:
        keys.append((f"kv:signin:{address}", settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS))
    return keys


def is_throttled(request, username: str) -> bool:
    keys = _keys(request, username)
    now = counters.current([key for key, _limit in keys])
    return any(limit and now.get(key, 0) >= limit for key, limit in keys)


def record_failure(request, username: str) -> None:
    for key, _limit in _keys(request, username):
        counters.count(key, timeout=settings.KEYVAULT_SIGNIN_WINDOW_SECONDS)


def clear(request, username: str) -> None:
    try:
        cache.delete(_keys(request, username)[0][0])
    except Exception:
        logger.warning("Sign-in throttle cache unavailable.", exc_info=True)


def window_minutes() -> int:
    return max(1, settings.KEYVAULT_SIGNIN_WINDOW_SECONDS // 60)
