"""Authorizing a caller for services: the checks of `organizations.permissions` raised as
`PermissionDenied`, under the names services call."""

from organizations import permissions
from organizations.access import Access
from organizations.permissions import Action


def authorize(actor: Access, action: Action, organization, obj=None) -> None:
    """Raise `PermissionDenied` unless the actor may do `action` in `organization` (an
    instance or its primary key)."""
    permissions.require(actor, action, organization, obj)


def authorize_organization_create(actor: Access, owner) -> None:
    if not permissions.may_create_organization_for(actor, owner):
        raise permissions.PermissionDenied("You can create an organization only for yourself.")


def authorize_role_grant(actor: Access, organization, role_id: str) -> None:
    if actor.token is not None:
        raise permissions.PermissionDenied("Tokens cannot manage members.")
    if not permissions.can_grant_role(actor, organization, role_id):
        raise permissions.PermissionDenied("You cannot grant a role above your own.")


def authorize_instance_operation(actor: Access) -> None:
    """Jobs over every organization's keys (KEK rotation, envelope upgrades) are for the
    trusted: the operator and active superusers."""
    if not permissions.may_operate_instance(actor):
        raise permissions.PermissionDenied("Only the operator and superusers run this.")
