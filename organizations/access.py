"""The caller, resolved once: who is acting and which scopes they hold in an organization.

Every surface builds one `Access` for its caller: pages from the membership their URL resolved
(`for_member`), the admin from the signed-in user (`for_request`), the API from its proxy token
(`for_token`), commands as the operator (`operator`). Services take it as `actor`, and pages,
the admin, the API and the services all ask `organizations.permissions` about it, which asks
`scopes_in` here: nothing else decides who is trusted. See docs/permissions.md.

Who holds what:
- the operator (management commands, seeding) holds every scope everywhere: it already holds
  the server;
- an active superuser holds every scope in every organization except `keys:secret` (people
  never see a secret after typing it, superusers included), in the admin and the services; on
  the team pages, reached through their membership, they hold their role like anyone else;
- a member holds their role's scopes in their organization, and nothing elsewhere;
- a proxy token holds its scopes' grants in its own organization, and nothing elsewhere;
- a deactivated or signed-out user holds nothing: deactivating is how an operator revokes
  someone without deleting their audit trail.
"""

from dataclasses import dataclass, field
from typing import Any

from organizations import roles
from organizations.roles import Scope

_SUPERUSER_SCOPES = roles.ALL_SCOPES - {Scope.KEYS_SECRET}


def _organization_id(organization):
    """The id of an organization given as an instance or as its id."""
    return getattr(organization, "pk", organization)


@dataclass(frozen=True, eq=False)
class Access:
    user: Any = None
    token: Any = None
    ip: str | None = None
    operator_label: str | None = None
    # The organization a member was reached through (their page's), when there is one.
    member_of: Any = None
    # Memberships already looked up, by organization id (None: not a member), so one request
    # asks the database at most once per organization however often it is authorized.
    _memberships: dict = field(default_factory=dict, repr=False)
    _by_scope: dict = field(default_factory=dict, repr=False)

    # --- Building one ------------------------------------------------------------------------

    @classmethod
    def for_user(cls, user, *, ip: str | None = None) -> "Access":
        return cls(user=user, ip=ip)

    @classmethod
    def for_member(cls, membership, *, ip: str | None = None) -> "Access":
        """A signed-in member whose membership the caller has already looked up."""
        access = cls(user=membership.user, ip=ip, member_of=membership.organization_id)
        access._memberships[membership.organization_id] = membership
        return access

    @classmethod
    def for_request(cls, request, membership=None) -> "Access":
        """The signed-in person behind a page or admin request, with the client's address
        (a trusted proxy's header when one is configured, as everywhere else)."""
        from core.counters import client_address

        if membership is not None:
            return cls.for_member(membership, ip=client_address(request))
        return cls(user=request.user, ip=client_address(request))

    @classmethod
    def for_token(cls, token, *, ip: str | None = None) -> "Access":
        return cls(token=token, ip=ip)

    @classmethod
    def operator(cls, label: str = "system") -> "Access":
        """The operator: trusted by definition, because it already holds the server."""
        return cls(operator_label=label)

    # --- Who it is ---------------------------------------------------------------------------

    @property
    def is_operator(self) -> bool:
        return self.operator_label is not None

    @property
    def is_active_user(self) -> bool:
        user = self.user
        return bool(
            user is not None
            and getattr(user, "is_authenticated", False)
            and getattr(user, "is_active", False)
        )

    @property
    def is_superuser(self) -> bool:
        """An active superuser (a deactivated one is locked out like anyone else), acting as
        one: a superuser reached through a membership (the team pages) is their role there,
        like anyone else."""
        return (
            self.member_of is None
            and self.is_active_user
            and bool(getattr(self.user, "is_superuser", False))
        )

    @property
    def is_trusted(self) -> bool:
        """Sees every organization: the operator and active superusers."""
        return self.is_operator or self.is_superuser

    @property
    def organization_id(self):
        """The one organization this caller belongs to when that is fixed (a token, or a
        member reached through their membership); None for the operator and other users."""
        if self.token is not None:
            return self.token.organization_id
        return self.member_of

    @property
    def stored_user(self):
        """The user to record as author or actor: None for tokens, the operator and users
        not saved (an unsaved user has no row to point at)."""
        return self.user if self.user is not None and self.user.pk else None

    @property
    def label(self) -> str:
        if self.is_operator:
            return self.operator_label
        if self.token is not None:
            return f"token {self.token.name} (…{self.token.last_four})"
        return getattr(self.user, "email", "") or str(self.user)

    # --- What it may do ----------------------------------------------------------------------

    def membership_in(self, organization):
        """The user's membership in `organization` (an instance or an id), looked up once;
        None for tokens, the operator, deactivated users and non-members."""
        if self.token is not None or self.is_operator or not self.is_active_user:
            return None
        organization_id = _organization_id(organization)
        if organization_id not in self._memberships:
            from organizations.models import Membership

            self._memberships[organization_id] = (
                Membership.objects.filter(user=self.user, organization_id=organization_id)
                .select_related("organization")
                .first()
            )
        return self._memberships[organization_id]

    def role_in(self, organization) -> roles.Role | None:
        membership = self.membership_in(organization)
        return membership.role_obj if membership is not None else None

    def scopes_in(self, organization) -> frozenset[str]:
        """Every scope this caller holds in `organization` (an instance or an id)."""
        if self.is_operator:
            return roles.ALL_SCOPES
        if self.token is not None:
            if self.token.organization_id != _organization_id(organization):
                return frozenset()
            return roles.token_scopes(self.token.scopes)
        if self.is_superuser:
            return _SUPERUSER_SCOPES
        role = self.role_in(organization)
        return role.scopes if role is not None else frozenset()

    def has_scope(self, scope: str, organization) -> bool:
        return scope in self.scopes_in(organization)

    def organizations_with(self, scope: str) -> dict:
        """`{organization id: membership}` of the user's organizations whose role carries
        `scope` (for the admin: which rooms this person may enter). Looked up once per
        access; the trusted see every organization and are not listed here."""
        if scope not in self._by_scope:
            found = {}
            if self.is_active_user and self.token is None:
                from organizations.models import Membership

                found = {
                    m.organization_id: m
                    for m in Membership.objects.filter(
                        user=self.user, role__in=roles.roles_with(scope)
                    ).select_related("organization")
                }
                for organization_id, membership in found.items():
                    self._memberships.setdefault(organization_id, membership)
            self._by_scope[scope] = found
        return self._by_scope[scope]
