"""Keeping the username equal to the address when the address changes, and a password reset
by mail counting as proof of the address.

Keyvault signs people in by the username, which is their lower-cased address
(`accounts.backends.find_user`); allauth changes `User.email` once a new address is confirmed,
and this follows it with the username, in the same transaction as allauth's own write.
"""

from allauth.account.models import EmailAddress
from allauth.account.signals import email_changed, password_reset
from django.dispatch import receiver

from accounts.services import email_mark_verified


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
