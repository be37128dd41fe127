"""Signing up: a new account and the organization its owner starts with, on one page.

allauth's sign-up page and flow (its checks of the address and password, signing in, the
address's confirmation mail) with Keyvault's form: the organization's name is asked for too, and
the account and its organization are made together by `organizations.services.account_sign_up`.

The page lives here, not in `accounts`, because it opens an organization and `accounts` sits
beneath `organizations`; it keeps its address among the account pages (`config/urls.py`).
"""

from allauth.account import forms as allauth_forms
from allauth.account import views as allauth_views
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from accounts import limits
from accounts.services import EMAIL_MAX_LENGTH
from core.counters import client_address
from core.forms import add_service_errors
from organizations import services
from organizations.models import Organization

_ALLAUTH_MISMATCH = "You must type the same password each time."


class SignUpForm(allauth_forms.SignupForm):
    organization_name = forms.CharField(
        label="Organization name",
        max_length=Organization._meta.get_field("name").max_length,
        help_text="Your team's name; you will be its owner. You can rename it later.",
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
        self.organization = None

    def clean(self):
        cleaned = super().clean()
        mismatch = [e for e in self.errors.get("password2", []) if e == _ALLAUTH_MISMATCH]
        if mismatch:
            self.errors["password2"] = self.error_class(["The two passwords differ."])
        return cleaned

    @sensitive_variables()
    def save(self, request):
        limits.check_sign_up(request)
        user, self.organization = services.account_sign_up(
            email=self.cleaned_data["email"],
            password=self.cleaned_data["password1"],
            organization_name=self.cleaned_data["organization_name"],
            ip=client_address(request),
        )
        return user


class SignUpView(allauth_views.SignupView):
    template_name = "account/signup.html"

    def form_valid(self, form):
        self.signup_form = form
        try:
            response = super().form_valid(form)
        except ValidationError as exc:
            add_service_errors(
                form, exc, rename={"password": "password1", "name": "organization_name"}
            )
            return self.form_invalid(form)
        if form.organization is not None:
            messages.success(
                self.request,
                f"Welcome to Keyvault. {form.organization.name} is ready for its first key.",
            )
        return response

    def get_success_url(self):
        organization = getattr(getattr(self, "signup_form", None), "organization", None)
        if organization is not None:
            return reverse("keys:list", kwargs={"org_slug": organization.slug})
        return super().get_success_url()


sign_up = SignUpView.as_view()
