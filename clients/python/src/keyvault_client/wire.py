"""Reading Keyvault's JSON into credentials and events.

Types are checked with `isinstance` and errors name the field, never its value: a conversion
like `int(value)` would put the value into the message, and for a misplaced secret that message
could end up in a log.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from keyvault_client.credential import Credential

# Events after which a key is not served again until a later event says otherwise.
DROP_TYPES = frozenset({"key.disabled", "key.deleted"})
# Events after which the key's current secret and settings are fetched again.
REFRESH_TYPES = frozenset({"key.created", "key.updated", "key.rotated", "key.enabled"})


class ProtocolError(Exception):
    """An answer that does not have the shape Keyvault's API documents."""


@dataclass(frozen=True)
class Event:
    type: str
    key_id: str | None
    enabled: bool | None


def normalize_key_id(value) -> str | None:
    """The canonical text of a key id, or None if it is not a UUID."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def normalize_provider(provider) -> str:
    """`azure-openai`, `Azure_OpenAI` and `azure_openai` all name the provider `azure_openai`."""
    if not isinstance(provider, str):
        raise TypeError("provider must be a string")
    normalized = provider.strip().lower().replace("-", "_")
    if not normalized:
        raise ValueError("provider must not be empty")
    return normalized


def fold_name(name: str) -> str:
    """A key name as Keyvault compares it: around-whitespace stripped, case ignored."""
    return name.strip().lower()


def parse_snapshot(data) -> tuple[int, list[Credential], list[str]]:
    """The cursor, the enabled keys, and the ids of the enabled keys Keyvault left out
    (`unavailable`: their stored value failed its integrity check)."""
    body = _object(data, "snapshot")
    cursor = _int(body, "cursor", "snapshot")
    keys = body.get("keys")
    if not isinstance(keys, list):
        raise ProtocolError("snapshot: 'keys' is not a list")
    credentials = [parse_key(item) for item in keys]
    unavailable = body.get("unavailable") or []
    if not isinstance(unavailable, list):
        raise ProtocolError("snapshot: 'unavailable' is not a list")
    left_out = [
        key_id
        for key_id in (
            normalize_key_id(item.get("id")) if isinstance(item, dict) else None
            for item in unavailable
        )
        if key_id is not None
    ]
    return (
        cursor,
        [credential for credential in credentials if credential is not None],
        left_out,
    )


def parse_key(data) -> Credential | None:
    """A key with its secret; None for a disabled one (never served, whatever sent it)."""
    item = _object(data, "key")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ProtocolError("key: 'enabled' is not a boolean")
    key_id = normalize_key_id(item.get("id"))
    if key_id is None:
        raise ProtocolError("key: 'id' is not a UUID")
    if not enabled:
        return None
    config = item.get("config") or {}
    if not isinstance(config, dict):
        raise ProtocolError(f"key {key_id}: 'config' is not an object")
    secret = _str(item, "secret", key_id)
    if not secret:
        raise ProtocolError(f"key {key_id}: 'secret' is empty")
    hint = item.get("hint") or ""
    return Credential(
        key_id=key_id,
        provider=normalize_provider(_str(item, "provider", key_id)),
        name=_str(item, "name", key_id),
        secret=secret,
        config=MappingProxyType(dict(config)),
        version=_int(item, "version", f"key {key_id}"),
        is_default=_bool(item, "is_default", key_id),
        hint=hint if isinstance(hint, str) else "",
        created_at=_datetime(item.get("created_at")),
        updated_at=_datetime(item.get("updated_at")),
        rotated_at=_datetime(item.get("rotated_at")),
    )


def parse_events(data) -> tuple[int, list[Event]]:
    body = _object(data, "events page")
    cursor = _int(body, "cursor", "events page")
    items = body.get("events")
    if not isinstance(items, list):
        raise ProtocolError("events page: 'events' is not a list")
    return cursor, [_event(item) for item in items]


def _event(data) -> Event:
    item = _object(data, "event")
    kind = item.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("event: 'type' is not a string")
    enabled = item.get("enabled")
    if not isinstance(enabled, bool):
        enabled = None
    key_id = normalize_key_id(item.get("key_id")) if item.get("key_id") is not None else None
    # An event that would change what is served must name its key. Skipping one that does not
    # could mean serving a disabled key, so the page is refused instead (the client retries,
    # and goes stale rather than wrong if the server keeps sending it).
    if key_id is None and (kind in DROP_TYPES or kind in REFRESH_TYPES or enabled is False):
        raise ProtocolError(f"event of type {kind[:40]!r}: 'key_id' is missing or not a UUID")
    return Event(type=kind, key_id=key_id, enabled=enabled)


def _object(data, what: str) -> dict:
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: not a JSON object")
    return data


def _int(item: dict, field: str, what: str) -> int:
    value = item.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{what}: {field!r} is not an integer")
    return value


def _str(item: dict, field: str, key_id: str) -> str:
    value = item.get(field)
    if not isinstance(value, str):
        raise ProtocolError(f"key {key_id}: {field!r} is not a string")
    return value


def _bool(item: dict, field: str, key_id: str) -> bool:
    value = item.get(field)
    if not isinstance(value, bool):
        raise ProtocolError(f"key {key_id}: {field!r} is not a boolean")
    return value


def _datetime(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
