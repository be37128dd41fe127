"""Reads of provider keys, always scoped to one organization.

An id of another organization is simply not found: callers answer 404, never 403, so nobody
learns that the id exists.
"""

import uuid

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Lower

from core.text import has_control_characters
from keyvault import providers
from keyvault.models import ProviderKey


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
    return keys.get(is_default=True)
