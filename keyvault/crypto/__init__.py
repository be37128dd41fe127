"""Envelope encryption for stored secrets. See docs/encryption.md."""

from keyvault.crypto.context import EncryptionContext
from keyvault.crypto.envelope import (
    FORMAT_VERSION,
    Envelope,
    open_sealed,
    reseal,
    rewrap,
    seal,
    version_of,
)
from keyvault.crypto.errors import (
    CryptoError,
    IntegrityError,
    KeyringConfigurationError,
    LegacyEnvelopeError,
    MalformedEnvelopeError,
    UnknownKEKError,
)
from keyvault.crypto.keyring import Keyring, LocalKeyring, WrappedKey
from keyvault.crypto.loading import get_keyring, reset_keyring

__all__ = [
    "FORMAT_VERSION",
    "CryptoError",
    "EncryptionContext",
    "Envelope",
    "IntegrityError",
    "Keyring",
    "KeyringConfigurationError",
    "LegacyEnvelopeError",
    "LocalKeyring",
    "MalformedEnvelopeError",
    "UnknownKEKError",
    "WrappedKey",
    "get_keyring",
    "open_sealed",
    "reseal",
    "reset_keyring",
    "rewrap",
    "seal",
    "version_of",
]
