"""Provider-key pages: the masked list, add, edit, rotate and delete.

No page ever shows a secret: the list shows the hint computed when the secret was typed, and
the forms that take a secret never render it back, even when they are shown again with errors.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.db.models.functions import Lower
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from core.errors import NotFoundError
from core.forms import add_service_errors
from core.text import has_control_characters
from keyvault import health, providers, selectors, services
from keyvault.models import ProviderKey
from keyvault.web.forms import ProviderChoiceForm, ProviderKeyForm, RotateForm
from organizations import permissions
from organizations.permissions import Action
from organizations.web.context import org_page
from organizations.web.organizations import remember_organization

KEYS_PER_PAGE = 100


@org_page(Action.KEY_LIST)
def key_list(request):
    remember_organization(request)
    organization = request.organization
    keys = ProviderKey.objects.filter(organization=organization).select_related("created_by")
    provider = request.GET.get("provider", "")
    query = request.GET.get("q", "").strip()[:100]
    if has_control_characters(query):  # PostgreSQL cannot even compare text holding NUL
        query = ""
    if provider in dict(providers.CHOICES):
        keys = keys.filter(provider=provider)
    else:
        provider = ""
    if query:
        keys = keys.filter(Q(name__icontains=query) | Q(secret_hint__icontains=query))
    # Each provider's keys in pool order (`keyvault.health.pool_order`), disabled ones among them.
    ordered = keys.order_by("provider", "-is_default", "priority", Lower("name"), "id")
    page = Paginator(ordered, KEYS_PER_PAGE).get_page(request.GET.get("page"))
    fetches = selectors.key_usage_totals(organization_id=organization.pk, field="key")
    now = timezone.now()
    for key in page:
        key.may_change = permissions.can(request.actor, Action.KEY_EDIT, organization, key)
        key.fetches_7d = fetches.get(key.pk, 0)
        key.health_state = health.health_of(key, now)
        key.is_stale = health.is_stale(key, now)
    in_use = set(
        ProviderKey.objects.filter(organization=organization)
        .values_list("provider", flat=True)
        .distinct()
    )
    context = {
        "page": page,
        "provider": provider,
        "query": query,
        "provider_choices": [choice for choice in providers.CHOICES if choice[0] in in_use],
        "has_any_key": bool(in_use),
        "stale_days": health.stale_days(),
    }
    return render(request, "keyvault/keys/list.html", context)


@sensitive_post_parameters("secret")
@org_page(Action.KEY_ADD)
@sensitive_variables()
def key_add(request):
    """First the provider (its choice decides the config fields), then the key itself."""
    chooser = ProviderChoiceForm(request.GET if "provider" in request.GET else None)
    if not chooser.is_valid():
        return render(request, "keyvault/keys/choose_provider.html", {"chooser": chooser})
    provider = providers.get_provider(chooser.cleaned_data["provider"])
    form = ProviderKeyForm(request.POST or None, provider=provider, with_secret=True)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            key = services.provider_key_create(
                organization=request.organization,
                actor=request.actor,
                provider=provider.id,
                name=data["name"],
                secret=data["secret"],
                config=data["config"],
                is_default=data["is_default"],
                enabled=data["enabled"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Added {key.name} ({key.secret_hint}).")
            return redirect("keys:list", org_slug=request.organization.slug)
    return render(request, "keyvault/keys/form.html", {"form": form, "provider": provider})


def _key(request, pk, action: Action) -> ProviderKey:
    """A key of the current organization (another organization's answers 404) on which the
    member may take `action` (403 otherwise)."""
    try:
        return selectors.access_provider_key(
            request.actor, pk, action, organization_id=request.organization.pk
        )
    except NotFoundError:
        raise Http404("No such key.") from None


def _gone(request, key: ProviderKey):
    """The answer to a change of a key that someone deleted while the form was being sent."""
    messages.error(request, f"{key.name} was deleted meanwhile; nothing was saved.")
    return redirect("keys:list", org_slug=request.organization.slug)


@sensitive_post_parameters("secret")
@org_page(Action.KEY_LIST)
def key_edit(request, pk):
    key = _key(request, pk, Action.KEY_EDIT)
    form = ProviderKeyForm(
        request.POST or None,
        provider=key.provider_obj,
        with_secret=False,
        initial=ProviderKeyForm.initial_for(key),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # An empty box keeps the secret; only a typed one is passed on.
        secret = {"secret": data["secret"]} if data.get("secret") else {}
        try:
            key = services.provider_key_update(
                key=key,
                actor=request.actor,
                name=data["name"],
                config=data["config"],
                is_default=data["is_default"],
                enabled=data["enabled"],
                **secret,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except NotFoundError:
            return _gone(request, key)
        else:
            messages.success(request, f"Saved {key.name}.")
            return redirect("keys:list", org_slug=request.organization.slug)
    return render(
        request, "keyvault/keys/form.html", {"form": form, "provider": key.provider_obj, "key": key}
    )


@sensitive_post_parameters("secret")
@org_page(Action.KEY_LIST)
@sensitive_variables()
def key_rotate(request, pk):
    key = _key(request, pk, Action.KEY_ROTATE)
    form = RotateForm(request.POST or None, provider=key.provider_obj)
    if request.method == "POST" and form.is_valid():
        try:
            key = services.provider_key_rotate(
                key=key, actor=request.actor, secret=form.cleaned_data["secret"]
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except NotFoundError:
            return _gone(request, key)
        else:
            messages.success(
                request, f"Rotated {key.name}: now version {key.version} ({key.secret_hint})."
            )
            return redirect("keys:list", org_slug=request.organization.slug)
    return render(request, "keyvault/keys/rotate.html", {"form": form, "key": key})


@org_page(Action.KEY_LIST)
def key_delete(request, pk):
    key = _key(request, pk, Action.KEY_DELETE)
    if request.method == "POST":
        try:
            services.provider_key_delete(key=key, actor=request.actor)
        except NotFoundError:
            # A second click of Delete, or someone else was quicker: the key is gone either way.
            messages.info(request, f"{key.name} was already deleted.")
        else:
            messages.success(request, f"Deleted {key.name}. Proxies no longer receive it.")
        return redirect("keys:list", org_slug=request.organization.slug)
    return render(request, "keyvault/keys/delete.html", {"key": key})
