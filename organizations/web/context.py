"""Which organization a page is about, and what the signed-in member may do there.

Every page under `/o/<slug>/` is wrapped by `org_page`: it resolves the slug to the user's own
membership (an organization they do not belong to answers 404 exactly like one that does not
exist, so the URL is no existence oracle), then checks the page's action against the
permission matrix (403 for a member whose role lacks it). Templates read the results through
`navigation` to show only the buttons the role may use; the services check again on write.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404

from organizations import permissions
from organizations.access import Access
from organizations.models import Membership
from organizations.permissions import Action
from organizations.selectors import organizations_for


def membership_for_slug(user, slug: str) -> Membership:
    if not user.is_active:
        raise Http404
    membership = (
        Membership.objects.filter(user=user, organization__slug=slug)
        .select_related("organization")
        .first()
    )
    if membership is None:
        raise Http404("No such organization.")
    return membership


def org_page(action: Action | None = None):
    """Decorate a view of `/o/<org_slug>/…`: signed in, a member, and allowed `action`.

    The view is called without `org_slug`; it finds `request.organization`,
    `request.membership` and `request.actor` set.
    """

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, org_slug, *args, **kwargs):
            membership = membership_for_slug(request.user, org_slug)
            request.membership = membership
            request.organization = membership.organization
            # The caller, resolved once for the whole request: the views, the services they
            # call and the templates' buttons all ask this one object.
            request.actor = Access.for_request(request, membership)
            if action is not None:
                permissions.require(request.actor, action, membership.organization)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def navigation(request) -> dict:
    """Template context: the current organization, the user's others (for the switcher) and
    the actions the current role allows (`allowed.key_add`, `allowed.token_manage`, …)."""
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    visible = permissions.visible_actions(
        getattr(request, "actor", None), getattr(request, "organization", None)
    )
    allowed = {action.name.lower(): True for action in visible}
    return {
        "current_organization": getattr(request, "organization", None),
        "current_membership": membership,
        "allowed": allowed,
        "switcher_organizations": organizations_for(user=user),
    }
