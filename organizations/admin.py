"""Tenant-scoped admin: the base every Keyvault ModelAdmin builds on, and the organization and
membership admins.

For anyone but a superuser, querysets, foreign-key choices, autocompletes, list filters,
history and delete pages are limited to the organizations the user administers, and another
organization's object answers 404. Permissions are asked of `organizations.permissions`, and
every write goes through the services (validation, rules, audit) inside the admin's own
transaction: a refused change is shown as form errors and leaves the row as it was.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import TO_FIELD_VAR
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router, transaction
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse

from keyvault.errors import NotFoundError
from organizations import roles, services
from organizations.actors import Actor
from organizations.admin_site import (
    administered_memberships,
    administered_organizations,
    site,
)
from organizations.forms import add_service_errors
from organizations.models import Membership, Organization
from organizations.permissions import Action, can

# People and groups: platform operators (superusers) only, as Django's own admins decide.
site.register(get_user_model(), UserAdmin)
site.register(Group, GroupAdmin)


def is_trusted(request) -> bool:
    return request.user.is_active and request.user.is_superuser


class ServiceForm(forms.ModelForm):
    """A ModelForm whose `save_through_services(cleaned_data)` performs the write.

    It runs at the end of validation, so whatever the services refuse becomes form errors;
    the admin wraps the whole view in a transaction, so nothing half-done stays behind.
    """

    actor: Actor | None = None
    # Service field names that this form calls differently: {"secret": "new_secret"}.
    service_fields: dict = {}

    def save_through_services(self, data):
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.instance = self.save_through_services(data)
        except ValidationError as exc:
            add_service_errors(self, exc, rename=self.service_fields)
        except PermissionDenied as exc:
            self.add_error(None, str(exc) or "Permission denied.")
        except NotFoundError as exc:  # deleted by someone else while the form was open
            self.add_error(None, str(exc))
        return data

    def _post_clean(self):
        # The services validated and saved; model-level validation would re-check a row that
        # is already written.
        pass

    def save(self, commit=True):
        return self.instance

    def save_m2m(self):
        pass


class TenantOrganizationFilter(admin.SimpleListFilter):
    title = "organization"
    parameter_name = "organization"

    def lookups(self, request, model_admin):
        return [(str(o.pk), o.name) for o in administered_organizations(request).order_by("name")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        allowed = {
            str(pk) for pk in administered_organizations(request).values_list("pk", flat=True)
        }
        if value not in allowed:
            return queryset.none()
        return queryset.filter(**{f"{self.model_admin_organization_path}": value})


class TenantScopedAdmin(admin.ModelAdmin):
    """`organization_path` leads from the model to its Organization ("" for Organization);
    `permission_actions` maps view/add/change/delete to matrix actions (missing: refused)."""

    organization_path = "organization"
    permission_actions: dict = {}
    superuser_may: frozenset = frozenset({"view", "add", "change", "delete"})
    # Bulk deletion only where the services never refuse a single delete.
    bulk_delete = True

    # --- Scope -------------------------------------------------------------------------------

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_trusted(request):
            return queryset
        ids = list(administered_memberships(request))
        lookup = f"{self.organization_path}__in" if self.organization_path else "pk__in"
        return queryset.filter(**{lookup: ids})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Organization and not is_trusted(request):
            kwargs["queryset"] = administered_organizations(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        filters = []
        for item in super().get_list_filter(request):
            if item == self.organization_path and self.organization_path:
                path = self.organization_path
                filters.append(
                    type(
                        "OrganizationFilter",
                        (TenantOrganizationFilter,),
                        {"model_admin_organization_path": path},
                    )
                )
            else:
                filters.append(item)
        return filters

    def _not_found_outside_scope(self, request, object_id):
        # Django checks permissions before it looks the object up, so on a model this user may
        # never delete (tokens, the audit trail) or change, another organization's id would
        # answer 403 instead of 404. Look first: outside their organizations nothing exists.
        to_field = request.POST.get(TO_FIELD_VAR, request.GET.get(TO_FIELD_VAR))
        if to_field and not self.to_field_allowed(request, to_field):
            return  # Django refuses it itself.
        if self.get_object(request, unquote(object_id), to_field) is None:
            raise Http404

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is not None and "_saveasnew" not in request.POST:
            self._not_found_outside_scope(request, object_id)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._not_found_outside_scope(request, object_id)
        # A delete the services refuse (the last owner) is shown, not a server error; the
        # admin's transaction has rolled back the log entry written before it.
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.path)
        except NotFoundError as exc:  # deleted by someone else a moment ago
            self.message_user(request, str(exc), messages.WARNING)
            return HttpResponseRedirect(
                reverse(
                    f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_changelist"
                )
            )

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.bulk_delete:
            actions.pop("delete_selected", None)
        return actions

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another organization's object is not found, exactly like one that does not exist.
        raise Http404

    # --- Permissions -------------------------------------------------------------------------

    def _organization_id(self, obj):
        if not self.organization_path:
            return obj.pk
        return getattr(obj, f"{self.organization_path}_id")

    def _may(self, request, kind: str, obj=None) -> bool:
        if is_trusted(request):
            return kind in self.superuser_may
        action = self.permission_actions.get(kind)
        memberships = administered_memberships(request)
        if action is None or not memberships:
            return False
        if obj is None:
            return any(can(m, action) for m in memberships.values())
        return can(memberships.get(self._organization_id(obj)), action, obj)

    def has_module_permission(self, request):
        return is_trusted(request) or bool(administered_memberships(request))

    def has_view_permission(self, request, obj=None):
        return self._may(request, "view", obj) or self._may(request, "change", obj)

    def has_add_permission(self, request):
        return self._may(request, "add")

    def has_change_permission(self, request, obj=None):
        return self._may(request, "change", obj)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, "delete", obj)

    # --- Writes through the services ---------------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, ServiceForm):
            form.actor = Actor.for_request(request)
        return form

    def save_model(self, request, obj, form, change):
        if not isinstance(form, ServiceForm):
            raise PermissionDenied("Changes go through Keyvault's services.")

    def save_related(self, request, form, formsets, change):
        # Inlines are read-only: nothing to save, and the change message reads these.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if request.method == "POST":
            # A POST shown again is a refused one. The services wrote during form validation if
            # only an inline was refused afterwards: roll the admin's transaction back.
            transaction.set_rollback(True, using=router.db_for_write(self.model))
        return super().render_change_form(request, context, add, change, form_url, obj)


# --- Organizations ---------------------------------------------------------------------------


class OrganizationForm(ServiceForm):
    class Meta:
        model = Organization
        fields = ["name", "slug"]

    def save_through_services(self, data):
        if self.instance._state.adding:
            raise PermissionDenied("Create organizations with `manage.py create_org`.")
        return services.organization_rename(
            organization=self.instance, name=data["name"], actor=self.actor
        )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_view_permission(self, request, obj=None):
        # Django would ask the auth permissions, which owners and admins do not hold (the
        # inline then vanished for them); whoever sees the organization sees its members.
        return self.admin_site._registry[self.parent_model].has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Organization, site=site)
class OrganizationAdmin(TenantScopedAdmin):
    form = OrganizationForm
    organization_path = ""
    permission_actions = {
        "view": Action.KEY_LIST,
        "change": Action.ORG_MANAGE,
        "delete": Action.ORG_MANAGE,
    }
    superuser_may = frozenset({"view", "change", "delete"})
    bulk_delete = False
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return ["slug"] if obj is not None else []

    def get_deleted_objects(self, objs, request):
        # The service deletes the organization's keys, tokens and memberships with it, under
        # the owner's org:manage right; per-model delete rights (tokens are only ever revoked)
        # do not apply to that cascade. The summary still lists everything that goes.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        services.organization_delete(organization=obj, actor=Actor.for_request(request))


# --- Memberships -----------------------------------------------------------------------------


class MembershipAddForm(ServiceForm):
    email = forms.EmailField(help_text="The person is added, with an account made if needed.")

    class Meta:
        model = Membership
        fields = ["organization", "email", "role"]

    def save_through_services(self, data):
        user, _created = services.user_get_or_create(email=data["email"])
        return services.membership_add(
            organization=data["organization"], user=user, role=data["role"], actor=self.actor
        )


class MembershipChangeForm(ServiceForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def save_through_services(self, data):
        return services.membership_change_role(
            membership=self.instance, role=data["role"], actor=self.actor
        )


@admin.register(Membership, site=site)
class MembershipAdmin(TenantScopedAdmin):
    permission_actions = {
        "view": Action.KEY_LIST,
        "add": Action.MEMBER_MANAGE,
        "change": Action.MEMBER_MANAGE,
        "delete": Action.MEMBER_MANAGE,
    }
    bulk_delete = False
    list_display = ["user_email", "organization", "role", "created_at"]
    list_filter = ["organization", "role"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["user_email", "organization_name"]

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    @admin.display(description="organization")
    def organization_name(self, obj):
        return obj.organization.name

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = MembershipChangeForm if obj is not None else MembershipAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "email", "role"]
        return ["user_email", "organization_name", "role"]

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and not is_trusted(request):
            # Only roles the user may grant in some organization they administer.
            grantable = {
                role.id
                for role in roles.ROLES
                for m in administered_memberships(request).values()
                if m.role_obj.outranks_or_equals(role)
            }
            kwargs["choices"] = [(r.id, r.name) for r in roles.ROLES if r.id in grantable]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def delete_model(self, request, obj):
        services.membership_remove(membership=obj, actor=Actor.for_request(request))
