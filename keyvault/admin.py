"""Admin for provider keys, proxy tokens and the audit trail, scoped per organization.

A key's secret appears only as its masked hint; a write-only field sets or rotates it through
the services. A new proxy token is shown once, on the page that answers its creation, and is
kept nowhere else: not in a message cookie, the session or the admin history.
"""

from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import escape, format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from audit import AuditAction, action_label
from audit.models import AuditEvent
from core.errors import NotFoundError
from keyvault import providers, services
from keyvault.models import KeyUsage, ProviderKey, ProxyToken
from keyvault.tokens import SCOPE_CHOICES
from organizations.admin import ServiceForm, TenantScopedAdmin, is_trusted
from organizations.admin_site import admin_access, site
from organizations.permissions import Action


def short_time(moment) -> str:
    """A list column's date: "2026-12-01 22:47" (UTC), not Django's long format."""
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "—"


# --- Provider keys ---------------------------------------------------------------------------


# A provider setting's input, as on the team pages: `config_endpoint`.
CONFIG_PREFIX = "config_"


def provider_of(request, obj=None) -> providers.Provider | None:
    """The provider a key form is for: the key's, else the one posted or asked for
    (`?provider=azure_openai`), else None (the form then asks for raw JSON settings)."""
    provider_id = (
        obj.provider
        if obj is not None
        else (request.POST.get("provider") or request.GET.get("provider"))
    )
    try:
        return providers.get_provider(provider_id)
    except ValidationError:
        return None


def provider_form(base: type, provider: providers.Provider) -> type:
    """`base` with one input per setting of `provider`, as the team pages ask for them."""
    attrs = {"provider_obj": provider}
    for spec in provider.config_fields:
        attrs[CONFIG_PREFIX + spec.name] = forms.CharField(
            label=spec.label,
            required=spec.required,
            max_length=spec.max_length,
            # The admin renders help text as HTML; the catalog's is plain text.
            help_text=escape(
                spec.help_text or (f"Expected: {spec.pattern_hint}." if spec.pattern_hint else "")
            ),
            widget=forms.URLInput() if spec.kind == "url" else forms.TextInput(),
        )
    return type(base)(f"{provider.id.title().replace('_', '')}KeyForm", (base,), attrs)


class ProviderKeyForm(ServiceForm):
    service_fields = {"secret": "new_secret"}
    provider_obj: providers.Provider | None = None  # set by provider_form()
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. On an existing key, typing a secret rotates it (the version is "
        "bumped); leave empty to keep the current one.",
    )

    priority = forms.IntegerField(
        required=False,
        initial=100,
        help_text="Place in the provider's pool, lower first (after the default); 100 if empty.",
    )

    class Meta:
        model = ProviderKey
        fields = ["organization", "provider", "name", "config", "is_default", "enabled", "priority"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.provider_obj is not None and not self.instance._state.adding:
            for name, value in (self.instance.config or {}).items():
                if CONFIG_PREFIX + name in self.fields:
                    self.initial[CONFIG_PREFIX + name] = value

    def clean(self):
        if self.provider_obj is not None:
            # The settings typed one per input, checked as the pages check them, become the
            # `config` the services receive.
            typed = {
                spec.name: self.cleaned_data.get(CONFIG_PREFIX + spec.name) or ""
                for spec in self.provider_obj.config_fields
                if CONFIG_PREFIX + spec.name not in self.errors
            }
            config, problems = providers.check_config(self.provider_obj, typed)
            for name, messages in problems.items():
                field = CONFIG_PREFIX + name if name else None
                if field and field in self.errors:
                    continue
                self.add_error(field, messages)
            self.cleaned_data["config"] = config
        return super().clean()

    def config_changed(self, data) -> bool:
        if self.provider_obj is not None:
            return data.get("config") != (self.instance.config or {})
        return "config" in self.changed_data

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
                priority=100 if data.get("priority") is None else data["priority"],
            )
        changes = {
            field: data[field]
            for field in ("name", "is_default", "enabled", "priority")
            if field in self.changed_data and data.get(field) is not None
        }
        if self.config_changed(data):
            changes["config"] = data["config"]
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
        "test": Action.KEY_TEST,
    }
    # Fits beside the filter sidebar at 1280 px: the KEK is a filter (and on the key's page),
    # dates are short.
    superuser_may = frozenset({"view", "add", "change", "delete", "test"})
    change_form_template = "admin/keyvault/providerkey/change_form.html"
    list_display = [
        "name",
        "provider",
        "organization",
        "secret_hint",
        "is_default",
        "enabled",
        "priority",
        "health",
        "version",
        "last_used",
    ]
    list_filter = ["provider", "organization", "enabled", "is_default", "kek_id"]
    search_fields = ["name", "organization__name", "organization__slug", "secret_hint"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, key):
        return short_time(key.last_used_at)

    readonly_fields = [
        "secret_hint",
        "version",
        "kek_id",
        "created_by",
        "created_at",
        "updated_at",
        "rotated_at",
        "last_used_at",
        "health",
        "cooling_until",
        "last_checked_at",
        "last_check_ok",
    ]
    actions = ["enable_keys", "disable_keys", "test_keys", "rewrap_under_primary"]

    # The secret typed into the form is masked in error reports: in the POST data, and in the
    # frames that validate it and hand it to the services.
    @method_decorator(sensitive_post_parameters("new_secret"))
    @sensitive_variables()
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        provider = provider_of(request, obj)
        if provider is not None and "form" not in kwargs:
            kwargs["form"] = provider_form(self.form, provider)
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "provider" in form.base_fields:
            links = format_html_join(" · ", '<a href="?provider={}">{}</a>', providers.CHOICES)
            form.base_fields["provider"].help_text = format_html(
                "Its settings are asked for one by one once it is chosen: {}.", links
            )
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            fields = [
                "organization",
                "provider",
                "name",
                "new_secret",
                "config",
                "is_default",
                "enabled",
                "priority",
            ]
        else:
            fields = [
                "organization",
                "provider",
                "name",
                "secret_hint",
                "new_secret",
                "config",
                "is_default",
                "enabled",
                "priority",
                *self.readonly_fields[1:],
            ]
        provider = provider_of(request, obj)
        if provider is not None:
            # The provider's settings, one input each, where the raw JSON was.
            at = fields.index("config")
            fields[at : at + 1] = [CONFIG_PREFIX + spec.name for spec in provider.config_fields]
        return fields

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

    # --- Connection tests ------------------------------------------------------------------

    @admin.display(description="Health")
    def health(self, obj):
        return obj.health

    def has_test_permission(self, request, obj=None):
        return self._may(request, "test", obj)

    def _test(self, request, key) -> None:
        try:
            result = services.provider_key_test(key=key, actor=admin_access(request))
        except NotFoundError:
            return
        self.message_user(
            request,
            f"{key.name}: {'passed' if result.ok else 'failed'}. {result.detail}",
            messages.SUCCESS if result.ok else messages.WARNING,
        )

    @admin.action(description="Test connection of selected keys", permissions=["test"])
    def test_keys(self, request, queryset):
        for key in queryset:
            if self.has_test_permission(request, key):
                self._test(request, key)

    def get_urls(self):
        test = self.admin_site.admin_view(self.test_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_test"
        return [path("<path:object_id>/test/", test, name=name), *super().get_urls()]

    def test_view(self, request, object_id):
        """The change page's Test button (a POST): one key's connection test."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        key = self.get_object(request, object_id)
        if key is None:
            raise Http404("No such key.")
        if not self.has_test_permission(request, key):
            raise PermissionDenied
        self._test(request, key)
        opts = self.opts
        return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[key.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["may_test"] = obj is not None and self.has_test_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


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


# --- Usage -----------------------------------------------------------------------------------


@admin.register(KeyUsage, site=site)
class KeyUsageAdmin(TenantScopedAdmin):
    """Secret retrievals per token, key and hour, read-only (written by keyvault/usage.py)."""

    organization_path = "token__organization"
    permission_actions = {"view": Action.TOKEN_MANAGE}
    superuser_may = frozenset({"view"})
    list_display = ["hour", "organization", "token", "key_label", "count"]
    list_select_related = ["token__organization", "key"]
    search_fields = ["token__name", "key__name"]
    readonly_fields = ["hour", "token", "key", "count"]
    fields = readonly_fields

    def _organization_id(self, obj):
        return obj.token.organization_id

    @admin.display(description="organization", ordering="token__organization__name")
    def organization(self, usage):
        return usage.token.organization

    @admin.display(description="key", ordering="key__name")
    def key_label(self, usage):
        return str(usage.key) if usage.key_id else "(deleted key)"


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
        "when",
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

    @admin.display(description="when (UTC)", ordering="created_at")
    def when(self, event):
        return short_time(event.created_at)

    @admin.display(description="action", ordering="action")
    def action_name(self, event):
        return action_label(event.action)
