from django.urls import include, path
from django.views.generic import TemplateView

from organizations.admin_site import site as admin_site

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("admin/", admin_site.urls),
    path("api/v1/", include("keyvault.api.urls")),
]
