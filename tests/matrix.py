"""docs/permissions.md's tables, written out once, by hand, for every test that checks a surface
against them (the services, `organizations.permissions`, the pages, the admin, the API).

Plain data on purpose: nothing here is read from `organizations.roles` or
`organizations.permissions`. Were these sets computed from the code under test, a wrong role or
scope there would move the expectations with it and every check would still pass. Change this
module when, and only when, docs/permissions.md changes.
"""

OWNER, ADMIN, MEMBER, VIEWER = "owner", "admin", "member", "viewer"
# "Roles", highest priority first: the order pages and forms list them in.
ROLES = (OWNER, ADMIN, MEMBER, VIEWER)
EVERYONE = frozenset(ROLES)
NOBODY = frozenset()

# "Roles": each role's scopes.
_MEMBER_SCOPES = frozenset({"keys:read", "keys:add", "keys:change_own"})
_ADMIN_SCOPES = _MEMBER_SCOPES | {
    "keys:change_any",
    "tokens:manage",
    "audit:read",
    "members:manage",
    "admin:site",
}
SCOPES = {
    OWNER: _ADMIN_SCOPES | {"org:manage"},
    ADMIN: _ADMIN_SCOPES,
    MEMBER: _MEMBER_SCOPES,
    VIEWER: frozenset({"keys:read"}),
}

# "The matrix": the roles allowed each action that needs no particular object. `key.reveal` is
# nobody's: no page and no admin screen shows a secret again after it is typed in.
ALLOWED = {
    "key.list": EVERYONE,
    "key.add": frozenset({OWNER, ADMIN, MEMBER}),
    "key.reveal": NOBODY,
    # "`key.report`": proxies tell what the provider answered; no role reports.
    "key.report": NOBODY,
    # "`key.reorder`": a provider's whole pool, other people's keys included.
    "key.reorder": frozenset({OWNER, ADMIN}),
    "token.manage": frozenset({OWNER, ADMIN}),
    "audit.read": frozenset({OWNER, ADMIN}),
    "member.manage": frozenset({OWNER, ADMIN}),
    "org.manage": frozenset({OWNER}),
    # "`admin.enter` (`admin:site`)": entering the Django admin for the organization.
    "admin.enter": frozenset({OWNER, ADMIN}),
}

# "`key.edit`, `key.rotate`, `key.disable`, `key.delete`": owners and admins on any key, members
# on the keys they added (the key's `created_by` is them), viewers on none.
KEY_CHANGE_ACTIONS = frozenset({"key.edit", "key.rotate", "key.disable", "key.delete", "key.test"})
CHANGE_ANY_KEY = frozenset({OWNER, ADMIN})
CHANGE_OWN_KEY = frozenset({OWNER, ADMIN, MEMBER})

# "`member.manage`" and "(granting a role)": whom each role may change or remove, by the
# target's role, and which roles it may give. Nobody acts on or grants a role above their own.
MAY_MANAGE = {
    OWNER: EVERYONE,
    ADMIN: frozenset({ADMIN, MEMBER, VIEWER}),
    MEMBER: NOBODY,
    VIEWER: NOBODY,
}
MAY_GRANT = {
    OWNER: EVERYONE,
    ADMIN: frozenset({ADMIN, MEMBER, VIEWER}),
    MEMBER: NOBODY,
    VIEWER: NOBODY,
}

# "`admin.enter` (`admin:site`)": who enters the Django admin for their organization.
ADMIN_SITE = ALLOWED["admin.enter"]

# "Proxy tokens": the scopes a token may carry, and the one each action in the services needs.
# Any other action (tokens, members, the audit log, the organization) no scope allows.
TOKEN_SCOPES = ("keys:read", "keys:secret", "keys:write")
TOKEN_SCOPE_FOR = {
    "key.list": "keys:read",
    "key.reveal": "keys:secret",
    "key.report": "keys:secret",
    "key.reorder": "keys:write",
    "key.add": "keys:write",
    **dict.fromkeys(KEY_CHANGE_ACTIONS, "keys:write"),
}


def in_order(allowed) -> list[str]:
    """The roles of `allowed`, highest first (parametrized test ids follow the doc's order)."""
    return [role for role in ROLES if role in allowed]
