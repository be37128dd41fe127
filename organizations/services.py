"""Writes to organizations and memberships, and the first organization of a new account; each one
atomic and audited. Creating the accounts themselves is `accounts.services`'.

The last-owner rule lives here: the owners of an organization are locked before a change that
could remove one, so two concurrent demotions cannot both succeed and leave nobody in charge.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

import audit
from accounts.services import email_verified
from audit import AuditAction
from core.errors import NotFoundError
from core.text import clean_display_name
from organizations import contents, roles
from organizations.access import Access
from organizations.authorization import (
    authorize,
    authorize_organization_create,
    authorize_role_grant,
)
from organizations.models import Membership, Organization
from organizations.permissions import Action
from organizations.slugs import available_slug

NAME_MAX_LENGTH = Organization._meta.get_field("name").max_length
SLUG_MAX_LENGTH = Organization._meta.get_field("slug").max_length


def _clean_org_name(name) -> str:
    return clean_display_name(name, max_length=NAME_MAX_LENGTH)


def _clean_slug(slug) -> str:
    if not isinstance(slug, str) or not slug.strip():
        raise ValidationError({"slug": "A slug is required."})
    slug = slug.strip().lower()
    try:
        validate_slug(slug)
    except ValidationError:
        raise ValidationError(
            {"slug": "A slug may contain only letters, digits, hyphens and underscores."}
        ) from None
    if len(slug) > SLUG_MAX_LENGTH:
        raise ValidationError({"slug": f"The slug is longer than {SLUG_MAX_LENGTH} characters."})
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"The slug {slug!r} is already taken."})
    return slug


def clean_role(role) -> str:
    if not isinstance(role, str) or not roles.is_role(role):
        known = ", ".join(r.id for r in roles.ROLES)
        raise ValidationError({"role": f"Unknown role; choose one of {known}."})
    return role


@transaction.atomic
def organization_create(*, name: str, slug: str, owner, actor: Access) -> Organization:
    """A new organization with `owner` as its first owner, whose address must be proven (the
    operator's commands vouch for the addresses they name)."""
    authorize_organization_create(actor, owner)
    _require_verified(owner, actor, "create an organization")
    name, slug = _clean_org_name(name), _clean_slug(slug)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, slug=slug)
    except IntegrityError:
        # A concurrent writer took the slug between the check and the insert.
        raise ValidationError({"slug": f"The slug {slug!r} is already taken."}) from None
    Membership.objects.create(user=owner, organization=organization, role=roles.OWNER.id)
    audit.record(
        action=AuditAction.ORGANIZATION_CREATED,
        actor=actor,
        organization=organization,
        target=organization,
        metadata={"slug": organization.slug, "owner": owner.email},
    )
    return organization


def organization_rename(*, organization: Organization, name: str, actor: Access) -> Organization:
    authorize(actor, Action.ORG_MANAGE, organization, organization)
    name = _clean_org_name(name)
    if name == organization.name:
        return organization
    with transaction.atomic():
        previous = organization.name
        organization.name = name
        organization.save(update_fields=["name"])
        audit.record(
            action=AuditAction.ORGANIZATION_RENAMED,
            actor=actor,
            organization=organization,
            target=organization,
            metadata={"from": previous, "to": name},
        )
    return organization


def organization_delete(*, organization: Organization, actor: Access) -> None:
    """Delete the organization with its keys, tokens and memberships. The audit trail stays
    (its events keep the organization's name as text)."""
    authorize(actor, Action.ORG_MANAGE, organization, organization)
    with transaction.atomic():
        # Django deletes the usage rows before the keys and tokens they belong to; the keys and
        # tokens are locked first, in the order every writer keeps (keyvault.locking).
        contents.lock_contents(organization.pk)
        audit.record(
            action=AuditAction.ORGANIZATION_DELETED,
            actor=actor,
            organization=organization,
            target=organization,
            metadata={"slug": organization.slug, "keys": organization.provider_keys.count()},
        )
        _total, deleted = organization.delete()
        if not deleted.get(Organization._meta.label):
            # Another request deleted it a moment ago; this one's audit event goes with the
            # rollback.
            raise NotFoundError(f"The organization {organization.name!r} no longer exists.")


def _require_verified(user, actor: Access, doing: str) -> None:
    """An account whose address is not proven cannot own or join anything: anyone may sign up
    with any address, and a membership must reach the address's real owner."""
    if not actor.is_operator and not email_verified(user):
        raise PermissionDenied(f"{user.email} must confirm the address before they {doing}.")


def membership_add(*, organization: Organization, user, role: str, actor: Access) -> Membership:
    authorize(actor, Action.MEMBER_MANAGE, organization)
    _require_verified(user, actor, "join an organization")
    role = clean_role(role)
    authorize_role_grant(actor, organization, role)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, organization=organization, role=role)
            audit.record(
                action=AuditAction.MEMBER_ADDED,
                actor=actor,
                organization=organization,
                target=membership,
                target_label=user.email,
                metadata={"user": user.email, "role": role},
            )
    except IntegrityError:
        raise ValidationError(
            {"email": f"{user.email} is already a member of {organization.name}."}
        ) from None
    return membership


def _lock_owners(organization: Organization) -> list[Membership]:
    return list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=roles.OWNER.id)
        .order_by("pk")
    )


def _ensure_another_owner(membership: Membership, owners: list[Membership]) -> None:
    if membership.role == roles.OWNER.id and all(o.pk == membership.pk for o in owners):
        raise ValidationError(
            {"role": "An organization must keep at least one owner; make someone else owner first."}
        )


def _locked_membership(membership: Membership, actor: Access) -> Membership:
    """The target re-read under a lock and authorized again: the caller's copy may be stale
    (promoted to owner meanwhile), and the rank rule must judge the role it has now."""
    locked = Membership.objects.select_for_update().filter(pk=membership.pk).first()
    if locked is None:  # removed by someone else a moment ago
        raise ValidationError("This person is no longer a member of the organization.")
    authorize(actor, Action.MEMBER_MANAGE, membership.organization, locked)
    return locked


def membership_change_role(*, membership: Membership, role: str, actor: Access) -> Membership:
    organization = membership.organization
    authorize(actor, Action.MEMBER_MANAGE, organization, membership)
    role = clean_role(role)
    authorize_role_grant(actor, organization, role)
    with transaction.atomic():
        owners = _lock_owners(organization)
        membership = _locked_membership(membership, actor)
        previous = membership.role
        if previous == role:
            return membership
        if role != roles.OWNER.id:
            _ensure_another_owner(membership, owners)
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(
            action=AuditAction.MEMBER_ROLE_CHANGED,
            actor=actor,
            organization=organization,
            target=membership,
            target_label=membership.user.email,
            metadata={"user": membership.user.email, "from": previous, "to": role},
        )
    return membership


def membership_remove(*, membership: Membership, actor: Access) -> None:
    organization = membership.organization
    authorize(actor, Action.MEMBER_MANAGE, organization, membership)
    with transaction.atomic():
        owners = _lock_owners(organization)
        _delete_membership(
            _locked_membership(membership, actor), owners, actor, AuditAction.MEMBER_REMOVED
        )


def membership_leave(*, membership: Membership, actor: Access) -> None:
    """A person leaving an organization on their own: any role may, except its last owner."""
    if actor.user is None or actor.user.pk != membership.user_id:
        raise PermissionDenied("Only the member themself can leave; others remove them.")
    with transaction.atomic():
        owners = _lock_owners(membership.organization)
        locked = Membership.objects.select_for_update().filter(pk=membership.pk).first()
        if locked is None:
            raise ValidationError("You are no longer a member of this organization.")
        _delete_membership(locked, owners, actor, AuditAction.MEMBER_LEFT)


def _delete_membership(locked: Membership, owners, actor: Access, action: AuditAction) -> None:
    """Delete a locked membership, keeping the last-owner rule, and record `action`."""
    _ensure_another_owner(locked, owners)
    audit.record(
        action=action,
        actor=actor,
        organization=locked.organization,
        target=locked,
        target_label=locked.user.email,
        metadata={"user": locked.user.email, "role": locked.role},
    )
    locked.delete()


# --- Signing up --------------------------------------------------------------------------------

_SLUG_ATTEMPTS = 3


def organization_open(*, user, name: str, ip: str | None = None) -> Organization:
    """The first organization of a person who signed up, named as they asked at sign-up, under
    a free slug derived from the name; opened once their address is confirmed."""
    with transaction.atomic():
        actor = Access.for_user(user, ip=ip)
        for attempt in range(_SLUG_ATTEMPTS):
            try:
                with transaction.atomic():
                    organization = organization_create(
                        name=name,
                        slug=available_slug(name),
                        owner=user,
                        actor=actor,
                    )
                break
            except ValidationError as exc:
                # Only a slug taken by a concurrent sign-up is worth another try.
                if "slug" not in exc.message_dict or attempt == _SLUG_ATTEMPTS - 1:
                    raise
    return organization
