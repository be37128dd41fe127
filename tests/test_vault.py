"""The Vault-compatible surface, driven by `hvac` itself against the live server: what gateways
built on Vault clients read, refused as Vault refuses, and the JSON shapes LiteLLM and External
Secrets Operator read pinned."""

from datetime import timedelta

import hvac
import pytest
import requests
from django.utils import timezone
from hvac import exceptions

from keyvault import services
from keyvault.models import KeyUsage, ProxyToken
from keyvault.usage import recorder
from organizations.access import Access
from tests.factories import OrganizationFactory, ProviderKeyFactory, ProxyTokenFactory

OPERATOR = Access.operator("tests")
DEFAULT = "sk-proj-vaultDEFAULTabcdefghijklmnopqrstuvwxyz0"
NAMED = "sk-ant-api03-vaultNAMEDabcdefghijklmnopqrstuvwx"
NEWER = "sk-ant-api03-vaultNEWERabcdefghijklmnopqrstuvwx"
FOREIGN = "sk-proj-vaultFOREIGNabcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def world(transactional_db):
    organization = OrganizationFactory(slug="acme")
    default = ProviderKeyFactory(
        organization=organization,
        provider="openai",
        name="default",
        secret=DEFAULT,
        is_default=True,
        config={"organization": "org-123"},
    )
    named = ProviderKeyFactory(
        organization=organization, provider="anthropic", name="Prod", secret=NAMED
    )
    other = OrganizationFactory(slug="other")
    ProviderKeyFactory(
        organization=other, provider="openai", name="theirs", secret=FOREIGN, is_default=True
    )
    ProviderKeyFactory(organization=other, provider="anthropic", name="Prod", secret=FOREIGN)
    return organization, default, named


@pytest.fixture
def vault(live_server, world):
    """`vault(*scopes, **token options)`: an hvac client holding a new token of the world's
    organization."""

    def client(*scopes, **options):
        token = ProxyTokenFactory(
            organization=world[0], scopes=list(scopes or ("keys:read", "keys:secret")), **options
        )
        return hvac.Client(url=f"{live_server.url}/vault", token=token.raw)

    return client


def read(client, path, **kwargs):
    return client.secrets.kv.v2.read_secret_version(
        path=path, mount_point="keyvault", raise_on_deleted_version=True, **kwargs
    )


# --- reads ---------------------------------------------------------------------------------------


def test_the_provider_default_is_read_as_litellm_reads_it(vault):
    answer = read(vault(), "openai")
    # LiteLLM's Vault secret manager takes data.data.key.
    assert answer["data"]["data"]["key"] == DEFAULT
    assert answer["data"]["data"]["organization"] == "org-123"
    assert answer["data"]["metadata"]["version"] == 1
    assert answer["data"]["metadata"]["destroyed"] is False
    assert answer["data"]["metadata"]["deletion_time"] == ""
    assert answer["data"]["metadata"]["custom_metadata"]["provider"] == "openai"
    assert answer["lease_id"] == "" and answer["lease_duration"] == 0
    assert answer["renewable"] is False
    assert answer["wrap_info"] is None and answer["warnings"] is None and answer["auth"] is None
    assert answer["request_id"]


def test_a_named_key_is_read_in_any_case(vault, world):
    answer = read(vault(), "anthropic/prod")
    assert answer["data"]["data"] == {"key": NAMED}
    metadata = answer["data"]["metadata"]["custom_metadata"]
    assert metadata == {
        "provider": "anthropic",
        "name": "Prod",
        "key_id": str(world[2].pk),
        "hint": world[2].secret_hint,
    }


def test_an_older_version_is_read_with_its_number(vault, world):
    services.provider_key_rotate(key=world[2], actor=OPERATOR, secret=NEWER)
    client = vault()
    current = read(client, "anthropic/Prod")
    assert (current["data"]["data"]["key"], current["data"]["metadata"]["version"]) == (NEWER, 2)
    older = read(client, "anthropic/Prod", version=1)
    assert (older["data"]["data"]["key"], older["data"]["metadata"]["version"]) == (NAMED, 1)
    assert read(client, "anthropic/Prod", version=2)["data"]["data"]["key"] == NEWER
    with pytest.raises(exceptions.InvalidPath):
        read(client, "anthropic/Prod", version=3)


def test_metadata_lists_current_and_oldest_versions(vault, world):
    services.provider_key_rotate(key=world[2], actor=OPERATOR, secret=NEWER)
    answer = vault("keys:read").secrets.kv.v2.read_secret_metadata(
        path="anthropic/prod", mount_point="keyvault"
    )
    data = answer["data"]
    assert (data["current_version"], data["oldest_version"]) == (2, 1)
    assert set(data["versions"]) == {"1", "2"}
    assert data["created_time"].endswith("Z") and data["updated_time"].endswith("Z")
    assert data["custom_metadata"]["name"] == "Prod"
    assert NAMED not in str(answer) and NEWER not in str(answer)


def test_listing_names_providers_then_keys(vault):
    client = vault("keys:read")
    root = client.secrets.kv.v2.list_secrets(path="", mount_point="keyvault")
    assert root["data"]["keys"] == ["anthropic/", "openai/"]
    names = client.secrets.kv.v2.list_secrets(path="anthropic", mount_point="keyvault")
    assert names["data"]["keys"] == ["Prod"]


def test_listing_with_get_and_list_true(vault, live_server):
    token = vault("keys:read").token
    response = requests.get(
        f"{live_server.url}/vault/v1/keyvault/metadata/?list=true",
        headers={"X-Vault-Token": token},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"keys": ["anthropic/", "openai/"]}


def test_lookup_self_pins_what_external_secrets_operator_reads(vault):
    client = vault("keys:read", "keys:secret", expires_in_days=30)
    assert client.is_authenticated()
    data = client.auth.token.lookup_self()["data"]
    assert data["type"] == "service"
    assert data["renewable"] is False
    assert data["policies"] == ["keys:read", "keys:secret"]
    assert 29 * 86400 < data["ttl"] <= 30 * 86400
    assert data["expire_time"].endswith("Z")
    assert data["display_name"] == ProxyToken.objects.get(last_four=client.token[-4:]).name
    assert client.token not in str(data)


def test_a_token_without_expiry_has_no_ttl(vault):
    data = vault().auth.token.lookup_self()["data"]
    assert (data["ttl"], data["expire_time"]) == (0, None)


def test_the_mount_is_kv_version_2(vault, live_server):
    response = vault().adapter.get("/v1/sys/internal/ui/mounts/keyvault/data/openai")
    assert response["data"]["path"] == "keyvault/"
    assert response["data"]["type"] == "kv"
    assert response["data"]["options"] == {"version": "2"}


def test_bearer_works_like_x_vault_token(vault, live_server):
    token = vault().token
    response = requests.get(
        f"{live_server.url}/vault/v1/keyvault/data/openai",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["data"]["data"]["key"] == DEFAULT
    assert response.headers["Cache-Control"] == "no-store"


def test_a_read_is_accounted_as_a_retrieval(vault, world):
    client = vault()
    read(client, "openai")
    recorder.flush()
    assert KeyUsage.objects.get(key=world[1]).count == 1
    assert KeyUsage.objects.filter(key=world[2]).count() == 0


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "kvp_" + "A" * 43, "not-a-token", "s.hvs.CAESIvault"],
    ids=["missing", "unknown", "malformed", "a vault token"],
)
def test_a_bad_token_is_forbidden(live_server, world, token):
    client = hvac.Client(url=f"{live_server.url}/vault", token=token)
    with pytest.raises(exceptions.Forbidden) as refused:
        read(client, "openai")
    assert refused.value.errors == ["permission denied"]
    assert client.is_authenticated() is False


def test_a_revoked_token_is_forbidden(vault):
    client = vault()
    revoked = ProxyToken.objects.get(last_four=client.token[-4:])
    services.proxy_token_revoke(token=revoked, actor=OPERATOR)
    with pytest.raises(exceptions.Forbidden):
        read(client, "openai")
    assert client.is_authenticated() is False


def test_an_expired_token_is_forbidden(vault):
    client = vault()
    ProxyToken.objects.filter(last_four=client.token[-4:]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(exceptions.Forbidden):
        read(client, "openai")


def test_a_missing_scope_is_forbidden(vault):
    with pytest.raises(exceptions.Forbidden):
        read(vault("keys:read"), "openai")
    with pytest.raises(exceptions.Forbidden):
        vault("keys:secret").secrets.kv.v2.list_secrets(path="", mount_point="keyvault")


@pytest.mark.parametrize(
    "path", ["openai/theirs", "mistral", "anthropic/nope", "anthropic/Prod/more", "unknown/x"]
)
def test_another_organizations_keys_and_unknown_paths_are_invalid_paths(vault, path):
    with pytest.raises(exceptions.InvalidPath) as missing:
        read(vault(), path)
    assert missing.value.errors == []


def test_an_unknown_mount_is_an_invalid_path(vault):
    with pytest.raises(exceptions.InvalidPath):
        vault().secrets.kv.v2.read_secret_version(
            path="openai", mount_point="secret", raise_on_deleted_version=True
        )


def test_a_disabled_key_is_not_served(vault, world):
    services.provider_key_update(key=world[1], actor=OPERATOR, enabled=False)
    services.provider_key_update(key=world[2], actor=OPERATOR, enabled=False)
    client = vault()
    for path in ("openai", "openai/default", "anthropic/Prod"):
        with pytest.raises(exceptions.InvalidPath):
            read(client, path)


@pytest.mark.parametrize(
    "write",
    [
        lambda kv: kv.create_or_update_secret(path="openai", secret={"key": "x"}),
        lambda kv: kv.patch(path="openai", secret={"key": "x"}),
        lambda kv: kv.delete_latest_version_of_secret(path="openai"),
        lambda kv: kv.delete_metadata_and_all_versions(path="openai/default"),
        lambda kv: kv.destroy_secret_versions(path="openai", versions=[1]),
    ],
    ids=["create", "patch", "delete", "delete metadata", "destroy"],
)
def test_writes_are_refused(vault, world, write):
    client = vault("keys:read", "keys:secret", "keys:write")
    kv = client.secrets.kv.v2
    # hvac raises its UnexpectedError for a 405, as for Vault's own "unsupported operation".
    with pytest.raises(exceptions.UnexpectedError, match="read-only"):
        write(_on_keyvault(kv))
    assert read(client, "openai")["data"]["data"]["key"] == DEFAULT


def test_a_write_without_a_token_is_forbidden(live_server, world):
    response = requests.post(
        f"{live_server.url}/vault/v1/keyvault/data/openai", json={"data": {}}, timeout=10
    )
    assert (response.status_code, response.json()) == (403, {"errors": ["permission denied"]})


def test_a_write_with_a_token_is_405(vault, live_server):
    response = requests.put(
        f"{live_server.url}/vault/v1/keyvault/data/openai",
        json={"data": {"key": "x"}},
        headers={"X-Vault-Token": vault().token},
        timeout=10,
    )
    assert response.status_code == 405
    assert list(response.json()) == ["errors"]


def test_a_bad_version_is_a_bad_request(vault):
    with pytest.raises(exceptions.InvalidRequest):
        read(vault(), "openai", version="one")


class _on_keyvault:
    """The KV v2 methods with `mount_point="keyvault"` filled in."""

    def __init__(self, kv):
        self.kv = kv

    def __getattr__(self, name):
        method = getattr(self.kv, name)
        return lambda **kwargs: method(mount_point="keyvault", **kwargs)


@pytest.mark.parametrize("header", ["HTTP_X_VAULT_TOKEN", "HTTP_AUTHORIZATION"])
def test_guessed_tokens_count_against_the_address_on_either_header(db, client, settings, header):
    """A wrong X-Vault-Token is a failed authentication like a wrong bearer token: answered in
    Vault's shape and counted, so guessing stops at the address's limit."""
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 3
    guess = "kvp_" + "A" * 43
    value = guess if header == "HTTP_X_VAULT_TOKEN" else f"Bearer {guess}"
    statuses = [
        client.get("/vault/v1/keyvault/data/openai", **{header: value}).status_code
        for _ in range(5)
    ]
    assert statuses == [403, 403, 403, 429, 429]
