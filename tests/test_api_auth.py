"""Authentication, scopes and throttling of the proxy API."""

import json
import logging
import os
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from core import counters
from keyvault import services
from keyvault.api import throttling
from keyvault.models import ProviderKey, ProxyToken
from organizations.access import Access
from tests import matrix
from tests.factories import ProviderKeyFactory
from tests.helpers import bearer

REDIS_URL = "redis://127.0.0.1:6379/15"
WWW_AUTHENTICATE = 'Bearer realm="keyvault"'
SCOPES = list(matrix.TOKEN_SCOPES)


@pytest.fixture
def frozen_window(monkeypatch):
    """One throttle window for the whole test, 42 seconds before it ends: a test that straddles
    a minute boundary would otherwise see its counters reset."""
    monkeypatch.setattr(throttling, "_window", lambda: (29_000_000, 42))


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _use_redis(settings) -> None:
    if not _redis_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}, and CI must exercise it.")
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI to make this fail).")
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }


@pytest.fixture(params=["locmem", "redis"])
def cache_backend(request, settings):
    """The throttles run on each cache backend the deployment may use."""
    if request.param == "redis":
        _use_redis(settings)
    cache.clear()
    yield request.param
    cache.clear()


@pytest.fixture
def redis_cache(settings):
    _use_redis(settings)
    cache.clear()
    yield
    cache.clear()


def assert_json_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    return body


# --- Every endpoint x every scope ---------------------------------------------------------------

# (name, method, path, scopes needed (none: any token will do), success status). A write
# answers with metadata, so it needs keys:read too.
WRITE = {"keys:write", "keys:read"}
ENDPOINTS = [
    ("ping", "get", "/api/v1/ping", set(), 200),
    ("list", "get", "/api/v1/keys", {"keys:read"}, 200),
    ("detail", "get", "/api/v1/keys/{id}", {"keys:read"}, 200),
    ("secret", "get", "/api/v1/keys/{id}/secret", {"keys:secret"}, 200),
    ("resolve", "get", "/api/v1/resolve?provider=openai", {"keys:secret"}, 200),
    ("snapshot", "get", "/api/v1/snapshot", {"keys:secret"}, 200),
    ("events", "get", "/api/v1/events?after=0", {"keys:read"}, 200),
    ("pool", "get", "/api/v1/pool?provider=openai", {"keys:secret"}, 200),
    ("fallback", "get", "/api/v1/resolve?provider=openai&fallback=true", {"keys:secret"}, 200),
    # A report answers health only: keys:secret alone (docs/permissions.md).
    ("report", "post", "/api/v1/keys/{id}/report", {"keys:secret"}, 202),
    ("test", "post", "/api/v1/keys/{id}/test", WRITE, 200),
    ("create", "post", "/api/v1/keys", WRITE, 201),
    ("update", "patch", "/api/v1/keys/{id}", WRITE, 200),
    ("delete", "delete", "/api/v1/keys/{id}", WRITE, 204),
]
BODIES = {
    "create": {"provider": "anthropic", "name": "Fresh", "secret": "sk-ant-api03-fresh-secret"},
    "update": {"name": "Renamed"},
    "report": {"status": 200},
}


def call(client, method, path, token, body=None):
    kwargs = bearer(token)
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(
    ("name", "method", "path", "needed", "success"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_endpoint_allows_its_scope_and_refuses_the_others(
    client, organization, make_token, name, method, path, needed, success, scope
):
    key = ProviderKeyFactory(organization=organization, provider="openai", is_default=True)
    token = make_token(scope)
    keys_before = ProviderKey.objects.count()
    events_before = AuditEvent.objects.count()

    response = call(client, method, path.format(id=key.pk), token, BODIES.get(name))

    if needed <= {scope}:
        assert response.status_code == success, response.content
    else:
        body = assert_json_error(response, 403)
        assert all(missing in body["detail"] for missing in needed - {scope})
        assert ProviderKey.objects.count() == keys_before
        assert AuditEvent.objects.count() == events_before
        key.refresh_from_db()
        assert key.name != "Renamed"


@pytest.mark.parametrize(
    ("name", "method", "path", "needed", "success"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_token_with_every_scope_reaches_every_endpoint(
    client, organization, make_token, name, method, path, needed, success
):
    key = ProviderKeyFactory(organization=organization, provider="openai", is_default=True)
    response = call(client, method, path.format(id=key.pk), make_token(*SCOPES), BODIES.get(name))
    assert response.status_code == success, response.content


WRITES = {
    "create": ("post", "/api/v1/keys", BODIES["create"]),
    "create-a-second-default": (
        "post",
        "/api/v1/keys",
        {
            "provider": "openai",
            "name": "Other",
            "secret": "sk-other-0123456789",
            "is_default": True,
        },
    ),
    "update-nothing": ("patch", "/api/v1/keys/{id}", {}),
    "update": ("patch", "/api/v1/keys/{id}", BODIES["update"]),
    "rotate": ("patch", "/api/v1/keys/{id}", {"secret": "sk-rotated-0123456789abcdef"}),
    "delete": ("delete", "/api/v1/keys/{id}", None),
}


@pytest.mark.parametrize(("method", "path", "body"), WRITES.values(), ids=WRITES)
def test_a_write_only_token_learns_no_metadata_from_any_write(
    client, organization, make_token, method, path, body
):
    """Without keys:read, a write is refused before it runs: its answer (the key's metadata)
    and its refusals (which name other keys) would tell what GET does not."""
    key = ProviderKeyFactory(organization=organization, name="Secretive", is_default=True)
    token = make_token("keys:write")
    keys_before, events_before = list(ProviderKey.objects.values()), AuditEvent.objects.count()

    response = call(client, method, path.format(id=key.pk), token, body)

    assert assert_json_error(response, 403) == {"detail": "The token lacks the scope keys:read."}
    assert list(ProviderKey.objects.values()) == keys_before
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize("name", ["create", "update"])
def test_a_token_that_may_also_read_gets_the_metadata_back(client, organization, make_token, name):
    method, path, body = WRITES[name]
    key = ProviderKeyFactory(organization=organization)

    response = call(
        client, method, path.format(id=key.pk), make_token("keys:write", "keys:read"), body
    )

    assert response.status_code in (200, 201), response.content
    assert response.json()["name"] == body["name"]
    assert set(response.json()) >= {"id", "hint", "config", "version"}


def test_ping_names_the_organization_token_and_scopes(client, organization, make_token):
    token = make_token("keys:read", name="edge-proxy")
    response = client.get("/api/v1/ping", **bearer(token))
    assert response.json() == {
        "organization": organization.slug,
        "token": "edge-proxy",
        "scopes": ["keys:read"],
    }


@pytest.mark.parametrize("method", ["put", "options"])
def test_method_not_served_answers_405_not_403(client, organization, make_token, method):
    key = ProviderKeyFactory(organization=organization)
    response = getattr(client, method)(f"/api/v1/keys/{key.pk}", **bearer(make_token("keys:read")))
    assert_json_error(response, 405)


def test_method_not_served_still_needs_a_token(client, provider_key):
    response = client.put(f"/api/v1/keys/{provider_key.pk}")
    assert_json_error(response, 401)


# --- 401 ------------------------------------------------------------------------------------

VALID_SHAPE = "kvp_" + "A" * 43
MALFORMED_HEADERS = {
    "wrong scheme": "Token " + VALID_SHAPE,
    "basic": "Basic dXNlcjpwYXNzd29yZA==",
    "scheme only": "Bearer",
    "three parts": f"Bearer {VALID_SHAPE} extra",
    "wrong prefix": "Bearer kvx_" + "A" * 43,
    "no prefix": "Bearer " + "A" * 47,
    "too short": "Bearer kvp_" + "A" * 42,
    "too long": "Bearer kvp_" + "A" * 44,
    "bad alphabet": "Bearer kvp_" + "A" * 42 + "+",
    "non-ascii latin-1": "Bearer kvp_" + "A" * 42 + "é",
    "non-latin-1": "Bearer kvp_" + "A" * 42 + "€",
    "token with a space": "Bearer kvp_" + "A" * 20 + " " + "A" * 22,
}


def test_missing_token_is_401_with_www_authenticate(client, db):
    response = client.get("/api/v1/ping")
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


@pytest.mark.parametrize("header", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
def test_malformed_token_is_401_without_a_database_lookup(
    client, db, django_assert_num_queries, header
):
    with django_assert_num_queries(0):
        response = client.get("/api/v1/ping", HTTP_AUTHORIZATION=header)
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_unknown_token_is_401_after_one_lookup(client, db, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/api/v1/ping", **bearer(VALID_SHAPE))
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_lower_case_scheme_is_accepted(client, make_token):
    token = make_token("keys:read")
    response = client.get("/api/v1/ping", HTTP_AUTHORIZATION=f"bearer {token.raw}")
    assert response.status_code == 200


def test_revoked_token_is_401(client, make_token):
    token = make_token("keys:read")
    services.proxy_token_revoke(token=token, actor=Access.operator("tests"))
    response = client.get("/api/v1/ping", **bearer(token))
    body = assert_json_error(response, 401)
    assert "revoked" in body["detail"]
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_expired_token_is_401(client, make_token):
    token = make_token("keys:read", expires_in_days=1)
    ProxyToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/v1/ping", **bearer(token))
    body = assert_json_error(response, 401)
    assert "expired" in body["detail"]
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_token_not_yet_expired_works(client, make_token):
    token = make_token("keys:read", expires_in_days=1)
    assert client.get("/api/v1/ping", **bearer(token)).status_code == 200


def test_token_of_a_deleted_organization_is_401(client, organization, make_token):
    token = make_token("keys:read")
    organization.delete()
    assert_json_error(client.get("/api/v1/ping", **bearer(token)), 401)


def test_the_401_body_never_echoes_the_token(client, make_token):
    token = make_token("keys:read")
    services.proxy_token_revoke(token=token, actor=Access.operator("tests"))
    response = client.get("/api/v1/ping", **bearer(token))
    assert token.raw not in response.content.decode()
    assert token.raw[4:] not in response.content.decode()


def test_schema_needs_no_token(client, db):
    response = client.get("/api/v1/schema")
    assert response.status_code == 200
    assert b"openapi" in response.content
    assert b"proxyToken" in response.content


def test_docs_page_needs_no_token_and_no_external_assets(client, db):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "cdn." not in html and "unpkg" not in html
    # No inline code (the Content-Security-Policy would block it): the page's own script is a
    # file of its own, which points Swagger UI at the schema.
    assert "<script>" not in html and "<style>" not in html
    script_url = re.search(r'<script src="([^"]*\?script[^"]*)"', html).group(1)
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200
    assert "/api/v1/schema" in script.content.decode()


# --- Throttling -----------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen_window")
def test_failed_authentication_is_throttled_per_address(
    client, settings, make_token, cache_backend
):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 3
    token = make_token("keys:read")
    for _ in range(3):
        assert_json_error(client.get("/api/v1/ping", **bearer(VALID_SHAPE)), 401)

    throttled = client.get("/api/v1/ping", **bearer(VALID_SHAPE))
    assert_json_error(throttled, 429)
    assert throttled["Retry-After"] == "42"
    # Malformed tokens count as failures too, and are throttled as well.
    assert_json_error(client.get("/api/v1/ping", HTTP_AUTHORIZATION="Basic eA=="), 429)

    # A valid token from the same address keeps working: one bad client behind a shared egress
    # cannot lock out the others.
    assert client.get("/api/v1/ping", **bearer(token)).status_code == 200
    # Another address has its own count.
    other = client.get("/api/v1/ping", REMOTE_ADDR="10.1.2.3", **bearer(VALID_SHAPE))
    assert_json_error(other, 401)


@pytest.mark.usefixtures("frozen_window")
def test_failures_count_in_the_shared_cache(client, settings, db, cache_backend):
    """Two app instances share their counters: the count lives in the cache, not the process."""
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 2
    client.get("/api/v1/ping", **bearer(VALID_SHAPE))
    client.get("/api/v1/ping", **bearer(VALID_SHAPE))
    assert cache.get("kv:throttle:authfail:127.0.0.1:29000000") == 2
    assert_json_error(client.get("/api/v1/ping", **bearer(VALID_SHAPE)), 429)


def test_failure_throttle_off_when_zero(client, settings, db):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 0
    for _ in range(5):
        assert_json_error(client.get("/api/v1/ping", **bearer(VALID_SHAPE)), 401)


@pytest.mark.usefixtures("frozen_window")
def test_token_rate_is_throttled_per_token(client, settings, make_token, cache_backend):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 2
    busy, quiet = make_token("keys:read"), make_token("keys:read")
    assert client.get("/api/v1/ping", **bearer(busy)).status_code == 200
    assert client.get("/api/v1/ping", **bearer(busy)).status_code == 200

    throttled = client.get("/api/v1/ping", **bearer(busy))
    assert_json_error(throttled, 429)
    assert throttled["Retry-After"] == "42"
    assert client.get("/api/v1/ping", **bearer(quiet)).status_code == 200


def test_token_rate_resets_with_the_window(client, settings, make_token, monkeypatch):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 1
    token = make_token("keys:read")
    monkeypatch.setattr(throttling, "_window", lambda: (1, 5))
    assert client.get("/api/v1/ping", **bearer(token)).status_code == 200
    assert client.get("/api/v1/ping", **bearer(token)).status_code == 429
    monkeypatch.setattr(throttling, "_window", lambda: (2, 60))
    assert client.get("/api/v1/ping", **bearer(token)).status_code == 200


def test_token_rate_off_when_zero(client, settings, make_token):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 0
    token = make_token("keys:read")
    for _ in range(5):
        assert client.get("/api/v1/ping", **bearer(token)).status_code == 200


@pytest.mark.usefixtures("redis_cache")
def test_redis_counter_increments_atomically_with_an_expiry():
    import redis

    assert counters.increment("kv:test:counter", timeout=throttling.COUNTER_TIMEOUT) == 1
    assert counters.increment("kv:test:counter", timeout=throttling.COUNTER_TIMEOUT) == 2
    raw = redis.Redis.from_url(REDIS_URL)
    [redis_key] = raw.keys("*kv:test:counter")
    assert 0 < raw.ttl(redis_key) <= throttling.COUNTER_TIMEOUT
    # Django's cache reads the same counter.
    assert cache.get("kv:test:counter") == 2


def test_window_reports_seconds_left():
    window, left = throttling._window()
    assert window > 0
    assert 1 <= left <= throttling.WINDOW_SECONDS


def test_authentication_never_writes(client, make_token):
    token = make_token("keys:read")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/ping", **bearer(token)).status_code == 200
    assert len(queries) == 1
    assert queries[0]["sql"].lstrip().upper().startswith("SELECT")


# --- Throttles fail open when the cache is down ---------------------------------------------

UNREACHABLE_REDIS = "redis://127.0.0.1:6390/0"


@pytest.fixture
def cache_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
        }
    }


def _throttle_warnings(caplog):
    return [
        record
        for record in caplog.records
        if record.name == "core.counters" and record.levelno == logging.WARNING
    ]


@pytest.mark.usefixtures("cache_down")
def test_a_valid_token_is_served_when_the_throttle_cache_is_down(
    client, organization, make_token, caplog
):
    ProviderKeyFactory(organization=organization)
    token = make_token("keys:read")
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        response = client.get("/api/v1/keys", **bearer(token))
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1
    (warning,) = _throttle_warnings(caplog)
    assert "Counter cache unavailable" in warning.getMessage()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.usefixtures("cache_down")
@pytest.mark.parametrize(
    "header", [f"Bearer {VALID_SHAPE}", "Basic dXNlcjpwYXNzd29yZA=="], ids=["unknown", "malformed"]
)
def test_a_bad_token_is_still_401_when_the_throttle_cache_is_down(client, db, caplog, header):
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        response = client.get("/api/v1/keys", HTTP_AUTHORIZATION=header)
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert len(_throttle_warnings(caplog)) == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.usefixtures("cache_down")
def test_a_proxy_still_gets_its_secret_when_the_throttle_cache_is_down(
    client, organization, make_token, caplog
):
    key = ProviderKeyFactory(organization=organization)
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        response = client.get(f"/api/v1/keys/{key.pk}/secret", **bearer(make_token("keys:secret")))
    assert response.status_code == 200, response.content
    assert response.json()["secret"].startswith("sk-proj-test")
    assert len(_throttle_warnings(caplog)) == 1


# --- The client address: REMOTE_ADDR, or the last hop of a trusted proxy's header ----------

XFF = "HTTP_X_FORWARDED_FOR"


def _address(**meta):
    request = RequestFactory().get("/api/v1/ping", **meta)
    return counters.client_address(request)


def test_client_address_is_remote_addr_by_default(settings):
    assert settings.KEYVAULT_CLIENT_IP_HEADER == ""
    meta = {"REMOTE_ADDR": "192.0.2.10", XFF: "203.0.113.5", "HTTP_X_REAL_IP": "203.0.113.6"}
    assert _address(**meta) == "192.0.2.10"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("198.51.100.23", "198.51.100.23"),
        ("203.0.113.5, 198.51.100.23", "198.51.100.23"),
        ("1.1.1.1,2.2.2.2,  198.51.100.23 ", "198.51.100.23"),
        ("203.0.113.5, 2001:DB8::0:1", "2001:db8::1"),
    ],
    ids=["one entry", "client and proxy", "several hops", "ipv6 normalized"],
)
def test_client_address_with_a_trusted_header_is_its_last_entry(settings, forwarded, expected):
    settings.KEYVAULT_CLIENT_IP_HEADER = XFF
    assert _address(REMOTE_ADDR="10.0.0.1", **{XFF: forwarded}) == expected


@pytest.mark.parametrize(
    "forwarded",
    ["", "   ", "unknown", "198.51.100.23, garbage", "198.51.100.23,", "999.1.1.1", "10.0.0.5:80"],
    ids=["empty", "blank", "word", "garbage last", "empty last", "out of range", "with a port"],
)
def test_client_address_falls_back_to_remote_addr_on_a_garbage_header(settings, forwarded):
    settings.KEYVAULT_CLIENT_IP_HEADER = XFF
    assert _address(REMOTE_ADDR="10.0.0.1", **{XFF: forwarded}) == "10.0.0.1"


def test_client_address_falls_back_to_remote_addr_without_the_header(settings):
    settings.KEYVAULT_CLIENT_IP_HEADER = XFF
    assert _address(REMOTE_ADDR="10.0.0.1") == "10.0.0.1"


def test_client_address_reads_the_header_the_setting_names(settings):
    settings.KEYVAULT_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    meta = {"REMOTE_ADDR": "10.0.0.1", XFF: "203.0.113.5", "HTTP_X_REAL_IP": "198.51.100.7"}
    assert _address(**meta) == "198.51.100.7"


def _fail_from(client, **meta):
    return client.get("/api/v1/ping", **bearer(VALID_SHAPE), **meta)


@pytest.mark.usefixtures("frozen_window")
def test_by_default_a_forwarded_header_cannot_pick_the_failure_bucket(client, settings, db):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 2
    assert_json_error(_fail_from(client, **{XFF: "10.9.0.1"}), 401)
    assert_json_error(_fail_from(client, **{XFF: "10.9.0.2"}), 401)
    # A new X-Forwarded-For per attempt does not buy a fresh count: REMOTE_ADDR decides.
    assert_json_error(_fail_from(client, **{XFF: "10.9.0.3"}), 429)
    assert cache.get("kv:throttle:authfail:127.0.0.1:29000000") == 3
    assert_json_error(_fail_from(client, REMOTE_ADDR="192.0.2.44"), 401)


@pytest.mark.usefixtures("frozen_window")
def test_with_a_trusted_header_failures_are_counted_per_last_hop(
    client, settings, db, cache_backend
):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 2
    settings.KEYVAULT_CLIENT_IP_HEADER = XFF
    assert_json_error(_fail_from(client, **{XFF: "203.0.113.1, 198.51.100.1"}), 401)
    assert_json_error(_fail_from(client, **{XFF: "203.0.113.2, 198.51.100.1"}), 401)
    # A forged first entry does not move the client to a fresh bucket.
    assert_json_error(_fail_from(client, **{XFF: "203.0.113.3, 198.51.100.1"}), 429)
    # Another last hop (another client behind the same proxy) has its own count.
    assert_json_error(_fail_from(client, **{XFF: "203.0.113.1, 198.51.100.2"}), 401)
    assert cache.get("kv:throttle:authfail:198.51.100.1:29000000") == 3
    assert cache.get("kv:throttle:authfail:198.51.100.2:29000000") == 1
    assert cache.get("kv:throttle:authfail:127.0.0.1:29000000") is None


@pytest.mark.usefixtures("frozen_window")
def test_a_garbage_trusted_header_counts_against_remote_addr(client, settings, db):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 2
    settings.KEYVAULT_CLIENT_IP_HEADER = XFF
    assert_json_error(_fail_from(client, **{XFF: "garbage-1"}), 401)
    assert_json_error(_fail_from(client, **{XFF: "198.51.100.1, garbage-2"}), 401)
    assert_json_error(_fail_from(client, **{XFF: "garbage-3"}), 429)
    assert cache.get("kv:throttle:authfail:127.0.0.1:29000000") == 3


def _create_key(client, token, **meta):
    body = {"provider": "anthropic", "name": "Audited", "secret": "sk-ant-api03-audited-secret"}
    return client.post(
        "/api/v1/keys",
        data=json.dumps(body),
        content_type="application/json",
        **bearer(token),
        **meta,
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [("", "192.0.2.10"), (XFF, "198.51.100.23")],
    ids=["default: REMOTE_ADDR", "trusted header: last hop"],
)
def test_an_api_write_records_the_client_address_in_the_audit_trail(
    client, settings, make_token, header, expected
):
    settings.KEYVAULT_CLIENT_IP_HEADER = header
    token = make_token("keys:write", "keys:read")
    hops = {"REMOTE_ADDR": "192.0.2.10", XFF: "203.0.113.5, 198.51.100.23"}
    response = _create_key(client, token, **hops)
    assert response.status_code == 201, response.content
    created = AuditEvent.objects.get(action=AuditAction.KEY_CREATED)
    assert created.ip_address == expected

    key_id = response.json()["id"]
    deleted = client.delete(f"/api/v1/keys/{key_id}", **bearer(token), **hops)
    assert deleted.status_code == 204
    assert AuditEvent.objects.get(action=AuditAction.KEY_DELETED).ip_address == expected


@pytest.mark.parametrize("header", ["", XFF], ids=["default", "trusted header"])
def test_client_address_is_none_without_any_ip_address(settings, header):
    settings.KEYVAULT_CLIENT_IP_HEADER = header
    assert _address(REMOTE_ADDR="") is None
    assert _address(REMOTE_ADDR="", **{XFF: "garbage"}) is None
    assert _address(REMOTE_ADDR="not-an-address") is None


@pytest.mark.parametrize("header", ["", XFF], ids=["default", "trusted header"])
def test_an_api_write_without_a_client_address_is_audited_without_one(
    client, settings, make_token, header
):
    """A server on a Unix socket may send an empty REMOTE_ADDR: the write still succeeds (the
    address column takes only IP addresses: on PostgreSQL "unknown" was a 500)."""
    settings.KEYVAULT_CLIENT_IP_HEADER = header
    response = _create_key(
        client, make_token("keys:write", "keys:read"), REMOTE_ADDR="", **{XFF: "garbage"}
    )
    assert response.status_code == 201, response.content
    assert AuditEvent.objects.get(action=AuditAction.KEY_CREATED).ip_address is None


@pytest.mark.usefixtures("frozen_window")
def test_failures_without_a_client_address_share_one_bucket(client, settings, db):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 1
    assert_json_error(_fail_from(client, REMOTE_ADDR=""), 401)
    assert_json_error(_fail_from(client, REMOTE_ADDR=""), 429)
    assert cache.get("kv:throttle:authfail:unknown:29000000") == 2
