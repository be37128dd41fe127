"""Reads of provider keys and proxy tokens, always scoped to one organization, and the
fetch-and-authorize calls every surface uses (`access_provider_key`, `access_proxy_token`,
`audit_events_for`).

An id of another organization is simply not found: callers answer 404, never 403, so nobody
learns that the id exists.
"""

import uuid

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Lower

from audit.models import AuditEvent
from core.errors import NotFoundError
from core.text import has_control_characters
from keyvault import providers
from keyvault.errors import NoDefaultKeyError
from keyvault.models import ProviderKey, ProxyToken
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
