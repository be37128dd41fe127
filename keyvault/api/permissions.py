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
        access = view.access(request)
        refused = [
            action
            for action in actions
            if not permissions.can(access, action, token.organization_id)
        ]
        if refused:
            needed = sorted(
                {str(roles.token_scope_granting(permissions.scope_for(a))) for a in refused}
            )
            self.message = f"The token lacks the scope {', '.join(needed)}."
            return False
        return True


def _serves(view, method: str) -> bool:
    name = method.lower()
    return name in view.http_method_names and hasattr(view, name)
