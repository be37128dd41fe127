from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from accounts.services import user_get_or_create
from core.management import ProvisioningCommand
from keyvault import services
from keyvault.models import ProviderKey
from organizations.access import Access
from organizations.models import Organization
from organizations.services import organization_create

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "keyvault-demo"
DEMO_SLUG = "demo"
# Fake secrets shaped like real ones, so the masked hints look as they would.
DEMO_KEYS = [
    {
        "provider": "openai",
        "name": "Production",
        "is_default": True,
        "secret": "sk-proj-DEMOnotARealKeyDEMOnotARealKey0001",
    },
    {
        "provider": "openai",
        "name": "Staging",
        "secret": "sk-proj-DEMOnotARealKeyDEMOnotARealKey0002",
    },
    {
        "provider": "anthropic",
        "name": "Production",
        "is_default": True,
        "secret": "sk-ant-api03-DEMOnotARealKeyDEMOnotARealKey0003",
    },
    {
        "provider": "azure_openai",
        "name": "EU deployment",
        "is_default": True,
        "secret": "0123456789abcdefDEMOnotARealKey04",
        "config": {
            "endpoint": "https://demo-eu.openai.azure.com",
            "deployment": "gpt-4o",
            "api_version": "2024-10-21",
        },
    },
]


class Command(ProvisioningCommand):
    help = "Create the demo organization, its owner and a few demo keys (development only)."

    def handle(self, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo is for development only; it needs DEBUG on.")
        actor = Access.operator("manage.py seed_demo")
        with transaction.atomic():
            user, created = user_get_or_create(email=DEMO_EMAIL, verified=True)
            if created:
                # An ordinary account: as the demo organization's owner it enters the
                # tenant-scoped admin without is_staff, as any owner would.
                user.set_password(DEMO_PASSWORD)
                user.save()
            organization = Organization.objects.filter(slug=DEMO_SLUG).first()
            if organization is None:
                organization = organization_create(
                    name="Demo Org", slug=DEMO_SLUG, owner=user, actor=actor
                )
            added = 0
            for spec in DEMO_KEYS:
                exists = ProviderKey.objects.filter(
                    organization=organization, provider=spec["provider"], name=spec["name"]
                ).exists()
                if not exists:
                    services.provider_key_create(organization=organization, actor=actor, **spec)
                    added += 1
        self.stdout.write(f"Demo organization {organization.slug!r}: {added} demo keys added.")
        self.stdout.write(
            f"Sign in at http://127.0.0.1:8000/accounts/sign-in/ as {DEMO_EMAIL} with password "
            f"{DEMO_PASSWORD} (the admin is at http://127.0.0.1:8000/admin/)."
        )
