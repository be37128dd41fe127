"""The ordered roles registry.

Roles are compared by priority and checked by scope, never by name, so adding a role means adding
one line here. Scopes name what a role may do; `organizations.permissions` maps actions to them.
"""

from dataclasses import dataclass


class Scope:
    KEYS_READ = "keys:read"
    KEYS_ADD = "keys:add"
    KEYS_CHANGE_OWN = "keys:change_own"
    KEYS_CHANGE_ANY = "keys:change_any"
    TOKENS_MANAGE = "tokens:manage"
    AUDIT_READ = "audit:read"
    MEMBERS_MANAGE = "members:manage"
    ORG_MANAGE = "org:manage"
    # Entering the tenant-scoped Django admin for this organization.
    ADMIN_SITE = "admin:site"


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    priority: int
    scopes: frozenset[str]

    def outranks_or_equals(self, other: "Role") -> bool:
        return self.priority >= other.priority


_MEMBER_SCOPES = frozenset({Scope.KEYS_READ, Scope.KEYS_ADD, Scope.KEYS_CHANGE_OWN})
_ADMIN_SCOPES = _MEMBER_SCOPES | {
    Scope.KEYS_CHANGE_ANY,
    Scope.TOKENS_MANAGE,
    Scope.AUDIT_READ,
    Scope.MEMBERS_MANAGE,
    Scope.ADMIN_SITE,
}

OWNER = Role("owner", "Owner", 400, _ADMIN_SCOPES | {Scope.ORG_MANAGE})
ADMIN = Role("admin", "Admin", 300, _ADMIN_SCOPES)
MEMBER = Role("member", "Member", 200, _MEMBER_SCOPES)
VIEWER = Role("viewer", "Viewer", 100, frozenset({Scope.KEYS_READ}))

# Highest first: the order pages and forms list them in.
ROLES: tuple[Role, ...] = (OWNER, ADMIN, MEMBER, VIEWER)
_BY_ID = {role.id: role for role in ROLES}

CHOICES = [(role.id, role.name) for role in ROLES]


def roles_with(scope: str) -> list[str]:
    """Ids of the roles that carry `scope`."""
    return [role.id for role in ROLES if scope in role.scopes]


def get_role(role_id: str) -> Role:
    """The role with this id; `KeyError` for an unknown id."""
    return _BY_ID[role_id]


def is_role(role_id: str) -> bool:
    return role_id in _BY_ID
