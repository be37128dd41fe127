"""The envelope format and its failure modes (keyvault.crypto.envelope and .context).

Pure crypto: no database. Golden envelopes in tests/data/golden_envelopes.json pin the format;
everything else checks that any change to an envelope or its context fails with a typed error.
"""

import base64
import dataclasses
import json
import random
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyvault.crypto import (
    FORMAT_VERSION,
    CryptoError,
    EncryptionContext,
    Envelope,
    IntegrityError,
    LegacyEnvelopeError,
    LocalKeyring,
    MalformedEnvelopeError,
    UnknownKEKError,
    open_sealed,
    reseal,
    rewrap,
    seal,
)
from keyvault.crypto.context import encode_components
from keyvault.crypto.envelope import b64url_decode, b64url_encode

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "golden_envelopes.json").read_text("utf-8"))
# Format 1, written before envelopes were bound to their endpoint: frozen, still opened.
GOLDEN_V1 = json.loads((DATA / "golden_envelopes_v1.json").read_text("utf-8"))
GOLDEN_KEKS = {kek_id: base64.b64decode(b64) for kek_id, b64 in GOLDEN["keks_b64"].items()}
VECTORS = {vector["name"]: vector for vector in GOLDEN["vectors"]}
VECTORS_V1 = {vector["name"]: vector for vector in GOLDEN_V1["vectors"]}
ALL_VECTORS = {
    **{f"v2-{name}": (2, vector) for name, vector in VECTORS.items()},
    **{f"v1-{name}": (1, vector) for name, vector in VECTORS_V1.items()},
}

# Segment positions in `kv2.<kek id>.<wrapped DEK>.<nonce>.<ciphertext+tag>`.
PREFIX, KEK_ID, WRAPPED, NONCE, CIPHERTEXT = range(5)
TYPED_ERRORS = (MalformedEnvelopeError, UnknownKEKError, IntegrityError, LegacyEnvelopeError)

CONTEXT = EncryptionContext(
    model="keyvault.providerkey",
    field="secret",
    organization_id="3b0c6f1e-0000-4000-8000-000000000001",
    row_id="9a7d2c44-0000-4000-8000-000000000002",
)
SECRET = b"sk-proj-test-secret-value-0123456789"
KEK_NEW = bytes(range(32))
KEK_OLD = bytes(range(32, 64))


def golden_keyring() -> LocalKeyring:
    return LocalKeyring(GOLDEN_KEKS)


def plaintext_of(vector: dict) -> bytes:
    if "plaintext" in vector:
        return vector["plaintext"].encode("utf-8")
    return base64.b64decode(vector["plaintext_b64"])


def context_of(vector: dict) -> EncryptionContext:
    return EncryptionContext(**vector["context"])


def replay(*chunks: bytes):
    """A `randbytes` that hands out `chunks` in order, checking the length of each request."""
    queue = list(chunks)

    def randbytes(length: int) -> bytes:
        assert queue, "asked for more random bytes than recorded"
        chunk = queue.pop(0)
        assert len(chunk) == length
        return chunk

    randbytes.remaining = queue
    return randbytes


def segments(text: str) -> list[str]:
    return text.split(".")


def with_segment(text: str, index: int, value: str) -> str:
    parts = segments(text)
    parts[index] = value
    return ".".join(parts)


def with_byte_flipped(text: str, index: int, position: int, mask: int = 0x01) -> str:
    """`text` with one bit flipped in byte `position` of binary segment `index`."""
    raw = bytearray(b64url_decode(segments(text)[index], "test"))
    raw[position] ^= mask
    return with_segment(text, index, b64url_encode(bytes(raw)))


def keyring(*keks: tuple[str, bytes]) -> LocalKeyring:
    return LocalKeyring(dict(keks))


@pytest.fixture
def sealed() -> str:
    return seal(SECRET, CONTEXT, keyring(("kek-new", KEK_NEW)))


# --- Golden vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("golden", "version"), [(GOLDEN, 2), (GOLDEN_V1, 1)])
def test_golden_file_covers_the_required_cases(golden, version):
    sizes = {len(plaintext_of(vector)) for vector in golden["vectors"]}
    assert golden["format_version"] == version
    assert 0 in sizes
    assert max(sizes) >= 16 * 1024
    assert any(not vector.get("plaintext", "").isascii() for vector in golden["vectors"])


def test_the_current_format_is_2_and_binds_an_endpoint():
    assert FORMAT_VERSION == 2
    assert any('"endpoint"' in vector["context"]["binding"] for vector in GOLDEN["vectors"])


@pytest.mark.parametrize("name", sorted(ALL_VECTORS))
def test_golden_envelope_opens_to_its_plaintext(name):
    version, vector = ALL_VECTORS[name]
    opened = open_sealed(
        vector["envelope"], context_of(vector), golden_keyring(), legacy=version == 1
    )
    assert opened == plaintext_of(vector)


@pytest.mark.parametrize("name", sorted(VECTORS_V1))
def test_a_format_1_envelope_opens_only_when_legacy_formats_are_allowed(name):
    vector = VECTORS_V1[name]
    with pytest.raises(LegacyEnvelopeError):
        open_sealed(vector["envelope"], context_of(vector), golden_keyring())
    with pytest.raises(LegacyEnvelopeError):
        rewrap(vector["envelope"], context_of(vector), golden_keyring())


@pytest.mark.parametrize("name", sorted(VECTORS_V1))
def test_a_format_1_envelope_opens_whatever_the_binding_it_is_asked_with(name):
    # Format 1 carries no binding; its rows are re-sealed by upgrade_envelopes to gain one.
    vector = VECTORS_V1[name]
    context = dataclasses.replace(context_of(vector), binding='{"base_url":"https://x.example"}')
    opened = open_sealed(vector["envelope"], context, golden_keyring(), legacy=True)
    assert opened == plaintext_of(vector)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_a_format_2_envelope_does_not_open_under_another_binding(name):
    vector = VECTORS[name]
    bindings = (
        "",
        '{"provider":"openai","routing":{"base_url":"https://collector.evil.example"}}',
        '{"provider":"deepseek","routing":{}}',
        vector["context"]["binding"] + " ",
    )
    for binding in bindings:
        if binding == vector["context"]["binding"]:
            continue
        context = dataclasses.replace(context_of(vector), binding=binding)
        with pytest.raises(IntegrityError):
            open_sealed(vector["envelope"], context, golden_keyring())


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_relabelling_a_format_2_envelope_as_format_1_does_not_strip_its_binding(name):
    vector = VECTORS[name]
    downgraded = with_segment(vector["envelope"], PREFIX, "kv1")
    with pytest.raises(LegacyEnvelopeError):
        open_sealed(downgraded, context_of(vector), golden_keyring())
    # And even while legacy envelopes are opened: the version is in both layers' AAD.
    with pytest.raises(IntegrityError):
        open_sealed(downgraded, context_of(vector), golden_keyring(), legacy=True)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_deterministic_seal_reproduces_the_golden_envelope_exactly(name):
    vector = VECTORS[name]
    wrap_random = replay(bytes.fromhex(vector["wrap_nonce_hex"]))
    data_random = replay(bytes.fromhex(vector["dek_hex"]), bytes.fromhex(vector["nonce_hex"]))
    kek_id = vector["kek_id"]
    sealing_keyring = LocalKeyring({kek_id: GOLDEN_KEKS[kek_id]}, randbytes=wrap_random)

    text = seal(plaintext_of(vector), context_of(vector), sealing_keyring, randbytes=data_random)

    assert text == vector["envelope"]
    assert data_random.remaining == [] and wrap_random.remaining == []


@pytest.mark.parametrize("name", sorted(ALL_VECTORS))
def test_golden_associated_data_encoding_is_pinned(name):
    version, vector = ALL_VECTORS[name]
    context = context_of(vector)
    assert context.data_aad(version).hex() == vector["data_aad_hex"]
    assert context.wrap_aad(version, vector["kek_id"]).hex() == vector["wrap_aad_hex"]


def test_format_2_associated_data_ends_with_the_binding():
    vector = VECTORS["bound-to-endpoint"]
    binding = vector["context"]["binding"].encode()
    data_aad = bytes.fromhex(vector["data_aad_hex"])
    assert data_aad.endswith(len(binding).to_bytes(4, "big") + binding)
    assert bytes.fromhex(vector["wrap_aad_hex"]).endswith(binding)


@pytest.mark.parametrize("name", sorted(ALL_VECTORS))
def test_golden_envelope_layout_matches_the_documented_segments(name):
    version, vector = ALL_VECTORS[name]
    text = vector["envelope"]
    prefix, kek_id, wrapped, nonce, _ciphertext = segments(text)
    envelope = Envelope.decode(text)

    assert prefix == f"kv{version}" and envelope.version == version
    assert kek_id == envelope.kek_id == vector["kek_id"]
    assert len(envelope.wrapped_key.blob) == LocalKeyring.WRAPPED_BYTES == 60
    assert envelope.wrapped_key.blob[:12].hex() == vector["wrap_nonce_hex"]
    assert envelope.nonce.hex() == vector["nonce_hex"]
    assert len(envelope.ciphertext) == len(plaintext_of(vector)) + 16
    assert (len(wrapped), len(nonce)) == (80, 16)
    assert "=" not in text
    assert envelope.encode() == text


@pytest.mark.parametrize(
    ("vectors", "rewrapped"),
    [(VECTORS, r) for r in GOLDEN["rewraps"]] + [(VECTORS_V1, r) for r in GOLDEN_V1["rewraps"]],
    ids=lambda r: r.get("name", ""),
)
def test_deterministic_rewrap_reproduces_the_golden_envelope_exactly(vectors, rewrapped):
    source = vectors[rewrapped["from"]]
    wrap_random = replay(bytes.fromhex(rewrapped["wrap_nonce_hex"]))
    ring = LocalKeyring({k: GOLDEN_KEKS[k] for k in rewrapped["keyring"]}, randbytes=wrap_random)

    legacy = vectors is VECTORS_V1
    text = rewrap(source["envelope"], context_of(source), ring, legacy=legacy)

    assert text == rewrapped["envelope"]
    opened = open_sealed(text, context_of(source), golden_keyring(), legacy=legacy)
    assert opened == plaintext_of(source)


# --- Corruption: every segment, every character, every length ----------------------------------


@pytest.mark.parametrize("prefix", ["kv3", "kv0", "KV2", "kv", "kv2x", "v2", "", "kv02"])
def test_changed_version_prefix_is_malformed(sealed, prefix):
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(with_segment(sealed, PREFIX, prefix), CONTEXT, keyring(("kek-new", KEK_NEW)))


def test_kek_id_changed_to_an_unloaded_id_is_unknown_kek(sealed):
    tampered = with_segment(sealed, KEK_ID, "kek-nex")
    with pytest.raises(UnknownKEKError) as excinfo:
        open_sealed(tampered, CONTEXT, keyring(("kek-new", KEK_NEW)))
    assert excinfo.value.kek_id == "kek-nex"


@pytest.mark.parametrize("kek_id", ["", "kek new", "kek/new", "kék", "k" * 65])
def test_kek_id_outside_the_id_alphabet_is_malformed(sealed, kek_id):
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(with_segment(sealed, KEK_ID, kek_id), CONTEXT, keyring(("kek-new", KEK_NEW)))


def test_wrapped_key_relabelled_to_another_loaded_kek_fails_integrity(sealed):
    ring = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))
    with pytest.raises(IntegrityError):
        open_sealed(with_segment(sealed, KEK_ID, "kek-old"), CONTEXT, ring)


def test_wrapped_key_relabelled_to_an_id_with_the_same_kek_material_fails_integrity(sealed):
    # The KEK id is part of the wrap's associated data, so even an alias of the same key fails.
    ring = keyring(("kek-new", KEK_NEW), ("kek-alias", KEK_NEW))
    with pytest.raises(IntegrityError):
        open_sealed(with_segment(sealed, KEK_ID, "kek-alias"), CONTEXT, ring)


@pytest.mark.parametrize(
    ("index", "length"), [(WRAPPED, 60), (NONCE, 12), (CIPHERTEXT, len(SECRET) + 16)]
)
def test_a_bit_flipped_in_any_byte_of_a_binary_segment_fails_integrity(sealed, index, length):
    ring = keyring(("kek-new", KEK_NEW))
    assert len(b64url_decode(segments(sealed)[index], "test")) == length
    for position in range(length):
        for mask in (0x01, 0x80):
            with pytest.raises(IntegrityError):
                open_sealed(with_byte_flipped(sealed, index, position, mask), CONTEXT, ring)


def test_a_flipped_byte_in_the_tag_region_fails_integrity(sealed):
    ring = keyring(("kek-new", KEK_NEW))
    for position in range(-16, 0):
        with pytest.raises(IntegrityError):
            open_sealed(with_byte_flipped(sealed, CIPHERTEXT, position), CONTEXT, ring)


def test_every_character_replaced_anywhere_raises_a_typed_error(sealed):
    ring = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))
    replacements = string.ascii_letters + string.digits + "-_.=+/ \n\x00é"
    for position, original in enumerate(sealed):
        for replacement in replacements:
            if replacement == original:
                continue
            tampered = sealed[:position] + replacement + sealed[position + 1 :]
            with pytest.raises(TYPED_ERRORS):
                open_sealed(tampered, CONTEXT, ring)


def test_every_character_deleted_or_duplicated_raises_a_typed_error(sealed):
    ring = keyring(("kek-new", KEK_NEW))
    for position in range(len(sealed)):
        for tampered in (
            sealed[:position] + sealed[position + 1 :],
            sealed[:position] + sealed[position] + sealed[position:],
        ):
            with pytest.raises(TYPED_ERRORS):
                open_sealed(tampered, CONTEXT, ring)


@pytest.mark.parametrize("name", ["short-ascii", "empty"])
def test_non_canonical_base64_in_the_last_character_is_malformed(name):
    vector = VECTORS[name]
    ciphertext = segments(vector["envelope"])[CIPHERTEXT]
    assert len(ciphertext) % 4 in (2, 3), "the last character must carry unused bits"
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet.index(ciphertext[-1])
    # Flipping the lowest bit changes only bits that the decoder throws away.
    non_canonical = ciphertext[:-1] + alphabet[last ^ 1]
    lenient = base64.urlsafe_b64decode(non_canonical + "=" * (-len(non_canonical) % 4))
    assert lenient == b64url_decode(ciphertext, "test")

    tampered = with_segment(vector["envelope"], CIPHERTEXT, non_canonical)
    with pytest.raises(MalformedEnvelopeError, match="canonical"):
        open_sealed(tampered, context_of(vector), golden_keyring())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s + "=",
        lambda s: s + "==",
        lambda s: "+" + s[1:],
        lambda s: s[:-1] + "/",
        lambda s: s + "\n",
        lambda s: " " + s,
        lambda s: s[:10] + " " + s[10:],
    ],
    ids=["padding", "double-padding", "plus", "slash", "newline", "leading-space", "space"],
)
@pytest.mark.parametrize("index", [WRAPPED, NONCE, CIPHERTEXT])
def test_binary_segments_accept_only_unpadded_base64url(sealed, index, mangle):
    tampered = with_segment(sealed, index, mangle(segments(sealed)[index]))
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(tampered, CONTEXT, keyring(("kek-new", KEK_NEW)))


@pytest.mark.parametrize("name", ["short-ascii", "empty"])
def test_every_truncation_raises_a_crypto_error(name):
    vector = VECTORS[name]
    text = vector["envelope"]
    for length in range(len(text)):
        with pytest.raises(CryptoError):
            open_sealed(text[:length], context_of(vector), golden_keyring())
        with pytest.raises(CryptoError):
            open_sealed(text[length + 1 :], context_of(vector), golden_keyring())


def test_a_ciphertext_shorter_than_its_tag_is_malformed(sealed):
    short = with_segment(sealed, CIPHERTEXT, b64url_encode(b"\x00" * 15))
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(short, CONTEXT, keyring(("kek-new", KEK_NEW)))


@pytest.mark.parametrize("length", [0, 11, 13, 16])
def test_a_nonce_of_the_wrong_length_is_malformed(sealed, length):
    tampered = with_segment(sealed, NONCE, b64url_encode(b"\x00" * length))
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(tampered, CONTEXT, keyring(("kek-new", KEK_NEW)))


@pytest.mark.parametrize("extra", [".", ".AAAA", "..", ".kv1"])
def test_extra_segments_are_malformed(sealed, extra):
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(sealed + extra, CONTEXT, keyring(("kek-new", KEK_NEW)))


@pytest.mark.parametrize("value", [None, b"kv1.a.b.c.d", 42, ""])
def test_a_value_that_is_not_envelope_text_is_malformed(value):
    with pytest.raises(MalformedEnvelopeError):
        open_sealed(value, CONTEXT, keyring(("kek-new", KEK_NEW)))


# --- Associated data ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"model": "keyvault.proxytoken"},
        {"field": "other_secret"},
        {"organization_id": "3b0c6f1e-0000-4000-8000-000000000099"},
        {"row_id": "9a7d2c44-0000-4000-8000-000000000099"},
        {"organization_id": CONTEXT.row_id, "row_id": CONTEXT.organization_id},
        {"model": "keyvault.providerkeys", "field": "ecret"},  # same concatenation
    ],
    ids=["model", "field", "organization", "row", "org-and-row-swapped", "shifted-boundary"],
)
def test_opening_under_a_changed_context_fails_integrity(sealed, change):
    with pytest.raises(IntegrityError):
        open_sealed(sealed, dataclasses.replace(CONTEXT, **change), keyring(("kek-new", KEK_NEW)))


@pytest.mark.parametrize("component", ["model", "field", "organization_id", "row_id"])
def test_data_associated_data_binds_even_when_the_wrap_is_valid_for_the_new_place(component):
    # An attacker who could re-wrap the DEK for another row still cannot move the ciphertext:
    # the data itself is bound to its context, not only the wrapped key.
    dek, nonce = bytes(range(100, 132)), bytes(12)
    ring = keyring(("kek-new", KEK_NEW))
    text = seal(SECRET, CONTEXT, ring, randbytes=replay(dek, nonce))
    elsewhere = dataclasses.replace(CONTEXT, **{component: "elsewhere"})
    forged = Envelope(
        FORMAT_VERSION,
        ring.wrap(dek, elsewhere, FORMAT_VERSION),
        Envelope.decode(text).nonce,
        Envelope.decode(text).ciphertext,
    ).encode()

    with pytest.raises(IntegrityError, match="secret does not authenticate"):
        open_sealed(forged, elsewhere, ring)


def test_associated_data_encoding_is_length_prefixed_and_unambiguous():
    assert encode_components("ab", "c") != encode_components("a", "bc")
    assert encode_components("") == b"\x00\x00\x00\x00"
    assert encode_components("é") == b"\x00\x00\x00\x02\xc3\xa9"
    assert CONTEXT.data_aad(1) != CONTEXT.data_aad(2)
    assert CONTEXT.wrap_aad(1, "a") != CONTEXT.wrap_aad(1, "b")
    assert CONTEXT.data_aad(1) != CONTEXT.wrap_aad(1, "")


def test_context_components_must_be_text():
    with pytest.raises(TypeError):
        EncryptionContext(model="m", field="f", organization_id=1, row_id="r")


# --- Keys: removed, decrypt-only, rotation ------------------------------------------------------


def test_a_removed_kek_is_unknown_kek(sealed):
    with pytest.raises(UnknownKEKError) as excinfo:
        open_sealed(sealed, CONTEXT, keyring(("kek-other", KEK_OLD)))
    assert excinfo.value.kek_id == "kek-new"


def test_a_decrypt_only_old_kek_still_opens():
    old_text = seal(SECRET, CONTEXT, keyring(("kek-old", KEK_OLD)))
    rotated = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))
    assert open_sealed(old_text, CONTEXT, rotated) == SECRET
    assert Envelope.decode(seal(SECRET, CONTEXT, rotated)).kek_id == "kek-new"


def test_rewrap_moves_to_the_primary_and_keeps_nonce_and_ciphertext_byte_identical():
    old_text = seal(SECRET, CONTEXT, keyring(("kek-old", KEK_OLD)))
    rotated = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))

    new_text = rewrap(old_text, CONTEXT, rotated)

    old_parts, new_parts = segments(old_text), segments(new_text)
    assert new_parts[KEK_ID] == "kek-new"
    assert new_parts[WRAPPED] != old_parts[WRAPPED]
    assert new_parts[NONCE] == old_parts[NONCE]
    assert new_parts[CIPHERTEXT] == old_parts[CIPHERTEXT]
    assert new_parts[PREFIX] == old_parts[PREFIX]
    assert open_sealed(new_text, CONTEXT, keyring(("kek-new", KEK_NEW))) == SECRET


def test_rewrap_under_the_current_primary_still_opens():
    ring = keyring(("kek-new", KEK_NEW))
    text = seal(SECRET, CONTEXT, ring)
    again = rewrap(rewrap(text, CONTEXT, ring), CONTEXT, ring)
    assert segments(again)[CIPHERTEXT] == segments(text)[CIPHERTEXT]
    assert open_sealed(again, CONTEXT, ring) == SECRET


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: with_byte_flipped(t, CIPHERTEXT, 0),
        lambda t: with_byte_flipped(t, CIPHERTEXT, -1),
        lambda t: with_byte_flipped(t, NONCE, 3),
        lambda t: with_byte_flipped(t, WRAPPED, 20),
    ],
    ids=["ciphertext", "tag", "nonce", "wrapped-key"],
)
def test_rewrap_refuses_a_tampered_envelope(tamper):
    old_text = seal(SECRET, CONTEXT, keyring(("kek-old", KEK_OLD)))
    rotated = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))
    with pytest.raises(IntegrityError):
        rewrap(tamper(old_text), CONTEXT, rotated)


def test_rewrap_refuses_the_wrong_context_and_an_unloaded_kek(sealed):
    with pytest.raises(IntegrityError):
        rewrap(sealed, dataclasses.replace(CONTEXT, row_id="x"), keyring(("kek-new", KEK_NEW)))
    with pytest.raises(UnknownKEKError):
        rewrap(sealed, CONTEXT, keyring(("kek-other", KEK_OLD)))


def test_two_seals_of_one_value_differ_in_every_random_segment():
    ring = keyring(("kek-new", KEK_NEW))
    first, second = seal(SECRET, CONTEXT, ring), seal(SECRET, CONTEXT, ring)
    assert first != second
    for index in (WRAPPED, NONCE, CIPHERTEXT):
        assert segments(first)[index] != segments(second)[index]
    a, b = Envelope.decode(first), Envelope.decode(second)
    assert a.wrapped_key.blob[:12] != b.wrapped_key.blob[:12]  # wrap nonces
    assert open_sealed(first, CONTEXT, ring) == open_sealed(second, CONTEXT, ring) == SECRET


# --- Properties ------------------------------------------------------------------------------


def _large_bytes(seed_and_length):
    seed, length = seed_and_length
    return random.Random(seed).randbytes(length)


plaintexts = st.one_of(
    st.binary(max_size=1024),
    st.tuples(st.integers(0, 2**32), st.integers(16 * 1024 - 16, 16 * 1024 + 256)).map(
        _large_bytes
    ),
)
components = st.text(max_size=40)
contexts = st.builds(EncryptionContext, components, components, components, components)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_RING = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))


@PROPERTY
@given(plaintext=plaintexts, context=contexts)
def test_any_bytes_round_trip_under_any_context(plaintext, context):
    text = seal(plaintext, context, _RING)
    assert open_sealed(text, context, _RING) == plaintext
    assert open_sealed(rewrap(text, context, _RING), context, _RING) == plaintext
    assert len(Envelope.decode(text).ciphertext) == len(plaintext) + 16


@PROPERTY
@given(plaintext=st.binary(max_size=256), first=contexts, second=contexts)
def test_any_other_context_fails_integrity(plaintext, first, second):
    if first == second:
        return
    with pytest.raises(IntegrityError):
        open_sealed(seal(plaintext, first, _RING), second, _RING)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 16 * 1024, 16 * 1024 + 1, 64 * 1024])
def test_edge_sizes_round_trip(size):
    plaintext = bytes(i % 251 for i in range(size))
    text = seal(plaintext, CONTEXT, _RING)
    assert open_sealed(text, CONTEXT, _RING) == plaintext


# --- Nothing secret in repr, str or errors -------------------------------------------------------


def _secret_renderings(*values: bytes) -> list[str]:
    out = []
    for value in values:
        out += [value.hex(), base64.b64encode(value).decode(), b64url_encode(value), repr(value)]
        if value.isascii():
            out.append(value.decode())
    return [text for text in out if len(text) >= 8]


def test_envelope_and_wrapped_key_reprs_show_no_key_material_or_ciphertext():
    dek, nonce = bytes(range(200, 232)), bytes(range(12))
    text = seal(SECRET, CONTEXT, keyring(("kek-new", KEK_NEW)), randbytes=replay(dek, nonce))
    envelope = Envelope.decode(text)
    hidden = _secret_renderings(SECRET, dek, KEK_NEW, envelope.wrapped_key.blob)
    hidden += _secret_renderings(envelope.ciphertext) + segments(text)[WRAPPED:]
    for shown in (
        repr(envelope),
        str(envelope),
        repr(envelope.wrapped_key),
        str(envelope.wrapped_key),
    ):
        assert "kek-new" in shown
        for secret in hidden:
            assert secret not in shown


def test_errors_name_what_failed_and_never_carry_secrets_or_the_envelope(sealed):
    ring = keyring(("kek-new", KEK_NEW), ("kek-old", KEK_OLD))
    failures = [
        lambda: open_sealed(sealed, dataclasses.replace(CONTEXT, row_id="x"), ring),
        lambda: open_sealed(with_byte_flipped(sealed, CIPHERTEXT, 0), CONTEXT, ring),
        lambda: open_sealed(with_segment(sealed, KEK_ID, "kek-gone"), CONTEXT, ring),
        lambda: open_sealed(sealed[:-3], CONTEXT, ring),
        lambda: open_sealed(sealed + "=", CONTEXT, ring),
        lambda: open_sealed(with_segment(sealed, PREFIX, "kv9"), CONTEXT, ring),
    ]
    hidden = _secret_renderings(SECRET, KEK_NEW, KEK_OLD) + segments(sealed)[WRAPPED:]
    for failure in failures:
        with pytest.raises(CryptoError) as excinfo:
            failure()
        for shown in (str(excinfo.value), repr(excinfo.value)):
            for secret in hidden:
                assert secret not in shown


# --- Re-sealing format 1 into the current format -----------------------------------------------


@pytest.mark.parametrize("name", sorted(VECTORS_V1))
def test_reseal_turns_a_format_1_envelope_into_a_bound_format_2_one(name):
    vector = VECTORS_V1[name]
    bound = dataclasses.replace(context_of(vector), binding='{"base_url":"https://a.example"}')

    text = reseal(vector["envelope"], bound, golden_keyring())

    assert Envelope.decode(text).version == FORMAT_VERSION == 2
    assert open_sealed(text, bound, golden_keyring()) == plaintext_of(vector)
    elsewhere = dataclasses.replace(bound, binding='{"base_url":"https://b.example"}')
    with pytest.raises(IntegrityError):
        open_sealed(text, elsewhere, golden_keyring())


def test_reseal_gives_a_fresh_data_key_and_refuses_what_does_not_open(sealed):
    ring = keyring(("kek-new", KEK_NEW))
    again = reseal(sealed, CONTEXT, ring)
    assert segments(again)[NONCE] != segments(sealed)[NONCE]
    assert segments(again)[WRAPPED] != segments(sealed)[WRAPPED]
    assert open_sealed(again, CONTEXT, ring) == SECRET
    with pytest.raises(IntegrityError):
        reseal(with_byte_flipped(sealed, CIPHERTEXT, 0), CONTEXT, ring)
