"""Keyrings hold key-encryption keys (KEKs) and wrap/unwrap data keys with them.

A keyring is the only object that touches KEK material: callers hand it a data key and a
context and get back opaque bytes, and the reverse. Several KEKs can be loaded at once; the
primary wraps new data keys, the others only unwrap, so a KEK can be rotated with no downtime.
"""

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.views.decorators.debug import sensitive_variables

from keyvault.crypto.context import EncryptionContext
from keyvault.crypto.errors import (
    IntegrityError,
    KeyringConfigurationError,
    MalformedEnvelopeError,
    UnknownKEKError,
)

KEK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


@dataclass(frozen=True)
class WrappedKey:
    kek_id: str
    blob: bytes

    def __repr__(self):
        return f"WrappedKey(kek_id={self.kek_id!r}, blob=<{len(self.blob)} bytes>)"


class Keyring(ABC):
    @property
    @abstractmethod
    def primary_kek_id(self) -> str: ...

    @property
    @abstractmethod
    def kek_ids(self) -> tuple[str, ...]:
        """Every loaded KEK id, primary first."""

    def has_kek(self, kek_id: str) -> bool:
        return kek_id in self.kek_ids

    @abstractmethod
    def wrap(self, dek: bytes, context: EncryptionContext, version: int) -> WrappedKey:
        """Wrap `dek` under the primary KEK, bound to `context`."""

    @abstractmethod
    def unwrap(self, wrapped: WrappedKey, context: EncryptionContext, version: int) -> bytes:
        """The data key inside `wrapped`; raises a `CryptoError` subclass if it cannot open."""

    def __repr__(self):
        return f"{type(self).__name__}(kek_ids={list(self.kek_ids)!r})"


def validate_kek_id(kek_id: str) -> str:
    if not KEK_ID_PATTERN.fullmatch(kek_id):
        raise KeyringConfigurationError(
            "A KEK id must be 1-64 characters of letters, digits, '-' and '_'."
        )
    return kek_id


class LocalKeyring(Keyring):
    """KEKs held in process memory, loaded from the environment or a file.

    A wrapped key is `nonce (12 bytes) || AES-256-GCM(KEK, nonce, DEK, wrap AAD) (48 bytes)`.
    """

    WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES

    @sensitive_variables()
    def __init__(
        self, keks: Mapping[str, bytes], *, randbytes: Callable[[int], bytes] = os.urandom
    ):
        if not keks:
            raise KeyringConfigurationError("No key-encryption key is configured.")
        self._aeads: dict[str, AESGCM] = {}
        for kek_id, material in keks.items():
            validate_kek_id(kek_id)
            if len(material) != KEY_BYTES:
                raise KeyringConfigurationError(
                    f"KEK {kek_id!r} must be exactly {KEY_BYTES} bytes (256 bits)."
                )
            self._aeads[kek_id] = AESGCM(material)
        self._kek_ids = tuple(self._aeads)
        self._randbytes = randbytes

    @property
    def primary_kek_id(self) -> str:
        return self._kek_ids[0]

    @property
    def kek_ids(self) -> tuple[str, ...]:
        return self._kek_ids

    @sensitive_variables()
    def wrap(self, dek: bytes, context: EncryptionContext, version: int) -> WrappedKey:
        kek_id = self.primary_kek_id
        nonce = self._randbytes(NONCE_BYTES)
        sealed = self._aeads[kek_id].encrypt(nonce, dek, context.wrap_aad(version, kek_id))
        return WrappedKey(kek_id=kek_id, blob=nonce + sealed)

    @sensitive_variables()
    def unwrap(self, wrapped: WrappedKey, context: EncryptionContext, version: int) -> bytes:
        aead = self._aeads.get(wrapped.kek_id)
        if aead is None:
            raise UnknownKEKError(wrapped.kek_id)
        if len(wrapped.blob) != self.WRAPPED_BYTES:
            raise MalformedEnvelopeError("The wrapped data key has the wrong length.")
        nonce, sealed = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, sealed, context.wrap_aad(version, wrapped.kek_id))
        except InvalidTag:
            raise IntegrityError(
                "The data key does not authenticate under its KEK and context."
            ) from None
