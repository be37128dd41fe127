"""One JSON error shape for the whole API: `{"detail": …}`, plus `errors` (field messages) on
400 and a `code` where a client should branch on it. No error ever carries a secret."""

import logging
from collections.abc import Callable

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from keyvault.crypto import CryptoError
from keyvault.errors import (
    CursorExpiredError,
    KeyDisabledError,
    NoAvailableKeyError,
    NoDefaultKeyError,
    ReportThrottled,
)

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


def _invalid(errors: dict) -> Response:
    return _response(400, "Invalid input.", errors=errors)


def _parse_error(exc: exceptions.ParseError) -> Response:
    # Every 400 has the same shape, so a client reads `errors` without special cases.
    return _response(400, str(exc.detail), errors={"non_field_errors": [str(exc.detail)]})


def _not_found(exc) -> Response:
    # Whatever is missing, and whether it never existed or is not the caller's to see.
    return _response(404, "Not found.")


def _integrity_error(exc: CryptoError) -> Response:
    # Logged by the service with the key id; the client learns only that it failed, never
    # which check or what the envelope held.
    return _response(500, "The stored key failed its integrity check.", code=exc.code)


def _throttled(exc: ReportThrottled) -> Response:
    response = _response(429, str(exc), code=exc.code)
    response["Retry-After"] = str(exc.wait)
    return response


# The answer to each kind of error, looked up along the exception's class hierarchy (most
# specific first): a model's DoesNotExist answers as ObjectDoesNotExist, every crypto error as
# CryptoError. Status codes live here; the codes a client branches on live on the classes.
_ANSWERS: dict[type[BaseException], Callable[[Exception], Response]] = {
    RequestDataTooBig: lambda exc: _response(413, "The request body is too large."),
    DjangoValidationError: lambda exc: _invalid(_django_field_errors(exc)),
    exceptions.ValidationError: lambda exc: _invalid(_field_errors(exc.detail)),
    exceptions.ParseError: _parse_error,
    ObjectDoesNotExist: _not_found,
    Http404: _not_found,
    PermissionDenied: lambda exc: _response(403, str(exc) or "Permission denied."),
    KeyDisabledError: lambda exc: _response(409, str(exc), code=exc.code),
    NoAvailableKeyError: lambda exc: _response(409, str(exc), code=exc.code),
    ReportThrottled: lambda exc: _throttled(exc),
    CursorExpiredError: lambda exc: _response(410, str(exc), code=exc.code),
    NoDefaultKeyError: lambda exc: _response(404, str(exc), code=exc.code),
    CryptoError: _integrity_error,
}


def _answer(exc: Exception) -> Response | None:
    for cls in type(exc).__mro__:
        answer = _ANSWERS.get(cls)
        if answer is not None:
            return answer(exc)
    return None


def api_exception_handler(exc, context):
    response = _answer(exc)
    if response is not None:
        return response
    response = drf_exception_handler(exc, context)
    if response is not None:
        if not isinstance(response.data, dict) or "detail" not in response.data:
            response.data = {"detail": str(getattr(exc, "detail", "Error."))}
        return response
    logger.exception("Unhandled API error")
    return _response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")
