"""The ceiling for the proxy API's retrievals: the least code that does a retrieval's work.

Look the token up by its digest, read one key row, open its envelope, answer JSON: nothing else
(no scope check, no throttle, no usage accounting, no ETag, no error shapes beyond a bare 401
and 404). It is mounted only by the benchmark URLconf (`benchmarks/urls.py`, through
`benchmarks/settings.py`), never by `config.urls`, so no deployment serves it. It sits under
`/api/v1/` so that it passes through exactly the same server, middleware and URL resolution as
the real endpoints it is compared with.
"""

from django.db import connection
from django.http import JsonResponse

from core.tokens import token_digest
from keyvault import crypto, providers

_TOKEN_SQL = "SELECT organization_id FROM keyvault_proxytoken WHERE digest = %s"
_KEY_COLUMNS = (
    "id, provider, name, secret_hint, config, is_default, enabled, version, "
    "created_at, updated_at, rotated_at, last_used_at, secret, organization_id"
)
_KEY_BY_ID_SQL = (
    f"SELECT {_KEY_COLUMNS} FROM keyvault_providerkey "  # noqa: S608
    "WHERE id = %s AND organization_id = %s"
)
_DEFAULT_KEY_SQL = (
    f"SELECT {_KEY_COLUMNS} FROM keyvault_providerkey "  # noqa: S608
    "WHERE organization_id = %s AND provider = %s AND is_default"
)


def _organization(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_SQL, [token_digest(header.removeprefix("Bearer "))])
        row = cursor.fetchone()
    return row[0] if row else None


def _answer(row) -> JsonResponse:
    if row is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    (key_id, provider_id, name, hint, config, is_default, enabled, version) = row[:8]
    created_at, updated_at, rotated_at, last_used_at, envelope, organization_id = row[8:]
    if isinstance(config, str):  # SQLite hands JSON back as text
        import json

        config = json.loads(config)
    provider = providers.get_provider(provider_id)
    context = crypto.EncryptionContext(
        model="keyvault.providerkey",
        field="secret",
        organization_id=str(organization_id),
        row_id=str(key_id),
        binding=providers.secret_binding(provider, config),
    )
    secret = crypto.open_sealed(envelope, context, crypto.get_keyring()).decode()
    return JsonResponse(
        {
            "id": str(key_id),
            "provider": provider_id,
            "name": name,
            "hint": hint,
            "config": providers.served_config(provider, config),
            "is_default": is_default,
            "enabled": enabled,
            "version": version,
            "created_at": created_at,
            "updated_at": updated_at,
            "rotated_at": rotated_at,
            "last_used_at": last_used_at,
            "secret": secret,
        }
    )


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def secret(request, key_id):
    organization_id = _organization(request)
    if organization_id is None:
        return JsonResponse({"detail": "The token is not valid."}, status=401)
    return _answer(_fetch(_KEY_BY_ID_SQL, [key_id, organization_id]))


def resolve(request):
    organization_id = _organization(request)
    if organization_id is None:
        return JsonResponse({"detail": "The token is not valid."}, status=401)
    return _answer(_fetch(_DEFAULT_KEY_SQL, [organization_id, request.GET.get("provider", "")]))


def park(request):
    """Waits `wait` seconds and answers: stands in for a long-poll that holds a worker's
    thread but no database connection, to measure retrievals beside parked requests."""
    import time

    time.sleep(min(float(request.GET.get("wait", "30")), 3600))
    return JsonResponse({}, status=200)
