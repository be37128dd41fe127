"""Accepting an invitation: signed in as the invited address, join; with no account yet,
sign up (the address is the invitation's) and join; with an account, sign in first."""

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.forms import InvitationSignUpForm
from accounts.services import account_join
from keyvault.api.throttling import client_address
from organizations import invitations
from organizations.web.forms import add_service_errors

_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _joined(request, invitation):
    messages.success(
        request,
        f"You joined {invitation.organization.name} as {invitation.get_role_display().lower()}.",
    )
    return redirect("keys:list", org_slug=invitation.organization.slug)


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request, token):
    invitation = invitations.invitation_for_token(token)
    if invitation is None:
        return render(
            request, "organizations/invitation_closed.html", {"reason": "unknown"}, status=404
        )
    if not invitation.is_pending:
        reason = (
            "accepted"
            if invitation.accepted_at
            else "revoked"
            if invitation.revoked_at
            else "expired"
        )
        return render(
            request,
            "organizations/invitation_closed.html",
            {"reason": reason, "invitation": invitation},
            status=410,
        )
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

    if get_user_model().objects.filter(username=invitation.email).exists():
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
            login(request, new_user, backend=_BACKEND)
            return _joined(request, invitation)
    context["form"] = form
    return render(request, "organizations/invitation_accept.html", context)
