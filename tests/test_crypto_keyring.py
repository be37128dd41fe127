"""The local keyring (keyvault.crypto.keyring): KEK handling and the wrapped-key layout."""

import base64
import copy
import dataclasses
import pickle

import pytest

from keyvault.crypto import (
    FORMAT_VERSION,
    EncryptionContext,
    IntegrityError,
    KeyringConfigurationError,
    LocalKeyring,
    MalformedEnvelopeError,
    UnknownKEKError,
    WrappedKey,
)
from keyvault.crypto.context import encode_components

CONTEXT = EncryptionContext(
    model="keyvault.providerkey", field="secret", organization_id="org-1", row_id="row-1"
)
DEK = bytes(range(64, 96))
KEK_A = bytes(range(32))
KEK_B = bytes(range(32, 64))


def hidden_renderings(*values: bytes) -> list[str]:
    out = []
    for value in values:
        out += [value.hex(), base64.b64encode(value).decode(), repr(value)]
    return out


def test_the_first_kek_is_primary_and_order_is_kept():
    ring = LocalKeyring({"b-new": KEK_B, "a-old": KEK_A})
    assert ring.primary_kek_id == "b-new"
    assert ring.kek_ids == ("b-new", "a-old")
    assert ring.has_kek("a-old") and not ring.has_kek("c")


def test_wrap_uses_the_primary_and_unwrap_returns_the_data_key():
    ring = LocalKeyring({"b-new": KEK_B, "a-old": KEK_A})
    wrapped = ring.wrap(DEK, CONTEXT, FORMAT_VERSION)
    assert wrapped.kek_id == "b-new"
    assert ring.unwrap(wrapped, CONTEXT, FORMAT_VERSION) == DEK


def test_a_decrypt_only_kek_unwraps_what_it_wrapped_as_primary():
    wrapped = LocalKeyring({"a-old": KEK_A}).wrap(DEK, CONTEXT, FORMAT_VERSION)
    rotated = LocalKeyring({"b-new": KEK_B, "a-old": KEK_A})
    assert rotated.unwrap(wrapped, CONTEXT, FORMAT_VERSION) == DEK


def test_wrapped_key_layout_is_nonce_then_sealed_key_and_tag():
    nonce = bytes(range(12))
    ring = LocalKeyring({"a": KEK_A}, randbytes=lambda n: nonce[:n])
    wrapped = ring.wrap(DEK, CONTEXT, FORMAT_VERSION)
    assert len(wrapped.blob) == LocalKeyring.WRAPPED_BYTES == 12 + 32 + 16
    assert wrapped.blob[:12] == nonce
    assert DEK not in wrapped.blob


def test_wrapping_under_the_same_nonce_is_deterministic_and_fresh_nonces_differ():
    fixed = LocalKeyring({"a": KEK_A}, randbytes=lambda n: b"\x07" * n)
    assert fixed.wrap(DEK, CONTEXT, 1) == fixed.wrap(DEK, CONTEXT, 1)
    ring = LocalKeyring({"a": KEK_A})
    assert ring.wrap(DEK, CONTEXT, 1).blob != ring.wrap(DEK, CONTEXT, 1).blob


def test_unwrap_under_an_unloaded_kek_is_unknown_kek():
    wrapped = LocalKeyring({"a": KEK_A}).wrap(DEK, CONTEXT, FORMAT_VERSION)
    with pytest.raises(UnknownKEKError) as excinfo:
        LocalKeyring({"b": KEK_B}).unwrap(wrapped, CONTEXT, FORMAT_VERSION)
    assert excinfo.value.kek_id == "a"


def test_unwrap_with_the_same_id_but_other_material_fails_integrity():
    wrapped = LocalKeyring({"a": KEK_A}).wrap(DEK, CONTEXT, FORMAT_VERSION)
    with pytest.raises(IntegrityError):
        LocalKeyring({"a": KEK_B}).unwrap(wrapped, CONTEXT, FORMAT_VERSION)


def test_a_wrapped_key_relabelled_to_an_alias_of_the_same_kek_fails_integrity():
    ring = LocalKeyring({"a": KEK_A, "alias": KEK_A})
    wrapped = ring.wrap(DEK, CONTEXT, FORMAT_VERSION)
    relabelled = dataclasses.replace(wrapped, kek_id="alias")
    with pytest.raises(IntegrityError):
        ring.unwrap(relabelled, CONTEXT, FORMAT_VERSION)


@pytest.mark.parametrize(
    "change",
    [{"model": "x"}, {"field": "x"}, {"organization_id": "org-2"}, {"row_id": "row-2"}],
    ids=["model", "field", "organization", "row"],
)
def test_unwrap_under_another_context_fails_integrity(change):
    ring = LocalKeyring({"a": KEK_A})
    wrapped = ring.wrap(DEK, CONTEXT, FORMAT_VERSION)
    with pytest.raises(IntegrityError):
        ring.unwrap(wrapped, dataclasses.replace(CONTEXT, **change), FORMAT_VERSION)


def test_unwrap_under_another_format_version_fails_integrity():
    ring = LocalKeyring({"a": KEK_A})
    wrapped = ring.wrap(DEK, CONTEXT, 1)
    with pytest.raises(IntegrityError):
        ring.unwrap(wrapped, CONTEXT, 2)


def test_the_wrap_label_keeps_a_wrapped_key_from_being_read_as_data():
    assert CONTEXT.wrap_aad(1, "a").startswith(encode_components("keyvault.dek-wrap"))
    assert CONTEXT.data_aad(1).startswith(encode_components("keyvault.data"))


def test_every_bit_of_the_wrapped_key_is_authenticated():
    ring = LocalKeyring({"a": KEK_A})
    wrapped = ring.wrap(DEK, CONTEXT, FORMAT_VERSION)
    for position in range(len(wrapped.blob)):
        blob = bytearray(wrapped.blob)
        blob[position] ^= 0x40
        with pytest.raises(IntegrityError):
            ring.unwrap(WrappedKey("a", bytes(blob)), CONTEXT, FORMAT_VERSION)


@pytest.mark.parametrize("length", [0, 12, 59, 61, 120])
def test_a_wrapped_key_of_the_wrong_length_is_malformed(length):
    with pytest.raises(MalformedEnvelopeError):
        LocalKeyring({"a": KEK_A}).unwrap(WrappedKey("a", b"\x00" * length), CONTEXT, 1)


def test_an_empty_keyring_is_a_configuration_error():
    with pytest.raises(KeyringConfigurationError):
        LocalKeyring({})


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33, 64])
def test_a_kek_that_is_not_256_bits_is_refused_without_echoing_it(length):
    material = bytes(range(100, 100 + length))
    with pytest.raises(KeyringConfigurationError) as excinfo:
        LocalKeyring({"a": material})
    if material:
        for secret in hidden_renderings(material):
            assert secret not in str(excinfo.value)


@pytest.mark.parametrize("kek_id", ["", "has space", "dot.ted", "colon:id", "kék", "x" * 65, "a\n"])
def test_a_kek_id_outside_the_alphabet_is_refused(kek_id):
    with pytest.raises(KeyringConfigurationError):
        LocalKeyring({kek_id: KEK_A})


def test_the_longest_allowed_kek_id_works_end_to_end():
    kek_id = "A-z_9" * 12 + "abcd"
    assert len(kek_id) == 64
    ring = LocalKeyring({kek_id: KEK_A})
    assert ring.unwrap(ring.wrap(DEK, CONTEXT, 1), CONTEXT, 1) == DEK


def test_keyring_repr_and_str_name_kek_ids_only():
    ring = LocalKeyring({"b-new": KEK_B, "a-old": KEK_A})
    for shown in (repr(ring), str(ring)):
        assert "b-new" in shown and "a-old" in shown
        for secret in hidden_renderings(KEK_A, KEK_B):
            assert secret not in shown


def test_wrapped_key_repr_shows_its_length_not_its_bytes():
    wrapped = LocalKeyring({"a": KEK_A}).wrap(DEK, CONTEXT, FORMAT_VERSION)
    for shown in (repr(wrapped), str(wrapped)):
        assert shown == "WrappedKey(kek_id='a', blob=<60 bytes>)"


def test_a_keyring_cannot_be_pickled_or_copied_into_a_cache():
    # Pickling would write KEK material wherever the copy goes (a cache, a task queue).
    ring = LocalKeyring({"a": KEK_A})
    with pytest.raises(TypeError):
        pickle.dumps(ring)
    with pytest.raises(TypeError):
        copy.deepcopy(ring)


def test_the_keyring_keeps_no_raw_kek_bytes_as_attributes():
    ring = LocalKeyring({"a": KEK_A})
    for value in vars(ring).values():
        assert value != KEK_A
        if isinstance(value, dict):
            assert KEK_A not in value.values()
