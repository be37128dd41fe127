"""Seeding for benchmarks: `count` keys over `organizations` organizations, one token. Prints
the token and the id of the token organization's default OpenAI key.

Every row is sealed by the real sealing code (so every stored secret opens, as in a real
database) and written with PostgreSQL's COPY: going through the service one key at a time
would spend the benchmark's time on audit events, and the ORM's bulk insert on building
objects. Sealing runs in one process per core; a million keys take a minute or two.
"""

import json
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

from django.db import connection, transaction

from keyvault import crypto, providers, services
from keyvault.masking import mask_secret
from organizations.access import Access
from organizations.models import Organization

CHUNK = 20_000
PROVIDERS = ("openai", "anthropic", "groq", "mistral", "deepseek", "xai")
_COLUMNS = (
    "id, organization_id, provider, name, secret, secret_hint, config, is_default, enabled, "
    "version, created_at, updated_at"
)


def _sealed_rows(args):
    """Rows for COPY: keys `start`..`stop` spread over the organizations, each sealed."""
    start, stop, organization_ids = args
    keyring = crypto.get_keyring()
    now = datetime.now(UTC)
    rows = []
    for number in range(start, stop):
        key_id = uuid.uuid4()
        organization_id = organization_ids[number % len(organization_ids)]
        provider_id = PROVIDERS[number % len(PROVIDERS)]
        provider = providers.get_provider(provider_id)
        secret = f"sk-bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        context = crypto.EncryptionContext(
            model="keyvault.providerkey",
            field="secret",
            organization_id=str(organization_id),
            row_id=str(key_id),
            binding=providers.secret_binding(provider, {}),
        )
        envelope = crypto.seal(secret.encode(), context, keyring)
        rows.append(
            (
                key_id,
                organization_id,
                provider_id,
                f"key {number}",
                envelope,
                mask_secret(secret),
                json.dumps({}),
                False,
                True,
                1,
                now,
                now,
            )
        )
    return rows


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
    chunks = [
        (start, min(start + CHUNK, count - 1), organization_ids)
        for start in range(0, count - 1, CHUNK)
    ]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool, transaction.atomic():
        with connection.cursor() as cursor:
            for rows in pool.map(_sealed_rows, chunks):
                with cursor.copy(f"COPY keyvault_providerkey ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE keyvault_providerkey")
        cursor.execute("ANALYZE organizations_organization")
    _token, raw = services.proxy_token_create(
        organization=organization, actor=actor, name="bench", scopes=["keys:read", "keys:secret"]
    )
    print(raw, default.pk)
