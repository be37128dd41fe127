"""Keeping the username equal to the address when the address changes, a password reset by
mail counting as proof of the address, and second factors set up or removed recorded in the
audit trail (allauth mails the account about them: `ACCOUNT_EMAIL_NOTIFICATIONS`).

Keyvault signs people in by the username, which is their lower-cased address
(`accounts.backends.find_user`); allauth changes `User.email` once a new address is confirmed,
and this follows it with the username, in the same transaction as allauth's own write.
"""

from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.account.signals import email_changed, password_reset
from allauth.mfa.signals import authenticator_added, authenticator_removed, authenticator_reset
from django.dispatch import receiver

import audit
from accounts.services import email_mark_verified
from audit import AuditAction
from core.counters import client_address


@receiver(email_changed, dispatch_uid="accounts.username_follows_email")
def username_follows_email(sender, request, user, from_email_address, to_email_address, **kwargs):
    address = to_email_address.email.strip().lower()
    if user.username != address or user.email != address:
        user.username = user.email = address
        user.save(update_fields=["username", "email"])


@receiver(password_reset, dispatch_uid="accounts.reset_proves_the_address")
def reset_proves_the_address(sender, request, user, **kwargs):
    """A password set through a link mailed to the account's address proves that address (an
    account with a second, pending address is left alone: the link may have gone there)."""
    addresses = list(EmailAddress.objects.filter(user_id=user.pk))
    if len(addresses) == 1 and addresses[0].email.lower() == (user.email or "").lower():
        email_mark_verified(user)


@dataclass
class _Self:
    """The account acting on itself, as the audit trail records a caller."""

    stored_user: object
    label: str
    ip: str | None
    token: None = None


def _record_factor(action, request, user, authenticator):
    audit.record(
        action=action,
        actor=_Self(user, user.email, client_address(request) if request else None),
        target=authenticator,
        target_label=user.email,
        metadata={"type": str(authenticator.type), "user": user.email},
    )


@receiver(authenticator_added, dispatch_uid="accounts.two_factor_added")
def two_factor_added(sender, request, user, authenticator, **kwargs):
    _record_factor(AuditAction.TWO_FACTOR_ADDED, request, user, authenticator)


@receiver(authenticator_removed, dispatch_uid="accounts.two_factor_removed")
def two_factor_removed(sender, request, user, authenticator, **kwargs):
    _record_factor(AuditAction.TWO_FACTOR_REMOVED, request, user, authenticator)


@receiver(authenticator_reset, dispatch_uid="accounts.recovery_codes_regenerated")
def recovery_codes_regenerated(sender, request, user, authenticator, **kwargs):
    _record_factor(AuditAction.RECOVERY_CODES_REGENERATED, request, user, authenticator)
