"""Errors services raise besides Django's `ValidationError` and `PermissionDenied`.

An error a client should branch on carries its `code` as a class attribute; how a surface
answers it (the API's status, a page's message) is the surface's business.
"""

from django.core.exceptions import ObjectDoesNotExist


class KeyDisabledError(Exception):
    """The key is disabled; its secret is not handed out until it is enabled again."""

    code = "key_disabled"  # what a client branches on (see docs/api.md)


class NotFoundError(ObjectDoesNotExist):
    """The key or token does not exist for this caller: it never did, it is another
    organization's (the same answer, so an id is no existence oracle), or another request
    deleted it after the caller had read it. Surfaces answer as for any missing object: 404, or
    a message."""
