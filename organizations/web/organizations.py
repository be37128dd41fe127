"""The user's organizations: the list and switcher, creating one, settings and deletion."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render

from accounts import limits
from core.errors import NotFoundError
from core.forms import add_service_errors
from organizations import permissions, selectors, services
from organizations.access import Access
from organizations.permissions import Action
from organizations.selectors import organizations_for
from organizations.slugs import available_slug
from organizations.web.context import org_page
from organizations.web.forms import (
    OrganizationCreateForm,
    OrganizationDeleteForm,
    OrganizationForm,
)

_LAST_ORGANIZATION = "keyvault_last_organization"


def home(request):
    """Signed out: what Keyvault is. Signed in: the organization used last (or the list)."""
    if not request.user.is_authenticated:
        return render(request, "home.html")
    organizations = organizations_for(user=request.user)
    last = request.session.get(_LAST_ORGANIZATION)
    chosen = organizations.filter(slug=last).first() if last else None
    chosen = chosen or (organizations.first() if organizations.count() == 1 else None)
    if chosen is not None:
        return redirect("keys:list", org_slug=chosen.slug)
    return redirect("orgs:list")


def remember_organization(request) -> None:
    # Written only on a change: assigning marks the session modified, which costs a save.
    if request.session.get(_LAST_ORGANIZATION) != request.organization.slug:
        request.session[_LAST_ORGANIZATION] = request.organization.slug


@login_required
def organization_list(request):
    memberships = request.user.memberships.select_related("organization").order_by(
        "organization__name"
    )
    return render(request, "organizations/list.html", {"memberships": memberships})


@login_required
def organization_create(request):
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["name"]
        try:
            limits.check_organization_create(request)
            organization = services.organization_create(
                name=name,
                slug=form.cleaned_data["slug"] or available_slug(name),
                owner=request.user,
                actor=Access.for_request(request),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except PermissionDenied as exc:
            # An account whose address is not confirmed yet.
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Created {organization.name}. You are its owner.")
            return redirect("keys:list", org_slug=organization.slug)
    return render(request, "organizations/create.html", {"form": form})


@org_page()
def organization_settings(request):
    """Everyone sees the organization's details; only owners get the rename and delete forms."""
    organization = request.organization
    may_manage = permissions.can(request.actor, Action.ORG_MANAGE, organization)
    if request.method == "POST":
        permissions.require(request.actor, Action.ORG_MANAGE, organization)
    form = OrganizationForm(request.POST or None, initial={"name": organization.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.organization_rename(
                organization=organization, name=form.cleaned_data["name"], actor=request.actor
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Renamed the organization to {organization.name}.")
            return redirect("settings:index", org_slug=organization.slug)
    return render(
        request,
        "organizations/settings.html",
        {
            "form": form if may_manage else None,
            "may_manage": may_manage,
            "is_last_owner": selectors.is_last_owner(request.membership),
        },
    )


@org_page()
def organization_leave(request):
    error = None
    if request.method == "POST":
        try:
            services.membership_leave(membership=request.membership, actor=request.actor)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            request.session.pop(_LAST_ORGANIZATION, None)
            messages.success(request, f"You left {request.organization.name}.")
            return redirect("home")
    return render(
        request,
        "organizations/leave.html",
        {"error": error},
        status=400 if error else 200,
    )


@org_page(Action.ORG_MANAGE)
def organization_delete(request):
    organization = request.organization
    form = OrganizationDeleteForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        name = organization.name
        try:
            services.organization_delete(organization=organization, actor=request.actor)
        except NotFoundError:  # a second click, or another owner was quicker
            messages.info(request, f"{name} was already deleted.")
        else:
            messages.success(request, f"Deleted {name} with its keys, tokens and members.")
        request.session.pop(_LAST_ORGANIZATION, None)
        return redirect("orgs:list")
    return render(
        request,
        "organizations/delete.html",
        {"form": form, "key_count": organization.provider_keys.count()},
    )
