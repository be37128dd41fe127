"""The secret and the token stay out of repr, logs and error messages; unsafe settings are
refused."""

import logging

import pytest
from fake_keyvault import TOKEN, wait_synced, wait_until

from keyvault_client import (
    KeyvaultAuthError,
    KeyvaultClient,
    KeyvaultError,
    KeyvaultNotFoundError,
)
from keyvault_client.wire import ProtocolError, parse_key

SECRET = "sk-proj-SECRETVALUE-0123456789"


def test_repr_and_str_of_a_credential_hide_the_secret(make_client, fake):
    fake.create("openai", "primary", SECRET, is_default=True)
    with make_client() as client:
        credential = client.resolve("openai")
    for text in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert SECRET not in text
        assert "secret=<hidden>" in text
    assert credential.key_id in repr(credential)


def test_repr_of_a_client_hides_the_token(make_client):
    client = make_client()
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client.status())


def test_no_secret_or_token_in_logs_or_errors(make_client, fake, caplog):
    key_id = fake.create("openai", "primary", SECRET, is_default=True)
    messages = []
    with caplog.at_level(logging.DEBUG), make_client() as client:
        fake.rotate(key_id, SECRET + "-2")
        wait_synced(client, fake)
        fake.fail("secret", 500)
        fake.rotate(key_id, SECRET + "-3")
        wait_synced(client, fake)
        fake.fail("events", 500, body={"detail": "boom"})
        fake.disable(key_id)
        wait_synced(client, fake)
        try:
            client.get(key_id)
        except KeyvaultError as exc:
            messages.append(str(exc))
        fake.revoke()
        wait_until(lambda: not client.status().running, message="the client to stop")
        with pytest.raises(KeyvaultAuthError) as info:
            client.resolve("openai")
        messages.append(str(info.value))
        messages.append(str(client.status()))
    text = caplog.text + "\n".join(messages)
    assert "401" in text and "dropped" in text  # the logs did speak
    assert SECRET not in text
    assert TOKEN not in text


def test_a_secret_passed_as_a_key_id_is_not_quoted(make_client, fake):
    fake.create("openai", "primary", SECRET, is_default=True)
    with make_client() as client, pytest.raises(KeyvaultNotFoundError) as info:
        client.get(client.resolve("openai").secret)
    assert SECRET not in str(info.value)


def test_a_malformed_key_is_refused_without_quoting_its_values():
    with pytest.raises(ProtocolError) as info:
        parse_key(
            {
                "id": "2b1d4b5e-6e0c-4a55-9a43-7f0e8e0f6b9a",
                "provider": "openai",
                "name": "primary",
                "secret": SECRET,
                "version": SECRET,  # a secret where a number belongs
                "is_default": True,
            }
        )
    assert "version" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://keyvault.example.com",  # the token would cross the network in clear text
        "ftp://keyvault.example.com",
        "https://user:pw@keyvault.example.com",
        "https://keyvault.example.com/?token=x",
        "keyvault.example.com",
    ],
)
def test_unsafe_urls_are_refused(url):
    with pytest.raises(ValueError, match="url"):
        KeyvaultClient(url, TOKEN)


def test_plain_http_beyond_loopback_only_when_asked_for():
    client = KeyvaultClient("http://keyvault.internal:8000", TOKEN, allow_insecure_http=True)
    assert client.url == "http://keyvault.internal:8000"
    assert KeyvaultClient("http://localhost:8000/", TOKEN).url == "http://localhost:8000"


@pytest.mark.parametrize("token", ["", "kvp_abc\r\nX-Injected: 1", "kvp_abc def", "kvp_é"])
def test_tokens_that_cannot_be_a_header_value_are_refused_without_being_quoted(token):
    with pytest.raises(ValueError, match="token") as info:
        KeyvaultClient("https://keyvault.example.com", token)
    if token:
        assert token not in str(info.value)


@pytest.mark.parametrize(
    "options",
    [{"wait": 0}, {"wait": 31}, {"wait": 2.5}, {"wait": 25, "max_staleness": 20}, {"timeout": 0}],
)
def test_settings_out_of_range_are_refused(options):
    with pytest.raises(ValueError):
        KeyvaultClient("https://keyvault.example.com", TOKEN, **options)
