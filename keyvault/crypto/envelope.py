"""Envelope encryption: a fresh data key (DEK) per value, wrapped by a KEK from a keyring.

Stored text, documented byte by byte in docs/encryption.md:

    kv2.<kek id>.<wrapped DEK>.<nonce>.<ciphertext and tag>

Format 2 binds the secret to where it is sent (see `context`); format 1 envelopes, written
before that, still open and are re-wrapped as format 1, until `upgrade_envelopes` re-seals them.

Binary segments are unpadded base64url. Decoding is strict (only the alphabet, canonical
encoding, exact lengths) so that no two texts decode to the same envelope: a flipped character
always fails, it never "happens to" open.
"""

import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.views.decorators.debug import sensitive_variables

from keyvault.crypto.context import EncryptionContext
from keyvault.crypto.errors import IntegrityError, LegacyEnvelopeError, MalformedEnvelopeError
from keyvault.crypto.keyring import (
    KEK_ID_PATTERN,
    KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    Keyring,
    WrappedKey,
)

FORMAT_VERSION = 2
# Every version that opens; `seal` writes only FORMAT_VERSION.
READABLE_VERSIONS = frozenset({1, 2})
LEGACY_VERSIONS = READABLE_VERSIONS - {FORMAT_VERSION}
PREFIX = f"kv{FORMAT_VERSION}"
_PREFIXES = {f"kv{version}": version for version in READABLE_VERSIONS}
SEPARATOR = "."
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


# binascii directly, not `base64.urlsafe_*`: the same encoding without the wrappers' type
# checks, which cost more than the encoding itself when a re-wrap job handles millions.
_TO_URL = bytes.maketrans(b"+/", b"-_")
_FROM_URL = str.maketrans("-_", "+/")
_PADDING = ("", "===", "==", "=")
_ALPHABET_INDEX = {
    char: index
    for index, char in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
_UNUSED_BITS = {2: 0b1111, 3: 0b11}


def b64url_encode(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_TO_URL).decode("ascii")


def b64url_decode(text: str, segment: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise MalformedEnvelopeError(f"The {segment} segment is not base64url.")
    tail = len(text) % 4
    if tail == 1:
        raise MalformedEnvelopeError(f"The {segment} segment is not base64url.")
    # Canonical: the bits the last character carries beyond the last whole byte are zero (4 of
    # them after 2 characters, 2 after 3), so no two texts decode to the same bytes. The same
    # answer as encoding the bytes again and comparing, without the encoding.
    if tail and _ALPHABET_INDEX[text[-1]] & _UNUSED_BITS[tail]:
        raise MalformedEnvelopeError(f"The {segment} segment is not canonical base64url.")
    try:
        return binascii.a2b_base64(text.translate(_FROM_URL) + _PADDING[tail])
    except (binascii.Error, ValueError):
        raise MalformedEnvelopeError(f"The {segment} segment is not base64url.") from None


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
        version = _PREFIXES.get(prefix)
        if version is None:
            raise MalformedEnvelopeError("Unknown envelope format version.")
        if not KEK_ID_PATTERN.fullmatch(kek_id):
            raise MalformedEnvelopeError("The KEK id segment is malformed.")
        envelope = cls(
            version=version,
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


def _decode(text: str, *, legacy: bool) -> Envelope:
    envelope = Envelope.decode(text)
    if envelope.version in LEGACY_VERSIONS and not legacy:
        raise LegacyEnvelopeError(
            f"The envelope is in the legacy format {envelope.version}, which is not opened "
            "unless KEYVAULT_OPEN_LEGACY_ENVELOPES is on."
        )
    return envelope


@sensitive_variables()
def open_sealed(
    text: str, context: EncryptionContext, keyring: Keyring, *, legacy: bool = False
) -> bytes:
    """The plaintext sealed in `text`; raises a `CryptoError` subclass, never returns garbage.

    Legacy formats open only with `legacy=True`: a process that no longer needs them refuses
    them, so an old, unbound envelope put back into a row cannot open.
    """
    _dek, plaintext = _unwrap_and_open(_decode(text, legacy=legacy), context, keyring)
    return plaintext


def version_of(text: str) -> int:
    """The format version of an envelope text (a `MalformedEnvelopeError` if it is none)."""
    return Envelope.decode(text).version


@sensitive_variables()
def rewrap(text: str, context: EncryptionContext, keyring: Keyring, *, legacy: bool = False) -> str:
    """The same secret with its DEK re-wrapped under the primary KEK.

    The nonce and ciphertext are carried over byte for byte, and so is the format version: the
    data's associated data cannot change without re-encrypting it (that is `reseal`). The whole
    envelope is opened first, so a value that does not authenticate is refused rather than
    re-wrapped.
    """
    envelope = _decode(text, legacy=legacy)
    dek, _plaintext = _unwrap_and_open(envelope, context, keyring)
    rewrapped = keyring.wrap(dek, context, envelope.version)
    # The nonce and ciphertext segments are carried over as text: strict decoding has just
    # shown them canonical, so they are what encoding their bytes again would give.
    _prefix, _kek, _wrapped, nonce, ciphertext = text.split(SEPARATOR)
    return SEPARATOR.join(
        (
            f"kv{envelope.version}",
            rewrapped.kek_id,
            b64url_encode(rewrapped.blob),
            nonce,
            ciphertext,
        )
    )


@sensitive_variables()
def reseal(text: str, context: EncryptionContext, keyring: Keyring) -> str:
    """The secret sealed in `text`, sealed again in the current format with a fresh data key:
    how format 1 envelopes gain their binding (a format 1 envelope opens under the same context,
    whose binding its associated data does not include). Opening comes first, so a value that
    does not authenticate is refused, never carried over. The one caller that opens a legacy
    envelope whatever the process's setting: it is how they go away."""
    return seal(open_sealed(text, context, keyring, legacy=True), context, keyring)
