"""Reads of provider keys and proxy tokens, always scoped to one organization, and the
fetch-and-authorize calls every surface uses (`access_provider_key`, `access_proxy_token`,
`audit_events_for`).

An id of another organization is simply not found: callers answer 404, never 403, so nobody
learns that the id exists.
"""

import datetime
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Max, Sum, Value
from django.db.models.functions import Lower, TruncDate
from django.utils import timezone

from audit.models import AuditEvent
from core.errors import NotFoundError
from core.text import has_control_characters
from keyvault import health, providers
from keyvault.errors import NoAvailableKeyError, NoDefaultKeyError
from keyvault.models import KeyReportCount, KeyUsage, ProviderKey, ProxyToken
from organizations import permissions
from organizations.permissions import Action


def named(queryset, name: str):
    """Rows named `name` ignoring case, folded exactly as the unique constraints fold (LOWER).

    Not `iexact`, which folds with UPPER on PostgreSQL and LIKE on SQLite: where the foldings
    differ (the Kelvin sign and "k", the Greek sigma and final sigma) a lookup would find two
    rows the constraint allows side by side, or a check would pass a name the constraint then
    refuses as an IntegrityError instead of a field error.
    """
    return queryset.alias(name_lower=Lower("name")).filter(name_lower=Lower(Value(name)))


def provider_keys_for_org(*, organization_id, provider: str | None = None):
    keys = ProviderKey.objects.filter(organization_id=organization_id)
    if provider:
        providers.get_provider(provider)
        keys = keys.filter(provider=provider)
    return keys.order_by("provider", "name", "id")


def provider_key_get(*, organization_id, key_id) -> ProviderKey:
    """The key `key_id` of this organization; `ProviderKey.DoesNotExist` otherwise, also for an
    id that is not a UUID at all."""
    try:
        key_uuid = uuid.UUID(str(key_id))
    except ValueError:
        raise ProviderKey.DoesNotExist from None
    # The proxy's hottest query, written once by hand: building it through the ORM costs more
    # than the database spends answering it. Values are parameters, prepared by the fields.
    found = list(
        ProviderKey.objects.raw(
            _key_by_id_sql(),
            [
                _pk_field.get_db_prep_value(key_uuid, connection),
                _org_field.get_db_prep_value(organization_id, connection),
            ],
        )
    )
    if not found:
        raise ProviderKey.DoesNotExist
    return found[0]


_pk_field = ProviderKey._meta.pk
_org_field = ProviderKey._meta.get_field("organization")


def _key_by_id_sql() -> str:
    quote = connection.ops.quote_name
    return (
        f"SELECT * FROM {quote(ProviderKey._meta.db_table)} "  # noqa: S608
        f"WHERE {quote(_pk_field.column)} = %s AND {quote(_org_field.column)} = %s"
    )


def provider_key_resolve(*, organization_id, provider: str, name: str | None = None) -> ProviderKey:
    """The organization's default key for `provider`, or its key named `name`.

    Disabled keys are returned too, so the caller can say so instead of "not found"; they are
    never handed out (`keyvault.retrieval` refuses them).
    """
    if not isinstance(provider, str) or not provider:
        raise ValidationError({"provider": "The provider parameter is required."})
    providers.get_provider(provider)
    keys = ProviderKey.objects.filter(organization_id=organization_id, provider=provider)
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": "The name parameter cannot be empty."})
        # PostgreSQL refuses NUL in a query parameter with a driver error, not "no match".
        if has_control_characters(name):
            raise ProviderKey.DoesNotExist
        return named(keys, name).get()
    try:
        return keys.get(is_default=True)
    except ProviderKey.DoesNotExist:
        raise NoDefaultKeyError(provider) from None


def provider_key_pool(*, organization_id, provider: str, available_only: bool = False, now=None):
    """The provider's pool: its enabled keys, the default first, then by priority, then by name
    (`keyvault.health.pool_order`, the one ordering every surface shows); with
    `available_only`, without the failing and cooling ones."""
    if not isinstance(provider, str) or not provider:
        raise ValidationError({"provider": "The provider parameter is required."})
    providers.get_provider(provider)
    keys = ProviderKey.objects.filter(
        organization_id=organization_id, provider=provider, enabled=True
    )
    pool = sorted(keys, key=health.pool_order)
    if available_only:
        now = now or timezone.now()
        pool = [key for key in pool if health.is_available(key, now)]
    return pool


def provider_key_resolve_available(*, organization_id, provider: str) -> ProviderKey:
    """The first available key of the provider's pool (`resolve?fallback=true`);
    `NoAvailableKeyError` when every key is disabled, failing or cooling, or there is none."""
    pool = provider_key_pool(
        organization_id=organization_id, provider=provider, available_only=True
    )
    if not pool:
        raise NoAvailableKeyError(
            f"No {providers.get_provider(provider).name} key is available: every one is "
            "disabled, failing or cooling."
        )
    return pool[0]


# --- Fetch and authorize in one call ---------------------------------------------------------


def _scope_of(access, organization_id):
    """The organization a fetch is scoped to: the one named, else the caller's own."""
    organization_id = organization_id or access.organization_id
    if organization_id is None:
        raise ValueError("Name the organization: this caller belongs to none in particular.")
    return organization_id


def access_provider_key(access, key_id, action: Action, *, organization_id=None) -> ProviderKey:
    """The key `key_id` of the caller's organization (or of `organization_id`), if the caller
    may take `action` on it.

    A missing id, a malformed one and another organization's raise `NotFoundError` alike, and
    so does any key when the caller may neither list keys nor take `action` (nothing to see);
    a key the caller sees but may not `action` raises `PermissionDenied`.
    """
    organization_id = _scope_of(access, organization_id)
    if not (
        permissions.can(access, Action.KEY_LIST, organization_id)
        or permissions.can(access, action, organization_id)
    ):
        raise NotFoundError("No such key.")
    try:
        key = provider_key_get(organization_id=organization_id, key_id=key_id)
    except ProviderKey.DoesNotExist:
        raise NotFoundError("No such key.") from None
    permissions.require(access, action, organization_id, key)
    return key


def access_proxy_token(
    access, token_id, action: Action = Action.TOKEN_MANAGE, *, organization_id=None
) -> ProxyToken:
    """The proxy token `token_id` of the organization, if the caller may manage tokens there;
    `NotFoundError` for a missing or foreign id, and for a caller who may not see tokens."""
    organization_id = _scope_of(access, organization_id)
    if not permissions.can(access, action, organization_id):
        raise NotFoundError("No such token.")
    try:
        token_uuid = uuid.UUID(str(token_id))
    except ValueError:
        raise NotFoundError("No such token.") from None
    token = (
        ProxyToken.objects.select_related("created_by", "organization")
        .filter(pk=token_uuid, organization_id=organization_id)
        .first()
    )
    if token is None:
        raise NotFoundError("No such token.")
    return token


def proxy_tokens_for(access, *, organization_id=None):
    """The organization's proxy tokens, for a caller who may manage them."""
    organization_id = _scope_of(access, organization_id)
    permissions.require(access, Action.TOKEN_MANAGE, organization_id)
    return ProxyToken.objects.filter(organization_id=organization_id).select_related("created_by")


def audit_events_for(access, *, organization_id=None):
    """The organization's audit trail, newest first, for a caller who may read it."""
    organization_id = _scope_of(access, organization_id)
    permissions.require(access, Action.AUDIT_READ, organization_id)
    return AuditEvent.objects.filter(organization_id=organization_id)


# --- Usage: secret retrievals counted per token, key and hour (keyvault/usage.py) -------------

USAGE_DAYS = 14


def key_usage_by_day(access, *, organization_id=None, days: int = USAGE_DAYS):
    """Retrievals per day, token and key over the last `days` days, newest day first, for a
    caller who may manage tokens (the rows name them). A deleted key's rows stay (`key` None)."""
    organization_id = _scope_of(access, organization_id)
    permissions.require(access, Action.TOKEN_MANAGE, organization_id)
    since = timezone.now() - timedelta(days=days)
    return (
        KeyUsage.objects.filter(token__organization_id=organization_id, hour__gte=since)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day", "token_id", "token__name", "key_id", "key__name", "key__provider")
        .annotate(count=Sum("count"))
        .order_by("-day", Lower("token__name"), Lower("key__name"))
    )


def key_usage_totals(*, organization_id, field: str, days: int = 7) -> dict:
    """Retrievals over the last `days` days per key (`field="key"`) or per token
    (`field="token"`) of one organization: `{id: count}`. Counts only, no names."""
    if field not in ("key", "token"):
        raise ValueError(field)
    since = timezone.now() - timedelta(days=days)
    rows = (
        KeyUsage.objects.filter(token__organization_id=organization_id, hour__gte=since)
        .exclude(**{f"{field}_id": None})
        .values(f"{field}_id")
        .annotate(total=Sum("count"))
        .order_by()
    )
    return {row[f"{field}_id"]: row["total"] for row in rows}


# --- Health, usage and the overview (pages) --------------------------------------------------

ACTIVITY_HOURS = 7 * 24
HEALTH_HISTORY_ACTIONS = ("provider_key.health_changed", "provider_key.tested")


@dataclass(frozen=True)
class HourActivity:
    hour: datetime.datetime
    retrievals: int
    failures: int


def _hour(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def key_activity(*, key, now=None, hours: int = ACTIVITY_HOURS) -> list[HourActivity]:
    """Secret retrievals (every token's) and failure reports of `key`, per hour, for the last
    `hours` hours up to and including the current one, oldest first, with empty hours as 0."""
    last = _hour(now or timezone.now())
    first = last - datetime.timedelta(hours=hours - 1)
    retrievals = dict(
        KeyUsage.objects.filter(key=key, hour__gte=first, hour__lte=last)
        .values("hour")
        .annotate(total=Sum("count"))
        .values_list("hour", "total")
    )
    failures = dict(
        KeyReportCount.objects.filter(key=key, hour__gte=first, hour__lte=last).values_list(
            "hour", "failures"
        )
    )
    return [
        HourActivity(hour, int(retrievals.get(hour, 0)), int(failures.get(hour, 0)))
        for hour in (first + datetime.timedelta(hours=n) for n in range(hours))
    ]


def key_token_usage(*, key, now=None, hours: int = ACTIVITY_HOURS) -> list[dict]:
    """The tokens that fetched `key`'s secret in the last `hours` hours, most retrievals first:
    `{"token": ProxyToken, "retrievals": n, "last_hour": datetime}`."""
    first = _hour(now or timezone.now()) - datetime.timedelta(hours=hours - 1)
    rows = (
        KeyUsage.objects.filter(key=key, hour__gte=first)
        .values("token")
        .annotate(retrievals=Sum("count"), last_hour=Max("hour"))
        .order_by("-retrievals", "token")
    )
    tokens = ProxyToken.objects.in_bulk([row["token"] for row in rows])
    return [
        {
            "token": tokens[row["token"]],
            "retrievals": row["retrievals"],
            "last_hour": row["last_hour"],
        }
        for row in rows
        if row["token"] in tokens
    ]


def key_health_history(*, key, limit: int = 50):
    """The key's health changes and connection tests, newest first (from the audit trail)."""
    return AuditEvent.objects.filter(
        target_type=ProviderKey._meta.label_lower,
        target_id=str(key.pk),
        action__in=HEALTH_HISTORY_ACTIONS,
    ).order_by("-created_at", "-id")[:limit]


@dataclass
class ProviderCounts:
    provider: providers.Provider
    keys: int = 0
    enabled: int = 0
    failing: int = 0
    cooling: int = 0
    stale: int = 0
    unused: int = 0


def organization_key_overview(*, organization_id, now=None) -> list[ProviderCounts]:
    """Per provider the organization has keys of: how many keys, enabled, failing, cooling,
    stale (`KEYVAULT_STALE_DAYS`) and never used. Read from the columns alone: no secret is
    loaded."""
    now = now or timezone.now()
    counts: dict[str, ProviderCounts] = {}
    rows = ProviderKey.objects.filter(organization_id=organization_id).only(
        "id",
        "provider",
        "enabled",
        "failing_since",
        "cooling_until",
        "last_reported_at",
        "last_checked_at",
        "last_used_at",
        "created_at",
    )
    for key in rows:
        entry = counts.setdefault(
            key.provider, ProviderCounts(providers.get_provider(key.provider))
        )
        state = health.health_of(key, now)
        entry.keys += 1
        entry.enabled += key.enabled
        entry.failing += state == health.FAILING
        entry.cooling += state == health.COOLING
        entry.stale += health.is_stale(key, now)
        entry.unused += key.last_used_at is None
    order = [provider.id for provider in providers.PROVIDERS]
    return [counts[provider_id] for provider_id in order if provider_id in counts]
