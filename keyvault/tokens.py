"""Proxy tokens: how they look, how they are generated, and how they are stored.

A token is `kvp_` followed by 43 base64url characters (256 random bits). Only its SHA-256
digest is stored: with that much entropy a plain hash cannot be brute-forced, so no salt or
pepper is needed, and unlike a keyed hash it survives a change of SECRET_KEY. The `kvp_` prefix
lets secret scanners recognise a leaked token, and the format is checked before hashing so
garbage never reaches the database.
"""

import hashlib
import re
import secrets

from django.views.decorators.debug import sensitive_variables

from organizations.roles import TokenScope

TOKEN_PREFIX = "kvp_"
TOKEN_RANDOM_BYTES = 32


def token_pattern(prefix: str) -> re.Pattern:
    """The shape of a token `generate_token(prefix)` makes: the prefix and 43 base64url
    characters."""
    return re.compile(rf"^{re.escape(prefix)}[A-Za-z0-9_-]{{43}}$")


TOKEN_PATTERN = token_pattern(TOKEN_PREFIX)


SCOPE_CHOICES = [(scope.value, scope.value) for scope in TokenScope]


def generate_token(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


@sensitive_variables()
def looks_like_token(value: str) -> bool:
    return bool(TOKEN_PATTERN.fullmatch(value))


@sensitive_variables()
def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()
