"""Signing in by email address, whatever its case.

Keyvault stores every username as the lower-cased email, but `createsuperuser` and older rows
may hold capitals, and people type addresses in any case. An exact match wins; otherwise a
case-insensitive one is used when it is unambiguous.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.views.decorators.debug import sensitive_variables


class EmailBackend(ModelBackend):
    @sensitive_variables()
    def authenticate(self, request, username=None, password=None, **kwargs):
        User = get_user_model()
        if username is None:
            # Django's forms pass `username`; allauth's pass `email`.
            username = kwargs.get(User.USERNAME_FIELD) or kwargs.get("email")
        if not username or password is None:
            return None
        user = find_user(username)
        if user is None:
            # Hash anyway, so that an unknown address costs as long as a wrong password.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None


def find_user(username: str):
    """The user whose username is `username`, exactly or (if only one) ignoring case."""
    User = get_user_model()
    username = username.strip()
    exact = User._default_manager.filter(username=username).first()
    if exact is not None:
        return exact
    # The database's case folding is wider than Python's lower(): PostgreSQL folds U+017F
    # (long s) to "s", so a look-alike address would match a real one. Only a plain case
    # difference counts.
    matches = [
        user
        for user in User._default_manager.filter(username__iexact=username)[:5]
        if user.username.lower() == username.lower()
    ]
    return matches[0] if len(matches) == 1 else None
