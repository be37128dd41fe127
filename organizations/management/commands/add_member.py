from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from accounts.services import user_get_or_create
from organizations import roles
from organizations.access import Access
from organizations.management.base import OrganizationCommand, no_password_yet
from organizations.services import membership_add


class Command(OrganizationCommand):
    help = (
        "Add a person to an organization with a role, without asking them: the operator's "
        "tool. It trusts you, the operator, to vouch that the address belongs to that person. "
        "An existing account that holds the address is attached as it is, and Keyvault does "
        "not verify addresses at sign-up, so anyone may have signed up with it first; check "
        "the account is theirs. When no account holds the address, one is created: with "
        "--password, or with a random password nobody knows, which its owner replaces through "
        "password reset. To ask the address's owner instead, invite them from the members page "
        "or the admin: they join by accepting the emailed link."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument(
            "--email",
            required=True,
            help="The person's address. You vouch that it, and any account holding it, is theirs.",
        )
        parser.add_argument("--role", required=True, choices=[role.id for role in roles.ROLES])
        parser.add_argument(
            "--password",
            help="Password for a new account (refused for an existing one); it shows in shell "
            "history and the process list. Without it the new account's owner sets one "
            "through password reset.",
        )

    @sensitive_variables()
    def handle(self, *, org, email, role, password, **options):
        organization = self.organization(org)
        with transaction.atomic():
            user, created = user_get_or_create(email=email, password=password, verified=True)
            membership_add(
                organization=organization,
                user=user,
                role=role,
                actor=Access.operator("manage.py add_member"),
            )
        if created:
            self.stdout.write(
                f"Created user and added {user.email} to {organization.slug!r} as {role}."
            )
            if password is None:
                self.stdout.write(no_password_yet(user))
        else:
            self.stdout.write(
                f"Added the existing account {user.email} to {organization.slug!r} as {role}."
            )
