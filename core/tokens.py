"""Bearer tokens that only their holder knows: how they are generated, checked and stored.

A token is a prefix followed by 43 base64url characters (256 random bits). Only its SHA-256
digest is stored: with that much entropy a plain hash cannot be brute-forced, so no salt or
pepper is needed, and unlike a keyed hash it survives a change of SECRET_KEY. The prefix lets
secret scanners recognise a leaked token, and the format is checked before hashing so garbage
never reaches the database. Proxy tokens (`keyvault/tokens.py`) and invitation links
(`organizations/invitations.py`) are both made here.
"""

import hashlib
import re
import secrets

from django.views.decorators.debug import sensitive_variables

TOKEN_RANDOM_BYTES = 32


def token_pattern(prefix: str) -> re.Pattern:
    """The shape of a token `random_token(prefix)` makes: the prefix and 43 base64url
    characters."""
    return re.compile(rf"^{re.escape(prefix)}[A-Za-z0-9_-]{{43}}$")


def random_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


@sensitive_variables()
def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()
