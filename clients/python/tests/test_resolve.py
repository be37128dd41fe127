"""Reading keys: by provider (the default), by name, by id; from memory."""

import threading
import uuid

import pytest
from fake_keyvault import wait_until

from keyvault_client import KeyvaultClosedError, KeyvaultNotFoundError
from keyvault_client import client as client_module


@pytest.fixture
def keys(fake):
    return {
        "primary": fake.create("openai", "primary", "sk-primary-1111", is_default=True),
        "backup": fake.create("openai", "Backup", "sk-backup-2222"),
        "eastus": fake.create(
            "azure_openai",
            "eastus",
            "az-eastus-3333",
            config={"endpoint": "https://east.openai.azure.com", "deployment": "gpt-4o"},
            is_default=True,
        ),
    }


def test_resolve_by_provider_returns_the_default_key(make_client, keys):
    with make_client() as client:
        credential = client.resolve("openai")
    assert credential.key_id == keys["primary"]
    assert credential.secret == "sk-primary-1111"
    assert credential.is_default is True
    assert credential.version == 1
    assert credential.provider == "openai"


def test_resolve_by_name_ignores_case_and_surrounding_space(make_client, keys):
    with make_client() as client:
        assert client.resolve("openai", name="backup").secret == "sk-backup-2222"
        assert client.resolve("openai", name="  BACKUP ").key_id == keys["backup"]


def test_provider_spelled_with_dash_or_underscore(make_client, keys):
    with make_client() as client:
        dashed = client.resolve("azure-openai", name="eastus")
        underscored = client.resolve("azure_openai", name="eastus")
        default = client.resolve("Azure-OpenAI")
    assert dashed == underscored == default
    assert dashed.provider == "azure_openai"
    assert dashed.config["deployment"] == "gpt-4o"


def test_config_is_read_only(make_client, keys):
    with make_client() as client:
        credential = client.resolve("azure_openai")
        with pytest.raises(TypeError):
            credential.config["endpoint"] = "https://elsewhere.example"
        assert client.resolve("azure_openai").config["endpoint"] == "https://east.openai.azure.com"


def test_get_by_id_as_text_or_uuid(make_client, keys):
    with make_client() as client:
        assert client.get(keys["backup"]).name == "Backup"
        assert client.get(uuid.UUID(keys["backup"])).name == "Backup"
        assert client.get(keys["backup"].upper()).key_id == keys["backup"]


def test_unknown_lookups_raise_not_found(make_client, keys, fake):
    disabled = fake.create("anthropic", "off", "sk-ant-off-4444", is_default=True, enabled=False)
    with make_client() as client:
        with pytest.raises(KeyvaultNotFoundError, match="default key for provider 'bedrock'"):
            client.resolve("bedrock")
        with pytest.raises(KeyvaultNotFoundError, match="named 'nope'"):
            client.resolve("openai", name="nope")
        with pytest.raises(KeyvaultNotFoundError):
            client.get(str(uuid.uuid4()))
        with pytest.raises(KeyvaultNotFoundError):
            client.get("not-a-uuid")
        # Disabled keys are not in the snapshot, so they are not found either.
        with pytest.raises(KeyvaultNotFoundError):
            client.get(disabled)
        with pytest.raises(KeyvaultNotFoundError):
            client.resolve("anthropic")


def test_not_found_is_a_lookup_error(make_client, keys):
    with make_client() as client, pytest.raises(LookupError):
        client.resolve("openai", name="nope")


def test_bad_arguments(make_client, keys):
    with make_client() as client:
        with pytest.raises(ValueError, match="name must not be empty"):
            client.resolve("openai", name="  ")
        with pytest.raises(ValueError, match="provider must not be empty"):
            client.resolve(" ")
        with pytest.raises(TypeError):
            client.resolve(None)
        with pytest.raises(TypeError):
            client.resolve("openai", name=42)


def test_credentials_lists_what_is_held(make_client, keys):
    with make_client() as client:
        every = client.credentials()
        openai = client.credentials("openai")
    assert [c.name for c in every] == ["eastus", "Backup", "primary"]
    assert [c.name for c in openai] == ["Backup", "primary"]


def test_first_read_starts_the_client(make_client, keys):
    client = make_client()
    assert not client.started
    assert client.resolve("openai").key_id == keys["primary"]
    assert client.status().ready


def test_reads_after_close_raise_and_secrets_are_forgotten(make_client, keys):
    client = make_client().start()
    client.close()
    with pytest.raises(KeyvaultClosedError):
        client.resolve("openai")
    with pytest.raises(KeyvaultClosedError):
        client.start()
    assert client.status().keys == 0
    assert not client.status().running


def test_reads_do_not_touch_the_network(make_client, keys, fake):
    with make_client() as client:
        client.resolve("openai")
        fake.stop()  # nothing answers any more
        for _ in range(100):
            assert client.resolve("openai").secret == "sk-primary-1111"
            assert client.get(keys["eastus"]).secret == "az-eastus-3333"
    assert fake.count("secret") == 0


def test_a_read_during_start_waits_for_the_first_snapshot(make_client, fake, keys):
    fake.fail("snapshot", 503, times=None)
    client = make_client()
    starter = threading.Thread(target=client.start)
    starter.start()
    wait_until(lambda: fake.count("snapshot") >= 2, message="a start in progress")
    results = []
    reader = threading.Thread(target=lambda: results.append(client.resolve("openai").key_id))
    reader.start()
    fake.clear_faults()
    reader.join(10)
    starter.join(10)
    assert results == [keys["primary"]]


def test_a_forked_child_does_not_serve_from_the_parents_memory(make_client, keys, monkeypatch):
    with make_client() as client:
        client.resolve("openai")
        monkeypatch.setattr(client_module.os, "getpid", lambda: -1)  # as in a child process
        with pytest.raises(KeyvaultClosedError, match="fork"):
            client.resolve("openai")
