"""A key's health and its place in its provider's pool: the rules, without any writing.

- **failing**: the provider refused the credential (a reported or tested 401 or 403); it stays
  so until the secret is rotated or a connection test passes.
- **cooling**: the provider limited or failed a request (429, 5xx); it stays so until
  `cooling_until`, which `retry_after` sets (60 seconds when absent, one hour at most), or
  until a 2xx report clears it early.
- **ok**: neither, and something has been heard of the key (a report or a test).
- **unchecked**: nothing has been heard of it yet.

A key is *available* when it is enabled, not failing and not cooling: what `fallback` and the
pool hand out. The writes live in `keyvault.services.key_health`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

OK, COOLING, FAILING, UNCHECKED = "ok", "cooling", "failing", "unchecked"
HEALTH_STATES = (OK, COOLING, FAILING, UNCHECKED)

DEFAULT_COOLING_SECONDS = 60
MAX_COOLING_SECONDS = 3600


def health_of(key, now: datetime | None = None) -> str:
    if key.failing_since is not None:
        return FAILING
    if key.cooling_until is not None and key.cooling_until > (now or timezone.now()):
        return COOLING
    if key.last_reported_at is not None or key.last_checked_at is not None:
        return OK
    return UNCHECKED


def is_available(key, now: datetime | None = None) -> bool:
    return key.enabled and health_of(key, now) not in (FAILING, COOLING)


def stale_days() -> int:
    return int(getattr(settings, "KEYVAULT_STALE_DAYS", 90))


def is_stale(key, now: datetime | None = None) -> bool:
    """Not used for `KEYVAULT_STALE_DAYS` days (a key never used counts from its creation)."""
    cutoff = (now or timezone.now()) - timedelta(days=stale_days())
    last = key.last_used_at or key.created_at
    return last is not None and last < cutoff


def pool_order(key) -> tuple:
    """The sort key of a pool: the default first, then by priority, then by name."""
    return (not key.is_default, key.priority, key.name.lower(), str(key.pk))


# --- What a report means -----------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the provider's answer does to the key: mark it failing, cool it until a moment,
    clear cooling, or nothing."""

    failing: bool = False
    cooling_until: datetime | None = None
    clears_cooling: bool = False

    @property
    def is_failure(self) -> bool:
        return self.failing or self.cooling_until is not None


def verdict_for(status: int, retry_after: int | None, now: datetime) -> Verdict:
    if status in (401, 403):
        return Verdict(failing=True)
    if status == 429 or 500 <= status <= 599:
        seconds = DEFAULT_COOLING_SECONDS if retry_after is None else retry_after
        seconds = min(max(seconds, 0), MAX_COOLING_SECONDS)
        return Verdict(cooling_until=now + timedelta(seconds=seconds))
    if 200 <= status <= 299:
        return Verdict(clears_cooling=True)
    return Verdict()
