"""Associated data: what binds a ciphertext to the place it lives.

A ciphertext authenticates only under the exact context it was sealed with — format version,
model, field, organization and row — so a value copied to another row, org or field fails to
open. The DEK wrap is bound to the same context plus the KEK id, under a distinct label, so a
wrapped DEK cannot be replayed as data or under another KEK.

Encoding (documented in docs/encryption.md): each component as a 4-byte big-endian length
followed by its UTF-8 bytes, concatenated. Length prefixes make the encoding unambiguous: no two
different component lists encode to the same bytes.
"""

import struct
from dataclasses import dataclass, fields

DATA_LABEL = "keyvault.data"
WRAP_LABEL = "keyvault.dek-wrap"


def encode_components(*components: str) -> bytes:
    out = bytearray()
    for component in components:
        raw = component.encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


@dataclass(frozen=True)
class EncryptionContext:
    model: str
    field: str
    organization_id: str
    row_id: str

    def __post_init__(self):
        # A UUID or an int would otherwise fail only at seal time, deep in the encoder; and
        # callers must agree on one text form of an id (`str(pk)`) for a value to open again.
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str):
                raise TypeError(f"EncryptionContext.{field.name} must be str, not {type(value)}.")

    def components(self) -> tuple[str, str, str, str]:
        return (self.model, self.field, self.organization_id, self.row_id)

    def data_aad(self, version: int) -> bytes:
        return encode_components(DATA_LABEL, str(version), *self.components())

    def wrap_aad(self, version: int, kek_id: str) -> bytes:
        return encode_components(WRAP_LABEL, str(version), kek_id, *self.components())

    def as_dict(self, version: int) -> dict[str, str]:
        """The context as a string map, for keyrings (such as KMS) that take one."""
        return {
            "keyvault_version": str(version),
            "model": self.model,
            "field": self.field,
            "organization": self.organization_id,
            "row": self.row_id,
        }
