"""Errors keyvault's services raise besides Django's `ValidationError` and `PermissionDenied`
(and `core.errors.NotFoundError`, which every app's services raise)."""


class KeyDisabledError(Exception):
    """The key is disabled; its secret is not handed out until it is enabled again."""
