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


class ProxyTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    @sensitive_variables()
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        if isinstance(header, str):
            # WSGI and ASGI hand headers over as latin-1 text; anything else (a test client, a
            # server that decodes differently) is refused here, not raised as a server error.
            try:
                header = header.encode("latin-1")
            except UnicodeEncodeError:
                self._fail(request, "The token is malformed.")
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            self._fail(request, "The Authorization header must be 'Bearer <token>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raw = ""
        try:
            token = proxy_token_authenticate(raw)
        except TokenRefused as refused:
            self._fail(request, str(refused))
        return token, token

    def authenticate_header(self, request):
        return f'Bearer realm="{REALM}"'

    def _fail(self, request, message: str):
        throttle = AuthFailureThrottle()
        if not throttle.record_failure(request):
            raise exceptions.Throttled(wait=throttle.wait_seconds())
        raise exceptions.AuthenticationFailed(message)
