"""Typed errors of the crypto layer.

Messages name what failed (a KEK id, a segment) and never carry key material, plaintext or the
envelope itself, so they are safe to log and to show.
"""


class CryptoError(Exception):
    """Base class: something about a secret could not be sealed or opened."""

    # What a client may branch on, whichever subclass it was: the subclass and its message say
    # what failed, which is for the logs, not for a caller of the API.
    code = "key_integrity_error"


class KeyringConfigurationError(CryptoError):
    """The configured KEKs are missing or malformed."""


class MalformedEnvelopeError(CryptoError):
    """The stored value is not a well-formed envelope (truncated, bad encoding, wrong version)."""


class UnknownKEKError(CryptoError):
    """The envelope names a KEK that is not loaded in the keyring."""

    def __init__(self, kek_id: str):
        super().__init__(f"KEK {kek_id!r} is not loaded; it is needed to open this secret.")
        self.kek_id = kek_id


class IntegrityError(CryptoError):
    """The envelope does not authenticate: tampered, corrupted, or moved from its place."""


class LegacyEnvelopeError(CryptoError):
    """The envelope is in an older format that this process does not open: format 1 is not
    bound to where the secret is sent, so an old envelope restored from a backup would undo
    that binding (see docs/encryption.md)."""
