from django.db import transaction

from organizations.actors import Actor
from organizations.management.base import ProvisioningCommand
from organizations.services import organization_create, user_get_or_create


class Command(ProvisioningCommand):
    help = "Create an organization with an owner (the owner's user is created when absent)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Display name.")
        parser.add_argument("--slug", required=True, help="Unique slug used in URLs.")
        parser.add_argument("--owner", required=True, metavar="EMAIL", help="Owner's email.")

    def handle(self, *, name, slug, owner, **options):
        with transaction.atomic():
            user, created = user_get_or_create(email=owner)
            organization = organization_create(
                name=name, slug=slug, owner=user, actor=Actor.system("manage.py create_org")
            )
        self.stdout.write(f"Created organization {organization.slug!r} owned by {user.email}.")
        if created:
            self.stdout.write(
                f"{user.email} has no password yet; set one with "
                f"`python manage.py changepassword {user.username}`."
            )
