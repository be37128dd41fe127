"""Who is acting, resolved once: a signed-in user, a proxy token, or the operator (commands,
seeding).

Services take an `Access` (as `actor`) so that authorization and audit see the same caller on
every surface.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Access:
    user: Any = None
    token: Any = None
    ip: str | None = None
    operator_label: str | None = None

    @classmethod
    def for_user(cls, user, *, ip: str | None = None) -> "Access":
        return cls(user=user, ip=ip)

    @classmethod
    def for_request(cls, request) -> "Access":
        """The signed-in person behind a page or admin request, with the client's address
        (a trusted proxy's header when one is configured, as everywhere else)."""
        from core.counters import client_address

        return cls(user=request.user, ip=client_address(request))

    @classmethod
    def for_token(cls, token, *, ip: str | None = None) -> "Access":
        return cls(token=token, ip=ip)

    @classmethod
    def operator(cls, label: str = "system") -> "Access":
        """The operator: trusted by definition, because it already holds the server."""
        return cls(operator_label=label)

    @property
    def stored_user(self):
        """The user to record as author or actor: None for tokens, the operator and users
        not saved (an unsaved user has no row to point at)."""
        return self.user if self.user is not None and self.user.pk else None

    @property
    def is_operator(self) -> bool:
        return self.operator_label is not None

    @property
    def label(self) -> str:
        if self.is_operator:
            return self.operator_label
        if self.token is not None:
            return f"token {self.token.name} (…{self.token.last_four})"
        return getattr(self.user, "email", "") or str(self.user)
