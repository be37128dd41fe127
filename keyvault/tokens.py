"""Proxy tokens: how they look. `core.tokens` generates and hashes them (and says why a plain
SHA-256 digest is enough); the scopes a token may carry are `organizations.roles.TokenScope`.

A proxy token is `kvp_` followed by 43 base64url characters (256 random bits). The format is
checked before hashing so garbage never reaches the database.
"""

from django.views.decorators.debug import sensitive_variables

from core.tokens import random_token, token_pattern
from organizations.roles import TokenScope

TOKEN_PREFIX = "kvp_"
TOKEN_PATTERN = token_pattern(TOKEN_PREFIX)

SCOPE_CHOICES = [(scope.value, scope.value) for scope in TokenScope]


def generate_token() -> str:
    """A new proxy token."""
    return random_token(TOKEN_PREFIX)


@sensitive_variables()
def looks_like_token(value: str) -> bool:
    return bool(TOKEN_PATTERN.fullmatch(value))
