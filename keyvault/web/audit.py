"""The audit log page: the organization's events, newest first, filterable and paginated."""

from django.core.paginator import Paginator
from django.shortcuts import render

from keyvault import selectors
from keyvault.web.forms import AuditFilterForm
from organizations.permissions import Action
from organizations.web.context import org_page

EVENTS_PER_PAGE = 50


@org_page(Action.AUDIT_READ)
def audit_list(request):
    events = selectors.audit_events_for(request.actor, organization_id=request.organization.pk)
    actors = list(events.order_by("actor_label").values_list("actor_label", flat=True).distinct())
    form = AuditFilterForm(request.GET or None, actors=actors)
    if form.is_valid():
        if form.cleaned_data["action"]:
            events = events.filter(action=form.cleaned_data["action"])
        if form.cleaned_data["actor"]:
            events = events.filter(actor_label=form.cleaned_data["actor"])
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "keyvault/audit/list.html",
        {"page": page, "form": form},
    )
