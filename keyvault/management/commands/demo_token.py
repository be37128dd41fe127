from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from keyvault import services
from keyvault.management.commands.seed_demo import DEMO_SLUG
from keyvault.models import ProxyToken
from organizations.access import Access
from organizations.management.base import OrganizationCommand
from organizations.models import Organization

TOKEN_NAME = "make token"
SCOPES = "keys:read,keys:secret"


class Command(OrganizationCommand):
    help = (
        "Development only: a fresh read-and-secret proxy token for the demo organization, "
        "printed as a ready curl line (the previous one it made is revoked)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--provider", default="openai")

    @sensitive_variables()
    def handle(self, *, base_url, provider, **options):
        if not settings.DEBUG:
            raise CommandError("demo_token is for development only; it needs DEBUG on.")
        if not Organization.objects.filter(slug=DEMO_SLUG).exists():
            raise CommandError(
                f"No {DEMO_SLUG!r} organization here yet: run `make run` (or `python manage.py "
                "migrate` and `python manage.py seed_demo`) first."
            )
        organization = self.organization(DEMO_SLUG)
        actor = Access.operator("manage.py demo_token")
        with transaction.atomic():
            # One such token at a time: running `make run` or `make token` again replaces it.
            for token in ProxyToken.objects.filter(
                organization=organization, name=TOKEN_NAME, revoked_at__isnull=True
            ):
                services.proxy_token_revoke(token=token, actor=actor)
            _token, raw = services.proxy_token_create(
                organization=organization, actor=actor, name=TOKEN_NAME, scopes=SCOPES
            )
        self.stdout.write(
            f'curl -H "Authorization: Bearer {raw}" '
            f'"{base_url.rstrip("/")}/api/v1/resolve?provider={provider}"'
        )
