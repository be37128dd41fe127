"""The API's one error shape: JSON with a `detail`, `errors` on 400, `code` where it matters."""

import json
import logging

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.test import Client
from rest_framework import exceptions

from audit.models import AuditEvent
from core.errors import NotFoundError
from keyvault.api.exceptions import api_exception_handler
from keyvault.crypto import IntegrityError, UnknownKEKError
from keyvault.errors import KeyDisabledError
from keyvault.models import ProviderKey
from tests.factories import ProviderKeyFactory


@pytest.fixture
def auth(make_token):
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token().raw}"}


def assert_json_404(response):
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


# --- 404 ------------------------------------------------------------------------------------

UNKNOWN_PATHS = [
    "/api/v1/nope",
    "/api/v1/ping/",
    "/api/v1/keys/{id}/secret/extra",
    "/api/v1/keys/{id}/rotate",
    "/api/v1/tokens",
    "/api/v1/resolve/openai",
]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_unknown_api_path_is_json_404(client, provider_key, auth, path, method):
    url = path.format(id=provider_key.pk)
    assert_json_404(getattr(client, method)(url, **auth))


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_path_is_json_404_without_a_token(db, method):
    # With CSRF checks on, as a real client meets them: a plain Django view would answer a POST
    # with the CSRF middleware's HTML 403 before it could say 404.
    client = Client(enforce_csrf_checks=True)
    assert_json_404(getattr(client, method)("/api/v1/nope"))


MALFORMED_IDS = [
    "not-a-uuid",
    "123",
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-0000-0000-0000000000001",
    "%00",
    "x" * 5000,
    "%E2%82%AC",
]
ID_ENDPOINTS = [
    ("get", "/api/v1/keys/{id}"),
    ("patch", "/api/v1/keys/{id}"),
    ("delete", "/api/v1/keys/{id}"),
    ("get", "/api/v1/keys/{id}/secret"),
]


@pytest.mark.parametrize("key_id", MALFORMED_IDS, ids=range(len(MALFORMED_IDS)))
@pytest.mark.parametrize(("method", "path"), ID_ENDPOINTS, ids=lambda v: str(v))
def test_malformed_id_is_json_404(client, provider_key, auth, method, path, key_id):
    response = client.generic(
        method.upper(), path.format(id=key_id), "{}", content_type="application/json", **auth
    )
    assert_json_404(response)
    assert ProviderKey.objects.filter(pk=provider_key.pk).exists()


def test_uuid_in_another_spelling_finds_the_same_key(client, provider_key, auth):
    response = client.get(f"/api/v1/keys/{provider_key.pk.hex.upper()}", **auth)
    assert response.status_code == 200
    assert response.json()["id"] == str(provider_key.pk)


# --- 400 ------------------------------------------------------------------------------------


def test_deeply_nested_json_is_400_not_500(client, organization, auth):
    body = "[" * 200_000 + "]" * 200_000
    response = client.post("/api/v1/keys", body, content_type="application/json", **auth)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"]
    assert "non_field_errors" in body["errors"]
    assert ProviderKey.objects.count() == 0


def test_invalid_json_error_names_no_body_content(client, organization, auth):
    secret = "sk-proj-ThisMustNotBeEchoed1234"
    response = client.post(
        "/api/v1/keys",
        '{"secret": "' + secret + '", oops}',
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 400
    assert secret not in response.content.decode()


def test_validation_error_never_echoes_the_secret(client, organization, auth):
    secret = "sk-proj-" + "s" * (16 * 1024)
    response = client.post(
        "/api/v1/keys",
        {"provider": "openai", "name": "Big", "secret": secret},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 400
    assert "s" * 40 not in response.content.decode()


# --- 413 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_body_over_the_upload_limit_is_json_413_and_writes_nothing(
    client, provider_key, auth, settings, caplog, method
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    secret = "sk-proj-" + "q" * 2048
    body = json.dumps({"provider": "openai", "name": "Big", "secret": secret})
    path = "/api/v1/keys" if method == "post" else f"/api/v1/keys/{provider_key.pk}"
    keys_before, events_before = ProviderKey.objects.count(), AuditEvent.objects.count()
    stored_before = ProviderKey.objects.get(pk=provider_key.pk).secret

    with caplog.at_level(logging.INFO):
        response = getattr(client, method)(path, body, content_type="application/json", **auth)

    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "The request body is too large."}
    assert "q" * 40 not in response.content.decode()
    assert (ProviderKey.objects.count(), AuditEvent.objects.count()) == (
        keys_before,
        events_before,
    )
    loaded = ProviderKey.objects.get(pk=provider_key.pk)
    assert (loaded.name, loaded.secret) == (provider_key.name, stored_before)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "q" * 40 not in caplog.text


def test_a_body_just_under_the_upload_limit_is_served(client, organization, auth, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"provider": "openai", "name": "Small", "secret": "sk-proj-" + "q" * 100})
    assert len(body) < 1024
    response = client.post("/api/v1/keys", body, content_type="application/json", **auth)
    assert response.status_code == 201, response.content


# --- The handler itself ---------------------------------------------------------------------


def handle(exc):
    response = api_exception_handler(exc, {})
    return response.status_code, response.data


def test_django_field_errors_keep_their_fields():
    status, data = handle(ValidationError({"name": "Taken.", "__all__": "Conflict."}))
    assert status == 400
    assert data["errors"] == {"name": ["Taken."], "non_field_errors": ["Conflict."]}


def test_django_plain_validation_error_is_non_field():
    status, data = handle(ValidationError("Nope."))
    assert (status, data["errors"]) == (400, {"non_field_errors": ["Nope."]})


def test_drf_list_validation_error_is_non_field():
    status, data = handle(exceptions.ValidationError(["Bad."]))
    assert (status, data["errors"]) == (400, {"non_field_errors": ["Bad."]})


def test_parse_error_has_errors_too():
    status, data = handle(exceptions.ParseError("The body must be a JSON object."))
    assert status == 400
    assert data == {
        "detail": "The body must be a JSON object.",
        "errors": {"non_field_errors": ["The body must be a JSON object."]},
    }


def test_does_not_exist_is_404():
    assert handle(ProviderKey.DoesNotExist()) == (404, {"detail": "Not found."})


def test_key_disabled_is_409_with_code():
    status, data = handle(KeyDisabledError("The key 'Main' is disabled."))
    assert status == 409
    assert data == {"detail": "The key 'Main' is disabled.", "code": "key_disabled"}


def test_integrity_error_is_500_with_code_and_no_message_detail():
    status, data = handle(IntegrityError("The secret does not authenticate under its context."))
    assert status == 500
    assert data["code"] == "key_integrity_error"
    assert "authenticate" not in data["detail"]


@pytest.mark.parametrize(
    ("exc", "answer"),
    [
        (NotFoundError("The key 'Main' no longer exists."), (404, {"detail": "Not found."})),
        (Http404("No ProviderKey matches the given query."), (404, {"detail": "Not found."})),
        (
            UnknownKEKError("kek-retired"),
            (
                500,
                {
                    "detail": "The stored key failed its integrity check.",
                    "code": "key_integrity_error",
                },
            ),
        ),
    ],
    ids=["NotFoundError", "Http404", "UnknownKEKError"],
)
def test_an_error_answers_as_the_nearest_class_it_derives_from(exc, answer):
    # Neither the message ("no longer exists", the KEK id) nor the subclass reaches the client.
    assert handle(exc) == answer


def test_unexpected_error_is_a_logged_json_500(caplog):
    with caplog.at_level(logging.ERROR, logger="keyvault.api.exceptions"):
        status, data = handle(RuntimeError("boom"))
    assert (status, data) == (500, {"detail": "Internal server error."})
    assert "Unhandled API error" in caplog.text


def test_unexpected_error_in_a_view_is_json(client, provider_key, auth, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("keyvault.selectors.provider_key_get", explode)
    response = client.get(f"/api/v1/keys/{provider_key.pk}", **auth)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({}, 401),
        ({"HTTP_AUTHORIZATION": "Bearer nope"}, 401),
    ],
)
def test_auth_errors_are_json(client, db, request_kwargs, status):
    response = client.get("/api/v1/keys", **request_kwargs)
    assert response.status_code == status
    assert response.json()["detail"]


def test_every_secret_error_is_json(client, organization, make_token):
    key = ProviderKeyFactory(organization=organization, enabled=False)
    read_only = make_token("keys:read")
    secret = make_token("keys:secret")
    forbidden = client.get(
        f"/api/v1/keys/{key.pk}/secret", HTTP_AUTHORIZATION=f"Bearer {read_only.raw}"
    )
    assert forbidden.status_code == 403 and forbidden.json()["detail"]
    disabled = client.get(
        f"/api/v1/keys/{key.pk}/secret", HTTP_AUTHORIZATION=f"Bearer {secret.raw}"
    )
    assert disabled.status_code == 409 and disabled.json()["code"] == "key_disabled"


def test_an_unknown_field_that_is_not_valid_text_is_named_safely_in_a_400(api_client, make_token):
    token = make_token("keys:write", "keys:read")
    before = ProviderKey.objects.count()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.raw}")
    response = api_client.post(
        "/api/v1/keys", data='{"\\ud800": 1}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"\\ud800": ["This field is not recognised."]}
    assert ProviderKey.objects.count() == before
