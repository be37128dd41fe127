"""Sign-in forms, and the password fields of sign-up forms (sign-up itself opens an
organization, so its page is `organizations/web/sign_up.py`)."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import password_validators_help_text_html
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from accounts import throttle


class ThrottledSignInMixin:
    """Refuse to check a password once too many sign-ins failed; count each failure.

    Mixed into the pages' sign-in form and the admin's, so both doors count the same guesses.
    """

    throttled_message = "Too many failed sign-ins. Wait {minutes} minutes and try again."

    @sensitive_variables()
    def clean(self):
        # Counted under the lower-cased address; authenticated with what was typed (the
        # backend matches case-insensitively).
        username = (self.cleaned_data.get("username") or "").strip()
        self.cleaned_data["username"] = username
        self.throttled = throttle.is_throttled(self.request, username)
        if self.throttled:
            raise ValidationError(
                self.throttled_message.format(minutes=throttle.window_minutes()), code="throttled"
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            throttle.record_failure(self.request, username)
            raise
        # Only a checked password clears the count: a POST missing the password never reaches
        # the check, and must not wipe the failures before it.
        if self.get_user() is not None:
            throttle.clear(self.request, username)
        return cleaned


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    username = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account.",
    }


class PasswordFieldsMixin(forms.Form):
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    @sensitive_variables()
    def clean_password2(self):
        first, second = self.cleaned_data.get("password1"), self.cleaned_data.get("password2")
        if first and second and first != second:
            raise ValidationError("The two passwords differ.")
        return second


class InvitationSignUpForm(PasswordFieldsMixin):
    """Signing up from an invitation: the email is the invitation's, not typed."""
