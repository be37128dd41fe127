from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from keyvault.api import views
from keyvault.api.index import api_index

app_name = "api"

urlpatterns = [
    path("", api_index, name="index"),
    path("ping", views.PingView.as_view(), name="ping"),
    path("keys", views.KeyListView.as_view(), name="keys"),
    # The list answers with a trailing slash too, as people type it (no redirect: a POST's
    # body would not follow one).
    path("keys/", views.KeyListView.as_view()),
    path("keys/<str:key_id>", views.KeyDetailView.as_view(), name="key"),
    path("keys/<str:key_id>/secret", views.KeySecretView.as_view(), name="key-secret"),
    path("keys/<str:key_id>/report", views.KeyReportView.as_view(), name="key-report"),
    path("keys/<str:key_id>/test", views.KeyTestView.as_view(), name="key-test"),
    path("resolve", views.ResolveView.as_view(), name="resolve"),
    path("pool", views.PoolView.as_view(), name="pool"),
    path("snapshot", views.SnapshotView.as_view(), name="snapshot"),
    path("events", views.EventsView.as_view(), name="events"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # Anything else under the API answers a JSON 404, not the site's HTML page.
    re_path(r"^.*$", views.not_found),
]
