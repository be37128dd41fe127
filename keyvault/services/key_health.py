"""Writes to a key's health and to its place in the pool: a proxy's report of what the provider
answered, a connection test, and the order of a provider's pool.

Health is written with `update()` on the row locked first (`select_for_update`), never with
`save()`: a report must not move `updated_at` (the secret's ETag), and concurrent reports are
applied one by one, so a change of health (ok → failing, say) is seen by exactly one of them
and audited once, however many proxies report it at the same moment.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

import audit
from audit import AuditAction
from core import counters
from core.errors import NotFoundError
from keyvault import events, health, probes, sealing
from keyvault.errors import ReportThrottled
from keyvault.models import KeyEventType, KeyReportCount, ProviderKey
from keyvault.services.validation import collect
from organizations.access import Access
from organizations.authorization import authorize
from organizations.permissions import Action

logger = logging.getLogger(__name__)

# Always allowed per key and minute, whatever the setting says: a busy proxy reporting every
# answer of a rate-limited key must not be throttled into silence.
MIN_REPORTS_PER_MINUTE = 60
_HEALTH_FIELDS = ("failing_since", "cooling_until", "last_reported_at")


def reports_per_minute() -> int:
    configured = int(getattr(settings, "KEYVAULT_REPORTS_PER_KEY_PER_MINUTE", 600))
    return max(configured, MIN_REPORTS_PER_MINUTE)


# --- Validation ------------------------------------------------------------------------------


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def clean_status(status) -> int:
    if not _whole(status) or not 100 <= status <= 599:
        raise ValidationError({"status": "An HTTP status code from 100 to 599."}, code="invalid")
    return status


def clean_retry_after(retry_after) -> int | None:
    if retry_after is None:
        return None
    if not _whole(retry_after) or retry_after < 0:
        raise ValidationError(
            {"retry_after": "A whole number of seconds, 0 or more."}, code="invalid"
        )
    return min(retry_after, health.MAX_COOLING_SECONDS)


def _throttle(key: ProviderKey) -> None:
    now = time.time()
    window, left = int(now // 60), 60 - int(now % 60)
    count = counters.count(f"kv:reports:key:{key.pk}:{window}", timeout=120)
    if count is not None and count > reports_per_minute():
        raise ReportThrottled("Too many reports about this key this minute.", wait=left)


def _locked(key: ProviderKey) -> ProviderKey:
    try:
        return (
            ProviderKey.objects.select_for_update(of=("self",))
            .select_related("organization")
            .get(pk=key.pk)
        )
    except ProviderKey.DoesNotExist:
        raise NotFoundError(f"The key {key.name!r} no longer exists.") from None


def _write_health(key: ProviderKey, **fields) -> None:
    for name, value in fields.items():
        setattr(key, name, value)
    if fields:
        ProviderKey.objects.filter(pk=key.pk).update(**fields)


def record_health_change(key: ProviderKey, actor: Access, before: str, after: str, cause: dict):
    """A change of health: one audit event, and the event feed's `key.health_changed`."""
    audit.record(
        action=AuditAction.KEY_HEALTH_CHANGED,
        actor=actor,
        organization=key.organization,
        target=key,
        metadata={"from": before, "to": after, **cause},
    )
    emit_key_health_changed(key, before, after)


def emit_key_health_changed(key: ProviderKey, before: str, after: str) -> None:
    """The event feed's `key.health_changed`, in the transaction of the change (the feed is
    an outbox): the one call site, after the change's other writes."""
    events.record_key_event(key, KeyEventType.HEALTH_CHANGED)


# --- A proxy's report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    key: ProviderKey
    changed: bool


def provider_key_report(
    *, key: ProviderKey, actor: Access, status, retry_after=None, now: datetime | None = None
) -> Report:
    """Record what the provider answered a proxy that used `key`: 401/403 mark it failing,
    429/5xx cool it for `retry_after` seconds (60 by default, an hour at most), 2xx clears
    cooling. Counted per key and hour; a change of health is audited once."""
    authorize(actor, Action.KEY_REPORT, key.organization_id, key)
    status, retry_after = collect(
        lambda: clean_status(status), lambda: clean_retry_after(retry_after)
    )
    _throttle(key)
    now = now or timezone.now()
    verdict = health.verdict_for(status, retry_after, now)
    with transaction.atomic():
        locked = _locked(key)
        before = health.health_of(locked, now)
        changes = {"last_reported_at": now}
        if verdict.failing and locked.failing_since is None:
            changes["failing_since"] = now
        if verdict.cooling_until is not None and (
            locked.cooling_until is None or locked.cooling_until < verdict.cooling_until
        ):
            changes["cooling_until"] = verdict.cooling_until
        if verdict.clears_cooling and locked.cooling_until is not None:
            changes["cooling_until"] = None
        _write_health(locked, **changes)
        KeyReportCount.add(key_id=locked.pk, at=now, failures=int(verdict.is_failure))
        after = health.health_of(locked, now)
        if after != before:
            record_health_change(locked, actor, before, after, {"reported_status": status})
    return Report(key=locked, changed=after != before)


# --- A connection test -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    status: int | None
    detail: str
    checked_at: datetime


@sensitive_variables()
def provider_key_test(*, key: ProviderKey, actor: Access) -> ConnectionTest:
    """One cheap authenticated call to the provider with the key's secret (`keyvault.probes`),
    and its result recorded: a pass clears failing, a refused credential (401/403) marks the
    key failing. The secret goes only to the provider and is never in the answer, a log or the
    audit trail: the detail is Keyvault's own sentence, never the provider's body."""
    authorize(actor, Action.KEY_TEST, key.organization_id, key)
    outcome = probes.probe(key, sealing.open_secret(key))
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(key)
        before = health.health_of(locked, now)
        changes = {"last_checked_at": now, "last_check_ok": outcome.ok}
        if outcome.ok:
            changes["failing_since"] = None
        elif outcome.refused and locked.failing_since is None:
            changes["failing_since"] = now
        _write_health(locked, **changes)
        audit.record(
            action=AuditAction.KEY_TESTED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            metadata={"ok": outcome.ok, "status": outcome.status, "detail": outcome.detail},
        )
        after = health.health_of(locked, now)
        if after != before:
            record_health_change(locked, actor, before, after, {"tested_status": outcome.status})
    return ConnectionTest(
        ok=outcome.ok, status=outcome.status, detail=outcome.detail, checked_at=now
    )


# --- The pool's order --------------------------------------------------------------------------


def provider_key_pool_reorder(*, organization, actor: Access, provider: str, key_ids) -> list:
    """Give the provider's enabled keys the priorities of the order `key_ids` names (10, 20, …;
    the default still comes first). Every key of the pool must be named, once."""
    authorize(actor, Action.KEY_REORDER, organization)
    from keyvault.locking import lock_keys
    from keyvault.selectors import provider_key_pool

    organization_id = getattr(organization, "pk", organization)
    with transaction.atomic():
        pool = provider_key_pool(organization_id=organization_id, provider=provider)
        lock_keys({key.pk for key in pool})
        by_id = {str(key.pk): key for key in pool}
        wanted = [str(key_id) for key_id in key_ids]
        if sorted(wanted) != sorted(by_id):
            raise ValidationError(
                {"order": "Name every enabled key of the provider's pool once; the pool changed?"}
            )
        ordered, moved, now = [], [], timezone.now()
        for position, key_id in enumerate(wanted, start=1):
            key = by_id[key_id]
            if key.priority != position * 10:
                key.priority = position * 10
                # `updated_at` too: the priority is served with the secret, whose ETag it moves.
                ProviderKey.objects.filter(pk=key.pk).update(priority=key.priority, updated_at=now)
                moved.append(key)
            ordered.append(key)
        audit.record(
            action=AuditAction.POOL_REORDERED,
            actor=actor,
            organization=organization,
            target_label=provider,
            metadata={"provider": provider, "order": [key.name for key in ordered]},
        )
        # Proxies' caches learn each new priority from the feed (its writes come last).
        for key in moved:
            events.record_key_event(key, KeyEventType.UPDATED)
    return sorted(ordered, key=health.pool_order)
