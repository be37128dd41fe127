"""Envelope encryption: a fresh data key (DEK) per value, wrapped by a KEK from a keyring.

Stored text, documented byte by byte in docs/encryption.md:

    kv1.<kek id>.<wrapped DEK>.<nonce>.<ciphertext and tag>

Binary segments are unpadded base64url. Decoding is strict (only the alphabet, canonical
encoding, exact lengths) so that no two texts decode to the same envelope: a flipped character
always fails, it never "happens to" open.
"""

import base64
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.views.decorators.debug import sensitive_variables

from keyvault.crypto.context import EncryptionContext
from keyvault.crypto.errors import IntegrityError, MalformedEnvelopeError
from keyvault.crypto.keyring import (
    KEK_ID_PATTERN,
    KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    Keyring,
    WrappedKey,
)

FORMAT_VERSION = 1
PREFIX = f"kv{FORMAT_VERSION}"
SEPARATOR = "."
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, segment: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise MalformedEnvelopeError(f"The {segment} segment is not base64url.")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise MalformedEnvelopeError(f"The {segment} segment is not base64url.") from None
    if b64url_encode(raw) != text:
        raise MalformedEnvelopeError(f"The {segment} segment is not canonical base64url.")
    return raw


@dataclass(frozen=True)
class Envelope:
    version: int
    wrapped_key: WrappedKey
    nonce: bytes
    ciphertext: bytes  # AES-256-GCM output: encrypted bytes followed by the 16-byte tag

    @property
    def kek_id(self) -> str:
        return self.wrapped_key.kek_id

    def encode(self) -> str:
        return SEPARATOR.join(
            (
                f"kv{self.version}",
                self.wrapped_key.kek_id,
                b64url_encode(self.wrapped_key.blob),
                b64url_encode(self.nonce),
                b64url_encode(self.ciphertext),
            )
        )

    @classmethod
    def decode(cls, text: str) -> "Envelope":
        if not isinstance(text, str):
            raise MalformedEnvelopeError("An envelope must be text.")
        parts = text.split(SEPARATOR)
        if len(parts) != 5:
            raise MalformedEnvelopeError("An envelope has exactly five segments.")
        prefix, kek_id, wrapped, nonce, ciphertext = parts
        if prefix != PREFIX:
            raise MalformedEnvelopeError("Unknown envelope format version.")
        if not KEK_ID_PATTERN.fullmatch(kek_id):
            raise MalformedEnvelopeError("The KEK id segment is malformed.")
        envelope = cls(
            version=FORMAT_VERSION,
            wrapped_key=WrappedKey(kek_id=kek_id, blob=b64url_decode(wrapped, "wrapped key")),
            nonce=b64url_decode(nonce, "nonce"),
            ciphertext=b64url_decode(ciphertext, "ciphertext"),
        )
        if len(envelope.nonce) != NONCE_BYTES:
            raise MalformedEnvelopeError("The nonce has the wrong length.")
        if len(envelope.ciphertext) < TAG_BYTES:
            raise MalformedEnvelopeError("The ciphertext is shorter than its tag.")
        return envelope

    def __repr__(self):
        return f"Envelope(version={self.version}, kek_id={self.kek_id!r})"


@sensitive_variables()
def seal(
    plaintext: bytes,
    context: EncryptionContext,
    keyring: Keyring,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> str:
    """Encrypt `plaintext` under a fresh DEK, wrap the DEK, return the envelope text.

    `randbytes` exists so that golden test vectors can be produced deterministically.
    """
    dek = randbytes(KEY_BYTES)
    nonce = randbytes(NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext, context.data_aad(FORMAT_VERSION))
    wrapped = keyring.wrap(dek, context, FORMAT_VERSION)
    return Envelope(FORMAT_VERSION, wrapped, nonce, ciphertext).encode()


@sensitive_variables()
def _unwrap_and_open(
    envelope: Envelope, context: EncryptionContext, keyring: Keyring
) -> tuple[bytes, bytes]:
    """The envelope's data key and plaintext."""
    dek = keyring.unwrap(envelope.wrapped_key, context, envelope.version)
    if len(dek) != KEY_BYTES:
        raise IntegrityError("The data key has the wrong length.")
    try:
        plaintext = AESGCM(dek).decrypt(
            envelope.nonce, envelope.ciphertext, context.data_aad(envelope.version)
        )
    except InvalidTag:
        raise IntegrityError("The secret does not authenticate under its context.") from None
    return dek, plaintext


@sensitive_variables()
def open_sealed(text: str, context: EncryptionContext, keyring: Keyring) -> bytes:
    """The plaintext sealed in `text`; raises a `CryptoError` subclass, never returns garbage."""
    _dek, plaintext = _unwrap_and_open(Envelope.decode(text), context, keyring)
    return plaintext


@sensitive_variables()
def rewrap(text: str, context: EncryptionContext, keyring: Keyring) -> str:
    """The same secret with its DEK re-wrapped under the primary KEK.

    The nonce and ciphertext are carried over byte for byte. The whole envelope is opened first,
    so a value that does not authenticate is refused rather than re-wrapped.
    """
    envelope = Envelope.decode(text)
    dek, _plaintext = _unwrap_and_open(envelope, context, keyring)
    rewrapped = keyring.wrap(dek, context, envelope.version)
    return Envelope(envelope.version, rewrapped, envelope.nonce, envelope.ciphertext).encode()
