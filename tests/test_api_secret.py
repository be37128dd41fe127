"""Secret retrieval: `keys/{id}/secret` and `resolve`, revalidation, disabled keys, integrity."""

import logging
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied

from keyvault import services
from keyvault.crypto import envelope as crypto_envelope
from keyvault.retrieval import key_etag, retrieve_secret
from keyvault.usage import recorder
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import write_raw_secret_column
from tests.test_api_keys import METADATA_FIELDS

SECRET = "sk-proj-Zq8wNn4VbT2yLk7RmP5sXc1dFg6hJ3tA"
NEW_SECRET = "sk-proj-Hh2Jj4Kk6Ll8Mm0Nn1Bb3Vv5Cc7Xx9Zz"
SIGMA, FINAL_SIGMA = "\u03c3", "\u03c2"
SECRET_FIELDS = METADATA_FIELDS | {"secret"}


@pytest.fixture
def token(make_token):
    return make_token("keys:secret")


@pytest.fixture
def get(client, token):
    def request(path, **headers):
        return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token.raw}", **headers)

    return request


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(organization=organization, secret=SECRET, is_default=True)


def secret_url(key) -> str:
    return f"/api/v1/keys/{key.pk}/secret"


def edit(key, **changes):
    return services.provider_key_update(key=key, actor=Access.operator("tests"), **changes)


def assert_secret_response(response, key, secret):
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')
    body = response.json()
    assert set(body) == SECRET_FIELDS
    assert body["id"] == str(key.pk)
    assert body["secret"] == secret
    return body


# --- keys/{id}/secret -----------------------------------------------------------------------


def test_secret_is_returned_with_no_store_and_etag(get, key):
    body = assert_secret_response(get(secret_url(key)), key, SECRET)
    assert body["hint"] == key.secret_hint
    assert body["version"] == 1


def test_matching_if_none_match_is_304_without_decrypting(get, key, opened):
    etag = get(secret_url(key))["ETag"]
    opened.reset_mock()

    response = get(secret_url(key), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "no-store"
    opened.assert_not_called()


def test_304_never_reaches_the_crypto_layer(get, key):
    etag = get(secret_url(key))["ETag"]
    with mock.patch.object(crypto_envelope, "open_sealed") as open_sealed:
        assert get(secret_url(key), HTTP_IF_NONE_MATCH=etag).status_code == 304
    open_sealed.assert_not_called()


@pytest.mark.parametrize(
    "header",
    ["{etag}", "W/{etag}", '"stale", {etag}', "*"],
    ids=["strong", "weak", "one of several", "any"],
)
def test_if_none_match_forms(get, key, header):
    etag = get(secret_url(key))["ETag"]
    assert get(secret_url(key), HTTP_IF_NONE_MATCH=header.format(etag=etag)).status_code == 304


@pytest.mark.parametrize("header", ['"stale"', "garbage", ""])
def test_stale_or_garbage_if_none_match_gets_the_secret(get, key, header):
    assert_secret_response(get(secret_url(key), HTTP_IF_NONE_MATCH=header), key, SECRET)


def test_etag_changes_after_rotation(get, key, client, make_token):
    etag = get(secret_url(key))["ETag"]
    writer = make_token("keys:write", "keys:read")
    response = client.patch(
        f"/api/v1/keys/{key.pk}",
        {"secret": NEW_SECRET},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {writer.raw}",
    )
    assert response.json()["version"] == 2

    after = get(secret_url(key), HTTP_IF_NONE_MATCH=etag)
    body = assert_secret_response(after, key, NEW_SECRET)
    assert body["version"] == 2
    assert after["ETag"] != etag


@pytest.mark.parametrize(
    "changes",
    [{"name": "Renamed"}, {"config": {"project": "proj_2"}}, {"is_default": False}],
    ids=["name", "config", "default"],
)
def test_etag_changes_after_an_edit(get, key, changes):
    etag = get(secret_url(key))["ETag"]
    edit(key, **changes)
    after = get(secret_url(key), HTTP_IF_NONE_MATCH=etag)
    assert after.status_code == 200
    assert after["ETag"] != etag


def test_etag_is_stable_while_nothing_changes(get, key):
    first = get(secret_url(key))["ETag"]
    recorder.flush()  # Recording use moves last_used_at, not the secret or its metadata.
    assert get(secret_url(key))["ETag"] == first


def test_disabled_key_is_409_even_when_revalidating(get, key, opened):
    etag = get(secret_url(key))["ETag"]
    opened.reset_mock()
    edit(key, enabled=False)

    for headers in ({}, {"HTTP_IF_NONE_MATCH": etag}, {"HTTP_IF_NONE_MATCH": "*"}):
        response = get(secret_url(key), **headers)
        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "key_disabled"
        assert body["detail"]
        assert "secret" not in body
        assert SECRET not in response.content.decode()
    opened.assert_not_called()


def test_reenabled_key_is_served_again(get, key):
    edit(key, enabled=False)
    edit(key, enabled=True)
    assert_secret_response(get(secret_url(key)), key, SECRET)


# --- resolve --------------------------------------------------------------------------------


NO_DEFAULT = {
    "detail": "no default key for {}; name one or set a default",
    "code": "no_default_key",
}


def test_resolve_with_no_key_for_the_provider_is_404_saying_what_to_do(get, key):
    response = get("/api/v1/resolve?provider=anthropic")
    assert response.status_code == 404
    assert response.json() == {**NO_DEFAULT, "detail": NO_DEFAULT["detail"].format("anthropic")}


def test_resolve_with_keys_but_no_default_is_404_saying_what_to_do(get, organization):
    ProviderKeyFactory(organization=organization, provider="openai", name="A")
    ProviderKeyFactory(organization=organization, provider="openai", name="B")
    response = get("/api/v1/resolve?provider=openai")
    assert response.status_code == 404
    assert response.json() == {**NO_DEFAULT, "detail": NO_DEFAULT["detail"].format("openai")}


def test_resolve_of_a_missing_name_stays_a_plain_404(get, key):
    response = get("/api/v1/resolve?provider=openai&name=nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_resolve_picks_the_default_among_several(get, organization):
    ProviderKeyFactory(organization=organization, provider="openai", name="A")
    default = ProviderKeyFactory(
        organization=organization, provider="openai", name="B", secret=SECRET, is_default=True
    )
    ProviderKeyFactory(organization=organization, provider="openai", name="C")
    ProviderKeyFactory(
        organization=organization, provider="anthropic", secret="sk-ant-x1", is_default=True
    )
    response = get("/api/v1/resolve?provider=openai")
    assert_secret_response(response, default, SECRET)
    assert response["ETag"] == get(secret_url(default))["ETag"]


@pytest.mark.parametrize("asked", ["Backup", "backup", "BACKUP", "  Backup "])
def test_resolve_by_name_is_case_insensitive(get, organization, key, asked):
    backup = ProviderKeyFactory(
        organization=organization, provider="openai", name="Backup", secret=NEW_SECRET
    )
    assert_secret_response(
        get("/api/v1/resolve", QUERY_STRING=f"provider=openai&name={asked}"), backup, NEW_SECRET
    )


def test_resolve_by_name_of_another_provider_is_404(get, organization, key):
    ProviderKeyFactory(
        organization=organization, provider="anthropic", name="Claude", secret="sk-ant-x1"
    )
    assert get("/api/v1/resolve?provider=openai&name=Claude").status_code == 404


def test_resolve_by_name_matches_one_key_where_case_folding_differs(get, organization):
    """Greek sigma and final sigma are distinct names under the unique constraint (LOWER);
    they fold together under UPPER, which `iexact` uses on PostgreSQL."""
    sigma = ProviderKeyFactory(organization=organization, name=SIGMA, secret=SECRET)
    final_sigma = ProviderKeyFactory(organization=organization, name=FINAL_SIGMA, secret=NEW_SECRET)
    assert_secret_response(get(f"/api/v1/resolve?provider=openai&name={SIGMA}"), sigma, SECRET)
    assert_secret_response(
        get(f"/api/v1/resolve?provider=openai&name={FINAL_SIGMA}"), final_sigma, NEW_SECRET
    )


def test_resolve_with_the_default_disabled_is_409_without_fallback(get, organization, key):
    ProviderKeyFactory(
        organization=organization, provider="openai", name="Other", secret=NEW_SECRET
    )
    edit(key, enabled=False)
    response = get("/api/v1/resolve?provider=openai")
    assert response.status_code == 409
    assert response.json()["code"] == "key_disabled"
    assert NEW_SECRET not in response.content.decode()


def test_resolve_named_disabled_key_is_409(get, organization, key):
    other = ProviderKeyFactory(organization=organization, name="Other", enabled=False)
    assert other.enabled is False
    response = get("/api/v1/resolve?provider=openai&name=Other")
    assert response.status_code == 409
    assert response.json()["code"] == "key_disabled"


def test_resolve_revalidates_like_the_secret_endpoint(get, key, opened):
    etag = get("/api/v1/resolve?provider=openai")["ETag"]
    opened.reset_mock()
    response = get("/api/v1/resolve?provider=openai", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response["Cache-Control"] == "no-store"
    opened.assert_not_called()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "provider"),
        ("provider=", "provider"),
        ("provider=nope", "provider"),
        ("name=Main", "provider"),
        ("provider=openai&name=", "name"),
        ("provider=openai&name=%20%20", "name"),
    ],
    ids=["missing", "empty", "unknown", "name only", "empty name", "blank name"],
)
def test_resolve_with_a_bad_query_is_400(get, key, query, field):
    response = get("/api/v1/resolve", QUERY_STRING=query)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"]
    assert field in body["errors"]


@pytest.mark.parametrize("name", ["a%00b", "a%0ab", "%7f"], ids=["NUL", "newline", "DEL"])
def test_resolve_with_control_characters_in_the_name_is_404(get, key, name):
    response = get(f"/api/v1/resolve?provider=openai&name={name}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- Integrity failures ---------------------------------------------------------------------


def _flip(envelope: str) -> str:
    """One character of the ciphertext segment changed, still valid base64url."""
    head, ciphertext = envelope.rsplit(".", 1)
    middle = len(ciphertext) // 2
    swapped = "B" if ciphertext[middle] != "B" else "C"
    return f"{head}.{ciphertext[:middle]}{swapped}{ciphertext[middle + 1 :]}"


@pytest.fixture
def other_key(organization):
    return ProviderKeyFactory(organization=organization, name="Donor", secret=NEW_SECRET)


TAMPERINGS = {
    "envelope of another row": lambda key, other: other.secret.envelope,
    "flipped ciphertext": lambda key, other: _flip(key.secret.envelope),
    "truncated": lambda key, other: key.secret.envelope[:-6],
    "not an envelope": lambda key, other: "kv1.garbage",
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
@pytest.mark.parametrize("path", ["secret", "resolve"])
def test_tampered_value_is_a_json_500_integrity_error(get, key, other_key, caplog, tamper, path):
    stored = tamper(key, other_key)
    write_raw_secret_column(key, stored)
    url = secret_url(key) if path == "secret" else "/api/v1/resolve?provider=openai"

    with caplog.at_level(logging.ERROR):
        response = get(url)

    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "key_integrity_error"
    assert body["detail"]
    assert "secret" not in body
    text = response.content.decode()
    for fragment in [stored, *stored.split(".")[2:], SECRET, NEW_SECRET]:
        if len(fragment) >= 8:
            assert fragment not in text
    # Logged with the key id, without the secret or the stored value.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert str(key.pk) in logged
    for fragment in [SECRET, NEW_SECRET, *stored.split(".")[2:]]:
        if len(fragment) >= 8:
            assert fragment not in logged
    # Fail closed: the stored value is neither repaired nor overwritten.
    key.refresh_from_db()
    assert key.secret.envelope == stored


def test_tampered_value_is_not_counted_as_a_use(get, key, other_key):
    write_raw_secret_column(key, other_key.secret.envelope)
    assert get(secret_url(key)).status_code == 500
    assert recorder.pending() == 0


def test_tampered_value_still_revalidates(get, key, other_key):
    """A revalidation opens nothing, so a proxy holding the right copy keeps it."""
    etag = get(secret_url(key))["ETag"]
    write_raw_secret_column(key, other_key.secret.envelope)
    assert get(secret_url(key), HTTP_IF_NONE_MATCH=etag).status_code == 304


# --- retrieve_secret is authorized as a reveal, even for "not modified" ---------------------

IF_NONE_MATCH_FORMS = {
    "none": lambda etag: None,
    "current": lambda etag: etag,
    "weak": lambda etag: f"W/{etag}",
    "any": lambda etag: "*",
}
REFUSED_TOKENS = {
    "keys:read": lambda make_token, other: make_token("keys:read"),
    "keys:write": lambda make_token, other: make_token("keys:write"),
    "keys:read+write": lambda make_token, other: make_token("keys:read", "keys:write"),
    "another org's keys:secret": lambda make_token, other: make_token(
        "keys:read", "keys:secret", "keys:write", organization=other
    ),
}


@pytest.mark.parametrize("if_none_match", IF_NONE_MATCH_FORMS.values(), ids=IF_NONE_MATCH_FORMS)
@pytest.mark.parametrize("refused", REFUSED_TOKENS.values(), ids=REFUSED_TOKENS)
def test_retrieve_secret_refuses_a_token_that_may_not_reveal_even_when_the_etag_matches(
    make_token, other_organization, key, opened, refused, if_none_match
):
    """A 304 tells the caller that the copy it holds is current: as much as the secret."""
    token = refused(make_token, other_organization)
    with pytest.raises(PermissionDenied):
        retrieve_secret(
            actor=Access.for_token(token), key=key, if_none_match=if_none_match(key_etag(key))
        )
    opened.assert_not_called()
    assert recorder.pending() == 0


def test_retrieve_secret_refuses_before_saying_the_key_is_disabled(make_token, key, opened):
    edit(key, enabled=False)
    key.refresh_from_db()
    with pytest.raises(PermissionDenied):
        retrieve_secret(
            actor=Access.for_token(make_token("keys:read")), key=key, if_none_match=key_etag(key)
        )
    opened.assert_not_called()


def test_retrieve_secret_serves_a_keys_secret_token_and_revalidates_it(make_token, key, opened):
    actor = Access.for_token(make_token("keys:secret"))
    current = retrieve_secret(actor=actor, key=key, if_none_match=key_etag(key))
    assert current.not_modified and current.etag == key_etag(key)
    opened.assert_not_called()
    fetched = retrieve_secret(actor=actor, key=key, if_none_match='"stale"')
    assert fetched.secret == SECRET
    assert recorder.pending() == 2


def test_retrieve_secret_for_a_user_is_refused(organization, owner, key, opened):
    with pytest.raises(PermissionDenied):
        retrieve_secret(actor=Access.for_user(owner), key=key, if_none_match=key_etag(key))
    opened.assert_not_called()


def test_a_read_only_token_revalidating_over_the_api_gets_403_not_304(client, make_token, key):
    reader = make_token("keys:read")
    response = client.get(
        secret_url(key), HTTP_AUTHORIZATION=f"Bearer {reader.raw}", HTTP_IF_NONE_MATCH="*"
    )
    assert response.status_code == 403
    assert "keys:secret" in response.json()["detail"]
