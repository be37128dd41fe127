"""Keyvault's rules inside django-allauth's flows.

allauth checks every password through its adapter's `authenticate`: the sign-in form, the
admin's sign-in (which is the same page, `organizations/admin_site.py`) and reauthentication.
Here each check is counted by `accounts.throttle` before the password is looked at.
"""

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from accounts import throttle
from core.counters import client_address

THROTTLED_MESSAGE = "Too many failed sign-ins. Wait {minutes} minutes and try again."


def throttled_error() -> ValidationError:
    return ValidationError(
        THROTTLED_MESSAGE.format(minutes=throttle.window_minutes()), code="throttled"
    )


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "email_password_mismatch": "That email and password do not match an account.",
        "email_taken": "An account with this email already exists; sign in.",
    }

    @sensitive_variables()
    def authenticate(self, request, **credentials):
        """The user whose address and password these are, or None; raises the throttle's
        error (refused before any check) once a limit is passed."""
        email = (credentials.get("email") or credentials.get("username") or "").strip()
        attempt = throttle.sign_in_attempt(request, email)
        if attempt.refused:
            raise throttled_error()
        user = authenticate(request, email=email, password=credentials.get("password"))
        if user is not None:
            throttle.sign_in_succeeded(attempt)
            request.keyvault_signed_in_as = email
        return user

    def get_client_ip(self, request):
        # The address the rest of Keyvault counts and audits (KEYVAULT_CLIENT_IP_HEADER).
        return client_address(request) or super().get_client_ip(request)

    def clean_email(self, email):
        return email.strip().lower()
