"""Seeding for benchmarks: `count` keys over `organizations` organizations, one token. Prints
the token and the id of the token organization's default OpenAI key.

The keys the benchmark reads are created through the service. The others fill the table and
its indexes: written with PostgreSQL's COPY (the service would spend the time on audit
events, the ORM's bulk insert on building objects), each with its own id, name, hint and
organization, and an envelope sealed once per provider by the real sealing code for another
row: real size and format (the database computes `kek_id` from it), but bound elsewhere, so
it would not open. Sealing a million envelopes would take longer than the benchmark, and the
lookups measured never open a filler row. A million keys take a minute or two.
"""

import json
import uuid
from datetime import UTC, datetime

from django.db import connection, transaction

from keyvault import crypto, providers, services
from keyvault.masking import mask_secret
from keyvault.models import ProviderKey
from organizations.access import Access
from organizations.models import Organization

PROVIDERS = ("openai", "anthropic", "groq", "mistral", "deepseek", "xai")
_COLUMNS = (
    "id, organization_id, provider, name, secret, secret_hint, config, is_default, enabled, "
    "version, priority, created_at, updated_at"
)


def _envelopes() -> dict[str, str]:
    """One envelope per provider, sealed for a row that does not exist."""
    keyring = crypto.get_keyring()
    envelopes = {}
    for provider_id in PROVIDERS:
        context = crypto.EncryptionContext(
            model="keyvault.providerkey",
            field="secret",
            organization_id=str(uuid.uuid4()),
            row_id=str(uuid.uuid4()),
            binding=providers.secret_binding(providers.get_provider(provider_id), {}),
        )
        secret = f"sk-bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        envelopes[provider_id] = crypto.seal(secret.encode(), context, keyring)
    return envelopes


def _filler_rows(count: int, organization_ids: list):
    envelopes = _envelopes()
    now = datetime.now(UTC)
    config = json.dumps({})
    for number in range(count):
        provider_id = PROVIDERS[number % len(PROVIDERS)]
        yield (
            uuid.uuid4(),
            organization_ids[number % len(organization_ids)],
            provider_id,
            f"key {number}",
            envelopes[provider_id],
            mask_secret(f"sk-bench-{number:040d}"),
            config,
            False,
            True,
            1,
            ProviderKey._meta.get_field("priority").default,
            now,
            now,
        )


def _organizations(count: int) -> list[uuid.UUID]:
    """`count` organizations (the first one is the benchmark's own, slug `bench`)."""
    first = Organization.objects.create(name="Bench", slug="bench")
    ids = [first.pk]
    rows = [(uuid.uuid4(), f"Bench {n}", f"bench-{n}") for n in range(1, count)]
    if rows:
        now = datetime.now(UTC)
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY organizations_organization (id, name, slug, created_at) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row((*row, now))
        ids += [row[0] for row in rows]
    return ids


def seed(count: int, organizations: int = 1) -> None:
    if connection.vendor != "postgresql":
        raise SystemExit("The benchmark seeds PostgreSQL only (it writes with COPY).")
    actor = Access.operator("benchmark")
    organization_ids = _organizations(organizations)
    organization = Organization.objects.get(pk=organization_ids[0])
    default = services.provider_key_create(
        organization=organization,
        actor=actor,
        provider="openai",
        name="default",
        secret="sk-proj-" + uuid.uuid4().hex * 2,
        is_default=True,
    )
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(f"COPY keyvault_providerkey ({_COLUMNS}) FROM STDIN") as copy,
    ):
        for row in _filler_rows(count - 1, organization_ids):
            copy.write_row(row)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE keyvault_providerkey")
        cursor.execute("ANALYZE organizations_organization")
    _token, raw = services.proxy_token_create(
        organization=organization, actor=actor, name="bench", scopes=["keys:read", "keys:secret"]
    )
    print(raw, default.pk)
