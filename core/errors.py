"""Errors services raise besides Django's `ValidationError` and `PermissionDenied`, whichever
app they belong to."""

from django.core.exceptions import ObjectDoesNotExist


class NotFoundError(ObjectDoesNotExist):
    """The key, token or organization does not exist for this caller: it never did, it is
    another organization's (the same answer, so an id is no existence oracle), or another
    request deleted it after the caller had read it. Surfaces answer as for any missing object:
    404, or a message."""
