"""The Django admin as a room per organization.

Owners and admins of an organization enter the admin without anyone setting `is_staff`: the
site admits an active user who is a superuser or whose role in some organization carries the
`admin:site` scope (owner, admin), and the login form accepts the same people. Inside, every
ModelAdmin built on `TenantScopedAdmin` (organizations/admin.py) shows only the organizations
where that user is owner or admin. Members and viewers are turned away at the door.

The site also answers 400 to a query string holding NUL, whatever view it is for: list
filters, searches, autocompletes and the filters a change form carries back all hand their
parameters to the database, and PostgreSQL refuses NUL in text with a driver error.
"""

from functools import wraps

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import BadRequest, ValidationError

from accounts.forms import ThrottledSignInMixin
from organizations.models import Membership, Organization
from organizations.roles import Scope, roles_with


def administered_memberships(request) -> dict:
    """`{organization id: membership}` for the organizations the user administers, once per
    request."""
    cached = getattr(request, "_keyvault_admin_memberships", None)
    if cached is None:
        user = request.user
        cached = {}
        if user.is_active and user.is_authenticated:
            cached = {
                m.organization_id: m
                for m in Membership.objects.filter(
                    user=user, role__in=roles_with(Scope.ADMIN_SITE)
                ).select_related("organization")
            }
        request._keyvault_admin_memberships = cached
    return cached


def administered_organizations(request):
    """The organizations the request's user may see in the admin."""
    if request.user.is_active and request.user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(pk__in=administered_memberships(request))


def may_enter(request) -> bool:
    user = request.user
    if not (user.is_active and user.is_authenticated):
        return False
    return user.is_superuser or bool(administered_memberships(request))


class TenantAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """Admin sign-in for superusers and organization owners and admins; no `is_staff`. Failed
    attempts count toward the same throttle as the team pages' sign-in."""

    def confirm_login_allowed(self, user):
        if not user.is_active:
            raise ValidationError(self.error_messages["inactive"], code="inactive")
        allowed = (
            user.is_superuser
            or Membership.objects.filter(user=user, role__in=roles_with(Scope.ADMIN_SITE)).exists()
        )
        if not allowed:
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class KeyvaultAdminSite(admin.AdminSite):
    site_header = "Keyvault administration"
    site_title = "Keyvault admin"
    index_title = "Your organizations"
    login_form = TenantAdminAuthenticationForm

    def has_permission(self, request):
        return may_enter(request)

    def admin_view(self, view, cacheable=False):
        return super().admin_view(_refusing_nul_in_query(view), cacheable)


def _refusing_nul_in_query(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if any("\x00" in name or "\x00" in value for name, value in _query_items(request)):
            raise BadRequest("The query string contains a NUL character.")
        return view(request, *args, **kwargs)

    return guarded


def _query_items(request):
    for name, values in request.GET.lists():
        for value in values:
            yield name, value


site = KeyvaultAdminSite(name="admin")
