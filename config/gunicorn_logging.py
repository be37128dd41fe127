"""gunicorn's access log without the bearer secrets some URLs carry.

An invitation link (`/invitations/kvi_…/`) and a password-reset link
(`/accounts/password/reset/key/<uid>-<key>/`, and the older
`/accounts/password/reset/<uid>/<token>/`) hold a working credential in their path. The app
moves both out of the address bar at once, but the first request's line still reaches the
access log, whose readers must not be able to join an organization or take over an account.
"""

import re

from gunicorn.glogging import Logger

_SECRETS_IN_PATHS = (
    (re.compile(r"kvi_[A-Za-z0-9_-]{43}"), "kvi_[redacted]"),
    (
        re.compile(r"(/accounts/password/reset/key/)(?![0-9A-Za-z]+-set-password/)[^/\s?]+/"),
        r"\1[redacted]/",
    ),
    (
        re.compile(r"(/accounts/password/reset/)(?!key/)[^/\s?]+/(?!set-password/)[^/\s?]+/"),
        r"\1[redacted]/[redacted]/",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS_IN_PATHS:
        text = pattern.sub(replacement, text)
    return text


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in super().atoms(resp, req, environ, request_time).items()
        }
