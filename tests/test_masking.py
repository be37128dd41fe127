"""The masked hint: a public prefix and at most four trailing characters, fewer for short
secrets; a Google service account is named by its key id."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyvault import providers
from keyvault.masking import ELLIPSIS, mask_secret
from keyvault.models import ProviderKey

HINT_MAX_LENGTH = ProviderKey._meta.get_field("secret_hint").max_length


def prefixes(provider_id):
    return providers.get_provider(provider_id).key_prefixes


@pytest.mark.parametrize(
    ("provider_id", "secret", "hint"),
    [
        ("anthropic", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz-1234", "sk-ant-…1234"),
        ("openai", "sk-proj-abcdefghijklmnopqrstuvwxyzWXYZ", "sk-proj-…WXYZ"),
        ("openai", "sk-svcacct-abcdefghijklmnopqrstuvwxyz9876", "sk-svcacct-…9876"),
        ("openai", "sk-abcdefghijklmnopqrstuvwxyzWXYZ", "sk-…WXYZ"),
        ("groq", "gsk_abcdefghijklmnopqrstuvwxyz4f2a", "gsk_…4f2a"),
        ("gemini", "AIzaSyAbcdefghijklmnopqrstuvwxyz0123", "AIza…0123"),
        ("openrouter", "sk-or-v1-abcdefghijklmnopqrstuvwxyz55aa", "sk-or-v1-…55aa"),
        ("xai", "xai-abcdefghijklmnopqrstuvwxyzQQQQ", "xai-…QQQQ"),
        ("mistral", "abcdefghijklmnopqrstuvwxyzMMMM", "…MMMM"),
    ],
)
def test_a_known_prefix_is_kept_and_at_most_four_characters_shown(provider_id, secret, hint):
    assert mask_secret(secret, key_prefixes=prefixes(provider_id)) == hint


def test_the_longest_matching_prefix_wins():
    assert mask_secret("sk-proj-" + "a" * 20, key_prefixes=("sk-", "sk-proj-")) == "sk-proj-…aaaa"


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        ("a" * 15 + "WXYZ", "…WXYZ"),  # 19 characters: four shown
        ("abcdefghijklmnop", "…mnop"),  # 16: four
        ("abcdefghijklmno", "…no"),  # 15: two
        ("abcdefghij", "…ij"),  # 10: two
        ("abcdefghi", "…"),  # 9: none
        ("ab", "…"),
        ("x", "…"),
    ],
)
def test_short_secrets_reveal_fewer_characters(secret, hint):
    assert mask_secret(secret) == hint


def test_the_prefix_does_not_count_towards_the_length():
    assert mask_secret("sk-ant-abcdefghi", key_prefixes=("sk-ant-",)) == "sk-ant-…"
    assert mask_secret("sk-ant-abcdefghij", key_prefixes=("sk-ant-",)) == "sk-ant-…ij"


def test_a_service_account_hint_uses_the_private_key_id():
    document = {
        "type": "service_account",
        "private_key_id": "0123456789abcdef0123456789abcdef4f2a",
        "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n-----END PRIVATE KEY-----\n",
        "client_email": "svc@p.iam.gserviceaccount.com",
    }
    hint = mask_secret(json.dumps(document))
    assert hint == f"service account {ELLIPSIS}4f2a"
    assert "SECRETMATERIAL" not in hint


@pytest.mark.parametrize(
    "secret",
    [
        json.dumps({"type": "service_account"}) + " " * 10,
        json.dumps({"private_key_id": "short"}),
        json.dumps({"private_key_id": 12345678901}),
        json.dumps(["private_key_id", "0123456789abcdef"]),
        "{not json at all, but long enough}",
        '{"a":' + "[" * 20000,
    ],
)
def test_json_without_a_usable_key_id_falls_back_to_the_tail(secret):
    hint = mask_secret(secret)
    assert not hint.startswith("service account")
    assert len(hint.partition(ELLIPSIS)[2]) <= 4


def test_a_tail_with_control_characters_is_not_shown():
    assert mask_secret("abcdefghijklmnop\x00\x00") == ELLIPSIS
    assert mask_secret("abcdefghijklmnopqr\n\t") == ELLIPSIS


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=300),
    provider_id=st.sampled_from([provider.id for provider in providers.PROVIDERS]),
)
def test_no_hint_shows_more_than_a_known_prefix_and_four_characters(secret, provider_id):
    key_prefixes = prefixes(provider_id)
    hint = mask_secret(secret, key_prefixes=key_prefixes)
    assert len(hint) <= HINT_MAX_LENGTH
    head, separator, tail = hint.partition(ELLIPSIS)
    assert separator == ELLIPSIS
    assert len(tail) <= 4
    assert tail.isprintable()
    if head != "service account ":
        assert head == "" or head in key_prefixes
        assert secret.startswith(head)
        assert secret.endswith(tail)
        assert len(tail) <= max(0, (len(secret) - len(head)) // 4)
