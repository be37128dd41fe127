"""Creating and revoking proxy tokens, with their scope and expiry rules.

As for keys, each write validates first and records its audit event in the same transaction.
A new token is returned once, to the caller that created it; only its digest is stored.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keyvault import audit
from keyvault.audit import AuditAction
from keyvault.errors import NotFoundError
from keyvault.models import ProxyToken
from keyvault.selectors import named
from keyvault.services.validation import collect
from keyvault.tokens import TokenScope, generate_token, token_digest
from organizations.access import Access
from organizations.authorization import authorize
from organizations.permissions import Action
from organizations.text import clean_display_name

TOKEN_NAME_MAX_LENGTH = ProxyToken._meta.get_field("name").max_length
MAX_TOKEN_DAYS = 3650


def _clean_scopes(scopes) -> list[str]:
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    if not isinstance(scopes, list | tuple) or not scopes:
        raise ValidationError({"scopes": "Choose at least one scope."}, code="required")
    known = {scope.value for scope in TokenScope}
    unknown = [str(s)[:40] for s in scopes if s not in known]
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope {unknown[0]!r}; choose from {', '.join(sorted(known))}."},
            code="invalid",
        )
    return sorted(set(scopes))


def _clean_expiry_days(days) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise ValidationError(
            {"expires_in": f"Expiry must be a whole number of days from 1 to {MAX_TOKEN_DAYS}."},
            code="invalid",
        )
    return days


@sensitive_variables()
def proxy_token_create(
    *, organization, actor: Access, name: str, scopes, expires_in_days: int | None = None
) -> tuple[ProxyToken, str]:
    """A new token: returns the row and the token itself, which is never available again."""
    authorize(actor, Action.TOKEN_MANAGE, organization)
    name, scopes, days = collect(
        lambda: clean_display_name(name, max_length=TOKEN_NAME_MAX_LENGTH),
        lambda: _clean_scopes(scopes),
        lambda: _clean_expiry_days(expires_in_days),
    )
    raw = generate_token()
    token = ProxyToken(
        organization=organization,
        name=name,
        scopes=scopes,
        digest=token_digest(raw),
        last_four=raw[-4:],
        created_by=actor.stored_user,
        expires_at=timezone.now() + timedelta(days=days) if days else None,
    )
    duplicate = ValidationError(
        {"name": f"An active token named {name!r} already exists."}, code="unique"
    )
    with transaction.atomic():
        active = ProxyToken.objects.filter(organization=organization, revoked_at__isnull=True)
        if named(active, name).exists():
            raise duplicate
        try:
            with transaction.atomic():
                token.save(force_insert=True)
        except IntegrityError:
            raise duplicate from None
        audit.record(
            action=AuditAction.TOKEN_CREATED,
            actor=actor,
            organization=organization,
            target=token,
            metadata={
                "name": name,
                "scopes": scopes,
                "last_four": token.last_four,
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            },
        )
    return token, raw


def proxy_token_revoke(*, token: ProxyToken, actor: Access) -> ProxyToken:
    """Revoke by timestamp; the row stays for the audit trail. Revoking twice is a no-op."""
    authorize(actor, Action.TOKEN_MANAGE, token.organization_id)
    with transaction.atomic():
        locked = ProxyToken.objects.select_for_update().filter(pk=token.pk).first()
        if locked is None:  # deleted with its organization meanwhile
            raise NotFoundError(f"The token {token.name!r} no longer exists.")
        if locked.revoked_at is not None:
            return locked
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit.record(
            action=AuditAction.TOKEN_REVOKED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            metadata={"name": locked.name, "last_four": locked.last_four},
        )
    return locked
