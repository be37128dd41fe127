"""Errors keyvault's services raise besides Django's `ValidationError` and `PermissionDenied`
(and `core.errors.NotFoundError`, which every app's services raise).

An error a client should branch on carries its `code` as a class attribute; how a surface
answers it (the API's status, a page's message) is the surface's business.
"""


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
