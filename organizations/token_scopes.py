"""The scopes a proxy token may carry: what `organizations.permissions` lets a token do, and
what the API's views ask for."""

from enum import StrEnum


class TokenScope(StrEnum):
    KEYS_READ = "keys:read"  # key metadata
    KEYS_SECRET = "keys:secret"  # decrypted secrets
    KEYS_WRITE = "keys:write"  # create, change, rotate, delete keys; the API also asks keys:read


SCOPE_CHOICES = [(scope.value, scope.value) for scope in TokenScope]
