"""Errors services raise besides Django's `ValidationError` and `PermissionDenied`, whichever
app they belong to."""

from django.core.exceptions import ObjectDoesNotExist


class NotFoundError(ObjectDoesNotExist):
    """The key, token or organization a write names no longer exists: another request deleted
    it after the caller had read it. Surfaces answer as for any missing object: 404, or a
    message."""
