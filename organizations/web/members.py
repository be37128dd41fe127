"""Members of an organization: the list with roles, invitations, role changes and removal.

The role matrix and the last-owner rule are the services'; this module only shows the controls
a role may use and turns the services' refusals into form errors.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import limits
from core.forms import add_service_errors
from organizations import invitations, permissions, selectors, services
from organizations.invitation_mail import invitation_send
from organizations.models import Invitation, Membership
from organizations.permissions import Action
from organizations.web.context import org_page
from organizations.web.forms import InviteForm, RoleForm, grantable_role_choices


def _member_rows(request):
    acting = request.membership
    grantable = grantable_role_choices(request.actor, request.organization)
    rows = []
    for membership in request.organization.memberships.select_related("user").order_by(
        "user__email"
    ):
        # The last owner can neither leave, be removed nor step down (the services refuse
        # all three), so none of those controls is offered.
        last_owner = selectors.is_last_owner(membership)
        manageable = permissions.can_manage_member(request.actor, membership) and not last_owner
        rows.append(
            {
                "membership": membership,
                "is_you": membership.pk == acting.pk,
                "is_last_owner": last_owner,
                "may_manage": manageable,
                "role_form": RoleForm(
                    access=request.actor,
                    organization=request.organization,
                    initial={"role": membership.role},
                    prefix=f"m{membership.pk}",
                )
                if manageable and grantable
                else None,
            }
        )
    return rows


@org_page()
def member_list(request):
    may_manage = permissions.can(request.actor, Action.MEMBER_MANAGE, request.organization)
    pending = []
    if may_manage:
        pending = list(invitations.pending_invitations(organization=request.organization))
        for invitation in pending:
            # Withdrawing an invitation needs the right to grant its role (admins: not owner).
            invitation.may_revoke = permissions.can_grant_role(
                request.actor, request.organization, invitation.role
            )
    context = {
        "rows": _member_rows(request),
        "may_manage": may_manage,
        "invite_form": InviteForm(access=request.actor, organization=request.organization)
        if may_manage
        else None,
        "invitations": pending,
    }
    return render(request, "organizations/members.html", context)


@org_page(Action.MEMBER_MANAGE)
def member_invite(request):
    form = InviteForm(request.POST or None, access=request.actor, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        try:
            limits.check_invitation(request, request.organization)
            invitation, raw = invitations.invitation_create(
                organization=request.organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.actor,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            # The page runs outside a transaction, so the invitation is committed already.
            sent = invitation_send(
                request=request, invitation=invitation, raw=raw, actor=request.actor
            )
            if sent:
                messages.success(
                    request,
                    f"Invited {invitation.email} as {invitation.get_role_display().lower()}. "
                    "The link in their email works until "
                    f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.",
                )
                return redirect("members:list", org_slug=request.organization.slug)
            form.add_error(
                None, "The invitation email could not be sent, so the invitation was withdrawn."
            )
    return render(request, "organizations/invite.html", {"form": form})


def _target(request, pk) -> Membership:
    """A membership of the current organization (another organization's answers 404) that the
    acting member may manage (403 otherwise)."""
    try:
        return selectors.access_membership(
            request.actor, pk, organization_id=request.organization.pk
        )
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None


@require_POST
@org_page(Action.MEMBER_MANAGE)
def member_change_role(request, pk):
    target = _target(request, pk)
    form = RoleForm(
        request.POST,
        access=request.actor,
        organization=request.organization,
        prefix=f"m{target.pk}",
    )
    if form.is_valid():
        try:
            services.membership_change_role(
                membership=target, role=form.cleaned_data["role"], actor=request.actor
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            target.refresh_from_db()
            messages.success(
                request, f"{target.user.email} is now {target.get_role_display().lower()}."
            )
            return redirect("members:list", org_slug=request.organization.slug)
    for error in form.errors.values():
        messages.error(request, " ".join(error))
    return redirect("members:list", org_slug=request.organization.slug)


@org_page(Action.MEMBER_MANAGE)
def member_remove(request, pk):
    target = _target(request, pk)
    error = None
    if request.method == "POST":
        try:
            services.membership_remove(membership=target, actor=request.actor)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if target.user_id == request.user.pk:
                messages.success(request, f"You left {request.organization.name}.")
                return redirect("home")
            messages.success(
                request, f"Removed {target.user.email} from {request.organization.name}."
            )
            return redirect("members:list", org_slug=request.organization.slug)
    return render(
        request,
        "organizations/member_remove.html",
        {"target": target, "error": error, "is_you": target.user_id == request.user.pk},
        status=400 if error else 200,
    )


@require_POST
@org_page(Action.MEMBER_MANAGE)
def invitation_revoke(request, pk):
    try:
        invitation = selectors.access_invitation(
            request.actor, pk, organization_id=request.organization.pk
        )
    except Invitation.DoesNotExist:
        raise Http404("No such invitation.") from None
    invitations.invitation_revoke(invitation=invitation, actor=request.actor)
    messages.success(request, f"Revoked the invitation of {invitation.email}.")
    return redirect("members:list", org_slug=request.organization.slug)
