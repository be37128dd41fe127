"""The `aws-kms` keyring: AWS KMS wraps each data key, bound to its context.

The associated data becomes the KMS *encryption context*, so KMS itself refuses to unwrap a
data key for another row, organization or field, and CloudTrail logs the context of every
unwrap. A bounded in-process cache of unwrapped data keys (time-to-live and size caps, keyed
by the wrapped key *and* its context) lets a hot key cost no KMS call; a cached entry is only
ever returned for the exact blob and context KMS already accepted.

boto3 is an optional install (`pip install keyvault[kms]`); it is imported only when this
keyring is configured.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from django.views.decorators.debug import sensitive_variables

from keyvault.crypto.context import EncryptionContext
from keyvault.crypto.errors import (
    CryptoError,
    IntegrityError,
    KeyringConfigurationError,
    UnknownKEKError,
)
from keyvault.crypto.keyring import KEY_BYTES, Keyring, WrappedKey, validate_kek_id


class DataKeyCache:
    """A thread-safe LRU of unwrapped data keys with a time-to-live."""

    def __init__(self, *, ttl_seconds: float, max_entries: int, clock=time.monotonic):
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @sensitive_variables()
    def get(self, key) -> bytes | None:
        if self.max_entries <= 0 or self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, dek = entry
            if expires <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return dek

    @sensitive_variables()
    def put(self, key, dek: bytes) -> None:
        if self.max_entries <= 0 or self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl, dek)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"DataKeyCache(entries={len(self._entries)}, ttl={self.ttl})"


def _kms_context(kek_id: str, context: EncryptionContext, version: int) -> dict[str, str]:
    return {**context.as_dict(version), "kek": kek_id}


class AwsKmsKeyring(Keyring):
    """KEKs that live in AWS KMS: `{kek id: KMS key id or ARN}`, the first primary."""

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        client=None,
        region: str | None = None,
        cache_ttl_seconds: float = 300,
        cache_max_entries: int = 10_000,
    ):
        if not keys:
            raise KeyringConfigurationError("No KMS key is configured.")
        for kek_id, key_arn in keys.items():
            validate_kek_id(kek_id)
            if not key_arn:
                raise KeyringConfigurationError(f"KMS key {kek_id!r} has no key id or ARN.")
        self._keys = dict(keys)
        self._kek_ids = tuple(self._keys)
        if client is None:
            try:
                import boto3
            except ImportError:
                raise KeyringConfigurationError(
                    "The aws-kms keyring needs boto3: pip install 'keyvault[kms]'."
                ) from None
            from botocore.exceptions import BotoCoreError

            try:
                client = boto3.client("kms", region_name=region)
            except BotoCoreError as exc:
                # No region configured, or a malformed one: a configuration error (E102, one
                # line from a command), not a traceback out of the system checks.
                raise KeyringConfigurationError(
                    f"Cannot create the KMS client ({type(exc).__name__}): set "
                    "KEYVAULT_KMS_REGION to the keys' AWS region."
                ) from None
        self._client = client
        self.cache = DataKeyCache(ttl_seconds=cache_ttl_seconds, max_entries=cache_max_entries)

    @property
    def primary_kek_id(self) -> str:
        return self._kek_ids[0]

    @property
    def kek_ids(self) -> tuple[str, ...]:
        return self._kek_ids

    @sensitive_variables()
    def wrap(self, dek: bytes, context: EncryptionContext, version: int) -> WrappedKey:
        kek_id = self.primary_kek_id
        kms_context = _kms_context(kek_id, context, version)
        response = self._call(
            "encrypt", KeyId=self._keys[kek_id], Plaintext=dek, EncryptionContext=kms_context
        )
        blob = response["CiphertextBlob"]
        self.cache.put(self._cache_key(kek_id, blob, kms_context), dek)
        return WrappedKey(kek_id=kek_id, blob=blob)

    @sensitive_variables()
    def unwrap(self, wrapped: WrappedKey, context: EncryptionContext, version: int) -> bytes:
        key_arn = self._keys.get(wrapped.kek_id)
        if key_arn is None:
            raise UnknownKEKError(wrapped.kek_id)
        kms_context = _kms_context(wrapped.kek_id, context, version)
        cache_key = self._cache_key(wrapped.kek_id, wrapped.blob, kms_context)
        dek = self.cache.get(cache_key)
        if dek is not None:
            return dek
        response = self._call(
            "decrypt",
            CiphertextBlob=wrapped.blob,
            KeyId=key_arn,
            EncryptionContext=kms_context,
        )
        dek = response["Plaintext"]
        if len(dek) != KEY_BYTES:
            raise IntegrityError("KMS returned a data key of the wrong length.")
        self.cache.put(cache_key, dek)
        return dek

    @staticmethod
    def _cache_key(kek_id: str, blob: bytes, kms_context: dict) -> tuple:
        return (kek_id, blob, tuple(sorted(kms_context.items())))

    @sensitive_variables()
    def _call(self, operation: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                raise IntegrityError(
                    "KMS refused to unwrap the data key under its KEK and context."
                ) from None
            raise CryptoError(f"KMS {operation} failed: {code or 'error'}.") from None
        except BotoCoreError as exc:
            raise CryptoError(f"KMS {operation} failed: {type(exc).__name__}.") from None


class CompositeKeyring(Keyring):
    """Several keyrings as one (local and KMS during a migration): the primary's keyring wraps,
    each KEK id unwraps with the keyring that holds it."""

    def __init__(self, keyrings: list[Keyring], *, primary_kek_id: str):
        self._owner: dict[str, Keyring] = {}
        for keyring in keyrings:
            for kek_id in keyring.kek_ids:
                if kek_id in self._owner:
                    raise KeyringConfigurationError(f"KEK id {kek_id!r} is configured twice.")
                self._owner[kek_id] = keyring
        if primary_kek_id not in self._owner:
            raise KeyringConfigurationError(
                f"KEYVAULT_PRIMARY_KEK {primary_kek_id!r} is not a configured KEK."
            )
        primary_keyring = self._owner[primary_kek_id]
        if primary_keyring.primary_kek_id != primary_kek_id:
            raise KeyringConfigurationError(
                f"KEK {primary_kek_id!r} must come first among its own keyring's KEKs to be "
                "the primary."
            )
        self._primary = primary_kek_id
        self._kek_ids = (primary_kek_id, *(k for k in self._owner if k != primary_kek_id))

    @property
    def primary_kek_id(self) -> str:
        return self._primary

    @property
    def kek_ids(self) -> tuple[str, ...]:
        return self._kek_ids

    def wrap(self, dek: bytes, context: EncryptionContext, version: int) -> WrappedKey:
        return self._owner[self._primary].wrap(dek, context, version)

    def unwrap(self, wrapped: WrappedKey, context: EncryptionContext, version: int) -> bytes:
        keyring = self._owner.get(wrapped.kek_id)
        if keyring is None:
            raise UnknownKEKError(wrapped.kek_id)
        return keyring.unwrap(wrapped, context, version)
