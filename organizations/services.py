"""Writes to organizations, memberships and users; each one atomic and audited.

The last-owner rule lives here: the owners of an organization are locked before a change that
could remove one, so two concurrent demotions cannot both succeed and leave nobody in charge.
"""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from accounts.backends import find_user
from keyvault import audit
from keyvault.audit import AuditAction
from keyvault.errors import NotFoundError
from keyvault.locking import lock_organization_contents
from organizations import roles
from organizations.access import Access
from organizations.authorization import (
    authorize,
    authorize_organization_create,
    authorize_role_grant,
)
from organizations.models import Membership, Organization
from organizations.permissions import Action
from organizations.text import clean_display_name

NAME_MAX_LENGTH = Organization._meta.get_field("name").max_length
# The address is the username too, whose column is the shorter of the two.
EMAIL_MAX_LENGTH = get_user_model()._meta.get_field("username").max_length
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


def normalize_email(email) -> str:
    if not isinstance(email, str) or not email.strip():
        raise ValidationError({"email": "An email address is required."})
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            {"email": f"The address is longer than {EMAIL_MAX_LENGTH} characters."}
        )
    return email


@sensitive_variables()
def user_get_or_create(*, email: str, password: str | None = None):
    """The user with this email, created when absent: with `password`, or with a random one
    nobody knows, which its owner replaces through password reset.

    Returns `(user, created)`. A password given for an existing user is refused rather than
    silently ignored or silently overwriting theirs. Never an unusable password: Django's
    password reset skips such accounts and sign-up finds the address taken, so it would lock
    the address's owner out for good.
    """
    email = normalize_email(email)
    User = get_user_model()
    user = find_user(email)
    if user is not None:
        if password is not None:
            raise ValidationError(
                {"password": "This user already exists; their password is left unchanged."}
            )
        return user, False
    user = User(username=email, email=email)
    if password is not None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
        user.set_password(password)
    else:
        user.set_password(secrets.token_urlsafe(32))
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        # Someone created the same account a moment ago.
        raise ValidationError({"email": f"An account for {email} already exists."}) from None
    return user, True


@transaction.atomic
def organization_create(*, name: str, slug: str, owner, actor: Access) -> Organization:
    """A new organization with `owner` as its first owner."""
    authorize_organization_create(actor, owner)
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
        lock_organization_contents(organization.pk)
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


def membership_add(*, organization: Organization, user, role: str, actor: Access) -> Membership:
    authorize(actor, Action.MEMBER_MANAGE, organization)
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
