"""Sign in and sign out; password change and reset are Django's own views, and sign-up, which
opens an organization too, is `organizations/web/sign_up.py`."""

from django.contrib.auth import views as auth_views

from accounts.forms import SignInForm


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
