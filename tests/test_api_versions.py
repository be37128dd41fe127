"""Secret versions in the REST API: `keys/{id}/versions`, `keys/{id}/secret?version=N` and
`keys/{id}/rollback`, with their scopes and refusals."""

import pytest

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import services
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import bearer

V1 = "sk-proj-apiVERSIONoneabcdefghijklmnopqrstuvwx1"
V2 = "sk-proj-apiVERSIONtwoabcdefghijklmnopqrstuvwx2"
OPERATOR = Access.operator("tests")


@pytest.fixture
def key(organization):
    key = ProviderKeyFactory(organization=organization, secret=V1)
    return services.provider_key_rotate(key=key, actor=OPERATOR, secret=V2)


def url(key, tail):
    return f"/api/v1/keys/{key.pk}/{tail}"


def test_versions_list_newest_first_without_secrets(client, key, make_token):
    response = client.get(url(key, "versions"), **bearer(make_token("keys:read")))
    assert response.status_code == 200
    body = response.json()
    assert [(v["version"], v["current"]) for v in body] == [(2, True), (1, False)]
    assert set(body[0]) == {"version", "created_at", "created_by", "hint", "current"}
    assert V1 not in response.content.decode() and V2 not in response.content.decode()


def test_versions_need_keys_read(client, key, make_token):
    assert client.get(url(key, "versions"), **bearer(make_token("keys:secret"))).status_code == 403


def test_an_older_secret_is_read_with_its_version(client, key, make_token):
    token = make_token("keys:secret")
    older = client.get(url(key, "secret") + "?version=1", **bearer(token))
    assert older.status_code == 200
    assert (older.json()["secret"], older.json()["version"]) == (V1, 1)
    assert older["Cache-Control"] == "no-store"
    current = client.get(url(key, "secret") + "?version=2", **bearer(token))
    assert current.json()["secret"] == V2
    assert older["ETag"] != current["ETag"]


@pytest.mark.parametrize(("version", "status"), [("3", 404), ("0", 400), ("x", 400)])
def test_a_version_not_kept_or_malformed_is_refused(client, key, make_token, version, status):
    response = client.get(url(key, "secret") + f"?version={version}", **bearer(make_token()))
    assert response.status_code == status
    assert V1 not in response.content.decode()


def test_an_older_secret_needs_keys_secret(client, key, make_token):
    response = client.get(url(key, "secret") + "?version=1", **bearer(make_token("keys:read")))
    assert response.status_code == 403


def test_rollback_makes_the_old_secret_current_as_a_new_version(api_client, key, make_token):
    token = make_token("keys:read", "keys:write")
    response = api_client.post(url(key, "rollback"), {"version": 1}, format="json", **bearer(token))
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 3
    assert "secret" not in response.json()
    key.refresh_from_db()
    assert services.provider_key_reveal(key=key, actor=OPERATOR) == V1
    event = AuditEvent.objects.get(action=AuditAction.KEY_ROLLED_BACK)
    assert event.actor_token_id == token.pk


@pytest.mark.parametrize(
    "body",
    [{"version": 2}, {"version": 9}, {"version": "1"}, {"version": True}, {}, {"v": 1}],
    ids=["current", "not kept", "text", "boolean", "missing", "unknown field"],
)
def test_rollback_refuses_bad_input_with_field_errors(api_client, key, make_token, body):
    response = api_client.post(url(key, "rollback"), body, format="json", **bearer(make_token()))
    assert response.status_code == 400
    assert response.json()["errors"]
    key.refresh_from_db()
    assert key.version == 2


@pytest.mark.parametrize("scopes", [("keys:write",), ("keys:read", "keys:secret")])
def test_rollback_needs_keys_write_and_keys_read(api_client, key, make_token, scopes):
    response = api_client.post(
        url(key, "rollback"), {"version": 1}, format="json", **bearer(make_token(*scopes))
    )
    assert response.status_code == 403
    key.refresh_from_db()
    assert key.version == 2


def test_another_organizations_key_has_no_versions(client, key, make_token, other_organization):
    token = make_token(organization=other_organization)
    for tail in ("versions", "secret?version=1"):
        assert client.get(url(key, tail), **bearer(token)).status_code == 404
