"""One permission class for the API: each view declares the token scopes each method needs."""

from rest_framework.permissions import BasePermission

from keyvault.models import ProxyToken
from keyvault.usage import recorder


class TokenHasScopes(BasePermission):
    """`view.required_scopes = {"GET": {"keys:read"}, …}`; a method not listed is refused."""

    message = "The token lacks the scope this request needs."

    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, ProxyToken):
            return False
        method = "GET" if request.method == "HEAD" else request.method
        required = view.required_scopes.get(method)
        if required is None:
            # A method the view does not serve at all is let through to DRF's 405, which names
            # the allowed methods; answering 403 would send the caller looking for a scope.
            return not _serves(view, request.method)
        missing = set(required) - set(token.scopes)
        if missing:
            self.message = f"The token lacks the scope {', '.join(sorted(missing))}."
            return False
        # Only a permitted request counts as the token being used.
        recorder.record_token_use(token.pk)
        return True


def _serves(view, method: str) -> bool:
    name = method.lower()
    return name in view.http_method_names and hasattr(view, name)
