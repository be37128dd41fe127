"""Slugs for organizations whose creator did not choose one (sign-up, "new organization")."""

import secrets

from django.utils.text import slugify

from organizations.models import Organization

_SLUG_BASE_LENGTH = 40


def available_slug(name: str) -> str:
    """A slug made from `name` that no organization uses yet: `acme`, else `acme-2` … `acme-9`,
    else `acme-` and six random characters. A concurrent creator can still take it first; the
    create service then refuses with a slug error and the caller tries again."""
    base = slugify(name)[:_SLUG_BASE_LENGTH].strip("-") or "org"
    candidates = [base, *(f"{base}-{n}" for n in range(2, 10))]
    taken = set(Organization.objects.filter(slug__in=candidates).values_list("slug", flat=True))
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    return f"{base}-{secrets.token_hex(3)}"
