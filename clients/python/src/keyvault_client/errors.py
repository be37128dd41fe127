"""What `resolve` and `get` raise. Messages name keys by provider, name or id, never by secret,
and never quote the token."""


class KeyvaultError(Exception):
    """Base class of every error this package raises."""


class KeyvaultAuthError(KeyvaultError):
    """Keyvault refused the token (401), or the token lacks a scope the client needs (403).

    Permanent: the client has stopped syncing and forgotten every secret it held, because a
    token that stopped working is most often a revoked one. Create a new client with a valid
    token.
    """


class KeyvaultStaleError(KeyvaultError):
    """No successful sync within `max_staleness` seconds: what the client holds may no longer be
    what Keyvault says (a rotated, disabled or deleted key it has not heard of), so it serves
    nothing until the next sync succeeds."""


class KeyvaultUnavailableError(KeyvaultError):
    """The first snapshot did not arrive within `start_timeout`; the client is closed."""


class KeyvaultClosedError(KeyvaultError):
    """The client was closed."""


class KeyvaultNotFoundError(KeyvaultError, LookupError):
    """No enabled key matches: no default key for the provider, no key of that name, or the key
    was disabled or deleted."""
