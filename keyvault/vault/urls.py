"""Vault's paths under `/vault/` (so `VAULT_ADDR=https://keyvault.example.com/vault`): the mount
`keyvault` (KV version 2), the token's own lookup and the mount description; anything else is
Vault's 404."""

from django.urls import path, re_path

from keyvault.vault import views
from keyvault.vault.responses import MOUNT

app_name = "vault"

data = views.SecretDataView.as_view()
metadata = views.SecretMetadataView.as_view()
mounts = views.MountView.as_view()

urlpatterns = [
    path(f"v1/{MOUNT}/data/<str:provider>", data, name="data"),
    path(f"v1/{MOUNT}/data/<str:provider>/<path:name>", data, name="data-named"),
    path(f"v1/{MOUNT}/metadata", metadata),
    path(f"v1/{MOUNT}/metadata/", metadata, name="metadata-root"),
    path(f"v1/{MOUNT}/metadata/<str:provider>", metadata),
    path(f"v1/{MOUNT}/metadata/<str:provider>/", metadata, name="metadata-provider"),
    path(f"v1/{MOUNT}/metadata/<str:provider>/<path:name>", metadata, name="metadata"),
    path("v1/auth/token/lookup-self", views.LookupSelfView.as_view(), name="lookup-self"),
    path(f"v1/sys/internal/ui/mounts/{MOUNT}", mounts, name="mount"),
    path(f"v1/sys/internal/ui/mounts/{MOUNT}/<path:rest>", mounts),
    re_path(r"^.*$", views.NothingHereView.as_view()),
]
