"""Authorizing an `Access` against the permission matrix, for services.

The operator (management commands) and superusers are trusted; a user is judged by their
membership and a proxy token by its scopes, both through `organizations.permissions`.
"""

from organizations import permissions
from organizations.access import Access
from organizations.permissions import Action
from organizations.selectors import membership_for


def _is_trusted(actor: Access) -> bool:
    # A deactivated superuser is locked out like anyone else: deactivation is how an operator
    # revokes someone without deleting their audit trail.
    user = actor.user
    return actor.is_operator or bool(
        user is not None and user.is_superuser and getattr(user, "is_active", False)
    )


def authorize(actor: Access, action: Action, organization, obj=None) -> None:
    """Raise `PermissionDenied` unless the actor may do `action` in `organization` (an
    instance or its primary key)."""
    if action == Action.KEY_REVEAL and not actor.is_operator and actor.token is None:
        # People never see a secret after typing it, superusers included: decrypting is for
        # the proxy's tokens and the operator's commands.
        raise permissions.PermissionDenied("Secrets are revealed to proxy tokens only.")
    if _is_trusted(actor):
        return
    if actor.token is not None:
        if not permissions.token_can(actor.token, action, organization, obj):
            raise permissions.PermissionDenied(f"The token may not {action.value}.")
        return
    permissions.require(membership_for(user=actor.user, organization=organization), action, obj)


def authorize_organization_create(actor: Access, owner) -> None:
    """People create organizations for themselves (sign-up); only the operator (or a
    superuser) creates one on someone else's behalf, and a token never does."""
    if _is_trusted(actor):
        return
    if actor.token is not None or actor.user is None or actor.user.pk != owner.pk:
        raise permissions.PermissionDenied("You can create an organization only for yourself.")


def authorize_role_grant(actor: Access, organization, role_id: str) -> None:
    if _is_trusted(actor):
        return
    if actor.token is not None:
        raise permissions.PermissionDenied("Tokens cannot manage members.")
    membership = membership_for(user=actor.user, organization=organization)
    if not permissions.can_grant_role(membership, role_id):
        raise permissions.PermissionDenied("You cannot grant a role above your own.")
