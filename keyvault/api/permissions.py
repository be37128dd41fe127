"""One permission class for the API: each view declares the actions each method takes, and the
access layer (organizations.permissions) decides whether the request's token may take them."""

from rest_framework.permissions import BasePermission

from keyvault.models import ProxyToken
from organizations import permissions, roles


class TokenMayTakeActions(BasePermission):
    """`view.required_actions = {"GET": (Action.KEY_LIST,), …}`; a method not listed is
    refused."""

    message = "The token lacks the scope this request needs."

    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, ProxyToken):
            return False
        method = "GET" if request.method == "HEAD" else request.method
        actions = view.required_actions.get(method)
        if actions is None:
            # A method the view does not serve at all is let through to DRF's 405, which names
            # the allowed methods; answering 403 would send the caller looking for a scope.
            return not _serves(view, request.method)
        refusal = token_refusal(view.access(request), actions)
        if refusal is not None:
            self.message = refusal
            return False
        return True


def token_refusal(access, actions) -> str | None:
    """Why the token of `access` may not take `actions` in its organization (naming the token
    scopes it lacks), or None when it may."""
    organization_id = access.token.organization_id
    refused = [action for action in actions if not permissions.can(access, action, organization_id)]
    if not refused:
        return None
    needed = sorted({str(roles.token_scope_granting(permissions.scope_for(a))) for a in refused})
    return f"The token lacks the scope {', '.join(needed)}."


def _serves(view, method: str) -> bool:
    name = method.lower()
    return name in view.http_method_names and hasattr(view, name)
