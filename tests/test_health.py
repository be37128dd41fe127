"""`/healthz`: database and keyring reachable, JSON, no token, no secret work, and reachable
by a probe whatever host name or scheme it uses."""

import pytest
from django.db import DatabaseError
from django.test import Client

from keyvault.crypto import KeyringConfigurationError
from keyvault.usage import recorder
from tests.factories import ProviderKeyFactory


def test_healthz_is_ok_without_a_token(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "keyring": "ok"}}


def test_healthz_decrypts_nothing(client, organization, monkeypatch):
    ProviderKeyFactory(organization=organization)

    def refuse(*args, **kwargs):
        raise AssertionError("the health check touched a secret")

    for name in ("unwrap", "wrap"):
        monkeypatch.setattr(f"keyvault.crypto.keyring.LocalKeyring.{name}", refuse)
    monkeypatch.setattr("keyvault.services.provider_key_reveal", refuse)
    pending = recorder.pending()
    assert client.get("/healthz").status_code == 200
    assert recorder.pending() == pending


def test_healthz_answers_any_host_over_plain_http_in_production(db, settings):
    # A container engine or load balancer probes http://127.0.0.1:8000/healthz: neither the
    # HTTPS redirect nor ALLOWED_HOSTS stands in its way (the rest of the site stays guarded).
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["keyvault.example.com"]
    client = Client(HTTP_HOST="10.0.0.7:8000")
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/sign-in/").status_code == 400


def test_healthz_is_503_naming_the_database_when_it_does_not_answer(client, db, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise DatabaseError("connection refused to secret-host")

    monkeypatch.setattr("config.health.connection", Unreachable())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed", "keyring": "ok"},
    }
    assert b"secret-host" not in response.content


def test_healthz_is_503_naming_the_keyring_when_none_loads(client, db, monkeypatch):
    def broken():
        raise KeyringConfigurationError("No key-encryption key is configured")

    monkeypatch.setattr("config.health.get_keyring", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "keyring": "failed"}


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_healthz_takes_only_get_and_head(db, method):
    response = getattr(Client(enforce_csrf_checks=True), method)("/healthz")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_healthz_is_not_throttled(client, db, settings):
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 1
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
