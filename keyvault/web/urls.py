"""URLs of the key, token and audit pages, included under `/o/<org_slug>/` (config/urls.py)."""

from django.urls import path

from keyvault.web import audit, key_health, keys, tokens, usage

key_patterns = (
    [
        path("", keys.key_list, name="list"),
        path("add/", keys.key_add, name="add"),
        path("overview/", key_health.key_overview, name="overview"),
        path("<uuid:pk>/", key_health.key_detail, name="detail"),
        path("<uuid:pk>/test/", key_health.key_test, name="test"),
        path("<uuid:pk>/move/", key_health.key_move, name="move"),
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
