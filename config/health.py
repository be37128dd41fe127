"""`GET /healthz` for load balancers, container engines and systemd: is this process able to
serve? The database answers a query and the keyring is loaded with a primary KEK.

No secret work: nothing is decrypted, wrapped or unwrapped (a probe every few seconds must not
cost KMS calls, fill the data-key cache or count as usage), no token, no session, no
throttling. It answers before every other middleware, so it is reached by plain HTTP from a
probe on loopback, by whatever host name it uses, even while the HTTPS redirect and
ALLOWED_HOSTS guard the rest of the site. It tells a caller only "ok" or which part failed,
never why (the reason is logged).
"""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse

from keyvault.crypto import CryptoError, get_keyring

logger = logging.getLogger(__name__)

PATH = "/healthz"


def _database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        logger.warning("Health check: the database does not answer.", exc_info=True)
        return False


def _keyring() -> bool:
    try:
        return bool(get_keyring().primary_kek_id)
    except CryptoError:
        logger.warning("Health check: no usable keyring.", exc_info=True)
        return False


def health_response(request) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"detail": "Use GET."}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    checks = {"database": _database(), "keyring": _keyring()}
    healthy = all(checks.values())
    response = JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "checks": {name: "ok" if ok else "failed" for name, ok in checks.items()},
        },
        status=200 if healthy else 503,
    )
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """First in MIDDLEWARE: answers `/healthz` and passes everything else on untouched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == PATH:
            return health_response(request)
        return self.get_response(request)
