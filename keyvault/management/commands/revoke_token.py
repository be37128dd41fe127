from django.core.management.base import CommandError

from core.management import ProvisioningCommand
from keyvault import services
from keyvault.models import ProxyToken
from keyvault.selectors import named
from organizations.access import Access


class Command(ProvisioningCommand):
    help = "Revoke an organization's active proxy token by name."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True)

    def handle(self, *, org, name, **options):
        active = ProxyToken.objects.filter(
            organization__slug=org.strip().lower(), revoked_at__isnull=True
        )
        token = named(active, name.strip()).first()
        if token is None:
            raise CommandError(f"No active token named {name!r} in organization {org!r}.")
        services.proxy_token_revoke(token=token, actor=Access.operator("manage.py revoke_token"))
        self.stdout.write(f"Revoked token {token.name!r} (…{token.last_four}).")
