"""Seeding for benchmarks: one organization, `count` keys, one token. Prints the token and
the id of one key. Keys are sealed by the real sealing code and inserted in bulk, because going
through the service one by one would spend the benchmark's time writing audit events."""

import uuid

from django.db import transaction

from keyvault import services
from keyvault.masking import mask_secret
from keyvault.models import ProviderKey
from keyvault.sealing import seal_secret
from organizations.access import Access
from organizations.models import Organization

BATCH = 2000
PROVIDERS = ("openai", "anthropic", "groq", "mistral", "deepseek", "xai")


def seed(count: int) -> None:
    actor = Access.operator("benchmark")
    organization = Organization.objects.create(name="Bench", slug="bench")
    default = services.provider_key_create(
        organization=organization,
        actor=actor,
        provider="openai",
        name="default",
        secret="sk-proj-" + uuid.uuid4().hex * 2,
        is_default=True,
    )
    batch = []
    for number in range(count - 1):
        secret = f"sk-bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        key = ProviderKey(
            organization=organization,
            provider=PROVIDERS[number % len(PROVIDERS)],
            name=f"key {number}",
            secret_hint=mask_secret(secret),
        )
        key.secret = seal_secret(key, secret)
        batch.append(key)
        if len(batch) == BATCH:
            with transaction.atomic():
                ProviderKey.objects.bulk_create(batch)
            batch = []
    if batch:
        ProviderKey.objects.bulk_create(batch)
    _token, raw = services.proxy_token_create(
        organization=organization, actor=actor, name="bench", scopes=["keys:read", "keys:secret"]
    )
    print(raw, default.pk)
