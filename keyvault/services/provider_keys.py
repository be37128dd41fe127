"""Every change to what a provider key is (created, edited, rotated, rekeyed, deleted), and
`provider_key_reveal`, the only path that hands a plaintext secret out.

Each write validates first, runs in one transaction, and records its audit event and its one
event of the feed (`keyvault.events.record_key_event`, last) in that same transaction: a
failure leaves neither a half-written row nor an orphan event. Pages, the admin,
the API and commands all call these functions, so no rule is written twice. Key rows are also
written by the envelope jobs (`keyvault.services.envelopes`: re-wrapped or re-sealed, the secret
unchanged) and the usage flush (`last_used_at`, `keyvault.usage`), and deleting an organization
deletes its keys with it (`organizations.services`).

Other code opens secrets too, and keeps the plaintext inside: checking a secret before it is
replaced and rekeying (here), re-wrapping and re-sealing (the envelope jobs), and
`keyvault_status --verify`. None of them returns or logs it, or stores it other than sealed.
"""

import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

import audit
from audit import AuditAction
from core.errors import NotFoundError
from core.text import clean_display_name, with_article
from keyvault import health, providers, sealing
from keyvault.crypto import CryptoError
from keyvault.errors import KeyDisabledError
from keyvault.events import record_key_event
from keyvault.masking import mask_secret
from keyvault.models import SECRET_MAX_BYTES, KeyEventType, ProviderKey
from keyvault.rotation import swap_envelope
from keyvault.selectors import named
from keyvault.services.validation import collect
from organizations.access import Access
from organizations.authorization import authorize
from organizations.permissions import Action

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = ProviderKey._meta.get_field("name").max_length
_UNSET = object()


# --- Validation ------------------------------------------------------------------------------


@sensitive_variables()
def clean_secret(provider: providers.Provider, secret) -> str:
    """The secret with surrounding whitespace removed (a pasted newline would break auth
    headers); rejects empty, non-text and oversized values without echoing them."""
    if not isinstance(secret, str):
        raise ValidationError({"secret": "The secret must be text."}, code="invalid")
    secret = secret.strip()
    if not secret:
        raise ValidationError({"secret": "The secret cannot be empty."}, code="required")
    try:
        size = len(secret.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError({"secret": "The secret is not valid text."}, code="invalid") from None
    if size > SECRET_MAX_BYTES:
        raise ValidationError(
            {"secret": f"The secret is larger than {SECRET_MAX_BYTES // 1024} KiB."},
            code="max_length",
        )
    providers.validate_secret_format(provider, secret)
    return secret


def clean_name(name) -> str:
    return clean_display_name(name, max_length=NAME_MAX_LENGTH)


PRIORITY_MAX = 1_000_000


def clean_priority(value) -> int:
    """A pool position: a whole number from 0 to 1,000,000 (lower first)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= PRIORITY_MAX:
        raise ValidationError(
            {"priority": f"A whole number from 0 to {PRIORITY_MAX:,} (lower comes first)."},
            code="invalid",
        )
    return value


def _clean_flag(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError({field: "Must be true or false."}, code="invalid")
    return value


def _check_unique(key: ProviderKey) -> None:
    """Field errors for the name and default constraints, before the database has to say no."""
    siblings = ProviderKey.objects.filter(
        organization_id=key.organization_id, provider=key.provider
    ).exclude(pk=key.pk)
    errors = {}
    if named(siblings, key.name).exists():
        errors["name"] = (
            f"This organization already has {with_article(key.provider_obj.name)} key named "
            f"{key.name!r}."
        )
    if key.is_default:
        current = siblings.filter(is_default=True).first()
        if current is not None:
            errors["is_default"] = (
                f"{current.name!r} is already the default {key.provider_obj.name} key; "
                "unset it first."
            )
    if errors:
        raise ValidationError(errors, code="unique")


def _save_checked(key: ProviderKey, **save_kwargs) -> None:
    """Save, turning a constraint race lost to a concurrent writer into the same field error."""
    try:
        with transaction.atomic():
            key.save(**save_kwargs)
    except IntegrityError:
        _check_unique(key)
        raise


# --- Writes ----------------------------------------------------------------------------------


@sensitive_variables()
def provider_key_create(
    *,
    organization,
    actor: Access,
    provider: str,
    name: str,
    secret: str,
    config: dict | None = None,
    is_default: bool = False,
    enabled: bool = True,
    priority: int = 100,
) -> ProviderKey:
    authorize(actor, Action.KEY_ADD, organization)
    provider_obj = providers.get_provider(provider)
    name, secret, config, is_default, enabled, priority = collect(
        lambda: clean_name(name),
        lambda: clean_secret(provider_obj, secret),
        lambda: providers.validate_config(provider_obj, config),
        lambda: _clean_flag(is_default, "is_default"),
        lambda: _clean_flag(enabled, "enabled"),
        lambda: clean_priority(priority),
    )
    key = ProviderKey(
        organization=organization,
        provider=provider_obj.id,
        name=name,
        config=config,
        is_default=is_default,
        enabled=enabled,
        priority=priority,
        secret=secret,
        secret_hint=mask_secret(secret, key_prefixes=provider_obj.key_prefixes),
        created_by=actor.stored_user,
    )
    with transaction.atomic():
        _check_unique(key)
        _save_checked(key, force_insert=True)
        audit.record(
            action=AuditAction.KEY_CREATED,
            actor=actor,
            organization=organization,
            target=key,
            metadata={
                "provider": key.provider,
                "name": key.name,
                "hint": key.secret_hint,
                "is_default": key.is_default,
                "enabled": key.enabled,
                "priority": key.priority,
            },
        )
        record_key_event(key, KeyEventType.CREATED)
    return key


def _locked(key: ProviderKey) -> ProviderKey:
    """The row re-read under a lock, so concurrent writers apply their changes one by one;
    `NotFoundError` when another request deleted it after the caller read it."""
    # Only the key's row (`of`): the organization is read along, not locked. Its row is locked
    # last in every writer's order (keyvault.locking).
    try:
        return (
            ProviderKey.objects.select_for_update(of=("self",))
            .select_related("organization")
            .get(pk=key.pk)
        )
    except ProviderKey.DoesNotExist:
        raise NotFoundError(f"The key {key.name!r} no longer exists.") from None


@sensitive_variables()
def provider_key_update(
    *,
    key: ProviderKey,
    actor: Access,
    name=_UNSET,
    config=_UNSET,
    is_default=_UNSET,
    enabled=_UNSET,
    secret=_UNSET,
    priority=_UNSET,
) -> ProviderKey:
    """Change a key's name, config, default flag or enabled state, and with `secret` its secret
    too, in one transaction: if any part is refused, nothing changes.

    Changing where the secret is sent (an endpoint or base URL) needs the secret in the same
    call: whoever may edit a key must not be able to send its secret to a host of their choice
    without knowing it. The new envelope is then bound to the new endpoint.
    """
    edits_settings = not (
        name is _UNSET and config is _UNSET and is_default is _UNSET and priority is _UNSET
    )
    if secret is not _UNSET:
        authorize(actor, Action.KEY_ROTATE, key.organization_id, key)
    if edits_settings:
        authorize(actor, Action.KEY_EDIT, key.organization_id, key)
    elif enabled is not _UNSET or secret is _UNSET:
        authorize(actor, Action.KEY_DISABLE, key.organization_id, key)
    provider_obj = key.provider_obj
    cleaned = dict(
        zip(
            ("name", "config", "is_default", "enabled", "priority", "secret"),
            collect(
                lambda: _UNSET if name is _UNSET else clean_name(name),
                lambda: (
                    _UNSET if config is _UNSET else providers.validate_config(provider_obj, config)
                ),
                lambda: _UNSET if is_default is _UNSET else _clean_flag(is_default, "is_default"),
                lambda: _UNSET if enabled is _UNSET else _clean_flag(enabled, "enabled"),
                lambda: _UNSET if priority is _UNSET else clean_priority(priority),
                lambda: _UNSET if secret is _UNSET else clean_secret(provider_obj, secret),
            ),
            strict=True,
        )
    )
    new_secret = cleaned.pop("secret")
    with transaction.atomic():
        locked = _locked(key)
        old_routing = providers.routing_config(provider_obj, locked.config)
        # A secret given is always a rotation, even the same one again: comparing it with the
        # stored one would let whoever may edit the key test guesses of the secret. Checked
        # while the row still has the settings its envelope is bound to.
        rotated = new_secret is not _UNSET
        if rotated:
            _require_intact(locked)
        changes = {}
        for field, value in cleaned.items():
            if value is not _UNSET and getattr(locked, field) != value:
                changes[field] = {"from": getattr(locked, field), "to": value}
                setattr(locked, field, value)
        new_routing = providers.routing_config(provider_obj, locked.config)
        if new_routing != old_routing and new_secret is _UNSET:
            raise ValidationError(
                {
                    "secret": "Changing where the secret is sent (the endpoint or base URL) "
                    "needs the secret itself: enter it again with the change."
                },
                code="required",
            )
        if not changes and not rotated:
            return locked
        if changes.keys() & {"name", "is_default"}:  # the only fields the constraints cover
            _check_unique(locked)
        update_fields = [*changes, "updated_at"]
        previous_hint = locked.secret_hint
        if rotated:
            locked.secret_hint = mask_secret(new_secret, key_prefixes=provider_obj.key_prefixes)
            locked.version += 1
            locked.rotated_at = timezone.now()
            update_fields += ["secret_hint", "version", "rotated_at"]
            # A new secret is not the one the provider refused: failing ends with the rotation.
            was_failing = locked.failing_since is not None
            if was_failing:
                locked.failing_since = None
                update_fields.append("failing_since")
        if rotated or new_routing != old_routing:
            # Sealed again at save, bound to the settings the row now has.
            locked.secret = new_secret
            update_fields += ["secret"]
        _save_checked(locked, update_fields=update_fields)
        _record_update(locked, actor, changes, old_routing, new_routing)
        if rotated:
            audit.record(
                action=AuditAction.KEY_ROTATED,
                actor=actor,
                organization=locked.organization,
                target=locked,
                metadata={
                    "previous_hint": previous_hint,
                    "hint": locked.secret_hint,
                    "version": locked.version,
                    "sent_to": new_routing,
                },
            )
            if was_failing:
                from keyvault.services.key_health import record_health_change

                record_health_change(
                    locked, actor, health.FAILING, health.health_of(locked), {"rotated": True}
                )
        record_key_event(locked, _event_type(changes, rotated=rotated, enabled=locked.enabled))
    return locked


def _event_type(changes: dict, *, rotated: bool, enabled: bool) -> KeyEventType:
    """The one event of an update, its most specific type: whether the key is served at all
    first, then whether its secret changed, then anything else (name, default, config)."""
    if "enabled" in changes:
        return KeyEventType.ENABLED if enabled else KeyEventType.DISABLED
    if rotated:
        return KeyEventType.ROTATED
    return KeyEventType.UPDATED


@sensitive_variables()
def _require_intact(key: ProviderKey) -> None:
    """Refuse to replace the secret of a key whose stored envelope does not open.

    A new secret is sealed to the row's current provider and endpoint. If the stored envelope
    does not open, those may have been changed outside Keyvault (by someone who can write the
    database), and sealing a new secret would bless the change: refused, the key has to be
    deleted and added again.
    """
    try:
        sealing.open_secret(key)
    except CryptoError:
        raise ValidationError(
            {
                "secret": "The key's stored secret does not open under its current settings "
                "(they may have been changed outside Keyvault), so a new secret cannot be "
                "bound to them: delete the key and add it again."
            },
            code="integrity",
        ) from None


def _record_update(key: ProviderKey, actor: Access, changes: dict, old_routing, new_routing):
    """A change of where the secret is sent is its own event (so it stands out in the log and
    can be alerted on); every other change is one `updated` event."""
    if new_routing != old_routing:
        audit.record(
            action=AuditAction.KEY_ENDPOINT_CHANGED,
            actor=actor,
            organization=key.organization,
            target=key,
            metadata={"from": old_routing, "to": new_routing},
        )
    if "config" in changes:
        before, after = (
            {k: v for k, v in changes["config"][side].items() if k not in old_routing | new_routing}
            for side in ("from", "to")
        )
        changes = {field: change for field, change in changes.items() if field != "config"}
        if before != after:
            changes["config"] = {"from": before, "to": after}
    if changes:
        audit.record(
            action=AuditAction.KEY_UPDATED,
            actor=actor,
            organization=key.organization,
            target=key,
            metadata={"changes": changes},
        )


@sensitive_variables()
def provider_key_rotate(*, key: ProviderKey, actor: Access, secret: str) -> ProviderKey:
    """Replace the secret: a fresh data key and ciphertext, a new hint, the version bumped.
    (`provider_key_update` with only a secret: one rotation rule for every surface.)"""
    return provider_key_update(key=key, actor=actor, secret=secret)


def provider_key_delete(*, key: ProviderKey, actor: Access) -> None:
    authorize(actor, Action.KEY_DELETE, key.organization_id, key)
    with transaction.atomic():
        locked = _locked(key)
        audit.record(
            action=AuditAction.KEY_DELETED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            metadata={"provider": locked.provider, "name": locked.name, "hint": locked.secret_hint},
        )
        # Through the queryset, which leaves `locked` its id for the event. The event is the
        # last write (after the usage rows are let go), as in every writer (keyvault.locking).
        ProviderKey.objects.filter(pk=locked.pk).delete()
        record_key_event(locked, KeyEventType.DELETED)


def provider_key_rekey(*, key: ProviderKey, actor: Access) -> bool:
    """A fresh data key and a fresh ciphertext for the same secret, under the primary KEK: the
    response to a suspected exposure of an envelope or its data key. The secret, and so the
    version, stay the same. Returns False only when the key is gone.

    Written with a compare-and-swap; when it misses, the row is read again and rekeyed again:
    the change that won may have been a KEK re-wrap, which keeps the old data key.
    """
    authorize(actor, Action.KEY_ROTATE, key.organization_id, key)
    current = key
    for _attempt in range(_REKEY_ATTEMPTS):
        with transaction.atomic():
            old = current.secret
            new = sealing.seal_secret(current, sealing.open_secret(current))
            if swap_envelope(current.pk, old, new):
                audit.record(
                    action=AuditAction.KEY_REKEYED,
                    actor=actor,
                    organization=key.organization,
                    target=current,
                    metadata={"from_kek": old.kek_id, "to_kek": new.kek_id},
                )
                # The secret and what the feed shows stay the same; the event still says that
                # the key was re-sealed, as every deliberate change of one key does.
                record_key_event(current, KeyEventType.UPDATED)
                key.secret = new
                key.refresh_from_db(fields=["kek_id"])
                return True
        current = ProviderKey.objects.filter(pk=key.pk).first()
        if current is None:
            return False
    raise ValidationError(
        {"secret": "The key kept changing while it was being rekeyed; run rekey again."}
    )


_REKEY_ATTEMPTS = 5


# --- The decrypt path ------------------------------------------------------------------------


def provider_key_check_reveal(*, key: ProviderKey, actor: Access) -> None:
    """Raise unless `actor` may have the key's secret now: `PermissionDenied` unless
    authorized to reveal, `KeyDisabledError` for a disabled key. Revalidation asks this
    without decrypting."""
    # The id, not the related object: the proxy's hot path must not pay a query for it.
    authorize(actor, Action.KEY_REVEAL, key.organization_id, key)
    if not key.enabled:
        raise KeyDisabledError(f"The key {key.name!r} is disabled; enable it to use it again.")


@sensitive_variables()
def provider_key_reveal(*, key: ProviderKey, actor: Access) -> str:
    """The key's plaintext secret: the only function that hands one out, and authorized here
    (only the operator and tokens with keys:secret may have it).

    A disabled key raises `KeyDisabledError`. A value that fails its integrity check raises
    the crypto layer's typed error after logging the key id (never the value): it is never
    returned as ciphertext and never re-saved.
    """
    provider_key_check_reveal(key=key, actor=actor)
    try:
        return sealing.open_secret(key)
    except CryptoError as exc:
        logger.error(
            "Provider key %s of organization %s failed to decrypt: %s: %s",
            key.pk,
            key.organization_id,
            type(exc).__name__,
            exc,
        )
        raise
