"""Accepting an invitation: signed in as the invited address, join; with no account yet,
sign up (the address is the invitation's) and join; with an account, sign in first.

The emailed link carries the invitation's token. Opening it checks the token, remembers which
invitation it opened in the session (its id, never the token: sessions live in the database,
where only the token's digest may be) and redirects to a token-free address, so the token stays
out of browser history, later requests' logs and the sign-in page's `next` parameter. The
opened invitation is forgotten after an hour, at sign-out, and once it is used.
"""

import time

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from accounts.backends import find_user
from accounts.forms import InvitationSignUpForm
from core.counters import client_address
from core.forms import add_service_errors
from organizations import invitations
from organizations.invitations import account_join
from organizations.models import Invitation

_SESSION_KEY = "keyvault_invitation"
_OPENED_FOR_SECONDS = 3600


@never_cache
@require_GET
@sensitive_variables()
def invitation_open(request, token):
    invitation = invitations.invitation_for_token(token)
    if invitation is None:
        return _closed(request, "unknown", status=404)
    request.session[_SESSION_KEY] = {"id": str(invitation.pk), "opened": int(time.time())}
    return redirect("invitations:accept")


def _opened_invitation(request):
    """The invitation whose link this browser opened within the hour, or None."""
    opened = request.session.get(_SESSION_KEY)
    if not isinstance(opened, dict) or time.time() - opened.get("opened", 0) > _OPENED_FOR_SECONDS:
        return None
    return (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(pk=opened.get("id"))
        .first()
    )


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
@sensitive_variables()
def invitation_accept(request):
    invitation = _opened_invitation(request)
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
