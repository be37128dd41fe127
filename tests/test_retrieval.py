"""The retrieval hot path (keyvault/retrieval.py, keyvault/api/retrieval_views.py): the token
and the key in one statement, nothing cached (a revoked or expired token, a disabled or deleted
key is refused on the very next request), one rendering of a key's metadata, and listing that
never decrypts."""

from datetime import timedelta
from unittest import mock
from uuid import uuid4

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers as drf_serializers

from keyvault import crypto, retrieval, sealing, services
from keyvault.api.serializers import ProviderKeySerializer, key_metadata
from keyvault.models import ProxyToken
from keyvault.token_auth import TokenRefused
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import bearer

SECRET = "sk-proj-Zq8wNn4VbT2yLk7RmP5sXc1dFg6hJ3tA"
OPERATOR = Access.operator("tests")


@pytest.fixture
def token(make_token):
    return make_token("keys:secret")


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(
        organization=organization, provider="openai", name="Main", secret=SECRET, is_default=True
    )


@pytest.fixture
def get(client, token):
    def request(path, **headers):
        return client.get(path, **bearer(token), **headers)

    return request


def paths(key) -> list[str]:
    return [
        f"/api/v1/keys/{key.pk}/secret",
        "/api/v1/resolve?provider=openai",
        "/api/v1/resolve?provider=openai&name=MAIN",
    ]


# --- One statement ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", range(3), ids=["secret", "resolve", "resolve by name"])
def test_a_retrieval_reads_its_token_and_key_in_one_statement(get, key, which):
    path = paths(key)[which]
    get(path)  # a first request may prepare the statement
    with CaptureQueriesContext(connection) as queries:
        response = get(path)
    assert response.status_code == 200
    assert response.json()["secret"] == SECRET
    assert len(queries) == 1


def test_the_statement_finds_only_keys_of_the_token_s_organization(token, key, other_organization):
    foreign = ProviderKeyFactory(organization=other_organization, provider="openai")
    found_token, found = retrieval.token_and_key(token.raw, retrieval.KeyLookup.by_id(foreign.pk))
    assert found_token.pk == token.pk
    assert found is None


def test_the_statement_loads_the_rows_as_the_orm_does(token, key):
    found_token, found = retrieval.token_and_key(token.raw, retrieval.KeyLookup.by_id(key.pk))
    fresh = type(key).objects.get(pk=key.pk)
    for field in type(key)._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(fresh, field.attname), field.name
    assert found_token.scopes == ["keys:secret"]
    assert sealing.open_secret(found) == SECRET


def test_an_unknown_token_is_refused_with_or_without_a_key(key):
    unknown = "kvp_" + "A" * 43
    for lookup in (retrieval.KeyLookup.by_id(key.pk), retrieval.KeyLookup.refused(ValueError())):
        with pytest.raises(TokenRefused, match="not valid"):
            retrieval.token_and_key(unknown, lookup)


# --- Nothing cached: every change takes effect on the next request ----------------------------


@pytest.mark.parametrize("which", range(3), ids=["secret", "resolve", "resolve by name"])
def test_a_revoked_token_is_refused_on_its_next_retrieval(get, key, token, which):
    path = paths(key)[which]
    assert get(path).status_code == 200

    services.proxy_token_revoke(token=token, actor=OPERATOR)

    response = get(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "The token has been revoked."}
    assert "secret" not in response.content.decode()


@pytest.mark.parametrize("which", range(3), ids=["secret", "resolve", "resolve by name"])
def test_an_expired_token_is_refused_on_its_next_retrieval(get, key, token, which):
    path = paths(key)[which]
    ProxyToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    assert get(path).status_code == 200

    ProxyToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = get(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "The token has expired."}


@pytest.mark.parametrize("which", range(3), ids=["secret", "resolve", "resolve by name"])
def test_a_disabled_key_is_refused_on_its_next_retrieval_even_to_a_revalidation(get, key, which):
    path = paths(key)[which]
    etag = get(path)["ETag"]

    services.provider_key_update(key=key, actor=OPERATOR, enabled=False)

    for headers in ({}, {"HTTP_IF_NONE_MATCH": etag}, {"HTTP_IF_NONE_MATCH": "*"}):
        response = get(path, **headers)
        assert response.status_code == 409
        assert response.json()["code"] == "key_disabled"
        assert SECRET not in response.content.decode()


@pytest.mark.parametrize("which", range(3), ids=["secret", "resolve", "resolve by name"])
def test_a_deleted_key_is_not_found_on_its_next_retrieval(get, key, which):
    path = paths(key)[which]
    assert get(path).status_code == 200

    services.provider_key_delete(key=key, actor=OPERATOR)

    assert get(path).status_code == 404


def test_a_rotated_key_answers_its_new_secret_on_the_next_request(get, key):
    first = get(paths(key)[0])
    services.provider_key_update(key=key, actor=OPERATOR, secret=SECRET + "x")

    response = get(paths(key)[0], HTTP_IF_NONE_MATCH=first["ETag"])
    assert response.status_code == 200
    assert response.json()["secret"] == SECRET + "x"
    assert response["ETag"] != first["ETag"]


def test_a_token_of_another_organization_never_reaches_the_key(client, key, make_token):
    from tests.factories import OrganizationFactory

    stranger = make_token("keys:secret", organization=OrganizationFactory())
    response = client.get(paths(key)[0], **bearer(stranger))
    assert response.status_code == 404
    assert SECRET not in response.content.decode()


# --- One rendering of a key -------------------------------------------------------------------


def test_key_metadata_renders_what_the_serializer_s_fields_describe(organization):
    key = ProviderKeyFactory(
        organization=organization,
        provider="azure_openai",
        name="East",
        secret="abcdEFGH1234abcdEFGH1234abcdEFGH",
        config={
            "endpoint": "https://east.openai.azure.com",
            "deployment": "gpt",
            "api_version": "2024-06-01",
        },
    )
    key = services.provider_key_update(key=key, actor=OPERATOR, secret="abcdEFGH1234abcdEFGH9999")
    type(key).objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    key.refresh_from_db()
    described = drf_serializers.Serializer.to_representation(ProviderKeySerializer(), key)
    assert key_metadata(key) == dict(described)
    assert set(key_metadata(key)) == set(ProviderKeySerializer().fields)


# --- Listing decrypts nothing -----------------------------------------------------------------


def test_listing_and_reading_metadata_never_reach_the_crypto_layer(
    client, organization, make_token
):
    for number in range(120):
        ProviderKeyFactory(organization=organization, name=f"Key {number}")
    reader = make_token("keys:read")
    refuse = mock.Mock(side_effect=AssertionError("metadata must not decrypt"))
    with (
        mock.patch.object(crypto.envelope, "open_sealed", refuse),
        mock.patch.object(crypto, "open_sealed", refuse),
    ):
        listed = client.get("/api/v1/keys?page_size=500", **bearer(reader))
        one = client.get(f"/api/v1/keys/{listed.json()['results'][0]['id']}", **bearer(reader))
    assert listed.status_code == 200
    assert listed.json()["count"] == 120
    assert one.status_code == 200
    refuse.assert_not_called()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
@pytest.mark.parametrize("kind", ["default", "name", "id"])
def test_the_prepared_plan_searches_the_key_within_the_token_s_organization(kind, token):
    """The plan PostgreSQL keeps for a prepared statement (a generic one) must look the key up
    by organization too: filtering organizations after the index would read one row per
    organization with a default for the provider."""
    statement = retrieval._statement("postgresql", kind)
    count = statement.count("%s")
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(
            "PREPARE retrieval_plan AS "
            + statement.replace("%s", "${}").format(*range(1, count + 1))
        )
        arguments = {"default": ["openai"], "name": ["openai", "main"], "id": [uuid4()]}[kind]
        cursor.execute(
            f"EXPLAIN EXECUTE retrieval_plan({', '.join(['%s'] * count)})",
            [*arguments, "0" * 64],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE retrieval_plan")
        cursor.execute("RESET plan_cache_mode")
    key_scan = plan[plan.index("keyvault_providerkey") :]
    assert "organization_id = t.organization_id" in key_scan or "id = $1" in key_scan, plan
