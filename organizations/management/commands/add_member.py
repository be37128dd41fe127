from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from organizations import roles
from organizations.actors import Actor
from organizations.management.base import ProvisioningCommand
from organizations.services import membership_add, user_get_or_create


class Command(ProvisioningCommand):
    help = "Add a user to an organization with a role (the user is created when absent)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, choices=[role.id for role in roles.ROLES])
        parser.add_argument(
            "--password", help="Password for a new user (refused for an existing user)."
        )

    @sensitive_variables()
    def handle(self, *, org, email, role, password, **options):
        organization = self.organization(org)
        with transaction.atomic():
            user, created = user_get_or_create(email=email, password=password)
            membership_add(
                organization=organization,
                user=user,
                role=role,
                actor=Actor.system("manage.py add_member"),
            )
        made = "Created user and added" if created else "Added"
        self.stdout.write(f"{made} {user.email} to {organization.slug!r} as {role}.")
