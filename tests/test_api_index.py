"""Finding the API: `/api/v1/` answers a JSON index, `keys/` answers as `keys` does."""

import pytest
from django.test import Client

from tests.factories import ProviderKeyFactory


def test_the_api_root_is_a_json_index_without_a_token(db):
    response = Client().get("/api/v1/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["schema"] == "http://testserver/api/v1/schema"
    assert body["docs"] == "http://testserver/api/v1/docs"
    assert body["endpoints"]["resolve"].startswith("http://testserver/api/v1/resolve?provider=")


@pytest.mark.parametrize("method", ["post", "delete"])
def test_the_api_root_refuses_writes_in_json(db, method):
    response = getattr(Client(enforce_csrf_checks=True), method)("/api/v1/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response["Content-Type"].startswith("application/json")


def test_keys_with_a_trailing_slash_answers_as_keys(client, organization, make_token):
    ProviderKeyFactory(organization=organization, provider="openai", name="Main")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token('keys:read').raw}"}
    plain = client.get("/api/v1/keys", **auth)
    slashed = client.get("/api/v1/keys/", **auth)
    assert plain.status_code == slashed.status_code == 200
    assert slashed.json() == plain.json()


def test_keys_with_a_trailing_slash_still_needs_a_token(client, db):
    assert client.get("/api/v1/keys/").status_code == 401


def test_the_schema_names_the_key_list_once(client, db):
    paths = client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()["paths"]
    assert "/api/v1/keys" in paths
    assert "/api/v1/keys/" not in paths
