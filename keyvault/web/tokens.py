"""Proxy-token pages: the list, creation (the token is shown on that one response and nowhere
else, not even in a flash message, whose cookie or session would keep it) and revocation."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables

from core.errors import NotFoundError
from core.forms import add_service_errors
from keyvault import services
from keyvault.models import ProxyToken
from keyvault.web.forms import TokenCreateForm
from organizations.permissions import Action
from organizations.web.context import org_page


@org_page(Action.TOKEN_MANAGE)
def token_list(request):
    tokens = ProxyToken.objects.filter(organization=request.organization).select_related(
        "created_by"
    )
    return render(request, "keyvault/tokens/list.html", {"tokens": tokens})


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
    token = get_object_or_404(ProxyToken, pk=pk, organization=request.organization)
    if request.method == "POST":
        try:
            services.proxy_token_revoke(token=token, actor=request.actor)
        except NotFoundError:  # deleted with its organization meanwhile
            messages.info(request, f"{token} no longer exists.")
        else:
            messages.success(request, f"Revoked {token}. Proxies using it are refused from now on.")
        return redirect("tokens:list", org_slug=request.organization.slug)
    return render(request, "keyvault/tokens/revoke.html", {"token": token})
