"""The account pages: allauth's views at Keyvault's addresses, answering 429 when a throttle
refused, and remembering the browser of a right password (`accounts.throttle`). Sign-up, which
opens an organization too, is `organizations/web/sign_up.py`."""

from urllib.parse import urlsplit

from allauth.account import views as allauth_views
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, resolve_url
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from accounts import throttle
from accounts.forms import is_throttled


class ThrottledFormMixin:
    def form_invalid(self, form):
        response = super().form_invalid(form)
        if is_throttled(form):
            response.status_code = 429
        return response


class SignInView(ThrottledFormMixin, allauth_views.LoginView):
    def get_authenticated_redirect_url(self):
        # A signed-in user sent to `?next=` this very page would otherwise loop.
        url = super().get_authenticated_redirect_url()
        return (
            resolve_url(settings.LOGIN_REDIRECT_URL)
            if urlsplit(url).path == self.request.path
            else url
        )

    def form_valid(self, form):
        response = super().form_valid(form)
        # The password was right (a second factor may still be asked for).
        signed_in_as = getattr(self.request, "keyvault_signed_in_as", None)
        if signed_in_as:
            throttle.remember_device(self.request, response, signed_in_as)
        return response


@method_decorator(require_POST, name="dispatch")
class SignOutView(allauth_views.LogoutView):
    pass


class PasswordChangeView(ThrottledFormMixin, allauth_views.PasswordChangeView):
    pass


class PasswordResetView(ThrottledFormMixin, allauth_views.PasswordResetView):
    pass


def old_reset_link(request, uidb64, token):
    """Links mailed before the account pages moved to allauth (another token format)."""
    messages.error(request, "This link no longer works; ask for a new one below.")
    return redirect("accounts:password_reset")
