"""The one place that answers "may this caller do this action (on this object)?".

Pages, the admin, the API and the services all ask here, about an `Access`
(organizations/access.py), which says which scopes the caller holds in an organization; nothing
else compares roles or token scopes. The matrix is docs/permissions.md's: scopes come from
`organizations.roles`, and the object rules (members change only keys they added; nobody acts
on or grants a role above their own) live in this module.
"""

from enum import StrEnum

from django.core.exceptions import PermissionDenied

from organizations import roles
from organizations.roles import Scope


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
    # Telling Keyvault what the provider answered when a proxy used a key (its health): for
    # proxies, which hold the secret, so it needs keys:secret and no role carries it.
    KEY_REPORT = "key.report"
    # One authenticated call to the provider with the key's secret (a connection test): a
    # change of the key's health, so who may change the key may test it.
    KEY_TEST = "key.test"
    # The order of a provider's whole pool: it moves other people's keys too.
    KEY_REORDER = "key.reorder"
    TOKEN_MANAGE = "token.manage"
    AUDIT_READ = "audit.read"
    MEMBER_MANAGE = "member.manage"
    ORG_MANAGE = "org.manage"
    ADMIN_ENTER = "admin.enter"


# Actions on one key that a member may take on keys they added, and admins on any key.
KEY_CHANGE_ACTIONS = frozenset(
    {Action.KEY_EDIT, Action.KEY_ROTATE, Action.KEY_DISABLE, Action.KEY_DELETE, Action.KEY_TEST}
)

_SCOPE_FOR_ACTION = {
    Action.KEY_LIST: Scope.KEYS_READ,
    Action.KEY_ADD: Scope.KEYS_ADD,
    Action.KEY_REVEAL: Scope.KEYS_SECRET,
    Action.KEY_REPORT: Scope.KEYS_SECRET,
    Action.KEY_REORDER: Scope.KEYS_CHANGE_ANY,
    Action.TOKEN_MANAGE: Scope.TOKENS_MANAGE,
    Action.AUDIT_READ: Scope.AUDIT_READ,
    Action.MEMBER_MANAGE: Scope.MEMBERS_MANAGE,
    Action.ORG_MANAGE: Scope.ORG_MANAGE,
    Action.ADMIN_ENTER: Scope.ADMIN_SITE,
}


def _id(organization):
    return getattr(organization, "pk", organization)


def organization_of(obj):
    """The id of the organization an object belongs to; an organization belongs to itself."""
    from organizations.models import Organization

    if isinstance(obj, Organization):
        return obj.pk
    return getattr(obj, "organization_id", None)


def _is_membership(obj) -> bool:
    from organizations.models import Membership

    return isinstance(obj, Membership)


def scope_for(action: Action) -> str:
    """The scope `action` needs (on any object; the object rules come on top)."""
    if action in KEY_CHANGE_ACTIONS:
        return Scope.KEYS_CHANGE_ANY
    return _SCOPE_FOR_ACTION[action]


def can(access, action: Action, organization, obj=None) -> bool:
    """Whether `access` may do `action` in `organization` (an instance or its id), on `obj`
    when the action concerns one object.

    `obj` of another organization is always refused, whoever asks; `obj` may also be the
    organization itself (renaming or deleting it).
    """
    organization_id = _id(organization)
    if organization_id is None:
        return False
    if obj is not None and organization_of(obj) != organization_id:
        return False
    scopes = access.scopes_in(organization_id)
    if action in KEY_CHANGE_ACTIONS:
        if Scope.KEYS_CHANGE_ANY in scopes:
            return True
        user = access.user
        return (
            Scope.KEYS_CHANGE_OWN in scopes
            and obj is not None
            and user is not None
            and obj.created_by_id is not None
            and obj.created_by_id == user.pk
        )
    if action == Action.MEMBER_MANAGE and _is_membership(obj):
        return can_manage_member(access, obj)
    scope = _SCOPE_FOR_ACTION.get(action)
    return scope is not None and scope in scopes


def require(access, action: Action, organization, obj=None) -> None:
    if not can(access, action, organization, obj):
        raise PermissionDenied(_refusal(access, action))


def _refusal(access, action: Action) -> str:
    if action == Action.KEY_REVEAL and access.token is None:
        return "Secrets are revealed to proxy tokens only."
    if access.token is not None:
        return f"The token may not {action.value}."
    return f"Your role does not allow {action.value}."


def _ranks_at_least(access, organization, role: roles.Role) -> bool:
    """Whether the caller's own rank in `organization` is `role`'s or above (the trusted
    outrank everyone; tokens rank nowhere)."""
    if access.is_trusted:
        return True
    own = access.role_in(organization)
    return own is not None and own.outranks_or_equals(role)


def can_grant_role(access, organization, role_id: str) -> bool:
    """Whether `access` may give someone `role_id` in `organization`: never above their own
    role."""
    if not roles.is_role(role_id):
        return False
    return access.has_scope(Scope.MEMBERS_MANAGE, _id(organization)) and _ranks_at_least(
        access, organization, roles.get_role(role_id)
    )


def grantable_roles(access, organization) -> list[roles.Role]:
    """The roles `access` may grant in `organization`, highest first."""
    return [role for role in roles.ROLES if can_grant_role(access, organization, role.id)]


def can_manage_member(access, target) -> bool:
    """Whether `access` may change or remove the membership `target`: not someone who
    outranks them."""
    organization_id = target.organization_id
    return access.has_scope(Scope.MEMBERS_MANAGE, organization_id) and _ranks_at_least(
        access, organization_id, target.role_obj
    )


def visible_actions(access, organization, obj=None) -> frozenset[Action]:
    """Every action `access` may take in `organization` (on `obj`): what pages use to show
    or hide buttons."""
    if access is None or organization is None:
        return frozenset()
    return frozenset(action for action in Action if can(access, action, organization, obj))


def may_create_organization_for(access, owner) -> bool:
    """People create organizations for themselves (sign-up); only the trusted create one on
    someone else's behalf, and a token never does."""
    if access.is_trusted:
        return True
    return access.token is None and access.user is not None and access.user.pk == owner.pk


def may_operate_instance(access) -> bool:
    """Whether `access` may run jobs over every organization's keys (KEK rotation, envelope
    upgrades): the operator and active superusers only."""
    return access.is_trusted
