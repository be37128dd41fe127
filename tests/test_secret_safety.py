"""Control characters inside secrets are refused: proxies put a secret into an HTTP header, and
a line break there injects headers. Multi-line credentials keep the line breaks they need."""

import json

import pytest
from django.core.exceptions import ValidationError

from keyvault import services
from keyvault.models import ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import snapshot

pytestmark = pytest.mark.django_db

OPERATOR = Access.operator("tests")
INJECTION = "sk-abc\r\nX-Injected: 1"
HEADER_BREAKERS = {
    "CRLF": INJECTION,
    "LF": "sk-abc\nX-Injected: 1",
    "CR": "sk-abc\rX-Injected: 1",
    "tab": "sk-abc\tdef0123456789",
    "NUL": "sk-abc\x00def0123456789",
    "DEL": "sk-abc\x7fdef0123456789",
    "C1 next line": "sk-abc\x85def0123456789",
    "line separator": "sk-abc\u2028def0123456789",
    "paragraph separator": "sk-abc\u2029def0123456789",
    "escape": "sk-abc\x1b[2Jdef0123456789",
}
# Not control characters, but outside the visible ASCII of a header value: some stacks keep only
# the low byte (U+010D U+010A become CR LF).
NON_ASCII = {
    "low bytes CR LF": "sk-abc\u010d\u010aX-Injected: 1",
    "zero-width space": "sk-abc\u200bdef0123456789",
    "byte order mark": "\ufeffsk-abcdef0123456789",
    "right-to-left override": "sk-abc\u202edef0123456789",
    "accent": "sk-abcdéf0123456789",
    "emoji": "sk-🔑-0123456789",
}
SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "client_email": "svc@project.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----\n",
    },
    indent=2,
)
VERTEX = {"project": "my-project-01", "location": "us-central1"}


@pytest.mark.parametrize("secret", HEADER_BREAKERS.values(), ids=HEADER_BREAKERS)
def test_a_single_line_secret_with_control_characters_is_refused(organization, secret):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.provider_key_create(
            organization=organization, actor=OPERATOR, provider="openai", name="x", secret=secret
        )
    (message,) = excinfo.value.message_dict["secret"]
    assert "control characters" in message
    assert "sk-abc" not in message and "Injected" not in message
    assert snapshot() == before


@pytest.mark.parametrize("secret", NON_ASCII.values(), ids=NON_ASCII)
def test_a_single_line_secret_must_be_printable_ascii_text_for_a_header(organization, secret):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.provider_key_create(
            organization=organization, actor=OPERATOR, provider="openai", name="x", secret=secret
        )
    assert "printable ASCII" in excinfo.value.message_dict["secret"][0]
    assert snapshot() == before


@pytest.mark.parametrize("secret", HEADER_BREAKERS.values(), ids=HEADER_BREAKERS)
def test_a_rotation_to_such_a_secret_is_refused(provider_key, secret):
    before = ProviderKey.objects.get(pk=provider_key.pk).secret.envelope
    with pytest.raises(ValidationError):
        services.provider_key_rotate(key=provider_key, actor=OPERATOR, secret=secret)
    assert ProviderKey.objects.get(pk=provider_key.pk).secret.envelope == before


def test_line_breaks_around_a_pasted_secret_are_trimmed_not_refused(organization):
    key = ProviderKeyFactory(organization=organization, secret="\r\n sk-proj-pasted0123456789\n")
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == "sk-proj-pasted0123456789"


def test_a_service_account_json_keeps_its_line_breaks(organization):
    key = ProviderKeyFactory(
        organization=organization, provider="vertex", config=VERTEX, secret=SERVICE_ACCOUNT
    )
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == SERVICE_ACCOUNT


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\u2028", "\x85"])
def test_a_multi_line_secret_still_refuses_other_control_characters(organization, bad):
    secret = SERVICE_ACCOUNT.replace("svc@", f"svc{bad}@")
    with pytest.raises(ValidationError) as excinfo:
        services.provider_key_create(
            organization=organization,
            actor=OPERATOR,
            provider="vertex",
            name="sa",
            secret=secret,
            config=VERTEX,
        )
    assert "other than line breaks" in excinfo.value.message_dict["secret"][0]


def test_the_api_answers_400_and_stores_nothing(make_token, client):
    token = make_token("keys:read", "keys:write")
    before = snapshot()
    response = client.post(
        "/api/v1/keys",
        data=json.dumps({"provider": "openai", "name": "edge", "secret": INJECTION}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 400
    assert "secret" in response.json()["errors"]
    assert "Injected" not in response.content.decode()
    assert snapshot() == before


def test_the_api_refuses_a_rotation_to_such_a_secret(provider_key, make_token, client):
    token = make_token("keys:read", "keys:write")
    before = ProviderKey.objects.get(pk=provider_key.pk).secret.envelope
    response = client.patch(
        f"/api/v1/keys/{provider_key.pk}",
        data=json.dumps({"secret": INJECTION}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 400
    assert ProviderKey.objects.get(pk=provider_key.pk).secret.envelope == before


def test_the_pages_show_a_form_error(organization, owner, signed_in):
    client = signed_in(owner)
    before = snapshot()
    response = client.post(
        f"/o/{organization.slug}/keys/add/?provider=openai",
        {"name": "edge", "secret": INJECTION, "enabled": "on"},
    )
    assert response.status_code == 200
    assert "control characters" in response.context["form"].errors["secret"][0]
    assert "Injected" not in response.content.decode()
    assert snapshot() == before


def test_keyvault_status_lists_stored_secrets_that_break_todays_rules(provider_key):
    import io

    from django.core.management import call_command

    from keyvault.sealing import SealedSecret, seal_secret

    # Sealed as an older version of Keyvault would have stored it, bypassing today's rule.
    sealed = seal_secret(provider_key, INJECTION)
    ProviderKey.objects.filter(pk=provider_key.pk).update(secret=SealedSecret(sealed.envelope))
    out = io.StringIO()
    call_command("keyvault_status", "--verify", stdout=out, stderr=io.StringIO())
    assert "Secrets with characters refused today (rotate them): 1" in out.getvalue()
    assert str(provider_key.pk) in out.getvalue()
