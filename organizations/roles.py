"""The scope vocabulary and the ordered roles registry.

One vocabulary for every caller: a role carries scopes, a proxy token's scopes are named bundles
of the same scopes (`TokenScope`), and `organizations.permissions` maps each action to the one
scope it needs. Roles are compared by priority and checked by scope, never by name, so adding a
role means adding one line here. See docs/permissions.md.
"""

from dataclasses import dataclass
from enum import StrEnum


class Scope:
    KEYS_READ = "keys:read"
    # Receiving a decrypted secret: no role carries it (people never see a secret again after
    # typing it); proxy tokens with keys:secret and the operator do.
    KEYS_SECRET = "keys:secret"
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


ALL_SCOPES = frozenset(
    value for name, value in vars(Scope).items() if name.isupper() and isinstance(value, str)
)


class TokenScope(StrEnum):
    """What a proxy token is created with (the API's and `create_token`'s names)."""

    KEYS_READ = "keys:read"  # key metadata
    KEYS_SECRET = "keys:secret"  # decrypted secrets
    KEYS_WRITE = "keys:write"  # create, change, rotate, delete keys; the API also asks keys:read


# The scopes each token scope grants: a token's scopes are the union of its bundles.
TOKEN_SCOPE_GRANTS: dict[TokenScope, frozenset[str]] = {
    TokenScope.KEYS_READ: frozenset({Scope.KEYS_READ}),
    TokenScope.KEYS_SECRET: frozenset({Scope.KEYS_SECRET}),
    TokenScope.KEYS_WRITE: frozenset({Scope.KEYS_ADD, Scope.KEYS_CHANGE_ANY}),
}


def token_scopes(names) -> frozenset[str]:
    """The scopes a token created with `names` carries (unknown names grant nothing)."""
    granted = set()
    for name in names:
        granted |= TOKEN_SCOPE_GRANTS.get(name, frozenset())
    return frozenset(granted)


def token_scope_granting(scope: str) -> TokenScope | None:
    """The token scope a token needs for `scope` (None when no token may have it)."""
    return next((name for name, grants in TOKEN_SCOPE_GRANTS.items() if scope in grants), None)


def roles_with(scope: str) -> list[str]:
    """Ids of the roles that carry `scope`."""
    return [role.id for role in ROLES if scope in role.scopes]


def get_role(role_id: str) -> Role:
    """The role with this id; `KeyError` for an unknown id."""
    return _BY_ID[role_id]


def is_role(role_id: str) -> bool:
    return role_id in _BY_ID
