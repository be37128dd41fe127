"""Password guesses and reset mails, counted in the shared cache (`core.counters`) so that every
app instance sees them.

Every attempt is counted BEFORE its password is looked at: the counter's atomic increment hands
each request its own number, and a request whose number is past the limit is refused without a
check. Checking first and counting afterwards let parallel requests all read "below the limit"
before any of them counted (40 at once got 7 or 8 checks against a limit of 5). A right
password then takes its count back, so only failures use up the limit.

Sign-in counts twice per window: per (client address, account), which stops guessing one
person's password from one place without letting a stranger lock that person out from
elsewhere, and per address, which stops one place from guessing across many accounts. A
successful sign-in clears the first and refunds its one count of the second. With no known
address there is only the first: a shared "unknown" bucket would let anyone lock everybody out.

A shared egress address (an office, a VPN) over its limit because someone behind it guesses
across accounts: a browser that signed in to an account before carries a signed device cookie
naming it, and for that account the address's count does not refuse it (the account's own pair
count still does). Everyone else from that address waits for the window; a right password
alone does not get through, or the address limit would not stop a sprayer who guessed right.

A cache outage fails open: passwords are still checked, only the counting stops.
"""

import hashlib
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from core import counters

logger = logging.getLogger(__name__)

HOUR = 3600
DEVICE_COOKIE = "kv_device"
_DEVICE_SALT = "accounts.throttle.device"
_DEVICE_ACCOUNTS = 5


def account_digest(username: str) -> str:
    return hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:32]


def window_minutes() -> int:
    return max(1, settings.KEYVAULT_SIGNIN_WINDOW_SECONDS // 60)


@dataclass
class Attempt:
    """One counted password check: the counters it went into and whether it may go ahead."""

    refused: bool = False
    pair_key: str = ""
    refunds: list[str] = field(default_factory=list)


def _over(count: int | None, limit: int) -> bool:
    return bool(limit) and count is not None and count > limit


# --- Sign-in ------------------------------------------------------------------------------------


def _sign_in_keys(request, username: str) -> tuple[str, str | None]:
    address = counters.address_bucket(request)
    pair = f"kv:signin:{address or ''}:{account_digest(username)}"
    return pair, (f"kv:signin:{address}" if address else None)


def sign_in_attempt(request, username: str) -> Attempt:
    """Count one sign-in as `username` from `request`; `refused` when a limit is now passed.

    A refused attempt gives its counts back at once: it checked no password, so it is no guess,
    and the counters stay "failures checked, plus checks in flight"."""
    window = settings.KEYVAULT_SIGNIN_WINDOW_SECONDS
    pair_key, address_key = _sign_in_keys(request, username)
    attempt = Attempt(pair_key=pair_key)
    counted = []
    pair = counters.count(pair_key, timeout=window)
    if pair is not None:
        counted.append(pair_key)
    refused = _over(pair, settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT)
    if address_key is not None:
        at_address = counters.count(address_key, timeout=window)
        if at_address is not None:
            counted.append(address_key)
            attempt.refunds.append(address_key)
        if _over(at_address, settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS) and not (
            known_device(request, username)
        ):
            refused = True
    if refused:
        for key in counted:
            counters.refund(key)
        attempt.refunds = []
    attempt.refused = refused
    return attempt


def sign_in_succeeded(attempt: Attempt) -> None:
    """A right password: its pair starts again from zero, and the address gets its count back
    (only failures use up the address's limit; never cleared, or one's own account could wipe
    the count between guesses at others)."""
    try:
        cache.delete(attempt.pair_key)
    except Exception:
        logger.warning("Sign-in throttle cache unavailable.", exc_info=True)
    for key in attempt.refunds:
        counters.refund(key)


def is_throttled(request, username: str) -> bool:
    """Whether a sign-in as `username` from `request` would be refused now (counts nothing)."""
    pair_key, address_key = _sign_in_keys(request, username)
    now = counters.current([key for key in (pair_key, address_key) if key])
    if now.get(pair_key, 0) >= settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT > 0:
        return True
    limit = settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS
    return bool(address_key and limit and now.get(address_key, 0) >= limit) and not (
        known_device(request, username)
    )


def record_failure(request, username: str) -> None:
    """Count one failed sign-in, as a wrong password does."""
    sign_in_attempt(request, username)


# --- The device cookie ------------------------------------------------------------------------


def _device_accounts(request) -> list[str]:
    value = request.COOKIES.get(DEVICE_COOKIE)
    if not value:
        return []
    try:
        accounts = signing.loads(
            value, salt=_DEVICE_SALT, max_age=settings.KEYVAULT_SIGNIN_DEVICE_DAYS * 24 * HOUR
        )
    except signing.BadSignature:
        return []
    return [a for a in accounts if isinstance(a, str)] if isinstance(accounts, list) else []


def known_device(request, username: str) -> bool:
    return account_digest(username) in _device_accounts(request)


def remember_device(request, response, username: str) -> None:
    """Mark the browser as one that signed in to `username` (after a right password)."""
    digest = account_digest(username)
    accounts = [digest, *(a for a in _device_accounts(request) if a != digest)]
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(accounts[:_DEVICE_ACCOUNTS], salt=_DEVICE_SALT),
        max_age=settings.KEYVAULT_SIGNIN_DEVICE_DAYS * 24 * HOUR,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


# --- Password change and reset ----------------------------------------------------------------


def password_change_attempt(user) -> Attempt:
    """Count one check of `user`'s current password on the change page: a stolen session must
    not be a way to brute-force the password behind it."""
    key = f"kv:password-change:{user.pk}"
    count = counters.count(key, timeout=settings.KEYVAULT_SIGNIN_WINDOW_SECONDS)
    return Attempt(refused=_over(count, settings.KEYVAULT_PASSWORD_CHANGE_FAILURES), pair_key=key)


def code_attempt(user) -> Attempt:
    """Count one check of a second-factor code for `user` (at sign-in or reauthentication).
    Per account, wherever from: whoever gets this far knows the password, and a million codes
    must not be theirs to try."""
    key = f"kv:two-factor:{user.pk}"
    count = counters.count(key, timeout=settings.KEYVAULT_SIGNIN_WINDOW_SECONDS)
    return Attempt(
        refused=_over(count, settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT), pair_key=key
    )


def password_reset_allowed(request, email: str) -> bool:
    """Count one reset mail asked for `email` from `request`; False past a limit. Counted the
    same whether or not the address has an account, so the refusal tells nothing."""
    keys = [
        (f"kv:reset:email:{account_digest(email)}", settings.KEYVAULT_PASSWORD_RESETS_PER_ADDRESS)
    ]
    address = counters.address_bucket(request)
    if address:
        keys.append((f"kv:reset:client:{address}", settings.KEYVAULT_PASSWORD_RESETS_PER_CLIENT))
    over = [_over(counters.count(key, timeout=HOUR), limit) for key, limit in keys]
    return not any(over)
