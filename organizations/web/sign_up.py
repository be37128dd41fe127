"""Signing up: a new account and the organization its owner starts with, on one page.

The page lives here, not in `accounts`, because it opens an organization and `accounts` sits
beneath `organizations`; it keeps its address among the account pages (`config/urls.py`).
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from accounts import limits
from accounts.forms import PasswordFieldsMixin
from accounts.services import EMAIL_MAX_LENGTH
from core.counters import client_address
from core.forms import add_service_errors
from organizations import services
from organizations.models import Organization


class SignUpForm(PasswordFieldsMixin):
    email = forms.EmailField(
        label="Email",
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    organization_name = forms.CharField(
        label="Organization name",
        max_length=Organization._meta.get_field("name").max_length,
        help_text="Your team's name; you will be its owner. You can rename it later.",
    )
    field_order = ["email", "organization_name", "password1", "password2"]


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@sensitive_variables()
def sign_up(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            limits.check_sign_up(request)
            user, organization = services.account_sign_up(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                organization_name=form.cleaned_data["organization_name"],
                ip=client_address(request),
            )
        except ValidationError as exc:
            add_service_errors(
                form, exc, rename={"password": "password1", "name": "organization_name"}
            )
        else:
            login(request, user)
            messages.success(
                request, f"Welcome to Keyvault. {organization.name} is ready for its first key."
            )
            return redirect("keys:list", org_slug=organization.slug)
    return render(request, "accounts/sign_up.html", {"form": form})
