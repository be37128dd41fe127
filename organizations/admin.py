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
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import TO_FIELD_VAR
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, router, transaction
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts import limits
from accounts.services import EMAIL_MAX_LENGTH
from core.errors import NotFoundError
from core.forms import add_service_errors
from organizations import invitations, roles, services
from organizations.access import Access
from organizations.admin_site import (
    admin_access,
    administered_memberships,
    administered_organizations,
    site,
)
from organizations.formfields import BoundedJSONField
from organizations.invitation_mail import invitation_send
from organizations.models import Invitation, Membership, Organization
from organizations.permissions import Action, can, grantable_roles

# People and groups: platform operators (superusers) only, as Django's own admins decide.
site.register(get_user_model(), UserAdmin)
site.register(Group, GroupAdmin)


def is_trusted(request) -> bool:
    """Whether the admin's user sees every organization (an active superuser)."""
    return admin_access(request).is_superuser


class ServiceForm(forms.ModelForm):
    """A ModelForm whose `save_through_services(cleaned_data)` performs the write.

    It runs at the end of validation, so whatever the services refuse becomes form errors.
    The admin runs every POST in a transaction, and the services write inside a savepoint of
    it: a refusal, or the page shown again for another reason (`undo_service_write`), rolls
    back only that savepoint. The transaction itself stays usable, because the admin goes on
    querying in it after validation (the content type for its history, the form's choices):
    marking it for rollback instead turned every refused form into a server error.
    """

    actor: Access | None = None
    # Service field names that this form calls differently: {"secret": "new_secret"}.
    service_fields: dict = {}
    _savepoint = None

    def save_through_services(self, data):
        raise NotImplementedError

    @sensitive_variables()  # `data` holds what was typed, secrets included
    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        using = router.db_for_write(self._meta.model)
        if not transaction.get_connection(using).in_atomic_block:
            # Outside a transaction a refused write could not be undone.
            raise transaction.TransactionManagementError(
                "A ServiceForm is validated inside a transaction (the admin's)."
            )
        self._savepoint = (using, transaction.savepoint(using=using))
        try:
            self.instance = self.save_through_services(data)
        except ValidationError as exc:
            self.undo_service_write()
            add_service_errors(self, exc, rename=self.service_fields)
        except PermissionDenied as exc:
            self.undo_service_write()
            self.add_error(None, str(exc) or "Permission denied.")
        except NotFoundError as exc:  # deleted by someone else while the form was open
            self.add_error(None, str(exc))
        return data

    def undo_service_write(self) -> None:
        """Roll back whatever the services wrote for this form, and nothing else."""
        if self._savepoint is not None:
            using, savepoint = self._savepoint
            self._savepoint = None
            transaction.savepoint_rollback(savepoint, using=using)

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
    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONField}}

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

    # The lookups a filter in the sidebar sends; any other field lookup in the query string
    # (a regex, a JSON path, a prefix of a stored digest) is refused as a bad request.
    _FILTER_LOOKUPS = frozenset({"exact", "isnull", "id", "in"})

    def lookup_allowed(self, lookup, value, request=None):
        offered = set()
        for item in self.list_filter:
            if isinstance(item, str):
                offered.add(item)
            elif isinstance(item, tuple):  # (field, filter class)
                offered.add(item[0])
            elif isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
                offered.add(item.parameter_name)
        root, *rest = lookup.split(LOOKUP_SEP)
        if root not in offered or not set(rest) <= self._FILTER_LOOKUPS:
            return False
        return super().lookup_allowed(lookup, value, request)

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

    def response_action(self, request, queryset):
        # Django filters by the selected ids as they were sent; one that is not an id at all (a
        # tampered form) failed in that filter as a server error.
        try:
            for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(
                request,
                "The selection names items that do not exist. No items have been changed.",
                messages.WARNING,
            )
            return None
        return super().response_action(request, queryset)

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
        rooms = administered_memberships(request)
        if action is None or not rooms:
            return False
        access = admin_access(request)
        if obj is None:
            return any(can(access, action, organization_id) for organization_id in rooms)
        # Only organizations the user administers: a mere member elsewhere sees nothing here.
        organization_id = self._organization_id(obj)
        return organization_id in rooms and can(access, action, organization_id, obj)

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
            form.actor = admin_access(request)
        return form

    def save_model(self, request, obj, form, change):
        if not isinstance(form, ServiceForm):
            raise PermissionDenied("Changes go through Keyvault's services.")

    def save_related(self, request, form, formsets, change):
        # Inlines are read-only: nothing to save, and the change message reads these.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        if request.method == "POST" and isinstance(form, ServiceForm):
            # A POST shown again is a refused one. The services wrote during form validation if
            # only an inline was refused afterwards: undo their writes.
            form.undo_service_write()
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
        services.organization_delete(organization=obj, actor=admin_access(request))


# --- Memberships and invitations -------------------------------------------------------------
#
# Nobody is made a member by typing their address: sign-up does not verify addresses, so the
# account holding one may belong to someone else, and an address with no account yet belongs to
# whoever receives its mail. "Add membership" therefore sends an invitation, and its invitee
# joins by accepting the emailed link, like everywhere else. Existing memberships change role
# or are removed here through the services.


class GrantableRoleChoices:
    """Offers on the `role` field only the roles the user may grant in some organization they
    administer. The services decide per organization; this only keeps the form honest."""

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and not is_trusted(request):
            access = admin_access(request)
            grantable = {
                role.id
                for organization_id in administered_memberships(request)
                for role in grantable_roles(access, organization_id)
            }
            kwargs["choices"] = [(r.id, r.name) for r in roles.ROLES if r.id in grantable]
        return super().formfield_for_choice_field(db_field, request, **kwargs)


class InvitationForm(ServiceForm):
    email = forms.EmailField(
        max_length=EMAIL_MAX_LENGTH,
        help_text="An invitation is emailed to this address. Nobody joins until the address's "
        "owner accepts it with the link in that email.",
    )
    request = None

    class Meta:
        model = Invitation
        fields = ["organization", "email", "role"]

    @sensitive_variables("raw")
    def save_through_services(self, data):
        limits.check_invitation(self.request, data["organization"])
        invitation, raw = invitations.invitation_create(
            organization=data["organization"],
            email=data["email"],
            role=data["role"],
            actor=self.actor,
        )
        # Kept on this form, for the one email sent once the admin's transaction commits.
        self.raw_token = raw
        return invitation


class InvitationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(s, s.capitalize()) for s in ("pending", "accepted", "revoked", "expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        still_open = Q(accepted_at__isnull=True, revoked_at__isnull=True)
        condition = {
            "pending": still_open & Q(expires_at__gt=now),
            "accepted": Q(accepted_at__isnull=False),
            "revoked": Q(revoked_at__isnull=False),
            "expired": still_open & Q(expires_at__lte=now),
        }.get(self.value())
        return queryset if condition is None else queryset.filter(condition)


def invitation_status(invitation: Invitation) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.is_expired else "pending"


@admin.register(Invitation, site=site)
class InvitationAdmin(GrantableRoleChoices, TenantScopedAdmin):
    """Invitations are sent here and revoked with an action; a sent one is never edited, and
    rows stay for the record (accepting or revoking stamps them)."""

    form = InvitationForm
    permission_actions = {"view": Action.MEMBER_MANAGE, "add": Action.MEMBER_MANAGE}
    superuser_may = frozenset({"view", "add"})
    list_display = [
        "email",
        "organization",
        "role",
        "status",
        "inviter",
        "created_at",
        "expires_at",
    ]
    list_filter = ["organization", InvitationStatusFilter, "role"]
    search_fields = ["email", "organization__name", "organization__slug"]
    list_select_related = ["organization", "invited_by"]
    autocomplete_fields = ["organization"]
    actions = ["revoke_invitations"]
    readonly_fields = [
        "organization",
        "email",
        "role",
        "status",
        "inviter",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by_email",
        "revoked_at",
    ]

    @admin.display(description="status")
    def status(self, obj):
        return invitation_status(obj)

    @admin.display(description="invited by")
    def inviter(self, obj):
        if obj.invited_by_id is not None:
            return obj.invited_by.email
        return "the operator" if obj.invited_by_operator else "a deleted account"

    @admin.display(description="accepted by")
    def accepted_by_email(self, obj):
        return obj.accepted_by.email if obj.accepted_by_id is not None else "-"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "email", "role"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, InvitationForm):
            form.request = request
        return form

    @sensitive_variables("sent")
    def add_view(self, request, form_url="", extra_context=None):
        context = {
            "title": "Invite someone to an organization",
            "show_save_and_continue": False,
            **(extra_context or {}),
        }
        response = super().add_view(request, form_url, context)
        # The admin's transaction has committed when its view returns (requests are not
        # atomic): only now is the link emailed, so a slow mail server holds no lock open and
        # no link goes out for an invitation that was rolled back.
        sent = request.__dict__.pop("_keyvault_invitation_to_send", None)
        if sent is not None:
            self._send(request, *sent)
        return response

    def save_model(self, request, obj, form, change):
        # The link's token stays on this request only, never in the session or a message.
        request._keyvault_invitation_to_send = (obj, form.raw_token)

    @sensitive_variables("raw")
    def _send(self, request, invitation, raw):
        actor = admin_access(request)
        if invitation_send(request=request, invitation=invitation, raw=raw, actor=actor):
            self.message_user(
                request,
                f"Invited {invitation.email} to {invitation.organization.name} as "
                f"{invitation.get_role_display().lower()}. They join once they accept the link "
                f"emailed to that address, which works until "
                f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"The invitation email to {invitation.email} could not be sent, so the "
                "invitation was withdrawn.",
                messages.ERROR,
            )

    def response_add(self, request, obj, post_url_continue=None):
        # The message comes from `_send`, which knows whether the email went out.
        if "_addanother" in request.POST:
            return HttpResponseRedirect(request.path)
        return HttpResponseRedirect(
            reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                current_app=self.admin_site.name,
            )
        )

    @admin.action(description="Revoke selected pending invitations", permissions=["revoke"])
    def revoke_invitations(self, request, queryset):
        actor = admin_access(request)
        revoked, refused = 0, []
        pending = queryset.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).select_related("organization")
        for invitation in pending:
            try:
                invitations.invitation_revoke(invitation=invitation, actor=actor)
            except PermissionDenied:
                # An admin may not withdraw an invitation to a role above their own.
                refused.append(invitation.email)
            else:
                revoked += 1
        self.message_user(request, f"{revoked} invitations revoked.")
        if refused:
            self.message_user(
                request,
                f"Not revoked (a role above your own): {', '.join(refused)}.",
                messages.ERROR,
            )

    def has_revoke_permission(self, request):
        return self._may(request, "view")


class MembershipChangeForm(ServiceForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def save_through_services(self, data):
        return services.membership_change_role(
            membership=self.instance, role=data["role"], actor=self.actor
        )


@admin.register(Membership, site=site)
class MembershipAdmin(GrantableRoleChoices, TenantScopedAdmin):
    form = MembershipChangeForm
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
    fields = ["user_email", "organization_name", "role"]
    readonly_fields = ["user_email", "organization_name"]

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    @admin.display(description="organization")
    def organization_name(self, obj):
        return obj.organization.name

    def add_view(self, request, form_url="", extra_context=None):
        # Adding a member is inviting them: the invitation admin's form, here or there, and
        # never an account attached by its address.
        return self.admin_site._registry[Invitation].add_view(request, form_url, extra_context)

    def delete_model(self, request, obj):
        services.membership_remove(membership=obj, actor=admin_access(request))
