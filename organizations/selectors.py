"""Reads of organizations, memberships and invitations, and the fetch-and-authorize calls
pages and the admin use for them (`access_membership`, `access_invitation`): another
organization's id, a malformed one and a missing one are the same `Http404`-style
`ObjectDoesNotExist`, never a 403."""

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError

from organizations import permissions, roles
from organizations.models import Invitation, Membership, Organization
from organizations.permissions import Action


def organizations_for(*, user):
    return Organization.objects.filter(memberships__user=user).order_by("name")


def _in_organization(queryset, pk, organization_id):
    try:
        return queryset.get(pk=pk, organization_id=organization_id)
    except (ObjectDoesNotExist, ValueError, ValidationError):  # a malformed id is just missing
        raise queryset.model.DoesNotExist from None


def access_membership(access, membership_id, *, organization_id) -> Membership:
    """The membership `membership_id` of the organization, if the caller may change or remove
    it (not someone who outranks them: `PermissionDenied`); `Membership.DoesNotExist` for a
    missing or foreign id, and for a caller who may not manage members at all."""
    if not permissions.can(access, Action.MEMBER_MANAGE, organization_id):
        raise Membership.DoesNotExist
    membership = _in_organization(
        Membership.objects.select_related("user", "organization"), membership_id, organization_id
    )
    if not permissions.can_manage_member(access, membership):
        raise PermissionDenied("Your role does not allow managing this member.")
    return membership


def access_invitation(access, invitation_id, *, organization_id) -> Invitation:
    """The invitation `invitation_id` of the organization, for a caller who may manage members
    (the services decide whether its role may be withdrawn); `Invitation.DoesNotExist` for a
    missing or foreign id, and for a caller who may not manage members."""
    if not permissions.can(access, Action.MEMBER_MANAGE, organization_id):
        raise Invitation.DoesNotExist
    return _in_organization(Invitation.objects.all(), invitation_id, organization_id)


def is_last_owner(membership: Membership) -> bool:
    """Whether `membership` is its organization's only owner: the pages then offer neither
    Leave nor a role change, which the services would refuse (they decide; this only reads)."""
    if membership.role != roles.OWNER.id:
        return False
    owners = Membership.objects.filter(organization_id=membership.organization_id)
    return not owners.filter(role=roles.OWNER.id).exclude(pk=membership.pk).exists()
