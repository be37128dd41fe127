"""Errors keyvault's services raise besides Django's `ValidationError` and `PermissionDenied`
(and `core.errors.NotFoundError`, which every app's services raise).

An error a client should branch on carries its `code` as a class attribute; how a surface
answers it (the API's status, a page's message) is the surface's business.
"""

from core.errors import NotFoundError


class KeyDisabledError(Exception):
    """The key is disabled; its secret is not handed out until it is enabled again."""

    code = "key_disabled"  # what a client branches on (see docs/api.md)


class NoAvailableKeyError(Exception):
    """Every key of the provider's pool is disabled, failing or cooling (or it has none)."""

    code = "no_available_key"


class ReportThrottled(Exception):
    """Too many health reports about one key this minute."""

    code = "report_throttled"

    def __init__(self, message: str, wait: int):
        super().__init__(message)
        self.wait = wait


class OutboundRefused(Exception):
    """A connection test may not call this address (server-side request forgery rules)."""


class CursorExpiredError(Exception):
    """The event feed cannot continue from this cursor (its events were pruned, or it is not
    one the feed handed out); the caller takes a new snapshot."""

    code = "cursor_expired"  # what a client branches on (see docs/api.md)


class NoDefaultKeyError(NotFoundError):
    """`resolve` named no key and the organization has no default for the provider. A 404 as
    any missing key, with a message that says what to do (the organization is the caller's own,
    so saying that it has no default tells nothing about anyone else's)."""

    code = "no_default_key"

    def __init__(self, provider: str):
        super().__init__(f"no default key for {provider}; name one or set a default")
