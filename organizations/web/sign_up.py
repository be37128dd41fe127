"""Signing up: a new account, and the organization its owner starts with once the address is
confirmed.

allauth's sign-up page and flow (its checks of the address and password, the confirmation mail,
signing in once confirmed) with Keyvault's form, which asks for the organization's name too.
An unconfirmed account can neither sign in nor own anything, so the organization cannot be
made at sign-up: its name travels, signed, in the confirmation link (`SignUpAdapter`),
and confirming the address opens it (`open_pending_organization`). The link may be opened in
another browser than the one that signed up; nothing waits in a session.

The page lives here, not in `accounts`, because it opens an organization and `accounts` sits
beneath `organizations`; it keeps its address among the account pages (`config/urls.py`).
"""

from urllib.parse import urlencode

from allauth.account import forms as allauth_forms
from allauth.account import views as allauth_views
from allauth.account.internal.flows.manage_email import email_already_exists
from allauth.account.signals import email_confirmed
from django import forms
from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

from accounts import limits
from accounts.adapter import AccountAdapter
from accounts.services import EMAIL_MAX_LENGTH, account_create
from core.counters import client_address
from core.forms import add_service_errors
from organizations import services
from organizations.models import Membership, Organization

_ALLAUTH_MISMATCH = "You must type the same password each time."
_PENDING_SALT = "organizations.sign_up.pending"
_PENDING_PARAMETER = "organization"
# As long as the confirmation link itself works (ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS).
_PENDING_MAX_AGE = 7 * 24 * 3600


class SignUpForm(allauth_forms.SignupForm):
    organization_name = forms.CharField(
        label="Organization name",
        max_length=Organization._meta.get_field("name").max_length,
        help_text="Your team's name; you will be its owner once you confirm your address.",
    )
    field_order = ["email", "organization_name", "password1", "password2"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        email = self.fields["email"]
        email.label, email.max_length = "Email", EMAIL_MAX_LENGTH
        email.widget.attrs.update({"autocomplete": "email", "autofocus": True})
        self.fields["password2"].label = "Password again"
        for field in self.fields.values():
            field.widget.attrs.pop("placeholder", None)

    def validate_unique_email(self, value):
        # The page says an address has an account, as it always did (and the reset page does
        # not): a mail "you already have an account" to any address typed here would hand
        # strangers a way to mail people.
        email, _exists = email_already_exists(value, always_raise=True)
        return email

    def clean(self):
        cleaned = super().clean()
        if any(e == _ALLAUTH_MISMATCH for e in self.errors.get("password2", [])):
            self.errors["password2"] = self.error_class(["The two passwords differ."])
        return cleaned

    @sensitive_variables()
    def save(self, request):
        limits.check_sign_up(request)
        user = account_create(
            email=self.cleaned_data["email"], password=self.cleaned_data["password1"]
        )
        # Read by the adapter when it writes the confirmation link (`SignUpAdapter`).
        request.keyvault_pending_organization = self.cleaned_data["organization_name"]
        return user


class SignUpView(allauth_views.SignupView):
    template_name = "account/signup.html"

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except ValidationError as exc:
            add_service_errors(form, exc, rename={"password": "password1"})
            return self.form_invalid(form)


sign_up = SignUpView.as_view()


class SignUpAdapter(AccountAdapter):
    """`accounts`' adapter, with the sign-up page's organization carried through the
    confirmation link (`ACCOUNT_ADAPTER` names this one)."""

    def get_email_confirmation_url(self, request, emailconfirmation):
        url = super().get_email_confirmation_url(request, emailconfirmation)
        name = getattr(request, "keyvault_pending_organization", None)
        if not name:
            return url
        pending = {"user": emailconfirmation.email_address.user_id, "name": name}
        signed = signing.dumps(pending, salt=_PENDING_SALT)
        return f"{url}?{urlencode({_PENDING_PARAMETER: signed})}"


@receiver(email_confirmed, dispatch_uid="organizations.open_pending_organization")
def open_pending_organization(sender, request, email_address, **kwargs):
    """The address is confirmed: open the organization named at sign-up, once, for an account
    that is in no organization yet (a link clicked twice opens nothing more)."""
    value = request.GET.get(_PENDING_PARAMETER) if request is not None else None
    if not value:
        return
    try:
        pending = signing.loads(value, salt=_PENDING_SALT, max_age=_PENDING_MAX_AGE)
    except signing.BadSignature:
        return
    user = email_address.user
    if not isinstance(pending, dict) or pending.get("user") != user.pk:
        return
    if Membership.objects.filter(user=user).exists():
        return
    try:
        organization = services.organization_open(
            user=user, name=str(pending.get("name", "")), ip=client_address(request)
        )
    except (ValidationError, PermissionDenied) as exc:
        reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, f"Your organization could not be created: {reason}")
        return
    messages.success(
        request, f"Welcome to Keyvault. {organization.name} is ready for its first key."
    )
