"""The Django admin as a room per organization.

Owners and admins of an organization enter the admin without anyone setting `is_staff`: the
site admits an active user who is a superuser or whose role in some organization carries the
`admin:site` scope (owner, admin), and the login form accepts the same people. Inside, every
ModelAdmin built on `TenantScopedAdmin` (organizations/admin.py) shows only the organizations
where that user is owner or admin. Members and viewers are turned away at the door.

The admin has no sign-in form of its own: its login page sends a signed-out visitor to the team
pages' sign-in (`/accounts/sign-in/?next=/admin/`), so one door with one set of rules (the
throttle, a second factor, an organization's single sign-on) lets people in, and a signed-in
person it does not admit gets a 403 there instead of a second password prompt.

The site also answers 400 to a query string holding NUL, whatever view it is for: list
filters, searches, autocompletes and the filters a change form carries back all hand their
parameters to the database, and PostgreSQL refuses NUL in text with a driver error.
"""

from functools import wraps

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import BadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

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


class KeyvaultAdminSite(admin.AdminSite):
    site_header = "Keyvault administration"
    site_title = "Keyvault admin"
    index_title = "Your organizations"

    def has_permission(self, request):
        return may_enter(admin_access(request))

    @method_decorator(never_cache)
    def login(self, request, extra_context=None):
        """Never a password form: the team pages' sign-in, or a refusal for those signed in
        whom the admin does not admit. A POST of credentials here signs nobody in."""
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index")
        if not request.user.is_authenticated:
            return redirect_to_login(next_url)
        if self.has_permission(request):
            return redirect(next_url)
        return render(
            request,
            "admin/refused.html",
            {**self.each_context(request), "title": "Not for your account"},
            status=403,
        )

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
