from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import urls as account_pages
from keyvault.web import urls as keyvault_pages
from organizations.admin_site import site as admin_site
from organizations.web import sign_up
from organizations.web import urls as organization_pages
from organizations.web.organizations import home

# Sign-up opens the new account's first organization, so its view is the organizations app's
# (accounts sits beneath it); it keeps its address and name among the account pages.
account_patterns = (
    [*account_pages.urlpatterns, path("sign-up/", sign_up.sign_up, name="sign_up")],
    account_pages.app_name,
)

# Every team page of one organization lives under /o/<org_slug>/.
organization_scoped = [
    path("", RedirectView.as_view(pattern_name="keys:list"), name="organization_home"),
    path("keys/", include(keyvault_pages.key_patterns)),
    path("tokens/", include(keyvault_pages.token_patterns)),
    path("audit/", include(keyvault_pages.audit_patterns)),
    path("members/", include(organization_pages.member_patterns)),
    path("settings/", include(organization_pages.settings_patterns)),
]

urlpatterns = [
    # First: every proxy request resolves here, without trying the pages' patterns before it.
    path("api/v1/", include("keyvault.api.urls")),
    path("", home, name="home"),
    # Browsers ask for /favicon.ico whatever the page links; the icon is a static file.
    path("favicon.ico", lambda request: redirect(static("img/favicon.svg"), permanent=True)),
    path("accounts/", include(account_patterns)),
    path("orgs/", include("organizations.web.urls")),
    path("o/<slug:org_slug>/", include(organization_scoped)),
    path("invitations/", include(organization_pages.invitation_patterns)),
    path("admin/", admin_site.urls),
]
