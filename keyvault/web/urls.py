"""URLs of the key, token and audit pages, included under `/o/<org_slug>/` (config/urls.py)."""

from django.urls import path

from keyvault.web import audit, keys, tokens, usage

key_patterns = (
    [
        path("", keys.key_list, name="list"),
        path("add/", keys.key_add, name="add"),
        path("<uuid:pk>/edit/", keys.key_edit, name="edit"),
        path("<uuid:pk>/rotate/", keys.key_rotate, name="rotate"),
        path("<uuid:pk>/delete/", keys.key_delete, name="delete"),
    ],
    "keys",
)

token_patterns = (
    [
        path("", tokens.token_list, name="list"),
        path("new/", tokens.token_create, name="create"),
        path("<uuid:pk>/revoke/", tokens.token_revoke, name="revoke"),
        path("usage/", usage.usage_list, name="usage"),
    ],
    "tokens",
)

audit_patterns = ([path("", audit.audit_list, name="list")], "audit")
