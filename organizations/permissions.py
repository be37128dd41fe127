"""The one place that answers "may this membership do this action (on this object)?".

Pages, the admin, the API and the services all ask here; nothing else compares roles. The matrix
is docs/permissions.md's: scopes come from `organizations.roles`, and the object rules (members
change only keys they added; nobody acts on or grants a role above their own) live here.
"""

from enum import StrEnum

from django.core.exceptions import PermissionDenied

from organizations import roles
from organizations.models import Organization
from organizations.roles import Scope
from organizations.token_scopes import TokenScope


class Action(StrEnum):
    KEY_LIST = "key.list"
    KEY_ADD = "key.add"
    KEY_EDIT = "key.edit"
    KEY_ROTATE = "key.rotate"
    KEY_DISABLE = "key.disable"
    KEY_DELETE = "key.delete"
    # Decrypting a key: no role grants it (people never see a secret again after typing it);
    # only a proxy token with keys:secret, or the operator.
    KEY_REVEAL = "key.reveal"
    TOKEN_MANAGE = "token.manage"
    AUDIT_READ = "audit.read"
    MEMBER_MANAGE = "member.manage"
    ORG_MANAGE = "org.manage"


# Actions on one key that a member may take on keys they added, and admins on any key.
KEY_CHANGE_ACTIONS = frozenset(
    {Action.KEY_EDIT, Action.KEY_ROTATE, Action.KEY_DISABLE, Action.KEY_DELETE}
)

_SCOPE_FOR_ACTION = {
    Action.KEY_LIST: Scope.KEYS_READ,
    Action.KEY_ADD: Scope.KEYS_ADD,
    Action.TOKEN_MANAGE: Scope.TOKENS_MANAGE,
    Action.AUDIT_READ: Scope.AUDIT_READ,
    Action.MEMBER_MANAGE: Scope.MEMBERS_MANAGE,
    Action.ORG_MANAGE: Scope.ORG_MANAGE,
}


def can(membership, action: Action, obj=None) -> bool:
    """Whether `membership` may do `action`, on `obj` when the action concerns one object.

    `obj` of another organization is always refused, whatever the role; `obj` may also be the
    organization itself (renaming or deleting it).
    """
    if membership is None:
        return False
    if obj is not None and _organization_id_of(obj) != membership.organization_id:
        return False
    scopes = membership.role_obj.scopes
    if action in KEY_CHANGE_ACTIONS:
        if Scope.KEYS_CHANGE_ANY in scopes:
            return True
        return (
            Scope.KEYS_CHANGE_OWN in scopes
            and obj is not None
            and obj.created_by_id is not None
            and obj.created_by_id == membership.user_id
        )
    if action == Action.MEMBER_MANAGE and obj is not None:
        return can_manage_member(membership, obj)
    scope = _SCOPE_FOR_ACTION.get(action)
    return scope is not None and scope in scopes


def _organization_id_of(obj):
    """The organization an object belongs to; an organization belongs to itself."""
    if isinstance(obj, Organization):
        return obj.pk
    return getattr(obj, "organization_id", None)


# What a proxy token's scopes let it do through the services; anything else is refused.
_TOKEN_SCOPE_FOR_ACTION = {
    Action.KEY_LIST: TokenScope.KEYS_READ,
    Action.KEY_ADD: TokenScope.KEYS_WRITE,
    Action.KEY_REVEAL: TokenScope.KEYS_SECRET,
    **{action: TokenScope.KEYS_WRITE for action in KEY_CHANGE_ACTIONS},
}


def token_can(token, action: Action, organization, obj=None) -> bool:
    """Whether a proxy token may do `action` in `organization` (an instance or its id)."""
    if token.organization_id != getattr(organization, "pk", organization):
        return False
    if obj is not None and _organization_id_of(obj) != token.organization_id:
        return False
    scope = _TOKEN_SCOPE_FOR_ACTION.get(action)
    return scope is not None and scope in token.scopes


def can_grant_role(membership, role_id: str) -> bool:
    """Whether `membership` may give someone `role_id`: never above their own role."""
    if membership is None or not roles.is_role(role_id):
        return False
    return Scope.MEMBERS_MANAGE in membership.role_obj.scopes and (
        membership.role_obj.outranks_or_equals(roles.get_role(role_id))
    )


def can_manage_member(membership, target) -> bool:
    """Whether `membership` may change or remove `target`: not someone who outranks them."""
    if membership is None or target.organization_id != membership.organization_id:
        return False
    return Scope.MEMBERS_MANAGE in membership.role_obj.scopes and (
        membership.role_obj.outranks_or_equals(target.role_obj)
    )


def visible_actions(membership, obj=None) -> frozenset[Action]:
    """Every action `membership` may take (on `obj`): what pages use to show or hide buttons."""
    return frozenset(action for action in Action if can(membership, action, obj))


def require(membership, action: Action, obj=None) -> None:
    if not can(membership, action, obj):
        raise PermissionDenied(f"Your role does not allow {action.value}.")
