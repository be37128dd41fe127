"""Invitations: an owner or admin invites an email address; its owner follows the link to join.

The link carries `kvi_` followed by 43 base64url characters (256 random bits); only the token's
SHA-256 digest is stored, for the reasons given in `core.tokens`: with that much entropy a
plain hash cannot be brute-forced, and a database leak then yields no usable links. The prefix
lets secret scanners recognise a leaked link, and the format is checked before hashing.

The invitation is the authority for the new membership, so acceptance re-checks everything that
could have changed since it was sent: its state, that the person accepting is the one invited,
and that the inviter may still grant the role.
"""

from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

import audit
from accounts.services import account_create, email_mark_verified, normalize_email
from audit import AuditAction
from core.tokens import random_token, token_digest, token_pattern
from organizations.access import Access
from organizations.authorization import authorize, authorize_role_grant
from organizations.models import Invitation, Membership, Organization
from organizations.permissions import Action
from organizations.services import clean_role

# Made as proxy tokens are (core.tokens): 256 random bits behind a recognisable prefix, of
# which only the SHA-256 digest is stored.
INVITATION_TOKEN_PREFIX = "kvi_"
INVITATION_TOKEN_PATTERN = token_pattern(INVITATION_TOKEN_PREFIX)
invitation_token_digest = token_digest


def generate_invitation_token() -> str:
    return random_token(INVITATION_TOKEN_PREFIX)


@sensitive_variables()
def looks_like_invitation_token(value) -> bool:
    return isinstance(value, str) and bool(INVITATION_TOKEN_PATTERN.fullmatch(value))


# --- Selectors --------------------------------------------------------------------------------


@sensitive_variables()
def invitation_for_token(raw) -> Invitation | None:
    """The invitation this link's token belongs to, in whatever state (pages say "expired" or
    "already used"), or None for an unknown or malformed token."""
    if not looks_like_invitation_token(raw):
        return None
    return (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(digest=invitation_token_digest(raw))
        .order_by()
        .first()
    )


def pending_invitations(*, organization: Organization):
    """Invitations of `organization` that can still be accepted, newest first."""
    return (
        Invitation.objects.filter(
            organization=organization,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .select_related("invited_by")
        .order_by("-created_at")
    )


# --- Services ---------------------------------------------------------------------------------


def _revoke_replaced(*, organization: Organization, email: str, actor: Access, now) -> None:
    """Revoke the invitation still open for `email`, so that the new one can take its place:
    re-inviting someone sends a fresh link and the old one stops working."""
    open_ones = Invitation.objects.select_for_update().filter(
        organization=organization,
        email__iexact=email,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
    )
    for old in open_ones:
        if old.expires_at > now:
            # Replacing is revoking: nobody may cancel an invitation to a role above their own.
            try:
                authorize_role_grant(actor, organization, old.role)
            except PermissionDenied:
                raise PermissionDenied(
                    f"A pending invitation gives {email} a role above your own."
                ) from None
        _mark_revoked(old, actor=actor, at=now, reason="replaced")


def _mark_revoked(invitation: Invitation, *, actor: Access, at, reason: str | None) -> None:
    """Revoke a locked, open invitation and record it; `reason` goes into the audit event."""
    invitation.revoked_at = at
    invitation.save(update_fields=["revoked_at"])
    audit.record(
        action=AuditAction.INVITATION_REVOKED,
        actor=actor,
        organization=invitation.organization,
        target=invitation,
        target_label=invitation.email,
        metadata={
            "email": invitation.email,
            "role": invitation.role,
            **({"reason": reason} if reason else {}),
        },
    )


@sensitive_variables()
def invitation_create(
    *, organization: Organization, email: str, role: str, actor: Access
) -> tuple[Invitation, str]:
    """A new invitation: returns the row and the link's token, which is never available again.

    A pending invitation for the same address is revoked and replaced by this one.
    """
    authorize(actor, Action.MEMBER_MANAGE, organization)
    email = normalize_email(email)
    role = clean_role(role)
    authorize_role_grant(actor, organization, role)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {organization.name}."})
    raw = generate_invitation_token()
    now = timezone.now()
    user = actor.stored_user
    invitation = Invitation(
        organization=organization,
        email=email,
        role=role,
        digest=invitation_token_digest(raw),
        invited_by=user,
        invited_by_operator=actor.is_operator,
        expires_at=now + timedelta(days=settings.KEYVAULT_INVITATION_DAYS),
    )
    with transaction.atomic():
        _revoke_replaced(organization=organization, email=email, actor=actor, now=now)
        try:
            with transaction.atomic():
                invitation.save(force_insert=True)
        except IntegrityError:
            # A concurrent invitation of the same address was inserted after the lock above.
            raise ValidationError(
                {"email": f"{email} was invited by someone else just now; try again."}
            ) from None
        audit.record(
            action=AuditAction.INVITATION_CREATED,
            actor=actor,
            organization=organization,
            target=invitation,
            target_label=email,
            metadata={
                "email": email,
                "role": role,
                "expires_at": invitation.expires_at.isoformat(),
            },
        )
    return invitation, raw


def _refuse(message: str, code: str) -> NoReturn:
    raise ValidationError(message, code=code)


def _check_inviter(invitation: Invitation) -> None:
    """The invitation grants what its inviter could grant when it is accepted, not when it was
    sent: an inviter since removed, demoted or deactivated no longer brings anyone in."""
    if invitation.invited_by_id is None:
        if invitation.invited_by_operator:
            return
        # The inviter's account was deleted.
        _refuse("The person who invited you can no longer do so.", "inviter_lost_rights")
    try:
        authorize_role_grant(
            Access.for_user(invitation.invited_by), invitation.organization, invitation.role
        )
    except PermissionDenied:
        _refuse("The person who invited you can no longer do so.", "inviter_lost_rights")


def invitation_accept(*, invitation: Invitation, user, ip: str | None = None) -> Membership:
    """Make `user` a member with the invitation's role; the invitation is the authority, so the
    user needs no rights of their own, but must be the person invited."""
    with transaction.atomic():
        # No select_related here: FOR UPDATE cannot lock the nullable side of an outer join.
        locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
        if locked is None:
            _refuse("This invitation no longer exists.", "unknown")
        if locked.accepted_at is not None:
            _refuse("This invitation has already been used.", "used")
        if locked.revoked_at is not None:
            _refuse("This invitation has been withdrawn.", "revoked")
        if locked.is_expired:
            _refuse("This invitation has expired; ask for a new one.", "expired")
        if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
            _refuse("Sign in with an active account to accept this invitation.", "inactive")
        # A forwarded link must not let someone else in: the invitation names one address.
        if (user.email or "").lower() != locked.email:
            _refuse(
                f"This invitation is for {locked.email}; sign in with that address.", "wrong_user"
            )
        _check_inviter(locked)
        # The link was mailed to this address and opened by its account: the address is proven.
        email_mark_verified(user)
        organization = locked.organization
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    user=user, organization=organization, role=locked.role
                )
        except IntegrityError:
            # The unique membership constraint decides, not a prior check: someone added a
            # moment ago by another request is caught as surely as a long-standing member.
            _refuse(f"You are already a member of {organization.name}.", "already_member")
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        actor = Access.for_user(user, ip=ip)
        inviter = locked.invited_by.email if locked.invited_by is not None else None
        audit.record(
            action=AuditAction.MEMBER_ADDED,
            actor=actor,
            organization=organization,
            target=membership,
            target_label=user.email,
            metadata={
                "user": user.email,
                "role": locked.role,
                "via": "invitation",
                "invited_by": inviter,
            },
        )
        audit.record(
            action=AuditAction.INVITATION_ACCEPTED,
            actor=actor,
            organization=organization,
            target=locked,
            target_label=locked.email,
            metadata={"email": locked.email, "role": locked.role, "invited_by": inviter},
        )
    return membership


@sensitive_variables()
def account_join(*, invitation, password: str, ip: str | None = None):
    """A new account for the invited address, joined to the organization in one transaction:
    if the invitation is refused, no account is left behind."""
    with transaction.atomic():
        # Following the emailed link proves the invited address.
        user = account_create(email=invitation.email, password=password, verified=True)
        invitation_accept(invitation=invitation, user=user, ip=ip)
    return user


def invitation_revoke(
    *, invitation: Invitation, actor: Access, reason: str | None = None
) -> Invitation:
    """Withdraw a pending invitation by timestamp; the row stays for the record. Revoking one
    already revoked or accepted changes nothing. `reason` is kept in the audit event."""
    organization = invitation.organization
    authorize(actor, Action.MEMBER_MANAGE, organization)
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        # Judged on the role the invitation has now, like members: none above one's own.
        authorize_role_grant(actor, organization, locked.role)
        if locked.revoked_at is not None or locked.accepted_at is not None:
            return locked
        _mark_revoked(locked, actor=actor, at=timezone.now(), reason=reason)
    return locked
