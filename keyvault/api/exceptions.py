"""One JSON error shape for the whole API: `{"detail": …}`, plus `errors` (field messages) on
400 and a `code` where a client should branch on it. No error ever carries a secret."""

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from keyvault.crypto import CryptoError
from keyvault.errors import KeyDisabledError

logger = logging.getLogger(__name__)


def _field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {
            field: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            for field, msgs in detail.items()
        }
    return {
        "non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]
    }


def _django_field_errors(exc: DjangoValidationError) -> dict:
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    return {
        ("non_field_errors" if field == "__all__" else field): messages
        for field, messages in exc.message_dict.items()
    }


def _response(status_code: int, detail: str, **extra) -> Response:
    return Response({"detail": detail, **extra}, status=status_code)


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return _response(413, "The request body is too large.")
    if isinstance(exc, DjangoValidationError):
        return _response(400, "Invalid input.", errors=_django_field_errors(exc))
    if isinstance(exc, exceptions.ValidationError):
        return _response(400, "Invalid input.", errors=_field_errors(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        # Every 400 has the same shape, so a client reads `errors` without special cases.
        return _response(400, str(exc.detail), errors={"non_field_errors": [str(exc.detail)]})
    if isinstance(exc, ObjectDoesNotExist | Http404):
        return _response(404, "Not found.")
    if isinstance(exc, PermissionDenied):
        return _response(403, str(exc) or "Permission denied.")
    if isinstance(exc, KeyDisabledError):
        return _response(409, str(exc), code="key_disabled")
    if isinstance(exc, CryptoError):
        # Logged by the service with the key id; the client learns only that it failed.
        return _response(
            500, "The stored key failed its integrity check.", code="key_integrity_error"
        )
    response = drf_exception_handler(exc, context)
    if response is not None:
        if not isinstance(response.data, dict) or "detail" not in response.data:
            response.data = {"detail": str(getattr(exc, "detail", "Error."))}
        return response
    logger.exception("Unhandled API error")
    return _response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")
