"""The audit trail: who did what to which target, when and from where.

`audit.record(...)` is the one way services write to the append-only trail (`AuditEvent` in
`audit/models.py`), and `AuditAction` names what they record. Like `django.contrib.auth`, the
package itself is the interface: this module is imported while Django loads its apps, before
models may be defined, so `record` imports the model when called.

The app sits beneath `accounts`, `organizations` and `keyvault` (docs/architecture.md): it
imports none of them. Who acted arrives as any object with the attributes of `Caller`, which
`organizations.access.Access` has.
"""

from enum import StrEnum
from typing import Any, Protocol

from keyvault.sealing import PendingSecret, SealedSecret


class AuditAction(StrEnum):
    ORGANIZATION_CREATED = "organization.created"
    ORGANIZATION_RENAMED = "organization.renamed"
    ORGANIZATION_DELETED = "organization.deleted"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    MEMBER_LEFT = "member.left"
    INVITATION_CREATED = "invitation.created"
    INVITATION_ACCEPTED = "invitation.accepted"
    INVITATION_REVOKED = "invitation.revoked"
    KEY_CREATED = "provider_key.created"
    KEY_UPDATED = "provider_key.updated"
    KEY_ROTATED = "provider_key.rotated"
    KEY_ROLLED_BACK = "provider_key.rolled_back"
    KEY_ENDPOINT_CHANGED = "provider_key.endpoint_changed"
    KEY_DELETED = "provider_key.deleted"
    TOKEN_CREATED = "proxy_token.created"
    TOKEN_REVOKED = "proxy_token.revoked"
    KEY_REKEYED = "provider_key.rekeyed"
    KEY_HEALTH_CHANGED = "provider_key.health_changed"
    KEY_TESTED = "provider_key.tested"
    POOL_REORDERED = "provider_key.pool_reordered"
    KEK_ROTATION = "kek.rotation"
    ENVELOPES_UPGRADED = "kek.envelopes_upgraded"
    TWO_FACTOR_ADDED = "account.two_factor_added"
    TWO_FACTOR_REMOVED = "account.two_factor_removed"
    RECOVERY_CODES_REGENERATED = "account.recovery_codes_regenerated"

    @property
    def label(self) -> str:
        """What the pages and the admin show; the code stays in the data and in filters."""
        return ACTION_LABELS[self]


ACTION_LABELS = {
    AuditAction.ORGANIZATION_CREATED: "Organization created",
    AuditAction.ORGANIZATION_RENAMED: "Organization renamed",
    AuditAction.ORGANIZATION_DELETED: "Organization deleted",
    AuditAction.MEMBER_ADDED: "Member added",
    AuditAction.MEMBER_ROLE_CHANGED: "Member's role changed",
    AuditAction.MEMBER_REMOVED: "Member removed",
    AuditAction.MEMBER_LEFT: "Member left",
    AuditAction.INVITATION_CREATED: "Invitation sent",
    AuditAction.INVITATION_ACCEPTED: "Invitation accepted",
    AuditAction.INVITATION_REVOKED: "Invitation withdrawn",
    AuditAction.KEY_CREATED: "Key added",
    AuditAction.KEY_UPDATED: "Key changed",
    AuditAction.KEY_ROTATED: "Key rotated",
    AuditAction.KEY_ROLLED_BACK: "Key rolled back",
    AuditAction.KEY_ENDPOINT_CHANGED: "Key's endpoint changed",
    AuditAction.KEY_DELETED: "Key deleted",
    AuditAction.TOKEN_CREATED: "Proxy token created",
    AuditAction.TOKEN_REVOKED: "Proxy token revoked",
    AuditAction.KEY_REKEYED: "Key re-encrypted (new data key)",
    AuditAction.KEK_ROTATION: "KEK rotation",
    AuditAction.ENVELOPES_UPGRADED: "Envelopes upgraded",
    AuditAction.KEY_HEALTH_CHANGED: "Key's health changed",
    AuditAction.KEY_TESTED: "Key's connection tested",
    AuditAction.POOL_REORDERED: "Provider's pool reordered",
    AuditAction.TWO_FACTOR_ADDED: "Two-factor sign-in set up",
    AuditAction.TWO_FACTOR_REMOVED: "Two-factor sign-in removed",
    AuditAction.RECOVERY_CODES_REGENERATED: "Recovery codes replaced",
}


def action_label(code: str) -> str:
    """The readable name of an action code; an unknown code (from a newer or older release)
    is shown as it is stored."""
    try:
        return AuditAction(code).label
    except ValueError:
        return code


class Caller(Protocol):
    """What the trail records of the caller who acted."""

    stored_user: Any  # a saved user, or None
    token: Any  # the proxy token that acted, or None
    label: str
    ip: str | None


# Metadata is free-form, so it is checked: a key name that suggests secret material, or a value
# that is a secret object, is refused outright rather than trusted to every caller.
_FORBIDDEN_KEY_PARTS = ("secret", "token", "password", "plaintext", "credential")


def _check_metadata(value, path="metadata"):
    if isinstance(value, PendingSecret | SealedSecret):
        raise TypeError(f"{path} holds a secret; audit metadata must never carry one.")
    if isinstance(value, dict):
        for key, item in value.items():
            if any(part in str(key).lower() for part in _FORBIDDEN_KEY_PARTS):
                raise ValueError(f"Audit metadata key {key!r} suggests secret material.")
            _check_metadata(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_metadata(item, f"{path}[{index}]")


def record(
    *,
    action: AuditAction,
    actor: Caller,
    organization=None,
    target=None,
    target_label: str | None = None,
    metadata: dict | None = None,
):
    """Append one `AuditEvent` and return it."""
    from audit.models import AuditEvent

    metadata = metadata or {}
    _check_metadata(metadata)
    return AuditEvent.objects.create(
        organization=organization,
        actor_user=actor.stored_user,
        actor_token_id=actor.token.pk if actor.token is not None else None,
        actor_label=actor.label[:254],
        action=str(action),
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label if target_label is not None else str(target or ""))[:200],
        ip_address=actor.ip,
        metadata=metadata,
    )
