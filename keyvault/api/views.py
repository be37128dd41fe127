"""The proxy API: thin views over selectors, services and `keyvault.retrieval`."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from core.counters import client_address
from keyvault import event_wait, selectors, services
from keyvault.api import retrieval_views
from keyvault.api.authentication import ProxyTokenAuthentication
from keyvault.api.parsers import StrictJSONParser
from keyvault.api.serializers import (
    PROVIDER_IDS,
    ConnectionTestSerializer,
    ErrorSerializer,
    EventPageSerializer,
    HealthSerializer,
    KeyEventSerializer,
    PingSerializer,
    PoolSerializer,
    ProviderKeyCreateSerializer,
    ProviderKeyPageSerializer,
    ProviderKeySecretSerializer,
    ProviderKeySerializer,
    ProviderKeyUpdateSerializer,
    ReportSerializer,
    SnapshotSerializer,
    key_metadata,
)
from keyvault.retrieval import retrieve_snapshot
from keyvault.usage import recorder
from organizations.access import Access
from organizations.permissions import Action

READ = (Action.KEY_LIST,)
SECRET = (Action.KEY_REVEAL,)
# A report answers the key's health, not its metadata, and a proxy that holds keys:secret can
# read the metadata with the secret anyway: keys:secret alone (docs/permissions.md).
REPORT = (Action.KEY_REPORT,)


def _writing(action: Action) -> tuple[Action, ...]:
    # A write answers with the key's metadata, and its refusals name keys (a duplicate name,
    # the current default): a token may write only if it may also read what the answer shows.
    # Without keys:read, PATCH with an empty body was a read that GET refused, unaudited.
    return (Action.KEY_LIST, action)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


ERRORS = {
    400: _error("Invalid input; `errors` maps fields to messages."),
    401: _error("Missing, malformed, unknown, expired or revoked token."),
    403: _error("The token lacks a scope."),
    404: _error("No such key in the token's organization."),
    429: _error("Throttled; `Retry-After` says when to come back."),
}


# DRF deep-copies every declared field each time a serializer is built; events render with
# one shared instance (rendering keeps no state).
_EVENT = KeyEventSerializer()


def _actor(request) -> Access:
    """The request's caller, resolved once (by the permission check) for everything after."""
    access = getattr(request, "access", None)
    if access is None:
        access = request.access = Access.for_token(request.auth, ip=client_address(request))
    return access


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ParseError("The body must be a JSON object.")
    return request.data


@csrf_exempt  # A JSON 404 for every method: not the CSRF middleware's HTML 403 for a POST.
def not_found(request, *args, **kwargs):
    return JsonResponse({"detail": "Not found."}, status=404)


class KeyPagination(PageNumberPagination):
    """`page` and `page_size` are whole numbers (`page_size` from 1 to 500), or the request
    answers 400 naming the parameter. DRF would quietly use its default for `page_size=0`,
    `-1` or `null` and cut `999999` down, so a client asking for something it cannot have
    would get something else without knowing. A page past the last answers 404."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        size = _whole_number(request, self.page_size_query_param, maximum=self.max_page_size)
        return self.page_size if size is None else size

    def get_page_number(self, request, paginator):
        number = _whole_number(request, self.page_query_param)
        return 1 if number is None else number


# Longer than any page count; also keeps int() away from its limit on digits.
_MAX_DIGITS = 18


def _whole_number(
    request, name: str, maximum: int | None = None, minimum: int = 1, required: str = ""
) -> int | None:
    """The query parameter `name` as an int from `minimum` to `maximum`, None when it is
    absent (a 400 with the message `required` if that is given)."""
    values = request.query_params.getlist(name)
    if not values:
        if required:
            raise ValidationError({name: [required]})
        return None
    allowed = f"from {minimum} to {maximum}" if maximum is not None else f"from {minimum}"
    message = f"{name} must be a whole number {allowed}."
    if len(values) > 1:
        raise ValidationError({name: [f"Give {name} once."]})
    value = values[0]
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
        raise ValidationError({name: [message]})
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise ValidationError({name: [message]})
    return number


class TokenAPIView(APIView):
    """Base of the API's views: `required_actions` maps each served method to the actions of
    docs/permissions.md it takes; the permission class asks the access layer about them."""

    required_actions: dict = {}
    parser_classes = [StrictJSONParser]
    # No OPTIONS: a server-to-server API has no CORS preflight, and DRF's metadata answer would
    # need a scope of its own. Methods a view does not serve answer 405.
    http_method_names = ["get", "post", "patch", "delete", "head"]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Authenticated, permitted and not throttled: the token has been used. Recorded in
        # memory, flushed in batches (keyvault.usage), never a write per request.
        recorder.record_token_use(request.auth.pk)

    def access(self, request) -> Access:
        return _actor(request)


class PingView(TokenAPIView):
    """An authenticated no-op: checks a token and names its organization and scopes."""

    required_actions = {"GET": ()}

    @extend_schema(responses={200: PingSerializer, 401: ERRORS[401], 429: ERRORS[429]})
    def get(self, request):
        token = request.auth
        return Response(
            {"organization": token.organization.slug, "token": token.name, "scopes": token.scopes}
        )


class KeyListView(TokenAPIView):
    required_actions = {"GET": READ, "POST": _writing(Action.KEY_ADD)}
    pagination_class = KeyPagination

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "provider", str, enum=PROVIDER_IDS, description="Only keys of this provider."
            ),
            OpenApiParameter("page", {"type": "integer", "minimum": 1}),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": KeyPagination.max_page_size},
                description="From 1 to 500 (default 100).",
            ),
        ],
        operation_id="keys_list",
        responses={200: ProviderKeyPageSerializer, **ERRORS},
    )
    def get(self, request):
        keys = selectors.provider_keys_for_org(
            organization_id=request.auth.organization_id,
            provider=request.query_params.get("provider") or None,
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(keys, request, view=self)
        return paginator.get_paginated_response([key_metadata(key) for key in page])

    @extend_schema(
        request=ProviderKeyCreateSerializer, responses={201: ProviderKeySerializer, **ERRORS}
    )
    @sensitive_variables()
    def post(self, request):
        serializer = ProviderKeyCreateSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        key = services.provider_key_create(
            organization=request.auth.organization,
            actor=_actor(request),
            **serializer.validated_data,
        )
        return Response(key_metadata(key), status=status.HTTP_201_CREATED)


class KeyDetailView(TokenAPIView):
    required_actions = {
        "GET": READ,
        "PATCH": _writing(Action.KEY_EDIT),
        "DELETE": _writing(Action.KEY_DELETE),
    }

    @extend_schema(responses={200: ProviderKeySerializer, **ERRORS})
    def get(self, request, key_id):
        key = selectors.access_provider_key(_actor(request), key_id, Action.KEY_LIST)
        return Response(key_metadata(key))

    @extend_schema(
        request=ProviderKeyUpdateSerializer, responses={200: ProviderKeySerializer, **ERRORS}
    )
    @sensitive_variables()
    def patch(self, request, key_id):
        key = selectors.access_provider_key(_actor(request), key_id, Action.KEY_EDIT)
        serializer = ProviderKeyUpdateSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        key = services.provider_key_update(
            key=key, actor=_actor(request), **serializer.validated_data
        )
        return Response(key_metadata(key))

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request, key_id):
        key = selectors.access_provider_key(_actor(request), key_id, Action.KEY_DELETE)
        services.provider_key_delete(key=key, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


SECRET_RESPONSES = {
    200: ProviderKeySecretSerializer,
    304: OpenApiResponse(description="The copy named by If-None-Match is current."),
    409: _error(
        "The key is disabled (`code`: key_disabled); with `fallback`, no key of the pool is "
        "available (`code`: no_available_key)."
    ),
    500: _error("The stored value failed its integrity check (`code`: key_integrity_error)."),
    **ERRORS,
}


class RetrievalView(TokenAPIView):
    """A secret retrieval: served by the lean views of `keyvault/api/retrieval_views.py`, which
    take the same steps as DRF without its per-request machinery and give the same answers.
    The class stays what the schema describes (its `get`, parameters and responses) and what
    the URLconf names; `dispatch` hands each request over, so DRF's `initial` never runs."""

    required_actions = {"GET": SECRET}
    serve = None  # the lean view

    def dispatch(self, request, *args, **kwargs):
        return type(self).serve(request, *args, **kwargs)


class KeySecretView(RetrievalView):
    serve = retrieval_views.key_secret

    @extend_schema(
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER)],
        responses=SECRET_RESPONSES,
    )
    def get(self, request, key_id):
        return self.serve(request, key_id)


class ResolveView(RetrievalView):
    """The organization's default enabled key for a provider (or the named one), with secret."""

    serve = retrieval_views.resolve

    @extend_schema(
        parameters=[
            OpenApiParameter("provider", str, required=True, enum=PROVIDER_IDS),
            OpenApiParameter(
                "name",
                {"type": "string", "minLength": 1},
                description="A key name (any case) instead of the default.",
            ),
            OpenApiParameter(
                "fallback",
                {"type": "boolean"},
                description="true: the first available key of the pool (enabled, not failing, "
                "not cooling) instead of the default alone.",
            ),
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER),
        ],
        responses=SECRET_RESPONSES,
    )
    def get(self, request):
        return self.serve(request)


# --- The event feed and the snapshot ---------------------------------------------------------


class EventsView(TokenAPIView):
    """The organization's key events after a cursor, in order; with `wait`, a long poll."""

    required_actions = {"GET": READ}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": 10**_MAX_DIGITS - 1},
                required=True,
                description="A cursor: a snapshot's, or the last page's.",
            ),
            OpenApiParameter(
                "wait",
                {"type": "integer", "minimum": 0, "maximum": event_wait.MAX_WAIT},
                description="Seconds to wait for a first event when there is none yet (0-30).",
            ),
        ],
        responses={
            200: EventPageSerializer,
            410: _error("Events after the cursor are gone (`code`: cursor_expired)."),
            **ERRORS,
        },
    )
    def get(self, request):
        after = _whole_number(
            request,
            "after",
            minimum=0,
            required="after is required: a snapshot's cursor, or the last page's.",
        )
        wait = _whole_number(request, "wait", minimum=0, maximum=event_wait.MAX_WAIT) or 0
        events, cursor = event_wait.events_page(
            organization_id=request.auth.organization_id,
            after=after,
            wait=wait,
            # A server that handles one request at a time would stop while the poll is parked.
            parkable=bool(request.META.get("wsgi.multithread")),
        )
        if wait:
            # It may have been parked for up to 30 seconds: a token revoked or expired
            # meanwhile (or gone with its organization) is refused, not answered.
            ProxyTokenAuthentication().authenticate(request)
        response = Response(
            {"events": [_EVENT.to_representation(event) for event in events], "cursor": cursor}
        )
        response["Cache-Control"] = "no-store"
        return response


class SnapshotView(TokenAPIView):
    """Every enabled key of the organization with its secret, and the feed's cursor they are
    current at."""

    required_actions = {"GET": SECRET}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "provider", str, enum=PROVIDER_IDS, description="Only keys of this provider."
            ),
        ],
        responses={200: SnapshotSerializer, **ERRORS},
    )
    @sensitive_variables()
    def get(self, request):
        snapshot = retrieve_snapshot(
            actor=_actor(request), provider=request.query_params.get("provider") or None
        )
        keys = []
        for key, secret in snapshot.keys:
            data = key_metadata(key)
            data["secret"] = secret
            keys.append(data)
        response = Response(
            {
                "cursor": snapshot.cursor,
                "keys": keys,
                "unavailable": [
                    {"id": str(key_id), "code": code} for key_id, code in snapshot.unavailable
                ],
            }
        )
        response["Cache-Control"] = "no-store"
        return response


# --- Pools and health ------------------------------------------------------------------------


class PoolView(TokenAPIView):
    """The provider's available keys in pool order, each with its secret: what a proxy fails
    over through locally."""

    required_actions = {"GET": SECRET}

    @extend_schema(
        parameters=[OpenApiParameter("provider", str, required=True, enum=PROVIDER_IDS)],
        responses={200: PoolSerializer, **ERRORS},
    )
    @sensitive_variables()
    def get(self, request):
        provider = request.query_params.get("provider", "")
        pool = selectors.provider_key_pool(
            organization_id=request.auth.organization_id, provider=provider, available_only=True
        )
        actor = _actor(request)
        keys = []
        for key in pool:
            data = key_metadata(key)
            data["secret"] = services.provider_key_reveal(key=key, actor=actor)
            recorder.record_secret_retrieval(actor.token.pk, key.pk)
            keys.append(data)
        response = Response({"provider": provider, "keys": keys})
        response["Cache-Control"] = "no-store"
        return response


class KeyReportView(TokenAPIView):
    """A proxy tells what the provider answered when it used the key."""

    required_actions = {"POST": REPORT}

    @extend_schema(
        request=ReportSerializer,
        responses={202: HealthSerializer, **ERRORS},
    )
    def post(self, request, key_id):
        key = selectors.access_provider_key(_actor(request), key_id, Action.KEY_REPORT)
        serializer = ReportSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        report = services.provider_key_report(
            key=key, actor=_actor(request), **serializer.validated_data
        )
        return Response(HealthSerializer(report.key).data, status=status.HTTP_202_ACCEPTED)


class KeyTestView(TokenAPIView):
    """One cheap authenticated call to the provider with the key's secret; the result is
    recorded. The secret is never in the answer."""

    required_actions = {"POST": _writing(Action.KEY_TEST)}

    @extend_schema(request=None, responses={200: ConnectionTestSerializer, **ERRORS})
    def post(self, request, key_id):
        key = selectors.access_provider_key(_actor(request), key_id, Action.KEY_TEST)
        result = services.provider_key_test(key=key, actor=_actor(request))
        return Response(ConnectionTestSerializer(result).data)
