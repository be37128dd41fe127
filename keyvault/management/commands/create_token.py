from django.views.decorators.debug import sensitive_variables

from keyvault import services
from organizations.access import Access
from organizations.management.base import OrganizationCommand


class Command(OrganizationCommand):
    help = "Create a proxy token and print it (alone, on stdout). It is never shown again."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", required=True, help="Comma-separated: keys:read,keys:secret,keys:write"
        )
        parser.add_argument("--expires-in", type=int, metavar="DAYS", dest="expires_in")

    @sensitive_variables()
    def handle(self, *, org, name, scopes, expires_in, **options):
        organization = self.organization(org)
        _token, raw = services.proxy_token_create(
            organization=organization,
            actor=Access.operator("manage.py create_token"),
            name=name,
            scopes=scopes,
            expires_in_days=expires_in,
        )
        self.stdout.write(raw)
