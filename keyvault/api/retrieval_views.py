"""The proxy's two hot endpoints, `keys/{id}/secret` and `resolve`, as plain Django views over
`keyvault.retrieval`.

They are every proxy request, and DRF's machinery (its request wrapper, content negotiation,
the authentication, permission and throttle classes it instantiates per request, the response
rendering) cost more than the retrieval itself. So these views take the same steps in the same
order with the same shared pieces, and nothing else:

1. the bearer token, parsed by `authentication.bearer_token`; the token and the key read in one
   statement (`retrieval.token_and_key`); a refusal counted as a failed authentication
   (`authentication.authentication_failed`): 401, or 429 past the address's limit;
2. the scope check of every other endpoint (`permissions.token_refusal`): 403;
3. the token's rate limit (`throttling.token_throttle_wait`): 429; the token's use recorded;
4. a method other than GET or HEAD: 405;
5. the retrieval (`retrieval.retrieve`): 400 for a bad parameter, 404, 409, 304 or 200.

Errors are answered by the API's exception handler, so every status, body and header is the one
DRF answered before (tests/test_api_*.py hold them). The DRF views in `views.py` stay the
schema's description of these endpoints and hand their requests here.
"""

from django.http import HttpResponse
from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from core.counters import client_address
from keyvault import retrieval
from keyvault.api.authentication import (
    AUTHENTICATE_HEADER,
    authentication_failed,
    bearer_token,
)
from keyvault.api.exceptions import api_exception_handler
from keyvault.api.permissions import token_refusal
from keyvault.api.serializers import key_metadata
from keyvault.api.throttling import token_throttle_wait
from keyvault.token_auth import TokenRefused
from keyvault.usage import recorder
from organizations.access import Access
from organizations.permissions import Action

SECRET = (Action.KEY_REVEAL,)
SERVED = frozenset({"GET", "HEAD"})
ALLOW = "GET, HEAD"
_RENDERER = JSONRenderer()
# The headers DRF's exception handler adds that an answer carries over.
_ERROR_HEADERS = ("WWW-Authenticate", "Retry-After")


def _json(data, status: int = 200) -> HttpResponse:
    response = HttpResponse(_RENDERER.render(data), status=status, content_type="application/json")
    response["Allow"] = ALLOW
    return response


def _error(exc: Exception) -> HttpResponse:
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        exc.auth_header = AUTHENTICATE_HEADER
    answer = api_exception_handler(exc, {})
    response = _json(answer.data, answer.status_code)
    for name in _ERROR_HEADERS:
        if name in answer:
            response[name] = answer[name]
    return response


@sensitive_variables()
def _authenticated(request, lookup: retrieval.KeyLookup):
    header = request.META.get("HTTP_AUTHORIZATION")
    if not header:
        raise exceptions.NotAuthenticated()
    try:
        return retrieval.token_and_key(bearer_token(header), lookup)
    except TokenRefused as refused:
        raise authentication_failed(request, str(refused)) from None


@sensitive_variables()
def _serve(request, lookup: retrieval.KeyLookup) -> HttpResponse:
    served = request.method in SERVED
    token, key = _authenticated(request, lookup if served else retrieval.KeyLookup("none"))
    actor = Access.for_token(token, ip=client_address(request))
    # A method the endpoint does not serve skips the scope check and answers 405 (below):
    # a 403 would send the caller looking for a scope.
    refusal = token_refusal(actor, SECRET) if served else None
    if refusal is not None:
        raise exceptions.PermissionDenied(refusal)
    wait = token_throttle_wait(token)
    if wait is not None:
        raise exceptions.Throttled(wait=wait)
    # Authenticated, permitted and not throttled: the token has been used (in memory,
    # flushed in batches by keyvault.usage).
    recorder.record_token_use(token.pk)
    if not served:
        raise exceptions.MethodNotAllowed(request.method)
    found = retrieval.retrieve(
        actor=actor, lookup=lookup, key=key, if_none_match=request.headers.get("If-None-Match")
    )
    if found.not_modified:
        response = HttpResponse(status=304)
        del response["Content-Type"]
        response["Allow"] = ALLOW
    else:
        data = key_metadata(found.key)
        data["secret"] = found.secret
        response = _json(data)
    response["ETag"] = found.etag
    response["Cache-Control"] = "no-store"
    return response


def _answer(request, lookup: retrieval.KeyLookup) -> HttpResponse:
    try:
        return _serve(request, lookup)
    except Exception as exc:  # answered as every API error is, a 500 included
        return _error(exc)


def key_secret(request, key_id) -> HttpResponse:
    """GET keys/{id}/secret"""
    return _answer(request, retrieval.KeyLookup.by_id(key_id))


def resolve(request) -> HttpResponse:
    """GET resolve?provider=P[&name=N][&fallback=true]"""
    return _answer(
        request,
        retrieval.KeyLookup.resolve(
            request.GET.get("provider", ""),
            request.GET.get("name"),
            fallback=request.GET.getlist("fallback"),
        ),
    )
