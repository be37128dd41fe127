"""Accepting an invitation: signed in as the invited address, join; with no account yet,
sign up (the address is the invitation's) and join; with an account, sign in first.

The emailed link carries the invitation's token. Opening it moves the token into the session
and redirects to a token-free address, as Django's password-reset confirmation does, so the
token stays out of access logs, browser history and the sign-in page's `next` parameter.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from accounts.backends import find_user
from accounts.forms import InvitationSignUpForm
from accounts.services import account_join
from keyvault.api.throttling import client_address
from organizations import invitations
from organizations.web.forms import add_service_errors

_SESSION_KEY = "keyvault_invitation"


@never_cache
@require_GET
def invitation_open(request, token):
    if invitations.invitation_for_token(token) is None:
        return _closed(request, "unknown", status=404)
    request.session[_SESSION_KEY] = token
    return redirect("invitations:accept")


def _closed(request, reason, invitation=None, status=410):
    return render(
        request,
        "organizations/invitation_closed.html",
        {"reason": reason, "invitation": invitation},
        status=status,
    )


def _joined(request, invitation):
    request.session.pop(_SESSION_KEY, None)
    messages.success(
        request,
        f"You joined {invitation.organization.name} as {invitation.get_role_display().lower()}.",
    )
    return redirect("keys:list", org_slug=invitation.organization.slug)


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request):
    token = request.session.get(_SESSION_KEY)
    invitation = invitations.invitation_for_token(token) if token else None
    if invitation is None:
        return _closed(request, "missing", status=404)
    if not invitation.is_pending:
        if invitation.accepted_at:
            reason = "accepted"
        elif invitation.revoked_at:
            reason = "revoked"
        else:
            reason = "expired"
        return _closed(request, reason, invitation)
    context = {"invitation": invitation, "errors": []}
    user = request.user
    if user.is_authenticated:
        context["email_matches"] = user.email.lower() == invitation.email
        if request.method == "POST":
            try:
                invitations.invitation_accept(
                    invitation=invitation, user=user, ip=client_address(request)
                )
            except ValidationError as exc:
                context["errors"] = exc.messages
            else:
                return _joined(request, invitation)
        return render(request, "organizations/invitation_accept.html", context)

    if find_user(invitation.email) is not None:
        context["sign_in_url"] = f"{reverse('accounts:sign_in')}?next={request.path}"
        return render(request, "organizations/invitation_accept.html", context)

    form = InvitationSignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            new_user = account_join(
                invitation=invitation,
                password=form.cleaned_data["password1"],
                ip=client_address(request),
            )
        except ValidationError as exc:
            add_service_errors(form, exc, rename={"password": "password1"})
        else:
            login(request, new_user)
            return _joined(request, invitation)
    context["form"] = form
    return render(request, "organizations/invitation_accept.html", context)
