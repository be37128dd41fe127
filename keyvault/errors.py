"""Errors services raise besides Django's `ValidationError` and `PermissionDenied`."""


class KeyDisabledError(Exception):
    """The key is disabled; its secret is not handed out until it is enabled again."""
