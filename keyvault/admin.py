"""Read-only admin views of keys and the audit trail.

Every change to a key goes through `keyvault.services` (validation, version bump, audit), so
the admin shows rows without offering a way around those rules. The secret appears only as its
masked hint.
"""

from django.contrib import admin

from keyvault.models import AuditEvent, ProviderKey


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProviderKey)
class ProviderKeyAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "provider",
        "organization",
        "secret_hint",
        "is_default",
        "enabled",
        "version",
        "kek_id",
        "last_used_at",
    ]
    list_filter = ["provider", "enabled", "is_default", "kek_id"]
    search_fields = ["name", "organization__name", "organization__slug"]
    exclude = ["secret"]
    list_select_related = ["organization"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "target_label"]
    list_filter = ["action"]
    search_fields = ["actor_label", "target_label", "organization__slug"]
    list_select_related = ["organization"]
