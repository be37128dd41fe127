"""Vault's JSON envelopes for what the surface answers: a KV v2 read, its metadata, a listing,
`auth/token/lookup-self` and the mount description. Field names and types are Vault's, because
the clients read them as Vault writes them (LiteLLM takes `data.data.key`; External Secrets
Operator `data.data` and `data.metadata.version`; Vault Agent and hvac the rest)."""

import uuid
from datetime import UTC

from django.utils import timezone

from keyvault.models import ProviderKey, ProxyToken, SecretVersion
from keyvault.selectors import VersionInfo

MOUNT = "keyvault"


def vault_time(moment) -> str:
    """RFC 3339 in UTC with a `Z`, as Vault writes times; "" for none."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(data, **extra) -> dict:
    """Vault's response envelope around `data`."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
        **extra,
    }


def custom_metadata(key: ProviderKey, hint: str) -> dict:
    return {
        "provider": key.provider,
        "name": key.name,
        "key_id": str(key.pk),
        "hint": hint,
    }


def secret_read(key: ProviderKey, secret: str, config: dict, version: SecretVersion | None) -> dict:
    """A KV v2 read: the secret as `key` beside the key's settings, every value a string (KV
    values a template renders), and the version's metadata."""
    number = key.version if version is None else version.number
    created = (key.rotated_at or key.created_at) if version is None else version.created_at
    hint = key.secret_hint if version is None else version.secret_hint
    values = {
        name: value if isinstance(value, str) else str(value) for name, value in config.items()
    }
    # The secret wins over a setting that would be called "key".
    values["key"] = secret
    return envelope(
        {
            "data": values,
            "metadata": {
                "created_time": vault_time(created),
                "custom_metadata": custom_metadata(key, hint),
                "deletion_time": "",
                "destroyed": False,
                "version": number,
            },
        },
        mount_type="kv",
    )


def secret_metadata(key: ProviderKey, versions: list[VersionInfo], kept: int) -> dict:
    """A KV v2 metadata read: every kept version, never a secret."""
    return envelope(
        {
            "cas_required": False,
            "created_time": vault_time(key.created_at),
            "current_version": key.version,
            "custom_metadata": custom_metadata(key, key.secret_hint),
            "delete_version_after": "0s",
            "max_versions": kept,
            "oldest_version": min(info.number for info in versions),
            "updated_time": vault_time(key.rotated_at or key.created_at),
            "versions": {
                str(info.number): {
                    "created_time": vault_time(info.created_at),
                    "deletion_time": "",
                    "destroyed": False,
                }
                for info in versions
            },
        },
        mount_type="kv",
    )


def listing(names: list[str]) -> dict:
    return envelope({"keys": names}, mount_type="kv")


def token_lookup(token: ProxyToken) -> dict:
    """`auth/token/lookup-self` for a proxy token: its name, its scopes as policies, when it
    expires. Never the token itself (Vault echoes it as `id`; here it stays empty)."""
    now = timezone.now()
    ttl = 0
    if token.expires_at is not None:
        ttl = max(0, int((token.expires_at - now).total_seconds()))
    created = int(token.created_at.timestamp())
    return envelope(
        {
            "accessor": "",
            "creation_time": created,
            "creation_ttl": (
                int((token.expires_at - token.created_at).total_seconds())
                if token.expires_at is not None
                else 0
            ),
            "display_name": token.name,
            "entity_id": "",
            "expire_time": vault_time(token.expires_at) or None,
            "explicit_max_ttl": 0,
            "id": "",
            "issue_time": vault_time(token.created_at),
            "meta": {"organization": token.organization.slug, "token_name": token.name},
            "num_uses": 0,
            "orphan": True,
            "path": "auth/token/create",
            "policies": list(token.scopes),
            "renewable": False,
            "ttl": ttl,
            "type": "service",
        }
    )


def mount_description() -> dict:
    """What `sys/internal/ui/mounts/<path>` says of the one mount: KV version 2."""
    return envelope(
        {
            "accessor": f"kv_{MOUNT}",
            "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
            "description": "Keyvault provider keys (read-only)",
            "external_entropy_access": False,
            "local": False,
            "options": {"version": "2"},
            "path": f"{MOUNT}/",
            "seal_wrap": False,
            "type": "kv",
            "uuid": "",
        }
    )
