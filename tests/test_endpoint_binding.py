"""Where a secret is sent: strict endpoint rules, a routing change needs the secret on every
surface, and the envelope is bound to the endpoint so a database writer cannot redirect a key.
"""

import io
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import crypto, providers, services
from keyvault.checks import check_legacy_envelopes
from keyvault.crypto import Envelope, IntegrityError
from keyvault.envelope_upgrade import legacy_keys
from keyvault.models import ProviderKey
from keyvault.sealing import SealedSecret, secret_context
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import key_row

pytestmark = pytest.mark.django_db

OPERATOR = Access.operator("tests")
SECRET = "azure-0123456789abcdef0123456789abcdef"
OTHER_SECRET = "azure-fedcba9876543210fedcba9876543210"
AZURE = {
    "endpoint": "https://contoso.openai.azure.com",
    "deployment": "gpt-4o",
    "api_version": "2024-06-01",
}
EVIL = "https://collector.evil.example"


def problems(provider_id: str, config: dict) -> dict:
    return providers.check_config(providers.get_provider(provider_id), config)[1]


# --- The rules -----------------------------------------------------------------------------

REFUSED_ENDPOINTS = {
    "another host": (EVIL, "must be a host under"),
    "plain http": ("http://contoso.openai.azure.com", "https://"),
    "user info": ("https://user:pw@contoso.openai.azure.com", "user name or password"),
    "user info hiding the host": ("https://contoso.openai.azure.com@evil.example", "user name"),
    "query string": ("https://contoso.openai.azure.com/?x=1", "query string"),
    "empty query": ("https://contoso.openai.azure.com/?", "query string"),
    "fragment": ("https://contoso.openai.azure.com/#x", "fragment"),
    "the suffix itself": ("https://openai.azure.com", "must be a host under"),
    "look-alike suffix": ("https://contoso.openai.azure.com.evil.example", "must be a host"),
    "loopback": ("https://127.0.0.1", "private, loopback or link-local"),
    "metadata service": ("http://169.254.169.254", "https://"),
    "metadata over https": ("https://169.254.169.254/latest", "private, loopback"),
    "private": ("https://10.1.2.3", "private, loopback"),
    "shared address space": ("https://100.64.0.1", "private, loopback"),
    "IPv6 loopback": ("https://[::1]/", "private, loopback"),
    "IPv4-mapped loopback": ("https://[::ffff:127.0.0.1]/", "private, loopback"),
    "IPv6 unique local": ("https://[fd00::1]/", "private, loopback"),
    "localhost": ("https://localhost/v1", "local host"),
    "internal name": ("https://llm.internal/v1", "local host"),
    "ftp": ("ftp://contoso.openai.azure.com", "https://"),
    "bad port": ("https://contoso.openai.azure.com:99999", "invalid port"),
}

# Hosts a proxy's URL parser folds into a refused address or name, and IPv6 forms carrying an
# IPv4 address: each refused as written.
DISGUISED_BASE_URLS = {
    "full-width digits": ("https://\uff11\uff16\uff19.254.169.254/latest", "ASCII"),
    "one full-width digit": ("https://169.254.169.\uff12\uff15\uff14/", "ASCII"),
    "full-width letters": ("https://metadata.google.\uff49\uff4e\uff54\uff45\uff52nal", "ASCII"),
    "soft hyphen": ("https://metadata.google.inter\u00adnal", "ASCII"),
    "zero-width space": ("https://llm\u200b.example.com", "ASCII"),
    "IPv4-compatible IPv6": ("https://[::169.254.169.254]/", "private, loopback"),
    "NAT64": ("https://[64:ff9b::a9fe:a9fe]/", "private, loopback"),
    "local-use NAT64": ("https://[64:ff9b:1::a9fe:a9fe]/", "private, loopback"),
    "6to4": ("https://[2002:7f00:1::]/", "private, loopback"),
    "unspecified": ("https://0.0.0.0/", "private, loopback"),
    "IPv6 unspecified": ("https://[::]/", "private, loopback"),
    "trailing dot": ("https://localhost./", "https://"),
    "trailing dot on a name": ("https://llm.internal./v1", "local host"),
}


@pytest.mark.parametrize(
    ("base_url", "message"), DISGUISED_BASE_URLS.values(), ids=DISGUISED_BASE_URLS
)
def test_disguised_hosts_are_refused(base_url, message):
    found = problems("openai_compatible", {"base_url": base_url})
    assert any(message in text for text in found["base_url"]), found


def test_international_names_are_accepted_in_their_ascii_form():
    assert problems("openai_compatible", {"base_url": "https://xn--bcher-kva.example/v1"}) == {}


@pytest.mark.parametrize(("endpoint", "message"), REFUSED_ENDPOINTS.values(), ids=REFUSED_ENDPOINTS)
def test_azure_endpoint_refusals(endpoint, message):
    found = problems("azure_openai", {**AZURE, "endpoint": endpoint})
    assert any(message in text for text in found["endpoint"]), found


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://contoso.openai.azure.com",
        "https://contoso.openai.azure.com/",
        "https://Contoso.OpenAI.Azure.com",
        "https://eastus-team.cognitiveservices.azure.com/",
    ],
)
def test_azure_hosts_are_accepted(endpoint):
    assert problems("azure_openai", {**AZURE, "endpoint": endpoint}) == {}


@pytest.mark.parametrize("version", ["2024-13-99", "2024-02-30", "2024-00-10", "0000-01-01x"])
def test_azure_api_version_must_be_a_real_date(version):
    assert "api_version" in problems("azure_openai", {**AZURE, "api_version": version})


@pytest.mark.parametrize("version", ["2024-02-29", "2024-10-01-preview"])
def test_real_azure_api_versions_are_accepted(version):
    assert problems("azure_openai", {**AZURE, "api_version": version}) == {}


@pytest.mark.parametrize("provider_id", ["openai", "anthropic", "openai_compatible", "mistral"])
@pytest.mark.parametrize(
    "base_url",
    ["http://llm.example.com/v1", "https://127.0.0.1:8000/v1", "https://a:b@llm.example.com"],
)
def test_base_urls_follow_the_same_rules(provider_id, base_url):
    assert "base_url" in problems(provider_id, {"base_url": base_url})


def test_a_base_url_may_name_any_public_host():
    assert problems("openai_compatible", {"base_url": "https://llm.example.com/v1"}) == {}


def test_the_operator_may_add_azure_hosts(settings):
    config = {**AZURE, "endpoint": "https://gateway.corp.example"}
    assert "endpoint" in problems("azure_openai", config)
    settings.KEYVAULT_ALLOWED_ENDPOINT_HOSTS = ["*.corp.example"]
    assert problems("azure_openai", config) == {}
    # The pattern covers subdomains, not the bare suffix, and not other hosts.
    assert "endpoint" in problems("azure_openai", {**AZURE, "endpoint": "https://corp.example"})
    assert "endpoint" in problems("azure_openai", {**AZURE, "endpoint": EVIL})


def test_the_operator_may_allow_private_endpoints(settings):
    config = {"base_url": "https://10.0.0.5:8443/v1"}
    assert "base_url" in problems("openai_compatible", config)
    settings.KEYVAULT_ALLOW_PRIVATE_ENDPOINTS = True
    assert problems("openai_compatible", config) == {}
    assert problems("openai_compatible", {"base_url": "https://localhost/v1"}) == {}
    # Still https only, still no user info.
    assert "base_url" in problems("openai_compatible", {"base_url": "http://10.0.0.5/v1"})
    assert "base_url" in problems("openai_compatible", {"base_url": "https://u:p@10.0.0.5/"})


# --- A routing change needs the secret, on every surface ------------------------------------


@pytest.fixture
def azure_key(organization):
    return ProviderKeyFactory(
        organization=organization, provider="azure_openai", config=AZURE, secret=SECRET
    )


def test_the_service_refuses_an_endpoint_change_without_the_secret(azure_key):
    before, events = key_row(azure_key), AuditEvent.objects.count()
    new_endpoint = "https://fabrikam.openai.azure.com"
    with pytest.raises(ValidationError) as excinfo:
        services.provider_key_update(
            key=azure_key, actor=OPERATOR, config={**AZURE, "endpoint": new_endpoint}
        )
    assert "needs the secret" in excinfo.value.message_dict["secret"][0]
    assert key_row(azure_key) == before
    assert AuditEvent.objects.count() == events


def test_other_settings_change_without_the_secret(azure_key):
    key = services.provider_key_update(
        key=azure_key, actor=OPERATOR, config={**AZURE, "deployment": "gpt-4o-mini"}
    )
    assert key.config["deployment"] == "gpt-4o-mini"
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == SECRET
    assert not AuditEvent.objects.filter(action=AuditAction.KEY_ENDPOINT_CHANGED).exists()


def test_an_endpoint_change_with_the_same_secret_reseals_it_as_a_rotation(azure_key):
    new_endpoint = "https://fabrikam.openai.azure.com"
    before = key_row(azure_key)

    key = services.provider_key_update(
        key=azure_key, actor=OPERATOR, config={**AZURE, "endpoint": new_endpoint}, secret=SECRET
    )

    loaded = ProviderKey.objects.get(pk=key.pk)
    assert loaded.config["endpoint"] == new_endpoint
    assert loaded.secret_hint == before["secret_hint"]
    assert loaded.secret.envelope != before["secret"]
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == SECRET
    event = AuditEvent.objects.get(action=AuditAction.KEY_ENDPOINT_CHANGED)
    assert event.metadata == {
        "from": {"endpoint": AZURE["endpoint"]},
        "to": {"endpoint": new_endpoint},
    }
    assert SECRET not in json.dumps(event.metadata)
    # The secret is never compared with the stored one (that would confirm guesses of it):
    # any secret given is a rotation.
    assert loaded.version == before["version"] + 1
    assert AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).count() == 1
    assert not AuditEvent.objects.filter(action=AuditAction.KEY_UPDATED).exists()


def test_an_edit_tells_nothing_about_whether_a_guessed_secret_is_right(azure_key):
    versions = []
    for guess in (OTHER_SECRET, SECRET):
        key = services.provider_key_update(key=azure_key, actor=OPERATOR, secret=guess)
        versions.append(ProviderKey.objects.get(pk=key.pk).version)
    assert versions == [2, 3]


def test_an_endpoint_change_with_a_new_secret_is_also_a_rotation(azure_key):
    new_endpoint = "https://fabrikam.openai.azure.com"
    key = services.provider_key_update(
        key=azure_key,
        actor=OPERATOR,
        config={**AZURE, "endpoint": new_endpoint, "deployment": "gpt-4.1"},
        secret=OTHER_SECRET,
    )
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert loaded.version == 2
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == OTHER_SECRET
    actions = list(
        AuditEvent.objects.filter(target_id=str(key.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[-3:] == [
        AuditAction.KEY_ENDPOINT_CHANGED,
        AuditAction.KEY_UPDATED,
        AuditAction.KEY_ROTATED,
    ]
    updated = AuditEvent.objects.get(action=AuditAction.KEY_UPDATED)
    assert updated.metadata["changes"]["config"] == {
        "from": {"deployment": "gpt-4o", "api_version": "2024-06-01"},
        "to": {"deployment": "gpt-4.1", "api_version": "2024-06-01"},
    }


def test_removing_a_base_url_is_a_routing_change_too(organization):
    key = ProviderKeyFactory(
        organization=organization, config={"base_url": "https://gw.example.com/v1"}
    )
    with pytest.raises(ValidationError) as excinfo:
        services.provider_key_update(key=key, actor=OPERATOR, config={})
    assert "secret" in excinfo.value.message_dict


def test_the_api_refuses_an_endpoint_change_without_the_secret(azure_key, make_token, client):
    token = make_token("keys:read", "keys:write")
    before = key_row(azure_key)

    response = client.patch(
        f"/api/v1/keys/{azure_key.pk}",
        data=json.dumps({"config": {**AZURE, "endpoint": "https://fabrikam.openai.azure.com"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )

    assert response.status_code == 400
    assert "secret" in response.json()["errors"]
    assert key_row(azure_key) == before

    response = client.patch(
        f"/api/v1/keys/{azure_key.pk}",
        data=json.dumps({"config": {**AZURE, "endpoint": EVIL}, "secret": SECRET}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 400
    assert "config" in response.json()["errors"]
    assert key_row(azure_key) == before


def test_the_api_applies_an_endpoint_change_that_brings_the_secret(azure_key, make_token, client):
    token = make_token("keys:read", "keys:secret", "keys:write")
    new_endpoint = "https://fabrikam.cognitiveservices.azure.com"
    response = client.patch(
        f"/api/v1/keys/{azure_key.pk}",
        data=json.dumps({"config": {**AZURE, "endpoint": new_endpoint}, "secret": SECRET}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 200, response.content
    assert SECRET not in response.content.decode()

    fetched = client.get(
        f"/api/v1/keys/{azure_key.pk}/secret", HTTP_AUTHORIZATION=f"Bearer {token.raw}"
    ).json()
    assert (fetched["secret"], fetched["config"]["endpoint"]) == (SECRET, new_endpoint)


def test_the_pages_refuse_an_endpoint_change_without_the_secret(
    organization, azure_key, owner, signed_in
):
    client = signed_in(owner)
    url = f"/o/{organization.slug}/keys/{azure_key.pk}/edit/"
    fields = {
        "name": azure_key.name,
        "config_endpoint": "https://fabrikam.openai.azure.com",
        "config_deployment": AZURE["deployment"],
        "config_api_version": AZURE["api_version"],
        "enabled": "on",
    }
    before = key_row(azure_key)

    refused = client.post(url, fields)

    assert refused.status_code == 200
    assert "needs the secret" in refused.context["form"].errors["secret"][0]
    assert key_row(azure_key) == before

    accepted = client.post(url, {**fields, "secret": SECRET})
    assert accepted.status_code == 302
    loaded = ProviderKey.objects.get(pk=azure_key.pk)
    assert loaded.config["endpoint"] == "https://fabrikam.openai.azure.com"
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == SECRET


def test_the_admin_refuses_an_endpoint_change_without_the_secret(tenants, signed_in, form_data):
    org = tenants.a.org
    key = ProviderKeyFactory(organization=org, provider="azure_openai", config=AZURE, secret=SECRET)
    client = signed_in(tenants.a.owner)
    url = f"/admin/keyvault/providerkey/{key.pk}/change/"
    data = form_data(client.get(url))
    # The admin asks for each of the provider's settings in its own input.
    data["config_endpoint"] = "https://fabrikam.openai.azure.com"
    before = key_row(key)

    response = client.post(url, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "needs the secret" in errors["new_secret"][0]
    assert key_row(key) == before

    response = client.post(url, {**data, "new_secret": SECRET})
    assert response.status_code == 302
    assert ProviderKey.objects.get(pk=key.pk).config["endpoint"].startswith("https://fabrikam")


# --- The binding: a database writer cannot redirect a key -----------------------------------


def test_pointing_a_key_elsewhere_in_the_database_breaks_its_decryption(azure_key):
    ProviderKey.objects.filter(pk=azure_key.pk).update(config={**AZURE, "endpoint": EVIL})
    with pytest.raises(IntegrityError):
        services.provider_key_reveal(key=ProviderKey.objects.get(pk=azure_key.pk), actor=OPERATOR)

    ProviderKey.objects.filter(pk=azure_key.pk).update(config=AZURE)
    loaded = ProviderKey.objects.get(pk=azure_key.pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == SECRET


def test_the_api_fails_closed_for_a_redirected_key(azure_key, make_token, client):
    token = make_token("keys:secret")
    ProviderKey.objects.filter(pk=azure_key.pk).update(config={**AZURE, "endpoint": EVIL})

    response = client.get(
        f"/api/v1/keys/{azure_key.pk}/secret", HTTP_AUTHORIZATION=f"Bearer {token.raw}"
    )

    assert response.status_code == 500
    assert response.json()["code"] == "key_integrity_error"
    assert SECRET not in response.content.decode()


def test_settings_that_do_not_route_the_secret_are_not_bound(azure_key):
    ProviderKey.objects.filter(pk=azure_key.pk).update(config={**AZURE, "deployment": "other"})
    loaded = ProviderKey.objects.get(pk=azure_key.pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == SECRET


# --- Format 1 rows: still readable, re-sealed by upgrade_envelopes ---------------------------


def seal_format_1(key: ProviderKey, plaintext: str) -> None:
    """Write `plaintext` into `key` the way format 1 sealed it (no binding), as rows written
    before format 2 hold it."""
    context = secret_context(key)
    keyring = crypto.get_keyring()
    dek, nonce = os.urandom(32), os.urandom(12)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext.encode(), context.data_aad(1))
    envelope = Envelope(1, keyring.wrap(dek, context, 1), nonce, ciphertext).encode()
    ProviderKey.objects.filter(pk=key.pk).update(secret=SealedSecret(envelope))


@pytest.fixture
def legacy_keys_of(organization, settings):
    # As during an upgrade: the process opens format 1 until upgrade_envelopes is done.
    settings.KEYVAULT_OPEN_LEGACY_ENVELOPES = True
    keys = []
    for n in range(5):
        key = ProviderKeyFactory(
            organization=organization,
            provider="azure_openai",
            config=AZURE,
            secret=f"{SECRET}{n}",
        )
        seal_format_1(key, f"{SECRET}{n}")
        keys.append(key)
    return keys


def test_a_format_1_row_still_opens_and_is_counted(legacy_keys_of):
    assert legacy_keys().count() == 5
    for n, key in enumerate(legacy_keys_of):
        loaded = ProviderKey.objects.get(pk=key.pk)
        assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == f"{SECRET}{n}"
    (warning,) = check_legacy_envelopes()
    assert warning.id == "keyvault.W106" and "5 stored secrets" in warning.msg


def test_upgrade_envelopes_binds_every_format_1_row_without_loss(legacy_keys_of):
    out = io.StringIO()
    call_command("upgrade_envelopes", "--batch-size", "2", stdout=out, stderr=io.StringIO())

    assert "Re-sealed 5 keys" in out.getvalue()
    assert legacy_keys().count() == 0
    # Nothing needs the legacy format any more: the checks ask for it to be switched off.
    assert [message.id for message in check_legacy_envelopes()] == ["keyvault.W107"]
    for n, key in enumerate(legacy_keys_of):
        loaded = ProviderKey.objects.get(pk=key.pk)
        assert Envelope.decode(loaded.secret.envelope).version == 2
        assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == f"{SECRET}{n}"
    # Now bound: redirecting one in the database breaks it.
    ProviderKey.objects.filter(pk=legacy_keys_of[0].pk).update(config={**AZURE, "endpoint": EVIL})
    with pytest.raises(IntegrityError):
        services.provider_key_reveal(
            key=ProviderKey.objects.get(pk=legacy_keys_of[0].pk), actor=OPERATOR
        )
    event = AuditEvent.objects.get(action=AuditAction.ENVELOPES_UPGRADED)
    assert event.metadata["resealed"] == 5


def test_upgrade_envelopes_is_resumable_after_an_interruption(legacy_keys_of, monkeypatch):
    from keyvault import envelope_upgrade

    real_batch = envelope_upgrade.upgrade_batch
    calls = []

    def interrupted_after_one_batch(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(envelope_upgrade, "upgrade_batch", interrupted_after_one_batch)
    with pytest.raises(CommandError, match="run upgrade_envelopes again"):
        call_command("upgrade_envelopes", "--batch-size", "2", stdout=io.StringIO())
    assert legacy_keys().count() == 3

    monkeypatch.setattr(envelope_upgrade, "upgrade_batch", real_batch)
    call_command("upgrade_envelopes", "--batch-size", "2", stdout=io.StringIO())
    assert legacy_keys().count() == 0
    for n, key in enumerate(legacy_keys_of):
        loaded = ProviderKey.objects.get(pk=key.pk)
        assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == f"{SECRET}{n}"


def test_a_database_error_during_the_upgrade_is_one_line_and_on_the_audit_trail(
    legacy_keys_of, monkeypatch
):
    from django.db import OperationalError

    from keyvault import envelope_upgrade

    real_batch = envelope_upgrade.upgrade_batch
    calls = []

    def connection_lost_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly\n\tDETAIL: …")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(envelope_upgrade, "upgrade_batch", connection_lost_on_the_second_batch)
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("upgrade_envelopes", "--batch-size", "2", stdout=out)

    assert str(excinfo.value) == (
        "The database refused after 2 keys (server closed the connection unexpectedly); "
        "run upgrade_envelopes again to continue."
    )
    assert out.getvalue() == ""
    assert legacy_keys().count() == 3
    # The two envelopes re-sealed before the error are accounted for, like any stopped run.
    event = AuditEvent.objects.get(action=AuditAction.ENVELOPES_UPGRADED)
    assert event.metadata == {
        "resealed": 2,
        "changed_concurrently": 0,
        "failed": 0,
        "interrupted": True,
    }


def test_a_rotation_during_the_upgrade_wins(legacy_keys_of, monkeypatch):
    from keyvault import envelope_upgrade

    real_swap = envelope_upgrade.swap_envelopes

    def rotate_first(swaps):
        services.provider_key_rotate(key=legacy_keys_of[0], actor=OPERATOR, secret=OTHER_SECRET)
        return real_swap(swaps)

    monkeypatch.setattr(envelope_upgrade, "swap_envelopes", rotate_first)
    out = io.StringIO()
    call_command("upgrade_envelopes", "--batch-size", "10", stdout=out)

    assert "1 changed by users meanwhile" in out.getvalue()
    loaded = ProviderKey.objects.get(pk=legacy_keys_of[0].pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == OTHER_SECRET


def test_upgrade_envelopes_names_rows_whose_endpoint_the_rules_now_refuse(legacy_keys_of):
    ProviderKey.objects.filter(pk=legacy_keys_of[1].pk).update(config={**AZURE, "endpoint": EVIL})
    out = io.StringIO()
    call_command("upgrade_envelopes", stdout=out)
    assert "endpoint the current rules refuse; check them (changing it needs the secret): " in (
        out.getvalue()
    )
    assert str(legacy_keys_of[1].pk) in out.getvalue()


def test_upgrade_envelopes_dry_run_and_nothing_to_do(legacy_keys_of):
    out = io.StringIO()
    call_command("upgrade_envelopes", "--dry-run", stdout=out)
    assert "5 keys would be re-sealed (dry run)." in out.getvalue()
    assert legacy_keys().count() == 5
    call_command("upgrade_envelopes", stdout=io.StringIO())
    out = io.StringIO()
    call_command("upgrade_envelopes", stdout=out)
    assert "Nothing to do." in out.getvalue()


def test_upgrade_envelopes_refuses_a_bad_batch_size():
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("upgrade_envelopes", "--batch-size", "0", stdout=io.StringIO())


def test_keyvault_status_counts_legacy_envelopes(legacy_keys_of):
    out = io.StringIO()
    call_command("keyvault_status", stdout=out)
    assert "Secrets in the legacy format, not bound to their endpoint: 5" in out.getvalue()


def test_with_legacy_envelopes_off_an_old_envelope_put_back_does_not_open(
    legacy_keys_of, settings, make_token, client
):
    old_envelope = ProviderKey.objects.get(pk=legacy_keys_of[0].pk).secret
    call_command("upgrade_envelopes", stdout=io.StringIO())
    settings.KEYVAULT_OPEN_LEGACY_ENVELOPES = False
    assert check_legacy_envelopes() == []
    # Someone with a backup restores the unbound envelope and points the key elsewhere.
    ProviderKey.objects.filter(pk=legacy_keys_of[0].pk).update(
        secret=old_envelope, config={**AZURE, "endpoint": EVIL}
    )

    with pytest.raises(crypto.LegacyEnvelopeError):
        services.provider_key_reveal(
            key=ProviderKey.objects.get(pk=legacy_keys_of[0].pk), actor=OPERATOR
        )
    token = make_token("keys:secret")
    response = client.get(
        f"/api/v1/keys/{legacy_keys_of[0].pk}/secret", HTTP_AUTHORIZATION=f"Bearer {token.raw}"
    )
    assert response.status_code == 500 and response.json()["code"] == "key_integrity_error"
    assert SECRET not in response.content.decode()
    (error,) = check_legacy_envelopes()
    assert error.id == "keyvault.E106"


def test_upgrade_envelopes_opens_legacy_rows_whatever_the_setting(legacy_keys_of, settings):
    settings.KEYVAULT_OPEN_LEGACY_ENVELOPES = False
    assert check_legacy_envelopes()[0].id == "keyvault.E106"
    call_command("upgrade_envelopes", stdout=io.StringIO())
    assert legacy_keys().count() == 0 and check_legacy_envelopes() == []
    for n, key in enumerate(legacy_keys_of):
        loaded = ProviderKey.objects.get(pk=key.pk)
        assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == f"{SECRET}{n}"


# --- A key changed behind Keyvault's back is not blessed by a new secret ---------------------


def test_rotating_a_redirected_key_is_refused(azure_key):
    ProviderKey.objects.filter(pk=azure_key.pk).update(config={**AZURE, "endpoint": EVIL})
    before = key_row(azure_key)

    for attempt in (
        lambda: services.provider_key_rotate(key=azure_key, actor=OPERATOR, secret=OTHER_SECRET),
        lambda: services.provider_key_update(key=azure_key, actor=OPERATOR, secret=OTHER_SECRET),
    ):
        with pytest.raises(ValidationError) as excinfo:
            attempt()
        assert "delete the key and add it again" in excinfo.value.message_dict["secret"][0]
        assert key_row(azure_key) == before


def test_the_api_refuses_to_rotate_a_redirected_key(azure_key, make_token, client):
    token = make_token("keys:read", "keys:write")
    ProviderKey.objects.filter(pk=azure_key.pk).update(config={**AZURE, "endpoint": EVIL})
    before = key_row(azure_key)
    response = client.patch(
        f"/api/v1/keys/{azure_key.pk}",
        data=json.dumps({"secret": OTHER_SECRET}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 400 and "secret" in response.json()["errors"]
    assert key_row(azure_key) == before


def test_the_rotation_event_records_where_the_secret_is_sent(azure_key):
    services.provider_key_rotate(key=azure_key, actor=OPERATOR, secret=OTHER_SECRET)
    event = AuditEvent.objects.get(action=AuditAction.KEY_ROTATED)
    assert event.metadata["sent_to"] == {"endpoint": AZURE["endpoint"]}


def test_changing_the_provider_in_the_database_breaks_decryption(organization):
    key = ProviderKeyFactory(organization=organization, secret="sk-proj-bound0123456789abcdef")
    ProviderKey.objects.filter(pk=key.pk).update(provider="deepseek")
    with pytest.raises(IntegrityError):
        services.provider_key_reveal(key=ProviderKey.objects.get(pk=key.pk), actor=OPERATOR)


def test_settings_outside_the_schema_are_never_handed_to_proxies(azure_key, make_token, client):
    token = make_token("keys:read", "keys:secret")
    ProviderKey.objects.filter(pk=azure_key.pk).update(
        config={**AZURE, "base_url": EVIL, "api_base": EVIL}
    )
    for path in (f"/api/v1/keys/{azure_key.pk}", f"/api/v1/keys/{azure_key.pk}/secret"):
        body = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token.raw}").json()
        assert body["config"] == AZURE
    assert (
        "evil"
        not in client.get(
            "/api/v1/resolve?provider=azure_openai&name=" + azure_key.name,
            HTTP_AUTHORIZATION=f"Bearer {token.raw}",
        ).content.decode()
    )


def test_a_row_of_a_provider_no_longer_known_is_listed_not_fatal(legacy_keys_of):
    ProviderKey.objects.filter(pk=legacy_keys_of[2].pk).update(provider="retired_provider")
    with pytest.raises(CommandError, match="1 keys could not be opened"):
        call_command("upgrade_envelopes", stdout=io.StringIO())
    assert legacy_keys().count() == 1
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("keyvault_status", "--verify", stdout=out, stderr=io.StringIO())
    assert f"{legacy_keys_of[2].pk}  unknown provider 'retired_provider'" in out.getvalue()
