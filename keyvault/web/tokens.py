"""Proxy-token pages: the list, creation (the token is shown on that one response and nowhere
else, not even in a flash message, whose cookie or session would keep it) and revocation."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables

from core.errors import NotFoundError
from core.forms import add_service_errors
from keyvault import selectors, services
from keyvault.web.forms import TokenCreateForm
from organizations.permissions import Action
from organizations.web.context import org_page


@org_page(Action.TOKEN_MANAGE)
def token_list(request):
    tokens = selectors.proxy_tokens_for(request.actor, organization_id=request.organization.pk)
    # Revoked tokens are history: listed apart, below the ones that still open the API.
    fetches = selectors.key_usage_totals(organization_id=request.organization.pk, field="token")
    for token in tokens:
        token.fetches_7d = fetches.get(token.pk, 0)
    current = [token for token in tokens if token.revoked_at is None]
    revoked = [token for token in tokens if token.revoked_at is not None]
    return render(
        request, "keyvault/tokens/list.html", {"tokens": current, "revoked_tokens": revoked}
    )


@org_page(Action.TOKEN_MANAGE)
@sensitive_variables()  # The page is rendered here, so the template's frames are masked too.
def token_create(request):
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = services.proxy_token_create(
                organization=request.organization,
                actor=request.actor,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_in_days=form.cleaned_data["expires_in_days"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc, rename={"expires_in": "expires_in_days"})
        else:
            response = render(
                request, "keyvault/tokens/created.html", {"token": token, "raw_token": raw}
            )
            add_never_cache_headers(response)
            return response
    return render(request, "keyvault/tokens/create.html", {"form": form})


@org_page(Action.TOKEN_MANAGE)
def token_revoke(request, pk):
    try:
        token = selectors.access_proxy_token(
            request.actor, pk, organization_id=request.organization.pk
        )
    except NotFoundError:
        raise Http404("No such token.") from None
    if request.method == "POST":
        try:
            services.proxy_token_revoke(token=token, actor=request.actor)
        except NotFoundError:  # deleted with its organization meanwhile
            messages.info(request, f"{token} no longer exists.")
        else:
            messages.success(request, f"Revoked {token}. Proxies using it are refused from now on.")
        return redirect("tokens:list", org_slug=request.organization.slug)
    return render(request, "keyvault/tokens/revoke.html", {"token": token})
