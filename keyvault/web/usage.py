"""The usage page: secret retrievals per day, token and key over the last two weeks, from the
hourly counters the API keeps (keyvault/usage.py). Owners and admins only: the rows name the
organization's tokens."""

from django.shortcuts import render

from keyvault import selectors
from keyvault.providers import get_provider
from organizations.permissions import Action
from organizations.web.context import org_page


@org_page(Action.TOKEN_MANAGE)
def usage_list(request):
    rows = list(selectors.key_usage_by_day(request.actor, organization_id=request.organization.pk))
    for row in rows:
        row["provider_name"] = (
            get_provider(row["key__provider"]).name if row["key__provider"] else ""
        )
    return render(
        request,
        "keyvault/tokens/usage.html",
        {"rows": rows, "days": selectors.USAGE_DAYS, "total": sum(r["count"] for r in rows)},
    )
