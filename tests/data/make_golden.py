"""Regenerate the golden envelopes of the current format.

    python -m tests.data.make_golden > tests/data/golden_envelopes.json

The committed JSON is the source of truth; this script only records how it was made. The
format 1 vectors (tests/data/golden_envelopes_v1.json) were made by this script's format 1
version and are frozen: format 1 is no longer written, only opened and re-wrapped. Every
random input (data key, nonces) is derived from the vector's name, so running it again gives
the same file byte for byte unless the envelope format changed, and a format change is exactly
what the golden tests exist to catch: regenerate only for a deliberate new format version.
"""

import base64
import hashlib
import json
import sys

from keyvault.crypto import FORMAT_VERSION, EncryptionContext, LocalKeyring, rewrap, seal

# Test-only KEKs: they protect nothing.
KEKS = {
    "golden-a": hashlib.sha256(b"keyvault golden kek a").digest(),
    "golden-b": hashlib.sha256(b"keyvault golden kek b").digest(),
}

CONTEXT = {
    "model": "keyvault.providerkey",
    "field": "secret",
    "organization_id": "5d1f6a4e-2c3b-4f7a-9e8d-0b1c2d3e4f50",
    "row_id": "0f9e8d7c-6b5a-4e3d-8c2b-1a0f9e8d7c6b",
    "binding": '{"provider":"openai","routing":{}}',
}
BOUND = {
    **CONTEXT,
    "binding": (
        '{"provider":"azure_openai","routing":{"endpoint":"https://golden.openai.azure.com"}}'
    ),
}

# name, KEK that seals it, plaintext, whether the plaintext is UTF-8 text (for readability),
# context
VECTORS = [
    ("short-ascii", "golden-a", b"sk-proj-golden-0123456789abcdef", True, CONTEXT),
    ("unicode", "golden-a", "clé-🔑-ключ-密钥".encode(), True, CONTEXT),
    ("empty", "golden-a", b"", False, CONTEXT),
    (
        "binary-16kib",
        "golden-a",
        hashlib.shake_256(b"keyvault golden 16KiB").digest(16384),
        False,
        CONTEXT,
    ),
    ("under-old-kek", "golden-b", b"sk-ant-golden-sealed-under-the-old-kek", True, CONTEXT),
    ("bound-to-endpoint", "golden-a", b"azure-golden-0123456789abcdef0123", True, BOUND),
]

# name, vector it rewraps, keyring order (primary first)
REWRAPS = [("under-old-kek-rewrapped", "under-old-kek", ["golden-a", "golden-b"])]


def derived(purpose: str, name: str, length: int) -> bytes:
    return hashlib.sha256(f"keyvault golden {purpose}:{name}".encode()).digest()[:length]


def replay(*chunks: bytes):
    """A `randbytes` that hands out `chunks` in order and checks each requested length."""
    queue = list(chunks)

    def randbytes(length: int) -> bytes:
        chunk = queue.pop(0)
        if len(chunk) != length:
            raise AssertionError(f"asked for {length} random bytes, have {len(chunk)}")
        return chunk

    return randbytes


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def build() -> dict:
    vectors = []
    envelopes = {}
    for name, kek_id, plaintext, is_text, context_fields in VECTORS:
        context = EncryptionContext(**context_fields)
        dek = derived("dek", name, 32)
        nonce = derived("nonce", name, 12)
        wrap_nonce = derived("wrap-nonce", name, 12)
        keyring = LocalKeyring({kek_id: KEKS[kek_id]}, randbytes=replay(wrap_nonce))
        envelope = seal(plaintext, context, keyring, randbytes=replay(dek, nonce))
        envelopes[name] = envelope
        vector = {"name": name, "kek_id": kek_id, "context": context_fields}
        if is_text:
            vector["plaintext"] = plaintext.decode("utf-8")
        else:
            vector["plaintext_b64"] = b64(plaintext)
        vector |= {
            "dek_hex": dek.hex(),
            "nonce_hex": nonce.hex(),
            "wrap_nonce_hex": wrap_nonce.hex(),
            "data_aad_hex": context.data_aad(FORMAT_VERSION).hex(),
            "wrap_aad_hex": context.wrap_aad(FORMAT_VERSION, kek_id).hex(),
            "envelope": envelope,
        }
        vectors.append(vector)
    rewraps = []
    context = EncryptionContext(**CONTEXT)
    for name, source, order in REWRAPS:
        wrap_nonce = derived("wrap-nonce", name, 12)
        keyring = LocalKeyring({k: KEKS[k] for k in order}, randbytes=replay(wrap_nonce))
        rewraps.append(
            {
                "name": name,
                "from": source,
                "keyring": order,
                "wrap_nonce_hex": wrap_nonce.hex(),
                "envelope": rewrap(envelopes[source], context, keyring),
            }
        )
    return {
        "about": (
            f"Golden envelopes for keyvault.crypto, format version {FORMAT_VERSION}. Test data "
            "only: the KEKs "
            "below protect nothing. See docs/encryption.md and tests/test_crypto_envelope.py."
        ),
        "format_version": FORMAT_VERSION,
        "keks_b64": {kek_id: b64(material) for kek_id, material in KEKS.items()},
        "vectors": vectors,
        "rewraps": rewraps,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
