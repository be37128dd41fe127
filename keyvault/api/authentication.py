"""`Authorization: Bearer kvp_…` authentication for the proxy API: the header is parsed here,
and `keyvault.token_auth.proxy_token_authenticate` decides whether the token authenticates.
Failed attempts are counted per client address and answered 429 once over the limit (see
`throttling`).
"""

from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from keyvault.api.throttling import AuthFailureThrottle
from keyvault.token_auth import TokenRefused, proxy_token_authenticate

REALM = "keyvault"
KEYWORD = b"bearer"
# What a 401 tells the client to send.
AUTHENTICATE_HEADER = f'Bearer realm="{REALM}"'


@sensitive_variables()
def bearer_token(header) -> str:
    """The token of an `Authorization: Bearer <token>` header (not yet checked);
    `TokenRefused` for a header of another shape."""
    if isinstance(header, str):
        # WSGI and ASGI hand headers over as latin-1 text; anything else (a test client, a
        # server that decodes differently) is refused here, not raised as a server error.
        try:
            header = header.encode("latin-1")
        except UnicodeEncodeError:
            raise TokenRefused("The token is malformed.") from None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != KEYWORD:
        raise TokenRefused("The Authorization header must be 'Bearer <token>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return ""


def authentication_failed(request, message: str) -> exceptions.APIException:
    """The answer to a failed authentication, counted against the client's address: 401, or
    429 once the address is over its limit."""
    throttle = AuthFailureThrottle()
    if not throttle.record_failure(request):
        return exceptions.Throttled(wait=throttle.wait_seconds())
    return exceptions.AuthenticationFailed(message)


class ProxyTokenAuthentication(BaseAuthentication):
    keyword = KEYWORD

    @sensitive_variables()
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        try:
            token = proxy_token_authenticate(bearer_token(header))
        except TokenRefused as refused:
            raise authentication_failed(request, str(refused)) from None
        return token, token

    def authenticate_header(self, request):
        return AUTHENTICATE_HEADER
