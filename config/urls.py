from django.urls import include, path
from django.views.generic import RedirectView

from keyvault.web import urls as keyvault_pages
from organizations.admin_site import site as admin_site
from organizations.web import urls as organization_pages
from organizations.web.organizations import home

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
    path("", home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("orgs/", include("organizations.web.urls")),
    path("o/<slug:org_slug>/", include(organization_scoped)),
    path("invitations/", include(organization_pages.invitation_patterns)),
    path("admin/", admin_site.urls),
    path("api/v1/", include("keyvault.api.urls")),
]
