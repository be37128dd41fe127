"""Authorizing an `Actor` against the permission matrix, for services.

The operator (management commands) and superusers are trusted; a user is judged by their
membership through `organizations.permissions`. A user with no membership in the organization
gets `ObjectDoesNotExist`-style treatment from callers (404), never a hint that it exists.
"""

from organizations import permissions
from organizations.actors import Actor
from organizations.permissions import Action
from organizations.selectors import membership_for


def _is_trusted(actor: Actor) -> bool:
    return actor.is_system or bool(actor.user is not None and actor.user.is_superuser)


def authorize(actor: Actor, action: Action, organization, obj=None) -> None:
    """Raise `PermissionDenied` unless the actor may do `action` in `organization`."""
    if _is_trusted(actor):
        return
    permissions.require(membership_for(user=actor.user, organization=organization), action, obj)


def authorize_role_grant(actor: Actor, organization, role_id: str) -> None:
    if _is_trusted(actor):
        return
    membership = membership_for(user=actor.user, organization=organization)
    if not permissions.can_grant_role(membership, role_id):
        raise permissions.PermissionDenied("You cannot grant a role above your own.")
