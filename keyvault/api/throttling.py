"""Throttles that keep their state in Django's cache, so all app instances share it.

Fixed one-minute windows counted with an atomic increment (`core.counters`): one cache round
trip per request on Redis, instead of the timestamp lists DRF's stock throttles rewrite on every
request.
"""

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from core import counters

WINDOW_SECONDS = 60
# Counters outlive their window a little, so a late increment never revives a stale count.
COUNTER_TIMEOUT = WINDOW_SECONDS * 2


def _window() -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    now = time.time()
    return int(now // WINDOW_SECONDS), WINDOW_SECONDS - int(now % WINDOW_SECONDS)


def _counted(key: str) -> int | None:
    return counters.count(key, timeout=COUNTER_TIMEOUT)


def token_throttle_wait(token) -> int | None:
    """Count one request of `token`: None while it is within
    `KEYVAULT_API_TOKEN_RATE_PER_MINUTE` (0 turns the limit off), else the seconds until its
    window ends."""
    limit = settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE
    if not limit or token is None:
        return None
    window, left = _window()
    count = _counted(f"kv:throttle:token:{token.pk}:{window}")
    return None if count is None or count <= limit else left


class TokenRateThrottle(BaseThrottle):
    """Requests per minute per token: `KEYVAULT_API_TOKEN_RATE_PER_MINUTE` (0 turns it off)."""

    def allow_request(self, request, view):
        self._left = token_throttle_wait(request.auth)
        return self._left is None

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
        address = counters.address_bucket(request) or "unknown"
        count = _counted(f"kv:throttle:authfail:{address}:{window}")
        return count is None or count <= limit

    def wait_seconds(self) -> int:
        return getattr(self, "_left", WINDOW_SECONDS)
