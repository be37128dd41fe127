"""Associated data: what binds a ciphertext to the place it lives and where it may be sent.

A ciphertext authenticates only under the exact context it was sealed with — format version,
model, field, organization, row and (from format 2 on) its binding — so a value copied to
another row, org or field fails to open. The binding is the canonical text of the settings that
decide where the secret is sent (an endpoint or base URL): a database writer who points a key
at another host breaks its decryption instead of redirecting it. The DEK wrap is bound to the
same context plus the KEK id, under a distinct label, so a wrapped DEK cannot be replayed as
data or under another KEK.

Encoding (documented in docs/encryption.md): each component as a 4-byte big-endian length
followed by its UTF-8 bytes, concatenated. Length prefixes make the encoding unambiguous: no two
different component lists encode to the same bytes.
"""

import functools
import struct
from dataclasses import dataclass, fields

DATA_LABEL = "keyvault.data"
WRAP_LABEL = "keyvault.dek-wrap"


def encode_components(*components: str) -> bytes:
    out = []
    for component in components:
        raw = component.encode("utf-8")
        out.append(struct.pack(">I", len(raw)))
        out.append(raw)
    return b"".join(out)


@functools.lru_cache(maxsize=256)
def _header(label: str, version: int, kek_id: str | None = None) -> bytes:
    """The leading components of an AAD (label, version, and for a wrap the KEK id): few
    distinct values, each encoded once."""
    if kek_id is None:
        return encode_components(label, str(version))
    return encode_components(label, str(version), kek_id)


# Format 1 predates the binding: its associated data ends with the row id.
_UNBOUND_VERSIONS = frozenset({1})


@dataclass(frozen=True)
class EncryptionContext:
    model: str
    field: str
    organization_id: str
    row_id: str
    binding: str = ""

    def __post_init__(self):
        # A UUID or an int would otherwise fail only at seal time, deep in the encoder; and
        # callers must agree on one text form of an id (`str(pk)`) for a value to open again.
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"EncryptionContext.{name} must be str, not {type(value)}.")

    def components(self, version: int) -> tuple[str, ...]:
        place = (self.model, self.field, self.organization_id, self.row_id)
        return place if version in _UNBOUND_VERSIONS else (*place, self.binding)

    def _place(self, version: int) -> bytes:
        """The encoded place components: the same bytes in the data AAD and in every wrap AAD,
        encoded once per context (a re-wrap needs them three times)."""
        cache = self.__dict__.get("_encoded")
        if cache is None:
            # Not a field (it stays out of eq, hash and repr); frozen only guards the fields.
            cache = self.__dict__["_encoded"] = {}
        encoded = cache.get(version)
        if encoded is None:
            encoded = cache[version] = encode_components(*self.components(version))
        return encoded

    def data_aad(self, version: int) -> bytes:
        return _header(DATA_LABEL, version) + self._place(version)

    def wrap_aad(self, version: int, kek_id: str) -> bytes:
        return _header(WRAP_LABEL, version, kek_id) + self._place(version)

    def as_dict(self, version: int) -> dict[str, str]:
        """The context as a string map, for keyrings (such as KMS) that take one."""
        mapping = {
            "keyvault_version": str(version),
            "model": self.model,
            "field": self.field,
            "organization": self.organization_id,
            "row": self.row_id,
        }
        # KMS refuses empty values; an empty binding is the same as none.
        if version not in _UNBOUND_VERSIONS and self.binding:
            mapping["binding"] = self.binding
        return mapping


_FIELD_NAMES = tuple(field.name for field in fields(EncryptionContext))
