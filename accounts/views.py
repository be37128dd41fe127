"""Sign in, sign out and sign up; password change and reset are Django's own views."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from accounts import limits, services
from accounts.forms import SignInForm, SignUpForm
from config.counters import client_address
from organizations.forms import add_service_errors


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "accounts/sign_in.html"
    redirect_authenticated_user = True

    def get_redirect_url(self):
        # A signed-in user sent to `?next=` this very page would otherwise loop (Django raises).
        url = super().get_redirect_url()
        return "" if url == self.request.path else url

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", False):
            response.status_code = 429
        return response


class SignOutView(auth_views.LogoutView):
    pass


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
