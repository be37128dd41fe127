"""Key health pages: a key's detail page (metadata, health history, the connection test, the
activity chart, the tokens that used it), its test and pool-move forms, and the
organization's overview of counts."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.errors import NotFoundError
from keyvault import charts, health, selectors, services
from keyvault.web.keys import _gone, _key
from organizations import permissions
from organizations.permissions import Action
from organizations.web.context import org_page


@org_page(Action.KEY_LIST)
def key_detail(request, pk):
    key = _key(request, pk, Action.KEY_LIST)
    now = timezone.now()
    actor, organization = request.actor, request.organization
    context = {
        "key": key,
        "health": health.health_of(key, now),
        "stale": health.is_stale(key, now),
        "stale_days": health.stale_days(),
        "history": selectors.key_health_history(key=key),
        "chart": charts.activity_chart(selectors.key_activity(key=key, now=now)),
        "may_test": permissions.can(actor, Action.KEY_TEST, organization, key),
        "may_change": permissions.can(actor, Action.KEY_EDIT, organization, key),
        # Which tokens use a key is the token managers' to see; others see how many.
        "may_see_tokens": permissions.can(actor, Action.TOKEN_MANAGE, organization),
        "token_usage": selectors.key_token_usage(key=key, now=now),
    }
    return render(request, "keyvault/keys/detail.html", context)


@require_POST
@org_page(Action.KEY_LIST)
def key_test(request, pk):
    key = _key(request, pk, Action.KEY_TEST)
    try:
        result = services.provider_key_test(key=key, actor=request.actor)
    except NotFoundError:
        return _gone(request, key)
    if result.ok:
        messages.success(request, f"Test of {key.name} passed: {result.detail}")
    else:
        messages.error(request, f"Test of {key.name} failed: {result.detail}")
    return redirect("keys:detail", org_slug=request.organization.slug, pk=key.pk)


@require_POST
@org_page(Action.KEY_REORDER)
def key_move(request, pk):
    """Move a key one place up or down its provider's pool (the whole pool is renumbered)."""
    key = _key(request, pk, Action.KEY_LIST)
    direction = request.POST.get("direction")
    back = redirect("keys:list", org_slug=request.organization.slug)
    pool = selectors.provider_key_pool(
        organization_id=request.organization.pk, provider=key.provider
    )
    ids = [str(k.pk) for k in pool]
    if direction not in ("up", "down") or str(key.pk) not in ids:
        messages.error(request, "Only an enabled key moves, one place up or down.")
        return back
    index = ids.index(str(key.pk))
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(ids):
        if pool[index].is_default or pool[other].is_default:
            messages.error(request, "The default key always comes first in its pool.")
            return back
        ids[index], ids[other] = ids[other], ids[index]
        try:
            services.provider_key_pool_reorder(
                organization=request.organization,
                actor=request.actor,
                provider=key.provider,
                key_ids=ids,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return back
        messages.success(request, f"Moved {key.name} {direction} the {key.provider_obj.name} pool.")
    return back


@org_page(Action.KEY_LIST)
def key_overview(request):
    rows = selectors.organization_key_overview(organization_id=request.organization.pk)
    totals = {
        field: sum(getattr(row, field) for row in rows)
        for field in ("keys", "enabled", "failing", "cooling", "stale", "unused")
    }
    return render(
        request,
        "keyvault/keys/overview.html",
        {"rows": rows, "totals": totals, "stale_days": health.stale_days()},
    )
