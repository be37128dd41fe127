from organizations.models import Membership, Organization


def membership_for(*, user, organization: Organization) -> Membership | None:
    """The user's membership in the organization, or None (also for a deactivated user)."""
    if (
        user is None
        or not getattr(user, "is_authenticated", False)
        or not getattr(user, "is_active", False)
    ):
        return None
    return (
        Membership.objects.filter(user=user, organization=organization)
        .select_related("organization")
        .first()
    )


def organizations_for(*, user):
    return Organization.objects.filter(memberships__user=user).order_by("name")
