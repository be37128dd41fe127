"""The `aws-kms` keyring against moto: round trips, the encryption context binding, the data-key
cache, error handling, configuration, and the migration from local KEKs to KMS."""

import copy
import dataclasses
import pickle
import uuid
from io import StringIO
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from django.core.management import call_command
from moto import mock_aws

from keyvault import services
from keyvault.checks import check_keyring, check_stored_keks_loaded
from keyvault.crypto import (
    CryptoError,
    EncryptionContext,
    Envelope,
    IntegrityError,
    KeyringConfigurationError,
    LocalKeyring,
    UnknownKEKError,
    get_keyring,
    open_sealed,
    rewrap,
    seal,
)
from keyvault.crypto.kms import AwsKmsKeyring, CompositeKeyring, DataKeyCache
from keyvault.crypto.loading import build_keyring, parse_kms_keys
from keyvault.models import ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory

REGION = "us-east-1"
SYSTEM = Access.operator("t")
PLAINTEXT = b"sk-ant-api03-kms-round-trip-0123456789"


def context(**changes) -> EncryptionContext:
    values = {
        "model": "keyvault.providerkey",
        "field": "secret",
        "organization_id": "5d1f6a4e-2c3b-4f7a-9e8d-0b1c2d3e4f50",
        "row_id": "0f9e8d7c-6b5a-4e3d-8c2b-1a0f9e8d7c6b",
    }
    return EncryptionContext(**{**values, **changes})


@pytest.fixture(scope="module")
def kms(tmp_path_factory):
    """A moto KMS client, one per module (starting moto and a client is the slow part); nothing
    from the real environment (profiles, credentials, config files) leaks in."""
    empty = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_SESSION_TOKEN", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        with mock_aws():
            yield boto3.client("kms", region_name=REGION)


@pytest.fixture
def key_arn(kms):
    return kms.create_key(Description="keyvault test")["KeyMetadata"]["Arn"]


@pytest.fixture
def other_key_arn(kms):
    return kms.create_key(Description="keyvault test 2")["KeyMetadata"]["Arn"]


def keyring(kms, key_arn, **kwargs) -> AwsKmsKeyring:
    """A fresh keyring (its cache empty) on the moto client."""
    return AwsKmsKeyring({"kms-a": key_arn}, client=kms, **kwargs)


def spy(kms, operation: str) -> mock.MagicMock:
    """Count calls of a client operation while still calling it."""
    return mock.patch.object(kms, operation, wraps=getattr(kms, operation))


# --- round trip and binding -------------------------------------------------------------------


def test_seal_and_open_round_trip(kms, key_arn):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))

    assert Envelope.decode(envelope).kek_id == "kms-a"
    assert open_sealed(envelope, context(), keyring(kms, key_arn)) == PLAINTEXT


def test_the_kms_encryption_context_is_the_associated_data_and_the_kek_id(kms, key_arn):
    ring = keyring(kms, key_arn)
    expected = {
        "keyvault_version": "2",
        "model": "keyvault.providerkey",
        "field": "secret",
        "organization": "5d1f6a4e-2c3b-4f7a-9e8d-0b1c2d3e4f50",
        "row": "0f9e8d7c-6b5a-4e3d-8c2b-1a0f9e8d7c6b",
        "kek": "kms-a",
    }
    with spy(kms, "encrypt") as encrypt:
        envelope = seal(PLAINTEXT, context(), ring)
    assert encrypt.call_args.kwargs["EncryptionContext"] == expected

    bound = dataclasses.replace(context(), binding='{"endpoint":"https://a.openai.azure.com"}')
    with spy(kms, "encrypt") as encrypt:
        bound_envelope = seal(PLAINTEXT, bound, ring)
    assert encrypt.call_args.kwargs["EncryptionContext"] == {**expected, "binding": bound.binding}
    with pytest.raises(IntegrityError):
        open_sealed(bound_envelope, context(), ring)
    assert encrypt.call_args.kwargs["KeyId"] == key_arn

    fresh = keyring(kms, key_arn)
    with spy(kms, "decrypt") as decrypt:
        open_sealed(envelope, context(), fresh)
    assert decrypt.call_args.kwargs["EncryptionContext"] == expected
    assert decrypt.call_args.kwargs["KeyId"] == key_arn


@pytest.mark.parametrize(
    "changes",
    [
        {"organization_id": "6e2f7b5f-3d4c-4a8b-8f9e-1c2d3e4f5061"},
        {"row_id": "1a0f9e8d-7c6b-4a5e-9d3c-2b1a0f9e8d7c"},
        {"field": "other_secret"},
        {"model": "keyvault.proxytoken"},
    ],
    ids=["organization", "row", "field", "model"],
)
def test_kms_itself_refuses_a_data_key_in_another_context(kms, key_arn, changes):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    wrapped = Envelope.decode(envelope).wrapped_key
    fresh = keyring(kms, key_arn)

    with spy(kms, "decrypt") as decrypt, pytest.raises(IntegrityError):
        fresh.unwrap(wrapped, context(**changes), 1)
    assert decrypt.call_count == 1  # KMS was asked, and said no
    with pytest.raises(IntegrityError):
        open_sealed(envelope, context(**changes), fresh)
    assert len(fresh.cache) == 0


def test_a_relabelled_kek_id_fails(kms, key_arn, other_key_arn):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    parts = envelope.split(".")
    two_keys = AwsKmsKeyring({"kms-a": key_arn, "kms-b": other_key_arn}, client=kms)

    with pytest.raises(UnknownKEKError) as excinfo:
        open_sealed(".".join([parts[0], "kms-unknown", *parts[2:]]), context(), two_keys)
    assert excinfo.value.kek_id == "kms-unknown"
    # Under another loaded KMS key the context (which names the KEK) no longer matches.
    with pytest.raises(IntegrityError):
        open_sealed(".".join([parts[0], "kms-b", *parts[2:]]), context(), two_keys)
    assert open_sealed(envelope, context(), two_keys) == PLAINTEXT


def test_a_tampered_wrapped_key_fails(kms, key_arn):
    envelope = Envelope.decode(seal(PLAINTEXT, context(), keyring(kms, key_arn)))
    blob = bytearray(envelope.wrapped_key.blob)
    blob[-1] ^= 1
    tampered = type(envelope.wrapped_key)(kek_id="kms-a", blob=bytes(blob))
    with pytest.raises(IntegrityError):
        keyring(kms, key_arn).unwrap(tampered, context(), 1)


def test_rewrap_within_kms_keeps_the_ciphertext(kms, key_arn, other_key_arn):
    old = seal(PLAINTEXT, context(), AwsKmsKeyring({"kms-a": key_arn}, client=kms))
    both = AwsKmsKeyring({"kms-b": other_key_arn, "kms-a": key_arn}, client=kms)
    new = rewrap(old, context(), both)
    assert new.split(".")[1] == "kms-b"
    assert new.split(".")[3:] == old.split(".")[3:]
    assert open_sealed(new, context(), AwsKmsKeyring({"kms-b": other_key_arn}, client=kms)) == (
        PLAINTEXT
    )


# --- the data-key cache -------------------------------------------------------------------------


def test_the_cache_serves_repeats_without_calling_kms(kms, key_arn):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    fresh = keyring(kms, key_arn)

    with spy(kms, "decrypt") as decrypt:
        assert open_sealed(envelope, context(), fresh) == PLAINTEXT
        assert open_sealed(envelope, context(), fresh) == PLAINTEXT
    assert decrypt.call_count == 1


def test_a_key_sealed_by_this_process_opens_without_calling_kms(kms, key_arn):
    ring = keyring(kms, key_arn)
    envelope = seal(PLAINTEXT, context(), ring)
    with spy(kms, "decrypt") as decrypt:
        assert open_sealed(envelope, context(), ring) == PLAINTEXT
    assert decrypt.call_count == 0


def test_a_cached_data_key_is_never_returned_for_another_context(kms, key_arn):
    ring = keyring(kms, key_arn)
    envelope = seal(PLAINTEXT, context(), ring)  # the data key is now cached for context()
    wrapped = Envelope.decode(envelope).wrapped_key
    moved = context(row_id="1a0f9e8d-7c6b-4a5e-9d3c-2b1a0f9e8d7c")

    with spy(kms, "decrypt") as decrypt:
        with pytest.raises(IntegrityError):
            ring.unwrap(wrapped, moved, 1)
        assert decrypt.call_count == 1
        # And a refusal is not cached either: KMS is asked again.
        with pytest.raises(IntegrityError):
            ring.unwrap(wrapped, moved, 1)
        assert decrypt.call_count == 2
        assert open_sealed(envelope, context(), ring) == PLAINTEXT
        assert decrypt.call_count == 2


def test_cached_data_keys_expire_after_their_time_to_live(kms, key_arn):
    now = [1000.0]
    ring = keyring(kms, key_arn)
    ring.cache = DataKeyCache(ttl_seconds=60, max_entries=10, clock=lambda: now[0])
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))

    with spy(kms, "decrypt") as decrypt:
        open_sealed(envelope, context(), ring)
        now[0] += 59.9
        open_sealed(envelope, context(), ring)
        assert decrypt.call_count == 1
        now[0] += 0.1
        open_sealed(envelope, context(), ring)
        assert decrypt.call_count == 2


def test_the_cache_size_is_capped_least_recently_used_first(kms, key_arn):
    contexts = [context(row_id=str(uuid.uuid4())) for _ in range(3)]
    envelopes = [seal(PLAINTEXT, ctx, keyring(kms, key_arn)) for ctx in contexts]
    ring = keyring(kms, key_arn, cache_max_entries=2)

    def open_(n):
        assert open_sealed(envelopes[n], contexts[n], ring) == PLAINTEXT

    with spy(kms, "decrypt") as decrypt:
        open_(0)
        open_(1)
        open_(0)  # a hit, and now the most recently used
        open_(2)  # evicts 1
        assert decrypt.call_count == 3
        assert len(ring.cache) == 2
        open_(0)
        assert decrypt.call_count == 3
        open_(1)
        assert decrypt.call_count == 4


@pytest.mark.parametrize("kwargs", [{"cache_ttl_seconds": 0}, {"cache_max_entries": 0}])
def test_a_zero_cache_setting_turns_the_cache_off(kms, key_arn, kwargs):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    ring = keyring(kms, key_arn, **kwargs)
    with spy(kms, "decrypt") as decrypt:
        open_sealed(envelope, context(), ring)
        open_sealed(envelope, context(), ring)
    assert decrypt.call_count == 2
    assert len(ring.cache) == 0


def test_data_key_cache_ttl_and_lru():
    now = [0.0]
    cache = DataKeyCache(ttl_seconds=10, max_entries=2, clock=lambda: now[0])
    cache.put("a", b"A" * 32)
    cache.put("b", b"B" * 32)
    assert cache.get("a") == b"A" * 32  # "b" is now the least recently used
    cache.put("c", b"C" * 32)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"A" * 32, None, b"C" * 32)
    now[0] = 9.999
    assert cache.get("a") == b"A" * 32
    now[0] = 10.0
    assert cache.get("a") is None
    assert len(cache) == 1  # the expired entry is dropped
    assert cache.get("missing") is None


def test_the_cache_shows_no_data_key_and_the_keyring_cannot_be_copied(kms, key_arn):
    ring = keyring(kms, key_arn)
    seal(PLAINTEXT, context(), ring)
    assert repr(ring.cache) == "DataKeyCache(entries=1, ttl=300)"
    assert repr(ring) == "AwsKmsKeyring(kek_ids=['kms-a'])"
    # It holds unwrapped data keys: it must not end up in a cache or a task queue.
    with pytest.raises((TypeError, pickle.PicklingError)):
        pickle.dumps(ring)
    with pytest.raises(TypeError):
        copy.deepcopy(ring)
    with pytest.raises(TypeError):
        pickle.dumps(ring.cache)


# --- KMS errors ---------------------------------------------------------------------------------


def test_a_missing_kms_key_is_a_crypto_error_that_does_not_echo_details(kms):
    missing = f"arn:aws:kms:{REGION}:123456789012:key/{uuid.uuid4()}"
    ring = AwsKmsKeyring({"kms-gone": missing}, client=kms)
    with pytest.raises(CryptoError) as excinfo:
        seal(PLAINTEXT, context(), ring)
    assert not isinstance(excinfo.value, IntegrityError)
    assert str(excinfo.value) == "KMS encrypt failed: NotFoundException."
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


def test_decrypting_with_another_kms_key_is_a_crypto_error(kms, key_arn, other_key_arn):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    # The same KEK id, now pointing at another KMS key (a configuration mistake).
    wrong = AwsKmsKeyring({"kms-a": other_key_arn}, client=kms)
    with pytest.raises(CryptoError) as excinfo:
        open_sealed(envelope, context(), wrong)
    assert key_arn not in str(excinfo.value)
    assert other_key_arn not in str(excinfo.value)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("InvalidCiphertextException", IntegrityError),
        ("IncorrectKeyException", IntegrityError),
        ("AccessDeniedException", CryptoError),
        ("KMSInvalidStateException", CryptoError),
        ("ThrottlingException", CryptoError),
    ],
)
def test_kms_client_errors_map_to_typed_errors_without_their_message(kms, key_arn, code, expected):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    ring = keyring(kms, key_arn)
    detail = "arn:aws:iam::123456789012:role/secret-detail the message should not be shown"
    failure = ClientError({"Error": {"Code": code, "Message": detail}}, "Decrypt")
    with (
        mock.patch.object(kms, "decrypt", side_effect=failure),
        pytest.raises(CryptoError) as excinfo,
    ):
        open_sealed(envelope, context(), ring)
    assert type(excinfo.value) is expected
    assert detail not in str(excinfo.value)
    assert "secret-detail" not in repr(excinfo.value)
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    assert len(ring.cache) == 0


def test_a_connection_failure_is_a_crypto_error(kms, key_arn):
    ring = keyring(kms, key_arn)
    failure = EndpointConnectionError(endpoint_url="https://kms.internal.example:443/secret-path")
    with mock.patch.object(kms, "encrypt", side_effect=failure), pytest.raises(CryptoError) as e:
        seal(PLAINTEXT, context(), ring)
    assert str(e.value) == "KMS encrypt failed: EndpointConnectionError."


def test_a_data_key_of_the_wrong_length_from_kms_is_refused(kms, key_arn):
    envelope = seal(PLAINTEXT, context(), keyring(kms, key_arn))
    ring = keyring(kms, key_arn)
    with (
        mock.patch.object(kms, "decrypt", return_value={"Plaintext": b"short"}),
        pytest.raises(IntegrityError),
    ):
        open_sealed(envelope, context(), ring)
    assert len(ring.cache) == 0


# --- configuration ------------------------------------------------------------------------------


def test_parse_kms_keys_reads_ids_and_key_references():
    text = (
        " kms-a:arn:aws:kms:eu-west-1:123456789012:key/2247ad4b-d991-478b-9a1f-b5e82ce303d6 ,"
        ",kms-c:2247ad4b-d991-478b-9a1f-b5e82ce303d6"
    )
    assert parse_kms_keys(text) == {
        "kms-a": "arn:aws:kms:eu-west-1:123456789012:key/2247ad4b-d991-478b-9a1f-b5e82ce303d6",
        "kms-c": "2247ad4b-d991-478b-9a1f-b5e82ce303d6",
    }


ARN = "arn:aws:kms:eu-west-1:123456789012:key/2247ad4b-d991-478b-9a1f-b5e82ce303d6"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kms-a", "entry 1 is not of the form id:key-arn"),
        ("kms-a:", "entry 1 is not of the form id:key-arn"),
        (f"kms-a:{ARN},kms-b:   ", "entry 2 is not of the form id:key-arn"),
        (ARN, "entry 1 is not of the form id:key-arn (is the id missing?)"),
        (f"bad id:{ARN}", "A KEK id must be"),
        (f":{ARN}", "A KEK id must be"),
        (f"{'x' * 65}:{ARN}", "A KEK id must be"),
        (f"kms-a:{ARN},kms-a:{ARN}", "KEK id 'kms-a' appears twice"),
        # An alias can be re-pointed to another key, after which nothing wrapped opens.
        ("kms-a:alias/keyvault", "entry 1 names an alias"),
        ("kms-a:arn:aws:kms:eu-west-1:123456789012:alias/keyvault", "entry 1 names an alias"),
    ],
    ids=[
        "no-arn",
        "empty-arn",
        "blank-arn",
        "no-id",
        "bad-id",
        "empty-id",
        "long-id",
        "dup",
        "alias",
        "alias-arn",
    ],
)
def test_parse_kms_keys_errors(text, message):
    with pytest.raises(KeyringConfigurationError) as excinfo:
        parse_kms_keys(text)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_kms_settings_build_a_keyring_with_the_region_and_cache_limits(kms, key_arn, settings):
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KMS_KEYS = f"kms-main:{key_arn}"
    settings.KEYVAULT_KMS_REGION = REGION
    settings.KEYVAULT_KMS_CACHE_SECONDS = 42
    settings.KEYVAULT_KMS_CACHE_SIZE = 7

    ring = build_keyring()

    assert isinstance(ring, AwsKmsKeyring)
    assert ring.kek_ids == ("kms-main",)
    assert (ring.cache.ttl, ring.cache.max_entries) == (42, 7)
    assert ring._client.meta.region_name == REGION
    assert open_sealed(seal(PLAINTEXT, context(), ring), context(), ring) == PLAINTEXT


def test_a_kms_configuration_without_a_region_is_a_configuration_error(kms, settings, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    settings.KEYVAULT_KMS_KEYS = f"kms-main:{ARN}"
    settings.KEYVAULT_KMS_REGION = ""

    with pytest.raises(KeyringConfigurationError, match="KEYVAULT_KMS_REGION"):
        build_keyring()
    (error,) = check_keyring()
    assert error.id == "keyvault.E102"


def test_a_malformed_region_is_a_configuration_error(kms, settings):
    settings.KEYVAULT_KMS_KEYS = f"kms-main:{ARN}"
    settings.KEYVAULT_KMS_REGION = "not a region!"
    with pytest.raises(KeyringConfigurationError, match="KEYVAULT_KMS_REGION"):
        build_keyring()


def test_local_and_kms_together_make_the_first_kms_key_primary(kms, key_arn, settings):
    settings.KEYVAULT_KMS_KEYS = f"kms-main:{key_arn}"
    settings.KEYVAULT_KMS_REGION = REGION

    ring = build_keyring()

    assert isinstance(ring, CompositeKeyring)
    assert ring.primary_kek_id == "kms-main"
    assert ring.kek_ids == ("kms-main", "test-primary", "test-old")


def test_the_primary_kek_setting_can_keep_a_local_kek_primary(kms, key_arn, settings):
    settings.KEYVAULT_KMS_KEYS = f"kms-main:{key_arn}"
    settings.KEYVAULT_KMS_REGION = REGION
    settings.KEYVAULT_PRIMARY_KEK = "test-primary"

    ring = build_keyring()

    assert ring.primary_kek_id == "test-primary"
    assert Envelope.decode(seal(PLAINTEXT, context(), ring)).kek_id == "test-primary"


@pytest.mark.parametrize(
    ("primary", "kms_keys", "message"),
    [
        ("test-old", "", "must come first among its own keyring's KEKs"),
        ("kms-second", "kms-first:{arn},kms-second:{arn2}", "must come first"),
        ("nowhere", "", "'nowhere' is not a configured KEK"),
    ],
)
def test_a_primary_kek_that_cannot_be_primary_is_a_configuration_error(
    kms, key_arn, other_key_arn, settings, primary, kms_keys, message
):
    settings.KEYVAULT_KMS_KEYS = kms_keys.format(arn=key_arn, arn2=other_key_arn)
    settings.KEYVAULT_KMS_REGION = REGION
    settings.KEYVAULT_PRIMARY_KEK = primary
    with pytest.raises(KeyringConfigurationError, match=message):
        build_keyring()
    (error,) = check_keyring()
    assert error.id == "keyvault.E102"


def test_a_kek_id_used_by_both_keyrings_is_a_configuration_error(kms, key_arn, settings):
    settings.KEYVAULT_KMS_KEYS = f"test-old:{key_arn}"
    settings.KEYVAULT_KMS_REGION = REGION
    with pytest.raises(KeyringConfigurationError, match="'test-old' is configured twice"):
        build_keyring()


def test_composite_keyring_unwraps_each_kek_with_its_own_keyring(kms, key_arn):
    local = LocalKeyring({"local-a": b"\x01" * 32})
    sealed_locally = seal(PLAINTEXT, context(), local)
    both = CompositeKeyring(
        [AwsKmsKeyring({"kms-a": key_arn}, client=kms), local], primary_kek_id="kms-a"
    )
    assert open_sealed(sealed_locally, context(), both) == PLAINTEXT
    moved = rewrap(sealed_locally, context(), both)
    assert Envelope.decode(moved).kek_id == "kms-a"
    assert open_sealed(moved, context(), keyring(kms, key_arn)) == PLAINTEXT
    with pytest.raises(UnknownKEKError):
        open_sealed(moved.replace(".kms-a.", ".elsewhere.", 1), context(), both)


# --- migration: local KEKs to KMS ---------------------------------------------------------------


def test_migrating_from_local_keks_to_kms_with_rotate_kek(
    kms, key_arn, settings, organization, old_kek_first, raw_envelope
):
    secrets = {}
    with old_kek_first():
        for n in range(3):
            key = ProviderKeyFactory(organization=organization, secret=f"sk-proj-old-{n}-0123456")
            secrets[key.pk] = f"sk-proj-old-{n}-0123456"
    for n in range(3):
        key = ProviderKeyFactory(organization=organization, secret=f"sk-proj-cur-{n}-0123456")
        secrets[key.pk] = f"sk-proj-cur-{n}-0123456"
    before = {pk: raw_envelope(ProviderKey(pk=pk)).split(".") for pk in secrets}

    # Load both: the KMS key becomes primary, the local KEKs decrypt what they wrapped.
    settings.KEYVAULT_KMS_KEYS = f"kms-main:{key_arn}"
    settings.KEYVAULT_KMS_REGION = REGION
    assert isinstance(get_keyring(), CompositeKeyring)
    assert get_keyring().primary_kek_id == "kms-main"

    call_command("rotate_kek", "--batch-size", "2", stdout=StringIO(), stderr=StringIO())

    for pk, secret in secrets.items():
        after = raw_envelope(ProviderKey(pk=pk)).split(".")
        assert after[1] == "kms-main"
        assert after[3:] == before[pk][3:]  # nonce and ciphertext untouched
        key = ProviderKey.objects.get(pk=pk)
        assert key.kek_id == "kms-main"
        assert services.provider_key_reveal(key=key, actor=SYSTEM) == secret
    out = StringIO()
    call_command("keyvault_status", "--verify", stdout=out, stderr=StringIO())
    assert "can be retired (loaded, nothing under them): test-primary, test-old" in out.getvalue()

    # Retire the local KEKs: KMS alone opens everything (a fresh keyring, so KMS is asked).
    settings.KEYVAULT_KEKS = ""
    assert isinstance(get_keyring(), AwsKmsKeyring)
    assert check_stored_keks_loaded() == []
    for pk, secret in secrets.items():
        key = ProviderKey.objects.get(pk=pk)
        assert services.provider_key_reveal(key=key, actor=SYSTEM) == secret
    new = ProviderKeyFactory(organization=organization, secret="sk-proj-born-under-kms-0123")
    assert new.kek_id == "kms-main"
    assert services.provider_key_reveal(key=new, actor=SYSTEM) == "sk-proj-born-under-kms-0123"
