"""The value `resolve` and `get` return."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Credential:
    """One enabled provider key as Keyvault last described it.

    Immutable (and `config` read-only), so a caller can keep one while the background thread
    replaces it with a newer version: a request already under way finishes with the secret it
    started with.
    """

    key_id: str
    provider: str
    name: str
    secret: str = field(repr=False)
    config: Mapping[str, object] = field(hash=False)
    version: int
    is_default: bool
    hint: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    rotated_at: datetime | None = None

    def __repr__(self) -> str:
        # Written out rather than generated so that a field added later cannot bring the secret
        # into log lines, tracebacks or debugger output by default.
        return (
            f"Credential(key_id={self.key_id!r}, provider={self.provider!r}, name={self.name!r}, "
            f"version={self.version}, is_default={self.is_default}, hint={self.hint!r}, "
            "secret=<hidden>)"
        )

    __str__ = __repr__
