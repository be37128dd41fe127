"""Key metadata and management through the proxy API: list, detail, create, patch, delete."""

import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import sealing, services
from keyvault.models import KeyUsage, ProviderKey, ProxyToken
from keyvault.usage import recorder
from organizations.access import Access
from tests.factories import OrganizationFactory, ProviderKeyFactory
from tests.helpers import key_row

OPERATOR = Access.operator("tests")

METADATA_FIELDS = {
    "id",
    "provider",
    "name",
    "hint",
    "config",
    "is_default",
    "enabled",
    "version",
    "created_at",
    "updated_at",
    "rotated_at",
    "last_used_at",
    "priority",
    "health",
    "cooling_until",
    "last_checked_at",
    "last_check_ok",
    "stale",
}
SECRET = "sk-proj-Zq8wNn4VbT2yLk7RmP5sXc1dFg6hJ3tA"
NEW_SECRET = "sk-proj-Hh2Jj4Kk6Ll8Mm0Nn1Bb3Vv5Cc7Xx9Zz"


@pytest.fixture
def token(make_token):
    return make_token("keys:read", "keys:secret", "keys:write")


@pytest.fixture
def api(client, token):
    """`api("post", "/api/v1/keys", {...})` with the token; bodies are sent as JSON."""

    def request(method, path, body=None, **extra):
        kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token.raw}", **extra}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(client, method)(path, **kwargs)

    return request


def assert_no_secret(response, *secrets):
    body = response.json()
    items = body.get("results", [body])
    for item in items:
        assert "secret" not in item
        assert set(item) == METADATA_FIELDS
    text = response.content.decode()
    for secret in secrets:
        assert secret not in text


def assert_bad_request(response, *fields):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"]
    assert isinstance(body["errors"], dict)
    for field in fields:
        assert field in body["errors"], body
        assert all(isinstance(m, str) and m for m in body["errors"][field])
    return body


# --- List and detail ------------------------------------------------------------------------


def test_list_shows_the_organizations_keys_as_metadata(api, organization, other_organization):
    mine = ProviderKeyFactory(organization=organization, secret=SECRET)
    ProviderKeyFactory(organization=other_organization)
    response = api("get", "/api/v1/keys")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [item["id"] for item in body["results"]] == [str(mine.pk)]
    assert_no_secret(response, SECRET)


def test_list_filters_by_provider(api, organization):
    ProviderKeyFactory(organization=organization, provider="openai")
    anthropic = ProviderKeyFactory(
        organization=organization, provider="anthropic", secret="sk-ant-api03-abcdefgh"
    )
    body = api("get", "/api/v1/keys?provider=anthropic").json()
    assert [item["id"] for item in body["results"]] == [str(anthropic.pk)]


def test_list_with_unknown_provider_is_400(api, organization):
    assert_bad_request(api("get", "/api/v1/keys?provider=nope"), "provider")


def test_list_is_paginated(api, organization):
    for n in range(5):
        ProviderKeyFactory(organization=organization, name=f"Key {n}")
    first = api("get", "/api/v1/keys?page_size=2").json()
    assert first["count"] == 5
    assert [item["name"] for item in first["results"]] == ["Key 0", "Key 1"]
    assert first["next"] and first["previous"] is None
    third = api("get", "/api/v1/keys?page_size=2&page=3").json()
    assert [item["name"] for item in third["results"]] == ["Key 4"]
    assert third["next"] is None


BAD_NUMBERS = ["0", "-1", "null", "", "1.5", "1e2", " 10", "+10", "\uff11\uff10", "9" * 5000]


@pytest.mark.parametrize("value", [*BAD_NUMBERS, "501", "999999"])
def test_list_refuses_a_page_size_it_would_not_honour(api, organization, value):
    ProviderKeyFactory(organization=organization)

    response = api("get", "/api/v1/keys", data={"page_size": value})

    assert assert_bad_request(response, "page_size")["errors"]["page_size"] == [
        "page_size must be a whole number from 1 to 500."
    ]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_list_refuses_a_page_that_is_not_a_page_number(api, organization, value):
    ProviderKeyFactory(organization=organization)

    response = api("get", "/api/v1/keys", data={"page": value})

    assert assert_bad_request(response, "page")["errors"]["page"] == [
        "page must be a whole number from 1."
    ]


def test_list_refuses_a_parameter_given_twice(api, organization):
    response = api("get", "/api/v1/keys?page_size=1&page_size=500")

    assert assert_bad_request(response, "page_size")["errors"]["page_size"] == [
        "Give page_size once."
    ]


@pytest.mark.parametrize(("size", "count"), [("1", 1), ("500", 3), ("007", 3)])
def test_list_honours_every_page_size_it_accepts(api, organization, size, count):
    for n in range(3):
        ProviderKeyFactory(organization=organization, name=f"Key {n}")

    response = api("get", "/api/v1/keys", data={"page_size": size})

    assert response.status_code == 200
    assert len(response.json()["results"]) == count


def test_list_page_past_the_end_is_json_404(api, organization):
    ProviderKeyFactory(organization=organization)
    response = api("get", "/api/v1/keys?page=9")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_list_of_a_thousand_keys_decrypts_nothing(api, organization, monkeypatch):
    for n in range(3):
        ProviderKeyFactory(organization=organization, name=f"Key {n}")

    def refuse(*args, **kwargs):
        raise AssertionError("listing must not decrypt")

    monkeypatch.setattr(sealing, "open_secret", refuse)
    assert api("get", "/api/v1/keys").status_code == 200


def test_detail_is_metadata_only(api, organization):
    key = ProviderKeyFactory(organization=organization, secret=SECRET, config={"project": "proj_1"})
    response = api("get", f"/api/v1/keys/{key.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(key.pk)
    assert body["config"] == {"project": "proj_1"}
    assert body["hint"] == key.secret_hint
    assert body["version"] == 1
    assert_no_secret(response, SECRET)


# --- Create ---------------------------------------------------------------------------------


def valid_body(**changes) -> dict:
    return {"provider": "openai", "name": "Main", "secret": SECRET, **changes}


def test_create_returns_201_with_metadata_and_stores_the_secret_sealed(api, organization, token):
    response = api(
        "post",
        "/api/v1/keys",
        valid_body(config={"base_url": "https://llm.example.com/v1"}, is_default=True),
    )
    assert response.status_code == 201, response.content
    assert_no_secret(response, SECRET)
    body = response.json()
    key = ProviderKey.objects.get(pk=body["id"])
    assert key.organization == organization
    assert key.name == "Main" and key.is_default and key.enabled
    assert key.config == {"base_url": "https://llm.example.com/v1"}
    assert services.provider_key_reveal(actor=OPERATOR, key=key) == SECRET
    assert SECRET not in key.secret.envelope

    event = AuditEvent.objects.get(action=AuditAction.KEY_CREATED)
    assert event.actor_token_id == token.pk
    assert event.ip_address == "127.0.0.1"
    assert event.target_id == str(key.pk)


def test_create_disabled(api, organization):
    response = api("post", "/api/v1/keys", valid_body(enabled=False))
    assert response.status_code == 201
    assert response.json()["enabled"] is False


BAD_CREATE_BODIES = {
    "empty object": ({}, ["provider", "name", "secret"]),
    "missing provider": ({"name": "Main", "secret": SECRET}, ["provider"]),
    "missing name": ({"provider": "openai", "secret": SECRET}, ["name"]),
    "missing secret": ({"provider": "openai", "name": "Main"}, ["secret"]),
    "unknown provider": (valid_body(provider="nope"), ["provider"]),
    "null provider": (valid_body(provider=None), ["provider"]),
    "empty secret": (valid_body(secret=""), ["secret"]),
    "whitespace secret": (valid_body(secret="  \n\t "), ["secret"]),
    "oversized secret": (valid_body(secret="sk-" + "x" * (16 * 1024)), ["secret"]),
    "number secret": (valid_body(secret=12345), ["secret"]),
    "NUL in secret": (valid_body(secret="sk-\x00abc"), ["secret"]),
    "number name": (valid_body(name=42), ["name"]),
    "empty name": (valid_body(name=""), ["name"]),
    "whitespace name": (valid_body(name="   "), ["name"]),
    "overlong name": (valid_body(name="n" * 101), ["name"]),
    "list name": (valid_body(name=["Main"]), ["name"]),
    "string is_default": (valid_body(is_default="true"), ["is_default"]),
    "number is_default": (valid_body(is_default=1), ["is_default"]),
    "null is_default": (valid_body(is_default=None), ["is_default"]),
    "string enabled": (valid_body(enabled="yes"), ["enabled"]),
    "list config": (valid_body(config=["base_url"]), ["config"]),
    "string config": (valid_body(config="base_url=x"), ["config"]),
    "unknown config key": (valid_body(config={"region": "eu"}), ["config"]),
    "bad config url": (valid_body(config={"base_url": "not a url"}), ["config"]),
    "number config value": (valid_body(config={"base_url": 42}), ["config"]),
    "unknown field": (valid_body(colour="red"), ["colour"]),
    "read-only field": (valid_body(version=7), ["version"]),
}


@pytest.mark.parametrize(
    ("body", "fields"), BAD_CREATE_BODIES.values(), ids=BAD_CREATE_BODIES.keys()
)
def test_create_with_a_bad_body_writes_nothing(api, organization, body, fields):
    keys, events = ProviderKey.objects.count(), AuditEvent.objects.count()
    response = api("post", "/api/v1/keys", body)
    errors = assert_bad_request(response, *fields)["errors"]
    assert ProviderKey.objects.count() == keys
    assert AuditEvent.objects.count() == events
    if isinstance(body.get("secret"), str) and body["secret"].strip():
        assert body["secret"] not in json.dumps(errors)


@pytest.mark.parametrize(
    "raw",
    ["{not json", '{"provider": "openai",}', "", "\xff\xfe", "NaN"],
    ids=["broken", "trailing comma", "empty", "not utf-8", "NaN"],
)
def test_create_with_invalid_json_writes_nothing(client, token, organization, raw):
    keys, events = ProviderKey.objects.count(), AuditEvent.objects.count()
    response = client.generic(
        "POST",
        "/api/v1/keys",
        raw.encode("latin-1"),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert_bad_request(response)
    assert ProviderKey.objects.count() == keys
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("raw", ["[]", '["a"]', '"text"', "42", "null", "true"])
def test_create_with_non_object_json_writes_nothing(api, organization, raw, client, token):
    keys = ProviderKey.objects.count()
    response = client.post(
        "/api/v1/keys",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert_bad_request(response, "non_field_errors")
    assert ProviderKey.objects.count() == keys


def test_create_second_default_is_400(api, organization):
    ProviderKeyFactory(organization=organization, provider="openai", is_default=True)
    keys, events = ProviderKey.objects.count(), AuditEvent.objects.count()
    assert_bad_request(api("post", "/api/v1/keys", valid_body(is_default=True)), "is_default")
    assert (ProviderKey.objects.count(), AuditEvent.objects.count()) == (keys, events)


def test_create_duplicate_name_is_400_whatever_the_case(api, organization):
    ProviderKeyFactory(organization=organization, provider="openai", name="Main")
    keys, events = ProviderKey.objects.count(), AuditEvent.objects.count()
    assert_bad_request(api("post", "/api/v1/keys", valid_body(name="  MAIN ")), "name")
    assert (ProviderKey.objects.count(), AuditEvent.objects.count()) == (keys, events)


def test_same_name_in_another_organization_is_fine(api, organization, other_organization):
    ProviderKeyFactory(organization=other_organization, provider="openai", name="Main")
    assert api("post", "/api/v1/keys", valid_body()).status_code == 201


def test_create_as_form_data_is_refused(client, token, organization):
    response = client.post("/api/v1/keys", valid_body(), HTTP_AUTHORIZATION=f"Bearer {token.raw}")
    assert response.status_code == 415
    assert response.json()["detail"]
    assert ProviderKey.objects.count() == 0


# --- Patch ----------------------------------------------------------------------------------


def test_patch_changes_metadata(api, organization):
    key = ProviderKeyFactory(organization=organization, secret=SECRET)
    response = api(
        "patch",
        f"/api/v1/keys/{key.pk}",
        {"name": "Renamed", "config": {"project": "proj_9"}, "is_default": True, "enabled": False},
    )
    assert response.status_code == 200, response.content
    assert_no_secret(response, SECRET)
    body = response.json()
    assert (body["name"], body["config"], body["is_default"], body["enabled"]) == (
        "Renamed",
        {"project": "proj_9"},
        True,
        False,
    )
    assert body["version"] == 1
    assert AuditEvent.objects.filter(action=AuditAction.KEY_UPDATED).count() == 1


def test_patch_secret_rotates_and_bumps_version(api, organization):
    key = ProviderKeyFactory(organization=organization, secret=SECRET)
    response = api("patch", f"/api/v1/keys/{key.pk}", {"secret": NEW_SECRET})
    assert response.status_code == 200
    assert_no_secret(response, SECRET, NEW_SECRET)
    body = response.json()
    assert body["version"] == 2
    assert body["rotated_at"] is not None
    assert body["hint"].endswith(NEW_SECRET[-4:])
    key.refresh_from_db()
    assert services.provider_key_reveal(actor=OPERATOR, key=key) == NEW_SECRET


def test_empty_patch_changes_nothing(api, organization):
    key = ProviderKeyFactory(organization=organization)
    before, events = key_row(key), AuditEvent.objects.count()
    assert api("patch", f"/api/v1/keys/{key.pk}", {}).status_code == 200
    assert key_row(key) == before
    assert AuditEvent.objects.count() == events


BAD_PATCH_BODIES = {
    "number name": ({"name": 42}, ["name"]),
    "empty name": ({"name": ""}, ["name"]),
    "string is_default": ({"is_default": "true"}, ["is_default"]),
    "string enabled": ({"enabled": "false"}, ["enabled"]),
    "list config": ({"config": []}, ["config"]),
    "unknown config key": ({"config": {"region": "eu"}}, ["config"]),
    "unknown field": ({"provider": "anthropic"}, ["provider"]),
    "empty secret": ({"secret": ""}, ["secret"]),
    "whitespace secret": ({"secret": "   "}, ["secret"]),
    "oversized secret": ({"secret": "sk-" + "x" * (16 * 1024)}, ["secret"]),
    "number secret": ({"secret": 1}, ["secret"]),
    # A valid change beside an invalid secret: the change is not kept either (one transaction).
    "rename and whitespace secret": ({"name": "Renamed", "secret": "   "}, ["secret"]),
    "disable and oversized secret": (
        {"enabled": False, "secret": "sk-" + "x" * (16 * 1024 + 1)},
        ["secret"],
    ),
    "config and bad name": ({"config": {"project": "proj_2"}, "name": "  "}, ["name"]),
}


@pytest.mark.parametrize(("body", "fields"), BAD_PATCH_BODIES.values(), ids=BAD_PATCH_BODIES.keys())
def test_patch_with_a_bad_body_changes_nothing(api, organization, body, fields):
    key = ProviderKeyFactory(organization=organization, secret=SECRET)
    before, events = key_row(key), AuditEvent.objects.count()
    assert_bad_request(api("patch", f"/api/v1/keys/{key.pk}", body), *fields)
    assert key_row(key) == before
    assert AuditEvent.objects.count() == events
    key.refresh_from_db()
    assert services.provider_key_reveal(actor=OPERATOR, key=key) == SECRET


def test_patch_second_default_and_duplicate_name_change_nothing(api, organization):
    ProviderKeyFactory(organization=organization, name="Taken", is_default=True)
    key = ProviderKeyFactory(organization=organization, name="Mine")
    before, events = key_row(key), AuditEvent.objects.count()
    assert_bad_request(api("patch", f"/api/v1/keys/{key.pk}", {"is_default": True}), "is_default")
    assert_bad_request(api("patch", f"/api/v1/keys/{key.pk}", {"name": "taken"}), "name")
    assert key_row(key) == before
    assert AuditEvent.objects.count() == events


def test_patch_invalid_json_changes_nothing(client, token, organization):
    key = ProviderKeyFactory(organization=organization)
    before = key_row(key)
    response = client.patch(
        f"/api/v1/keys/{key.pk}",
        "{oops",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert_bad_request(response)
    assert key_row(key) == before


# --- Delete ---------------------------------------------------------------------------------


def test_delete_removes_the_key(api, organization, token):
    key = ProviderKeyFactory(organization=organization)
    response = api("delete", f"/api/v1/keys/{key.pk}")
    assert response.status_code == 204
    assert response.content == b""
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action=AuditAction.KEY_DELETED)
    assert event.actor_token_id == token.pk
    assert api("delete", f"/api/v1/keys/{key.pk}").status_code == 404


# --- Other organizations: 404, never 403, never data -----------------------------------------


@pytest.fixture
def foreign_key(other_organization):
    return ProviderKeyFactory(
        organization=other_organization,
        provider="anthropic",
        name="Theirs",
        secret="sk-ant-api03-their-secret-value",
        is_default=True,
    )


NO_ANTHROPIC_DEFAULT = "no default key for anthropic; name one or set a default"

FOREIGN_REQUESTS = {
    "detail": ("get", "/api/v1/keys/{id}", None),
    "secret": ("get", "/api/v1/keys/{id}/secret", None),
    "update": ("patch", "/api/v1/keys/{id}", {"name": "Mine now"}),
    "rotate": ("patch", "/api/v1/keys/{id}", {"secret": "sk-ant-api03-replaced"}),
    "delete": ("delete", "/api/v1/keys/{id}", None),
    "resolve default": ("get", "/api/v1/resolve?provider=anthropic", None),
    "resolve by name": ("get", "/api/v1/resolve?provider=anthropic&name=Theirs", None),
}


@pytest.mark.parametrize(
    ("method", "path", "body"), FOREIGN_REQUESTS.values(), ids=FOREIGN_REQUESTS.keys()
)
def test_another_organizations_key_is_404(api, organization, foreign_key, method, path, body):
    before, events = key_row(foreign_key), AuditEvent.objects.count()
    response = api(method, path.format(id=foreign_key.pk), body)
    assert response.status_code == 404
    # Resolving the default says the caller's own organization has none, as it would if the
    # other organization had no key either; everything else is the plain 404.
    expected = (
        {"detail": NO_ANTHROPIC_DEFAULT, "code": "no_default_key"}
        if path.endswith("provider=anthropic")
        else {"detail": "Not found."}
    )
    assert response.json() == expected
    assert "Theirs" not in response.content.decode()
    assert key_row(foreign_key) == before
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [v for k, v in FOREIGN_REQUESTS.items() if "{id}" in v[1]],
    ids=[k for k, v in FOREIGN_REQUESTS.items() if "{id}" in v[1]],
)
def test_foreign_id_and_unknown_id_answer_alike(api, foreign_key, method, path, body):
    foreign = api(method, path.format(id=foreign_key.pk), body)
    unknown = api(method, path.format(id=uuid.uuid4()), body)
    assert (foreign.status_code, foreign.content) == (unknown.status_code, unknown.content)


def test_another_organizations_token_sees_none_of_our_keys(client, organization, make_token):
    ProviderKeyFactory(organization=organization, provider="anthropic", secret="sk-ant-api03-x1")
    outsider = make_token("keys:read", organization=OrganizationFactory())
    response = client.get(
        "/api/v1/keys?provider=anthropic", HTTP_AUTHORIZATION=f"Bearer {outsider.raw}"
    )
    assert response.json()["count"] == 0


# --- Nothing in plaintext at rest -----------------------------------------------------------


def test_database_holds_no_token_and_no_secret_in_plaintext(client, organization):
    out = io.StringIO()
    call_command(
        "create_token",
        org=organization.slug,
        name="edge",
        scopes="keys:read,keys:secret,keys:write",
        stdout=out,
    )
    raw = out.getvalue().strip()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    created = client.post(
        "/api/v1/keys",
        json.dumps(valid_body(is_default=True)),
        content_type="application/json",
        **auth,
    )
    assert created.status_code == 201
    key_id = created.json()["id"]
    rotated = client.patch(
        f"/api/v1/keys/{key_id}",
        json.dumps({"secret": NEW_SECRET}),
        content_type="application/json",
        **auth,
    )
    assert rotated.status_code == 200
    assert client.get(f"/api/v1/keys/{key_id}/secret", **auth).json()["secret"] == NEW_SECRET
    recorder.flush()
    assert KeyUsage.objects.count() == 1

    needles = {raw, raw[4:], raw[4:-4], SECRET, SECRET[8:-4], NEW_SECRET, NEW_SECRET[8:-4]}
    scanned = 0
    with connection.cursor() as cursor:
        for model in (ProxyToken, ProviderKey, AuditEvent, KeyUsage):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table name from metadata
            for row in cursor.fetchall():
                for value in row:
                    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    scanned += 1
                    for needle in needles:
                        assert needle not in text, f"{model.__name__} holds plaintext"
    assert scanned > 20
