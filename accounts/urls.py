"""The account pages at their documented addresses, under both Keyvault's names
(`accounts:sign_in`) and allauth's (`account_login`), which allauth's own flows reverse. The
rest of allauth's pages (email addresses, two-factor, identity providers) follow in
`config/urls.py` at allauth's addresses."""

from allauth.account import views as allauth_views
from django.urls import path, re_path

from accounts import views

app_name = "accounts"

sign_in = views.SignInView.as_view()
sign_out = views.SignOutView.as_view()
password_change = views.PasswordChangeView.as_view()
password_reset = views.PasswordResetView.as_view()
password_reset_done = allauth_views.password_reset_done
password_reset_from_key = allauth_views.password_reset_from_key
password_reset_complete = allauth_views.password_reset_from_key_done


def _path(route, view, name):
    return (re_path if route.startswith("^") else path)(route, view, name=name)


# (path, view, Keyvault's name, allauth's name)
PAGES = [
    ("sign-in/", sign_in, "sign_in", "account_login"),
    ("sign-out/", sign_out, "sign_out", "account_logout"),
    ("password/change/", password_change, "password_change", "account_change_password"),
    ("password/reset/", password_reset, "password_reset", "account_reset_password"),
    (
        "password/reset/sent/",
        password_reset_done,
        "password_reset_done",
        "account_reset_password_done",
    ),
    (
        r"^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$",
        password_reset_from_key,
        "password_reset_confirm",
        "account_reset_password_from_key",
    ),
    (
        "password/reset/complete/",
        password_reset_complete,
        "password_reset_complete",
        "account_reset_password_from_key_done",
    ),
]

urlpatterns = [
    *(_path(route, view, name) for route, view, name, _allauth in PAGES),
    path("password/reset/<uidb64>/<token>/", views.old_reset_link, name="old_reset_link"),
]

# The same pages under allauth's names, at the same addresses.
allauth_named = [_path(route, view, allauth) for route, view, _name, allauth in PAGES]
