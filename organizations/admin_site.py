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
from organizations.access import Access
from organizations.models import Organization
from organizations.roles import Scope


def admin_access(request) -> Access:
    """The admin's caller, resolved once per request: every scope, choice and permission the
    admin shows or checks asks this one object."""
    access = getattr(request, "keyvault_access", None)
    if access is None:
        access = request.keyvault_access = Access.for_request(request)
    return access


def administered_memberships(request) -> dict:
    """`{organization id: membership}` for the organizations the user administers (whose role
    lets them into the admin)."""
    return admin_access(request).organizations_with(Scope.ADMIN_SITE)


def administered_organizations(request):
    """The organizations the request's user may see in the admin."""
    if admin_access(request).is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(pk__in=administered_memberships(request))


def may_enter(access: Access) -> bool:
    return access.is_superuser or bool(access.organizations_with(Scope.ADMIN_SITE))


class TenantAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """Admin sign-in for superusers and organization owners and admins; no `is_staff`. Failed
    attempts count toward the same throttle as the team pages' sign-in."""

    def confirm_login_allowed(self, user):
        if not user.is_active:
            raise ValidationError(self.error_messages["inactive"], code="inactive")
        if not may_enter(Access.for_user(user)):
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
        return may_enter(admin_access(request))

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
