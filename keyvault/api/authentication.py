"""`Authorization: Bearer kvp_…` authentication for the proxy API.

The format is checked before hashing, the digest is looked up directly (unique index) and
compared in constant time; expired and revoked tokens are refused. Failed attempts are counted
per client address and answered 429 once over the limit (see `throttling`).
"""

import hmac

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from core.tokens import token_digest
from keyvault.api.throttling import AuthFailureThrottle
from keyvault.models import ProxyToken
from keyvault.tokens import looks_like_token

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
        if not looks_like_token(raw):
            self._fail(request, "The token is malformed.")
        digest = token_digest(raw)
        # Unique digest: no ordering needed (`first()` would add one to every request's query).
        token = next(
            iter(
                ProxyToken.objects.select_related("organization")
                .filter(digest=digest)
                .order_by()[:1]
            ),
            None,
        )
        if token is None or not hmac.compare_digest(token.digest, digest):
            self._fail(request, "The token is not valid.")
        if token.revoked_at is not None:
            self._fail(request, "The token has been revoked.")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            self._fail(request, "The token has expired.")
        return token, token

    def authenticate_header(self, request):
        return f'Bearer realm="{REALM}"'

    def _fail(self, request, message: str):
        throttle = AuthFailureThrottle()
        if not throttle.record_failure(request):
            raise exceptions.Throttled(wait=throttle.wait_seconds())
        raise exceptions.AuthenticationFailed(message)
