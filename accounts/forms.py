"""The account forms: allauth's, with Keyvault's throttles and wording, and the password fields
of the sign-up forms (sign-up itself opens an organization, so its page is
`organizations/web/sign_up.py`)."""

from allauth.account import forms as allauth_forms
from allauth.core import context
from allauth.mfa.base import forms as mfa_forms
from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from accounts import throttle
from accounts.adapter import throttled_error

RESETS_MESSAGE = "Too many password reset mails were asked for; try again in an hour."
CODES_MESSAGE = "Too many wrong codes. Wait {minutes} minutes and try again."


def is_throttled(form) -> bool:
    return any(
        error.code == "throttled" for errors in form.errors.as_data().values() for error in errors
    )


class SignInForm(allauth_forms.LoginForm):
    """allauth's sign-in form; its password check is counted by the adapter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["login"].label = "Email"
        self.fields["login"].widget.attrs.update({"autofocus": True, "autocomplete": "username"})
        self.fields["login"].widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)
        self.fields["password"].help_text = ""

    @sensitive_variables()
    def clean(self):
        # allauth's own frames beneath hold the password in a local (`credentials`): calls made
        # from a function marked this way are masked in error reports too.
        return super().clean()

    @sensitive_variables()
    def login(self, request, redirect_url=None):
        return super().login(request, redirect_url=redirect_url)


class PasswordChangeForm(allauth_forms.ChangePasswordForm):
    @sensitive_variables()
    def clean_oldpassword(self):
        attempt = throttle.password_change_attempt(self.user)
        if attempt.refused:
            raise throttled_error()
        password = super().clean_oldpassword()
        throttle.sign_in_succeeded(attempt)
        return password


class PasswordResetForm(allauth_forms.ResetPasswordForm):
    def clean_email(self):
        email = super().clean_email()
        # allauth's view does not hand the form its request; its middleware keeps it here.
        if not throttle.password_reset_allowed(context.request, email):
            raise ValidationError(RESETS_MESSAGE, code="throttled")
        return email


class ThrottledCodeMixin:
    """Second-factor codes counted before they are checked (`accounts.throttle.code_attempt`):
    allauth's own count for them is the failed sign-in counter switched off in settings."""

    @sensitive_variables()
    def clean_code(self):
        attempt = throttle.code_attempt(self.user)
        if attempt.refused:
            raise ValidationError(
                CODES_MESSAGE.format(minutes=throttle.window_minutes()), code="throttled"
            )
        code = super().clean_code()
        throttle.sign_in_succeeded(attempt)
        return code


class TwoFactorForm(ThrottledCodeMixin, mfa_forms.AuthenticateForm):
    pass


class TwoFactorReauthenticateForm(ThrottledCodeMixin, mfa_forms.ReauthenticateForm):
    pass


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
