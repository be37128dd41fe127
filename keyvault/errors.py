"""Errors services raise besides Django's `ValidationError` and `PermissionDenied`."""

from django.core.exceptions import ObjectDoesNotExist


class KeyDisabledError(Exception):
    """The key is disabled; its secret is not handed out until it is enabled again."""


class NotFoundError(ObjectDoesNotExist):
    """The key or token does not exist for this caller: it never did, it is another
    organization's (the same answer, so an id is no existence oracle), or another request
    deleted it after the caller had read it. Surfaces answer as for any missing object: 404, or
    a message."""
