"""Admin for provider keys, proxy tokens and the audit trail, scoped per organization.

A key's secret appears only as its masked hint; a write-only field sets or rotates it through
the services. A new proxy token is shown once, on the page that answers its creation, and is
kept nowhere else: not in a message cookie, the session or the admin history.
"""

from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from audit import AuditAction, action_label
from audit.models import AuditEvent
from core.errors import NotFoundError
from keyvault import services
from keyvault.models import ProviderKey, ProxyToken
from keyvault.tokens import SCOPE_CHOICES
from organizations.admin import ServiceForm, TenantScopedAdmin, is_trusted
from organizations.admin_site import admin_access, site
from organizations.permissions import Action

# --- Provider keys ---------------------------------------------------------------------------


class ProviderKeyForm(ServiceForm):
    service_fields = {"secret": "new_secret"}
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. On an existing key, typing a secret rotates it (the version is "
        "bumped); leave empty to keep the current one.",
    )

    class Meta:
        model = ProviderKey
        fields = ["organization", "provider", "name", "config", "is_default", "enabled"]

    @sensitive_variables()
    def save_through_services(self, data):
        if self.instance._state.adding:
            return services.provider_key_create(
                organization=data["organization"],
                actor=self.actor,
                provider=data["provider"],
                name=data["name"],
                secret=data["new_secret"],
                config=data["config"],
                is_default=data["is_default"],
                enabled=data["enabled"],
            )
        changes = {
            field: data[field]
            for field in ("name", "config", "is_default", "enabled")
            if field in self.changed_data
        }
        if data["new_secret"]:
            changes["secret"] = data["new_secret"]
        return services.provider_key_update(key=self.instance, actor=self.actor, **changes)


@admin.register(ProviderKey, site=site)
class ProviderKeyAdmin(TenantScopedAdmin):
    form = ProviderKeyForm
    permission_actions = {
        "view": Action.KEY_LIST,
        "add": Action.KEY_ADD,
        "change": Action.KEY_EDIT,
        "delete": Action.KEY_DELETE,
    }
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
    list_filter = ["provider", "organization", "enabled", "is_default", "kek_id"]
    search_fields = ["name", "organization__name", "organization__slug", "secret_hint"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]
    readonly_fields = [
        "secret_hint",
        "version",
        "kek_id",
        "created_by",
        "created_at",
        "updated_at",
        "rotated_at",
        "last_used_at",
    ]
    actions = ["enable_keys", "disable_keys", "rewrap_under_primary"]

    # The secret typed into the form is masked in error reports: in the POST data, and in the
    # frames that validate it and hand it to the services.
    @method_decorator(sensitive_post_parameters("new_secret"))
    @sensitive_variables()
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_fields(self, request, obj=None):
        if obj is None:
            return [
                "organization",
                "provider",
                "name",
                "new_secret",
                "config",
                "is_default",
                "enabled",
            ]
        return [
            "organization",
            "provider",
            "name",
            "secret_hint",
            "new_secret",
            "config",
            "is_default",
            "enabled",
            *self.readonly_fields[1:],
        ]

    def get_readonly_fields(self, request, obj=None):
        # A key stays in its organization and provider: its ciphertext is bound to both.
        fixed = ["organization", "provider"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def delete_model(self, request, obj):
        services.provider_key_delete(key=obj, actor=admin_access(request))

    def delete_queryset(self, request, queryset):
        for key in queryset:
            # One deleted by someone else since the list was read is gone, as asked.
            with suppress(NotFoundError):
                services.provider_key_delete(key=key, actor=admin_access(request))

    def _set_enabled(self, request, queryset, enabled: bool):
        changed = 0
        for key in queryset:
            if key.enabled != enabled:
                try:
                    services.provider_key_update(
                        key=key, actor=admin_access(request), enabled=enabled
                    )
                except NotFoundError:  # deleted by someone else since the list was read
                    continue
                changed += 1
        self.message_user(request, f"{changed} keys {'enabled' if enabled else 'disabled'}.")

    @admin.action(description="Enable selected keys", permissions=["change"])
    def enable_keys(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected keys", permissions=["change"])
    def disable_keys(self, request, queryset):
        self._set_enabled(request, queryset, False)

    @admin.action(description="Re-wrap selected keys under the primary KEK", permissions=["rewrap"])
    def rewrap_under_primary(self, request, queryset):
        job = services.kek_rotate(actor=admin_access(request), keys=queryset)
        failed = len(job.failed)
        if job.stopped:
            cause = "a database error" if job.database_error is not None else "an interruption"
            self.message_user(
                request,
                f"Stopped by {cause} after {job.written} keys re-wrapped under {job.primary}; "
                "run the action again for the rest.",
                messages.ERROR,
            )
            return
        self.message_user(
            request,
            f"{job.written} keys re-wrapped under {job.primary}"
            + (
                f"; {failed} could not be opened (see keyvault_status --verify)." if failed else "."
            ),
            messages.WARNING if failed else messages.SUCCESS,
        )

    def has_rewrap_permission(self, request):
        return is_trusted(request)


# --- Proxy tokens ----------------------------------------------------------------------------


class ProxyTokenForm(ServiceForm):
    service_fields = {"scopes": "token_scopes", "expires_in": "expires_in_days"}
    token_scopes = forms.MultipleChoiceField(
        label="Scopes", choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=services.MAX_TOKEN_DAYS,
        help_text="Leave empty for a token that does not expire.",
    )

    class Meta:
        model = ProxyToken
        fields = ["organization", "name"]

    @sensitive_variables()
    def save_through_services(self, data):
        token, self.raw_token = services.proxy_token_create(
            organization=data["organization"],
            actor=self.actor,
            name=data["name"],
            scopes=list(data["token_scopes"]),
            expires_in_days=data["expires_in_days"],
        )
        return token


@admin.register(ProxyToken, site=site)
class ProxyTokenAdmin(TenantScopedAdmin):
    form = ProxyTokenForm
    permission_actions = {"view": Action.TOKEN_MANAGE, "add": Action.TOKEN_MANAGE}
    superuser_may = frozenset({"view", "add"})
    list_display = [
        "name",
        "organization",
        "last_four",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["organization"]
    search_fields = ["name", "organization__name", "organization__slug"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]
    actions = ["revoke_tokens"]
    readonly_fields = [
        "organization",
        "name",
        "scopes",
        "last_four",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "name", "token_scopes", "expires_in_days"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    # The new token lives in the frames that create it and render its page: masked in error
    # reports, like the secrets above.
    @sensitive_variables()
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    @sensitive_variables()
    def response_add(self, request, obj, post_url_continue=None):
        # The token itself is rendered into this one response and kept nowhere else. Rendered
        # here, not later by the handler, so that the template's frames are masked too.
        context = {
            **self.admin_site.each_context(request),
            "title": "Proxy token created",
            "opts": self.opts,
            "token": obj,
            "raw_token": request._keyvault_raw_token,
        }
        return TemplateResponse(request, "admin/keyvault/proxytoken/created.html", context).render()

    def save_model(self, request, obj, form, change):
        request._keyvault_raw_token = form.raw_token

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            try:
                services.proxy_token_revoke(token=token, actor=admin_access(request))
            except NotFoundError:  # deleted with its organization since the list was read
                continue
            revoked += 1
        self.message_user(request, f"{revoked} tokens revoked.")

    def has_revoke_permission(self, request):
        return self._may(request, "view")


# --- Audit trail -----------------------------------------------------------------------------


class AuditActionFilter(admin.SimpleListFilter):
    """Actions by their readable names; the query string keeps the stored code."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(action.value, action.label) for action in AuditAction]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(action=value) if value else queryset


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(TenantScopedAdmin):
    """Read-only for everyone, superusers included: the trail is append-only."""

    permission_actions = {"view": Action.AUDIT_READ}
    superuser_may = frozenset({"view"})
    list_display = [
        "created_at",
        "organization",
        "actor_label",
        "action_name",
        "target_label",
        "ip_address",
    ]
    list_filter = [AuditActionFilter, "organization"]
    search_fields = ["actor_label", "target_label", "action"]
    list_select_related = ["organization"]
    readonly_fields = [
        "created_at",
        "organization",
        "actor_user",
        "actor_token_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "ip_address",
        "metadata",
    ]
    fields = readonly_fields

    @admin.display(description="action", ordering="action")
    def action_name(self, event):
        return action_label(event.action)
