from django.db import transaction

from accounts.services import user_get_or_create
from core.management import ProvisioningCommand
from organizations.access import Access
from organizations.management.base import no_password_yet
from organizations.services import organization_create


class Command(ProvisioningCommand):
    help = (
        "Create an organization with an owner: the operator's tool, trusting you to vouch "
        "that the --owner address belongs to the person meant. An existing account holding it "
        "becomes the owner; when none does, one is created with a random password nobody "
        "knows, which its owner replaces through password reset."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Display name.")
        parser.add_argument("--slug", required=True, help="Unique slug used in URLs.")
        parser.add_argument("--owner", required=True, metavar="EMAIL", help="Owner's email.")

    def handle(self, *, name, slug, owner, **options):
        with transaction.atomic():
            user, created = user_get_or_create(email=owner, verified=True)
            organization = organization_create(
                name=name, slug=slug, owner=user, actor=Access.operator("manage.py create_org")
            )
        self.stdout.write(f"Created organization {organization.slug!r} owned by {user.email}.")
        if created:
            self.stdout.write(no_password_yet(user))
