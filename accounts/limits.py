"""Daily limits on what an unverified account can make Keyvault do to others: send invitation
emails, open organizations, sign up. Sign-up does not verify addresses, so without them one
script could mail strangers in Keyvault's name at will.
"""

from django.conf import settings
from django.core.exceptions import ValidationError

from core import counters

DAY = 24 * 3600
HOUR = 3600


def _check(keys: list[str], *, limit: int, window: int, message: str) -> None:
    """Count one more for each key; refuse when any is past `limit` (0: no limit)."""
    if not limit:
        return
    counts = [counters.count(key, timeout=window) for key in keys]
    if any(count is not None and count > limit for count in counts):
        raise ValidationError(message, code="limit")


def check_invitation(request, organization) -> None:
    """One more invitation from the request's user to `organization`, from a page or the
    admin: both count against the same limits."""
    limit = settings.KEYVAULT_INVITATIONS_PER_DAY
    _check(
        [
            f"kv:limit:invitations:org:{organization.pk}",
            f"kv:limit:invitations:user:{request.user.pk}",
        ],
        limit=limit,
        window=DAY,
        message=f"No more than {limit} invitations a day may be sent; try again tomorrow.",
    )


def check_organization_create(request) -> None:
    limit = settings.KEYVAULT_ORGANIZATIONS_PER_DAY
    _check(
        [f"kv:limit:organizations:user:{request.user.pk}"],
        limit=limit,
        window=DAY,
        message=f"No more than {limit} organizations a day may be created; try again tomorrow.",
    )


def check_sign_up(request) -> None:
    limit = settings.KEYVAULT_SIGNUPS_PER_HOUR
    address = counters.address_bucket(request)
    _check(
        [f"kv:limit:signups:{address}"] if address else [],
        limit=limit,
        window=HOUR,
        message="Too many accounts were created from your network; try again in an hour.",
    )
