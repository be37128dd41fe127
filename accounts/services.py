"""Signing up: a new account, and the organization its owner starts with."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from accounts.backends import find_user
from organizations import services as organization_services
from organizations.access import Access
from organizations.slugs import available_slug

_SLUG_ATTEMPTS = 3


@sensitive_variables()
def account_create(*, email: str, password: str):
    """A new user signing in with `email`; refuses an address that already has an account."""
    if isinstance(email, str) and find_user(email) is not None:
        raise ValidationError({"email": "An account with this email already exists; sign in."})
    user, _created = organization_services.user_get_or_create(email=email, password=password)
    return user


@sensitive_variables()
def account_sign_up(*, email: str, password: str, organization_name: str, ip: str | None = None):
    """The user and an organization they own, in one transaction: `(user, organization)`."""
    with transaction.atomic():
        user = account_create(email=email, password=password)
        actor = Access.for_user(user, ip=ip)
        for attempt in range(_SLUG_ATTEMPTS):
            try:
                with transaction.atomic():
                    organization = organization_services.organization_create(
                        name=organization_name,
                        slug=available_slug(organization_name),
                        owner=user,
                        actor=actor,
                    )
                break
            except ValidationError as exc:
                # Only a slug taken by a concurrent sign-up is worth another try.
                if "slug" not in exc.message_dict or attempt == _SLUG_ATTEMPTS - 1:
                    raise
    return user, organization


@sensitive_variables()
def account_join(*, invitation, password: str, ip: str | None = None):
    """A new account for the invited address, joined to the organization in one transaction:
    if the invitation is refused, no account is left behind."""
    from organizations.invitations import invitation_accept

    with transaction.atomic():
        user = account_create(email=invitation.email, password=password)
        invitation_accept(invitation=invitation, user=user, ip=ip)
    return user
