"""Accounts: finding people by address and creating them. Signing up with an organization and
joining through an invitation build on these in `organizations`, which sits above this app."""

import secrets

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from accounts.backends import find_user

# The address is the username too, whose column is the shorter of the two.
EMAIL_MAX_LENGTH = get_user_model()._meta.get_field("username").max_length


def normalize_email(email) -> str:
    if not isinstance(email, str) or not email.strip():
        raise ValidationError({"email": "An email address is required."})
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            {"email": f"The address is longer than {EMAIL_MAX_LENGTH} characters."}
        )
    return email


@sensitive_variables()
def user_get_or_create(*, email: str, password: str | None = None, verified: bool = False):
    """The user with this email, created when absent: with `password`, or with a random one
    nobody knows, which its owner replaces through password reset. The address is recorded as
    the account's (allauth's `EmailAddress`), `verified` when the caller has proof of it or
    vouches for it (the operator's commands: on their word, as for attaching the account).

    Returns `(user, created)`. A password given for an existing user is refused rather than
    silently ignored or silently overwriting theirs. Never an unusable password: Django's
    password reset skips such accounts and sign-up finds the address taken, so it would lock
    the address's owner out for good.
    """
    email = normalize_email(email)
    User = get_user_model()
    user = find_user(email)
    if user is not None:
        if password is not None:
            raise ValidationError(
                {"password": "This user already exists; their password is left unchanged."}
            )
        return user, False
    user = User(username=email, email=email)
    if password is not None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
        user.set_password(password)
    else:
        user.set_password(secrets.token_urlsafe(32))
    try:
        with transaction.atomic():
            user.save()
            EmailAddress.objects.create(user=user, email=email, primary=True, verified=verified)
    except IntegrityError:
        # Someone created the same account a moment ago.
        raise ValidationError({"email": f"An account for {email} already exists."}) from None
    return user, True


@sensitive_variables()
def account_create(*, email: str, password: str, verified: bool = False):
    """A new user signing in with `email`; refuses an address that already has an account.
    `verified`: the caller has proof the person owns the address (an invitation link)."""
    if isinstance(email, str) and find_user(email) is not None:
        raise ValidationError({"email": "An account with this email already exists; sign in."})
    user, _created = user_get_or_create(email=email, password=password, verified=verified)
    return user


def email_verified(user) -> bool:
    """Whether `user`'s address (the one they sign in with) has been proven."""
    email = (getattr(user, "email", "") or "").strip()
    return bool(email) and (
        EmailAddress.objects.filter(user_id=user.pk, email__iexact=email, verified=True).exists()
    )


def email_mark_verified(user) -> None:
    """`user`'s address is proven (they followed a link mailed to it)."""
    email = user.email.strip().lower()
    updated = EmailAddress.objects.filter(user_id=user.pk, email__iexact=email).update(
        verified=True
    )
    if not updated:
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
