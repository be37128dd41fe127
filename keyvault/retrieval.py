"""Handing decrypted secrets to a proxy: the token and key read together, revalidation, the
disabled rule, accounting; one key (`retrieve`, `retrieve_secret`) or every enabled key of the
organization (`retrieve_snapshot`). Every surface that hands a proxy a secret (the API's
`resolve`, `keys/{id}/secret` and `snapshot`, and any other surface over the same tokens) goes
through here.

The ETag is derived from the key's id, secret version and last change, so it changes whenever
anything in the response would. A proxy that sends it back in `If-None-Match` gets "not
modified" without any decryption. Disabled keys are refused even on revalidation, so a proxy
with a cached copy learns at once that it must stop using it.

Nothing here is cached: the token and the key are read from the database on every request, in
one statement (`token_and_key`), so a revoked or expired token and a disabled or deleted key
take effect on the very next request.
"""

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from functools import cache

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.http import parse_etags
from django.views.decorators.debug import sensitive_variables

from core.errors import NotFoundError
from core.text import has_control_characters
from keyvault import events, providers, selectors
from keyvault.crypto import CryptoError
from keyvault.errors import NoDefaultKeyError
from keyvault.models import ProviderKey, ProxyToken
from keyvault.services import (
    provider_key_check_reveal,
    provider_key_reveal,
    provider_key_version_get,
)
from keyvault.token_auth import proxy_token_accept, proxy_token_digest
from keyvault.usage import recorder
from organizations.access import Access
from organizations.authorization import authorize
from organizations.permissions import Action

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecretRetrieval:
    key: ProviderKey
    etag: str
    secret: str | None  # None when the caller's copy is current
    version: object = None  # the kept SecretVersion handed out, None for the current secret

    @property
    def not_modified(self) -> bool:
        return self.secret is None

    def __repr__(self):
        return f"SecretRetrieval(key={self.key.pk}, etag={self.etag}, secret=<hidden>)"


# --- Which key a retrieval asks for ---------------------------------------------------------


@dataclass(frozen=True)
class KeyLookup:
    """The key a request names: by id, a provider's default, or a provider's key by name.

    Built from the request's parameters before anything is authenticated, so a bad parameter
    cannot be answered before a bad token: its `refusal` is kept and raised by `retrieve` once
    the caller has been authenticated and authorized (the order the API has always answered
    in). A lookup that can find nothing (`kind` "none") reads the token alone.
    """

    kind: str  # "id", "default", "name", "pool" or "none"
    params: tuple = ()
    refusal: Exception | None = None
    # An older version of the key's secret (`keys/{id}/secret?version=N`), None for the current.
    version: int | None = None

    @classmethod
    def by_id(cls, key_id, version: list[str] | None = None) -> "KeyLookup":
        """The key `key_id`; `version` holds the values of the `version` parameter."""
        try:
            key_uuid = uuid.UUID(str(key_id))
        except ValueError:
            # A malformed id is a key that does not exist, like any other.
            return cls("none", refusal=NotFoundError("No such key."))
        number, refusal = _version_number(version or [])
        if refusal is not None:
            return cls.refused(refusal)
        return cls("id", (key_uuid,), version=number)

    @classmethod
    def resolve(
        cls, provider, name: str | None = None, fallback: list[str] | None = None
    ) -> "KeyLookup":
        """The organization's default key for `provider`, or its key named `name` (any case,
        folded as the unique constraint folds it). Disabled keys are found too, so the caller
        can say so instead of "not found"; `retrieve` never hands them out. `fallback` holds
        the values of the `fallback` parameter: `true` asks for the first available key of the
        pool instead (read by `retrieve`, not by the joined statement: the pool is ordered and
        filtered by health)."""
        if not isinstance(provider, str) or not provider:
            return cls.refused(ValidationError({"provider": "The provider parameter is required."}))
        try:
            providers.get_provider(provider)
        except ValidationError as invalid:
            return cls.refused(invalid)
        if fallback:
            if len(fallback) > 1 or fallback[0] not in ("true", "false"):
                message = "fallback must be true or false."
                return cls.refused(ValidationError({"fallback": [message]}))
            if fallback[0] == "true":
                return cls("pool", (provider,))
        if name is None:
            return cls("default", (provider,))
        name = name.strip()
        if not name:
            return cls.refused(ValidationError({"name": "The name parameter cannot be empty."}))
        # PostgreSQL refuses NUL in a query parameter with a driver error, not "no match"; no
        # name can hold a control character anyway.
        if has_control_characters(name):
            return cls.refused(NotFoundError("No such key."))
        return cls("name", (provider, name))

    @classmethod
    def refused(cls, refusal: Exception) -> "KeyLookup":
        return cls("none", refusal=refusal)


# Longer than any version number; also keeps int() away from its limit on digits.
_MAX_DIGITS = 18


def _version_number(values: list[str]) -> tuple[int | None, Exception | None]:
    """The `version` parameter as a whole number from 1 (None when absent), or the refusal the
    API answers (400 naming the parameter), as for every whole-number parameter."""
    if not values:
        return None, None
    if len(values) > 1:
        return None, ValidationError({"version": ["Give version once."]})
    value = values[0]
    if value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS and int(value) >= 1:
        return int(value), None
    return None, ValidationError({"version": ["version must be a whole number from 1."]})


# --- One statement for the token and its key -------------------------------------------------
#
# A retrieval needs the token (by digest) and one key of the token's organization. Read one
# after the other they are two round trips to the database, and built through the ORM each
# costs more to compose than the database spends answering it. So the two are one fixed,
# parameterised statement per kind of lookup, composed once from the models' metadata (table and
# column names, never values) and turned into model instances with the fields' own converters,
# exactly as the ORM would load them.

_TOKEN, _KEY = "t", "k"


def _quoted(alias: str, field) -> str:
    return f"{alias}.{connection.ops.quote_name(field.column)}"


def _conditions() -> dict[str, str]:
    """The join condition of each kind of lookup, beyond "the token's organization"."""
    key = ProviderKey._meta
    pk = _quoted(_KEY, key.pk)
    provider = _quoted(_KEY, key.get_field("provider"))
    is_default = _quoted(_KEY, key.get_field("is_default"))
    name = _quoted(_KEY, key.get_field("name"))
    return {
        "id": f"{pk} = %s",
        # The partial unique index on (organization, provider) where is_default holds one row.
        "default": f"{provider} = %s AND {is_default}",
        # LOWER on both sides, as the unique constraint folds names (selectors.named).
        "name": f"{provider} = %s AND LOWER({name}) = LOWER(%s)",
    }


@cache
def _statement(vendor: str, kind: str) -> str:
    token, key = ProxyToken._meta, ProviderKey._meta
    quote = connection.ops.quote_name
    token_columns = ", ".join(_quoted(_TOKEN, f) for f in token.concrete_fields)
    digest = _quoted(_TOKEN, token.get_field("digest"))
    if kind in ("none", "pool"):
        return (
            f"SELECT {token_columns} FROM {quote(token.db_table)} {_TOKEN} "  # noqa: S608
            f"WHERE {digest} = %s"
        )
    key_columns = ", ".join(_quoted(_KEY, f) for f in key.concrete_fields)
    same_organization = (
        f"{_quoted(_KEY, key.get_field('organization'))} = "
        f"{_quoted(_TOKEN, token.get_field('organization'))}"
    )
    # Only identifiers from the models' metadata are interpolated; values are parameters.
    if vendor == "postgresql":
        # A lateral subquery, so that the key's index is searched with the token's organization
        # in its condition. As a plain join, the plan PostgreSQL keeps for a prepared statement
        # searched the partial index of defaults by provider alone and filtered organizations
        # afterwards: one row per organization with a default for that provider. (LIMIT keeps
        # the subquery from being flattened into that join; the unique indexes allow one row.)
        return (
            f"SELECT {token_columns}, {key_columns} "  # noqa: S608
            f"FROM {quote(token.db_table)} {_TOKEN} "
            f"LEFT JOIN LATERAL (SELECT * FROM {quote(key.db_table)} {_KEY} "
            f"WHERE {same_organization} AND {_conditions()[kind]} LIMIT 1) {_KEY} ON TRUE "
            f"WHERE {digest} = %s"
        )
    return (
        f"SELECT {token_columns}, {key_columns} "  # noqa: S608
        f"FROM {quote(token.db_table)} {_TOKEN} "
        f"LEFT JOIN {quote(key.db_table)} {_KEY} "
        f"ON {same_organization} AND {_conditions()[kind]} "
        f"WHERE {digest} = %s"
    )


@cache
def _converters(vendor: str, model) -> tuple[tuple[int, object, list], ...]:
    """For the columns of `model` that need any, the converters the ORM applies when it loads
    one (the backend's, then the field's): UUIDs and datetimes on SQLite, JSON, the sealed
    secret. Columns without converters are taken as the driver gives them."""
    table = model._meta.db_table
    converters = []
    for index, model_field in enumerate(model._meta.concrete_fields):
        column = model_field.get_col(table)
        found = connection.ops.get_db_converters(column) + model_field.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return tuple(converters)


def _instance(model, values):
    values = list(values)
    for index, column, converters in _converters(connection.vendor, model):
        for convert in converters:
            values[index] = convert(values[index], column, connection)
    return model.from_db(connection.alias, None, values)


def _cursor():
    """A cursor for the retrieval's statement. On PostgreSQL it binds parameters on the server
    and prepares the statement once per connection (`KEYVAULT_DB_PREPARED_STATEMENTS`): the
    statement never changes, and planning a join cost the database more than running it.
    Django's own cursors bind on the client and never prepare, to keep transaction-mode
    connection poolers working; a pooler that does not keep prepared statements needs the
    setting off. Wrapped like every Django cursor: errors become Django's, queries are logged
    where Django logs them."""
    if connection.vendor != "postgresql" or not settings.KEYVAULT_DB_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = _PreparingCursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-binding cursor, preparing every statement it runs."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def _parameters(lookup: KeyLookup) -> list:
    if lookup.kind == "pool":
        return []
    if lookup.kind == "id":
        return [ProviderKey._meta.pk.get_db_prep_value(lookup.params[0], connection)]
    return list(lookup.params)


@sensitive_variables()
def token_and_key(raw_token: str, lookup: KeyLookup) -> tuple[ProxyToken, ProviderKey | None]:
    """The active token `raw_token` names and the key `lookup` finds in the token's
    organization (None when there is none), read in one round trip. Raises
    `keyvault.token_auth.TokenRefused` like `proxy_token_authenticate`, under the same rules
    (`proxy_token_digest`, `proxy_token_accept`). The token's organization is not loaded."""
    digest = proxy_token_digest(raw_token)
    with _cursor() as cursor:
        cursor.execute(_statement(connection.vendor, lookup.kind), [*_parameters(lookup), digest])
        row = cursor.fetchone()
    if row is None:
        return proxy_token_accept(None), None
    width = len(ProxyToken._meta.concrete_fields)
    token = proxy_token_accept(_instance(ProxyToken, row[:width]))
    key_values = row[width:]
    # A LEFT JOIN that found no key answers NULL in every key column, the primary key included.
    key = _instance(ProviderKey, key_values) if key_values and key_values[0] is not None else None
    return token, key


# --- Handing the secret out ------------------------------------------------------------------


def key_etag(key: ProviderKey, version=None) -> str:
    if version is not None:
        # A kept version never changes: its number and row are all its answer depends on
        # besides the key's settings.
        material = f"{key.pk}:{version.number}:{version.pk}:{key.updated_at.isoformat()}".encode()
    else:
        material = f"{key.pk}:{key.version}:{key.updated_at.isoformat()}".encode()
    return f'"{hashlib.sha256(material).hexdigest()[:32]}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = parse_etags(if_none_match)
    return "*" in tags or etag in tags or f"W/{etag}" in tags


@sensitive_variables()
def retrieve_secret(
    *, actor: Access, key: ProviderKey, if_none_match: str | None = None, version=None
):
    """The key's secret for a proxy token, or "not modified" when `if_none_match` is current;
    with `version` (a kept `SecretVersion` of the key), that older secret.

    Authorized as a reveal even when nothing is decrypted: a 304 also tells the caller what
    the current secret is (the one it holds).
    """
    etag = key_etag(key, version)
    if _matches(if_none_match, etag):
        provider_key_check_reveal(key=key, actor=actor)
        secret = None
    else:
        secret = provider_key_reveal(key=key, actor=actor, version=version)
    recorder.record_secret_retrieval(actor.token.pk, key.pk)
    return SecretRetrieval(key=key, etag=etag, secret=secret, version=version)


@sensitive_variables()
def retrieve(
    *, actor: Access, lookup: KeyLookup, key: ProviderKey | None, if_none_match: str | None
) -> SecretRetrieval:
    """`retrieve_secret` for the key `token_and_key` found for `lookup`, once the caller is
    authenticated, authorized and counted: a bad parameter answers now, a key that is not
    there (or not the token organization's) as not found."""
    if lookup.refusal is not None:
        raise lookup.refusal
    if lookup.kind == "pool":
        key = selectors.provider_key_resolve_available(
            organization_id=actor.organization_id, provider=lookup.params[0]
        )
    if key is None and lookup.kind == "default":
        # The caller's own organization: saying it has no default tells nobody else anything.
        raise NoDefaultKeyError(lookup.params[0])
    if key is None:
        raise NotFoundError("No such key.")
    version = None
    if lookup.version is not None and lookup.version != key.version:
        # Authorized like the current secret (retrieve_secret), found among the kept ones.
        version = provider_key_version_get(key=key, number=lookup.version)
    return retrieve_secret(actor=actor, key=key, if_none_match=if_none_match, version=version)


@dataclass(frozen=True)
class Snapshot:
    cursor: int
    # (key, secret) for every key that opened, in the order of the key list.
    keys: list = field(repr=False)
    # (key id, error code) for the keys whose stored value failed its integrity check.
    unavailable: list

    def __repr__(self):
        return (
            f"Snapshot(cursor={self.cursor}, keys={len(self.keys)}, "
            f"unavailable={len(self.unavailable)}, secrets=<hidden>)"
        )


@sensitive_variables()
def retrieve_snapshot(*, actor: Access, provider: str | None = None) -> Snapshot:
    """Every enabled key of the caller's organization (of `provider` if given) with its secret,
    and the feed's cursor they are current at (`keyvault.events.snapshot_keys`).

    Each secret is a retrieval like `retrieve_secret`'s: authorized and accounted per key. The
    keys are read under the feed's lock, decrypted after it is let go. A key whose stored value
    fails its integrity check is left out (listed as unavailable, logged by the service): one
    damaged row must not keep every proxy of the organization from starting.
    """
    organization_id = actor.organization_id
    authorize(actor, Action.KEY_REVEAL, organization_id)
    cursor, keys = events.snapshot_keys(organization_id=organization_id, provider=provider)
    opened, unavailable = [], []
    for key in keys:
        try:
            secret = provider_key_reveal(key=key, actor=actor)
        except CryptoError as exc:
            unavailable.append((key.pk, exc.code))
            continue
        recorder.record_secret_retrieval(actor.token.pk, key.pk)
        opened.append((key, secret))
    return Snapshot(cursor=cursor, keys=opened, unavailable=unavailable)
