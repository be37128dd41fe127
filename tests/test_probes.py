"""Connection tests against a local fake provider (pytest-httpserver) that checks the
credential each real provider expects: every provider kind passing, refused, timing out, and
refused for a private address; the secret never in the answer, a log or the audit trail; the
outbound client connecting to the address it checked (no DNS rebinding)."""

import base64
import contextlib
import json
import logging
import socket
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.wrappers import Response

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import health, outbound, probes, services, sigv4
from keyvault.models import ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import bearer, stored_beside_pages

OPERATOR = Access.operator("tests")

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _RSA.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
_OTHER_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)
SERVICE_ACCOUNT = "tester@vertex-project.iam.gserviceaccount.com"


def _service_account(pem) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "private_key_id": "kid-1",
            "private_key": pem,
            "client_email": SERVICE_ACCOUNT,
            # Never used: the document does not choose where its signature is sent.
            "token_uri": "http://169.254.169.254/token",
        }
    )


AKID = "AKIAABCDEFGHIJKLMNOP"


# Each provider kind: (provider, config, good secret, bad secret).
KINDS = {
    "openai": (
        {"organization": "org-abc123"},
        "sk-proj-goodGOODgood0123456789abcdef",
        "sk-proj-badBADbad0123456789abcdefgh",
    ),
    "openai_compatible": (
        {"base_url": "https://llm.example.com/v1"},
        "sk-compatGOOD0123456789abcdefghij",
        "sk-compatBAD0123456789abcdefghijk",
    ),
    "mistral": ({}, "mistralGOOD0123456789abcdefghijk", "mistralBAD0123456789abcdefghijkl"),
    "openrouter": ({}, "sk-or-v1-goodGOOD0123456789abcdef", "sk-or-v1-badBAD0123456789abcdefg"),
    "cohere": ({}, "cohereGOOD0123456789abcdefghijkl", "cohereBAD0123456789abcdefghijklm"),
    "anthropic": ({}, "sk-ant-goodGOODgood0123456789abcd", "sk-ant-badBADbad0123456789abcdefg"),
    "gemini": ({}, "AIzaGOODgood0123456789abcdefghijk", "AIzaBADbad0123456789abcdefghijklm"),
    "azure_openai": (
        {
            "endpoint": "https://contoso.openai.azure.com",
            "deployment": "gpt-4o",
            "api_version": "2024-06-01",
        },
        "azureGOOD0123456789abcdefghijklmn",
        "azureBAD0123456789abcdefghijklmno",
    ),
    "bedrock": (
        {"region": "us-east-1", "access_key_id": AKID},
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYGOODKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBADKEYY",
    ),
    "vertex": (
        {"project": "vertex-project", "location": "us-central1"},
        _service_account(_PEM),
        _service_account(_OTHER_PEM),
    ),
}


# Where each real provider's cheap authenticated call goes.
PATHS = {
    "openai": "/models",
    "openai_compatible": "/models",
    "mistral": "/models",
    "openrouter": "/key",
    "cohere": "/v1/models",
    "anthropic": "/v1/models",
    "gemini": "/v1beta/models",
    "azure_openai": "/openai/deployments/gpt-4o",
    "bedrock": "/foundation-models",
    "vertex": "/token",
}


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bedrock_signature_ok(request, secret) -> bool:
    """The request's signature recomputed by the AWS SDK's own signer."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = request.headers.get("Authorization", "")
    names = ("host", "x-amz-date", "x-amz-content-sha256")
    aws = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['Host']}{request.path}",
        headers={name: request.headers.get(name, "") for name in names},
    )
    aws.context["timestamp"] = request.headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(AKID, secret), "bedrock", "us-east-1")
    canonical = signer.canonical_request(aws)
    expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
    return authorization.endswith(f"Signature={expected}") and f"Credential={AKID}/" in (
        authorization
    )


def _vertex_assertion_ok(request, url) -> bool:
    form = request.form
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return False
    try:
        header, claims, signature = form.get("assertion", "").split(".")
        _RSA.public_key().verify(
            _b64decode(signature),
            f"{header}.{claims}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except Exception:
        return False
    payload = json.loads(_b64decode(claims))
    return payload["iss"] == SERVICE_ACCOUNT and payload["aud"] == url and "scope" in payload


class FakeProvider:
    """One handler per provider kind: the credential checked the way the real provider checks
    it; a refusal echoes what it received (as some providers do), which must go no further."""

    def __init__(self, server, provider, secret):
        self.server, self.provider, self.secret = server, provider, secret
        self.path = PATHS[provider]
        server.expect_request(self.path).respond_with_handler(self.handle)

    def accepted(self, request) -> bool:
        headers, secret = request.headers, self.secret
        if self.provider in ("openai", "openai_compatible", "mistral", "openrouter", "cohere"):
            ok = headers.get("Authorization") == f"Bearer {secret}"
            if self.provider == "openai":
                ok = ok and headers.get("OpenAI-Organization") == "org-abc123"
            return ok
        if self.provider == "anthropic":
            return headers.get("x-api-key") == secret and headers.get("anthropic-version")
        if self.provider == "gemini":
            return headers.get("x-goog-api-key") == secret
        if self.provider == "azure_openai":
            return (
                headers.get("api-key") == secret and request.args.get("api-version") == "2024-06-01"
            )
        if self.provider == "bedrock":
            return _bedrock_signature_ok(request, secret)
        if self.provider == "vertex":
            return request.method == "POST" and _vertex_assertion_ok(
                request, self.server.url_for("/token")
            )
        raise AssertionError(self.provider)

    def handle(self, request):
        if self.accepted(request):
            return Response(json.dumps({"data": []}), status=200, content_type="application/json")
        echoed = json.dumps({"error": f"Incorrect credential provided: {dict(request.headers)}"})
        if self.provider == "vertex":
            return Response(
                json.dumps({"error": "invalid_grant", "echo": echoed}),
                status=400,
                content_type="application/json",
            )
        return Response(echoed, status=401, content_type="application/json")


@pytest.fixture
def point_at(httpserver, settings):
    """Point `provider`'s tests at the local fake, which accepts `secret`."""

    def make(provider, secret):
        settings.KEYVAULT_PROVIDER_BASE_URLS = {provider: httpserver.url_for("").rstrip("/")}
        settings.KEYVAULT_ALLOW_PRIVATE_ENDPOINTS = True
        return FakeProvider(httpserver, provider, secret)

    return make


def make_key(organization, provider, secret):
    return ProviderKeyFactory(
        organization=organization, provider=provider, config=KINDS[provider][0], secret=secret
    )


@pytest.mark.parametrize("provider", sorted(KINDS))
def test_a_good_credential_passes(organization, point_at, httpserver, provider):
    _config, good, _bad = KINDS[provider]
    point_at(provider, good)
    key = make_key(organization, provider, good)
    result = services.provider_key_test(key=key, actor=OPERATOR)
    assert (result.ok, result.status) == (True, 200), result.detail
    assert len(httpserver.log) == 1
    key = ProviderKey.objects.get(pk=key.pk)
    assert key.last_check_ok is True
    assert key.last_checked_at == result.checked_at
    assert key.health == health.OK


@pytest.mark.parametrize("provider", sorted(KINDS))
def test_a_refused_credential_fails_and_marks_the_key_failing(
    organization, point_at, httpserver, provider, caplog
):
    caplog.set_level(logging.DEBUG)
    _config, good, bad = KINDS[provider]
    point_at(provider, good)
    key = make_key(organization, provider, bad)
    result = services.provider_key_test(key=key, actor=OPERATOR)
    assert result.ok is False
    assert result.status == (400 if provider == "vertex" else 401)
    assert "refused" in result.detail
    key = ProviderKey.objects.get(pk=key.pk)
    assert key.health == health.FAILING
    assert key.last_check_ok is False
    # The fake echoed what it received; none of it comes back.
    for text in (result.detail, caplog.text, stored_beside_pages_for_audit()):
        assert bad not in text
        assert "Incorrect credential" not in text


def stored_beside_pages_for_audit() -> str:
    return json.dumps([event.metadata for event in AuditEvent.objects.all()]) + " ".join(
        event.target_label + event.actor_label for event in AuditEvent.objects.all()
    )


def test_a_passing_test_clears_failing_and_both_changes_are_audited(organization, point_at):
    good = KINDS["openai"][1]
    point_at("openai", good)
    key = make_key(organization, "openai", good)
    services.provider_key_report(key=key, actor=OPERATOR, status=403)
    assert ProviderKey.objects.get(pk=key.pk).health == health.FAILING
    services.provider_key_test(key=ProviderKey.objects.get(pk=key.pk), actor=OPERATOR)
    assert ProviderKey.objects.get(pk=key.pk).health == health.OK
    events = AuditEvent.objects.filter(target_id=str(key.pk)).order_by("id")
    assert [e.action for e in events][-3:] == [
        AuditAction.KEY_HEALTH_CHANGED,
        AuditAction.KEY_TESTED,
        AuditAction.KEY_HEALTH_CHANGED,
    ]
    tested = events.get(action=AuditAction.KEY_TESTED)
    assert tested.metadata == {"ok": True, "status": 200, "detail": tested.metadata["detail"]}


@pytest.mark.parametrize("provider", sorted(KINDS))
def test_a_provider_that_does_not_answer_times_out(
    organization, point_at, httpserver, provider, monkeypatch
):
    _config, good, _bad = KINDS[provider]
    point_at(provider, good)
    httpserver.clear_all_handlers()

    release = threading.Event()

    def slow(request):
        release.wait(5)  # answers only after the client has given up
        return Response("{}", status=200)

    httpserver.expect_request(PATHS[provider]).respond_with_handler(slow)
    monkeypatch.setattr(outbound, "TIMEOUT_SECONDS", 0.2)
    key = make_key(organization, provider, good)
    result = services.provider_key_test(key=key, actor=OPERATOR)
    assert result.ok is False
    assert result.status is None
    assert result.detail.startswith("Timed out")
    key = ProviderKey.objects.get(pk=key.pk)
    assert key.last_check_ok is False
    assert key.health == health.OK  # a timeout says nothing against the credential
    # Let the fake finish its answer, so that it does not spill into the next test.
    release.set()
    for _ in range(100):
        if httpserver.log:
            break
        time.sleep(0.05)


@pytest.mark.parametrize("provider", sorted(KINDS))
def test_a_private_address_is_refused_without_a_call(
    organization, point_at, httpserver, settings, provider
):
    _config, good, _bad = KINDS[provider]
    point_at(provider, good)
    settings.KEYVAULT_ALLOW_PRIVATE_ENDPOINTS = False
    key = make_key(organization, provider, good)
    result = services.provider_key_test(key=key, actor=OPERATOR)
    assert result.ok is False
    assert result.status is None
    assert "private, loopback or link-local" in result.detail
    assert httpserver.log == []


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "169.254.169.254", "::1", "fd00::1", "::ffff:127.0.0.1", "100.64.0.1"]
)
def test_a_host_resolving_to_a_private_address_is_refused(monkeypatch, address):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))],
    )
    connected = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    with pytest.raises(outbound.OutboundRefused):
        outbound.request("GET", "https://api.provider.example/v1/models", headers={})
    assert connected == []


def test_any_private_answer_among_several_refuses_the_host(monkeypatch):
    answers = [("93.184.216.34", 443), ("127.0.0.1", 443)]
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", a) for a in answers],
    )
    with pytest.raises(outbound.OutboundRefused):
        outbound.checked_address("api.provider.example", 443)


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """DNS rebinding: a second lookup would answer a private address; none is made, and the
    socket is opened to the public address the check saw."""
    lookups = iter(["93.184.216.34", "127.0.0.1"])
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(lookups), port))
        ],
    )
    connected = []

    def connect(address, timeout=None, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(socket, "create_connection", connect)
    with pytest.raises(outbound.OutboundFailed):
        outbound.request("GET", "https://api.provider.example/v1/models", headers={})
    assert connected == [("93.184.216.34", 443)]


def test_redirects_are_not_followed(organization, point_at, httpserver):
    good = KINDS["openai"][1]
    point_at("openai", good)
    httpserver.clear_all_handlers()
    httpserver.expect_request("/models").respond_with_response(
        Response("", status=302, headers={"Location": "http://169.254.169.254/latest"})
    )
    key = make_key(organization, "openai", good)
    result = services.provider_key_test(key=key, actor=OPERATOR)
    assert (result.ok, result.status) == (False, 302)
    assert len(httpserver.log) == 1


def test_a_keys_own_base_url_is_used_without_an_override(organization, settings):
    settings.KEYVAULT_PROVIDER_BASE_URLS = {}
    key = ProviderKeyFactory(
        organization=organization,
        provider="openai_compatible",
        config={"base_url": "https://llm.example.com/v1/"},
    )
    assert probes.base_url(key) == "https://llm.example.com/v1"
    plain = ProviderKeyFactory(
        organization=organization, provider="anthropic", secret="sk-ant-x" * 4
    )
    assert probes.base_url(plain) == "https://api.anthropic.com"
    bedrock = ProviderKeyFactory(
        organization=organization,
        provider="bedrock",
        config={"region": "eu-west-1", "access_key_id": AKID},
        secret="secret-access-key-0123456789",
    )
    assert probes.base_url(bedrock) == "https://bedrock.eu-west-1.amazonaws.com"


def test_the_test_settings_cover_every_provider():
    """No test reaches a real provider: config/settings_test.py points every one elsewhere."""
    from django.conf import settings

    from keyvault.providers import PROVIDERS

    assert set(settings.KEYVAULT_PROVIDER_BASE_URLS) == {p.id for p in PROVIDERS}


def test_sigv4_matches_the_published_example_shape():
    """A fixed request signed twice gives one signature; a different secret another."""
    from datetime import UTC, datetime

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sign = lambda secret: sigv4.signed_headers(  # noqa: E731
        method="GET",
        url="https://bedrock.us-east-1.amazonaws.com/foundation-models",
        region="us-east-1",
        service="bedrock",
        access_key_id=AKID,
        secret_access_key=secret,
        now=now,
    )
    first, again, other = sign("s1"), sign("s1"), sign("s2")
    assert first == again
    assert first["Authorization"] != other["Authorization"]
    assert first["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AKID}/20260102/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
    )
    assert first["X-Amz-Date"] == "20260102T030405Z"
    assert "s1" not in json.dumps(first)


# --- The API ------------------------------------------------------------------------------------


def test_the_api_answers_the_result_without_the_secret(
    api_client, organization, point_at, make_token, caplog
):
    caplog.set_level(logging.DEBUG)
    good = KINDS["openai"][1]
    point_at("openai", good)
    key = make_key(organization, "openai", good)
    token = make_token("keys:read", "keys:write")
    response = api_client.post(f"/api/v1/keys/{key.pk}/test", **bearer(token))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"ok", "status", "detail", "checked_at"}
    assert (body["ok"], body["status"]) == (True, 200)
    assert good not in response.content.decode()
    assert good not in caplog.text
    assert good not in stored_beside_pages(api_client)


@pytest.mark.parametrize("scopes", [["keys:write"], ["keys:read"], ["keys:secret"]])
def test_the_api_test_needs_keys_write_and_keys_read(
    api_client, provider_key, make_token, httpserver, scopes
):
    response = api_client.post(
        f"/api/v1/keys/{provider_key.pk}/test", **bearer(make_token(*scopes))
    )
    assert response.status_code == 403
    assert httpserver.log == []
    assert ProviderKey.objects.get(pk=provider_key.pk).last_checked_at is None


def test_another_organizations_key_cannot_be_tested(
    api_client, provider_key, make_token, other_organization, httpserver
):
    token = make_token("keys:read", "keys:write", organization=other_organization)
    response = api_client.post(f"/api/v1/keys/{provider_key.pk}/test", **bearer(token))
    assert response.status_code == 404
    assert httpserver.log == []


def test_a_viewer_cannot_test_a_key(provider_key, actor_of):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.provider_key_test(key=provider_key, actor=actor_of("viewer"))


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline(monkeypatch, settings):
    """The timeout is one deadline for the whole exchange, not one per read: a server sending
    a header line just inside each read's timeout does not keep the call (and the request
    thread that makes it) going."""
    settings.KEYVAULT_ALLOW_PRIVATE_ENDPOINTS = True
    monkeypatch.setattr(outbound, "TIMEOUT_SECONDS", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    finished = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            # Fourteen lines, 0.2 s apart: each read is answered well within its timeout,
            # the whole answer takes three seconds.
            for n in range(14):
                if finished.is_set():
                    break
                with contextlib.suppress(OSError):
                    conn.sendall(f"X-Slow-{n}: y\r\n".encode())
                time.sleep(0.2)
            with contextlib.suppress(OSError):
                conn.sendall(b"Content-Length: 2\r\n\r\n{}")

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    try:
        with pytest.raises(outbound.OutboundTimeout):
            outbound.request("GET", f"http://127.0.0.1:{port}/v1/models", headers={})
    finally:
        finished.set()
        server.join(5)
        listener.close()
