"""Provisioning commands that name an organization (`--org`) or create accounts; the one-line
errors they share with every command are `core.management`'s."""

from django.core.management.base import CommandError

from core.management import ProvisioningCommand
from organizations.models import Organization


class OrganizationCommand(ProvisioningCommand):
    @staticmethod
    def organization(slug: str) -> Organization:
        """The organization named by a `--org` slug, or a one-line error."""
        organization = Organization.objects.filter(slug=slug.strip().lower()).first()
        if organization is None:
            raise CommandError(f"No organization with slug {slug!r}.")
        return organization


def no_password_yet(user) -> str:
    """What to tell the operator about an account created without a password."""
    return (
        f"{user.email} has no password of their own yet: they set one with 'Forgot your "
        "password?' on the sign-in page (or you set one with "
        f"`python manage.py changepassword {user.username}`)."
    )
