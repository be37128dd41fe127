"""Errors as Vault answers them: `{"errors": [...]}`.

Vault tells a caller no more than it must: every refusal of a token (missing, malformed,
unknown, revoked, expired) and of a scope is the same `403 permission denied`, and every path
that leads to nothing the token may see, another organization's keys and disabled keys included,
is `404` with an empty list, so neither is an existence oracle. The clients branch on the status
alone (hvac raises `Forbidden`, `InvalidPath`, `UnsupportedOperation`).
"""

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from keyvault.crypto import CryptoError
from keyvault.errors import KeyDisabledError

logger = logging.getLogger(__name__)

PERMISSION_DENIED = "permission denied"


class BadRequest(Exception):
    """A malformed parameter (`?version=abc`): 400 with the message."""


def vault_error(status: int, *messages: str) -> Response:
    response = Response({"errors": list(messages)}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def not_found() -> Response:
    return vault_error(404)


def vault_exception_handler(exc, context):
    if isinstance(exc, exceptions.Throttled):
        response = vault_error(429, "rate limit quota exceeded")
        if exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait))
        return response
    if isinstance(exc, exceptions.MethodNotAllowed):
        return vault_error(405, "unsupported operation: this mount is read-only")
    if isinstance(exc, BadRequest):
        return vault_error(400, str(exc))
    if isinstance(
        exc,
        exceptions.NotAuthenticated
        | exceptions.AuthenticationFailed
        | exceptions.PermissionDenied
        | PermissionDenied,
    ):
        return vault_error(403, PERMISSION_DENIED)
    if isinstance(
        exc,
        ObjectDoesNotExist
        | Http404
        | exceptions.NotFound
        | KeyDisabledError
        # An unknown provider or an empty name in the path: nothing there.
        | DjangoValidationError
        | exceptions.ValidationError,
    ):
        return not_found()
    if isinstance(exc, CryptoError):
        # Logged with the key id by the service; the client learns only that it failed.
        return vault_error(500, "internal error")
    if isinstance(exc, exceptions.APIException):
        return vault_error(exc.status_code, str(exc.detail))
    logger.exception("Unhandled error on the Vault surface")
    return vault_error(500, "internal error")
