"""The access log masks the credentials that invitation and password-reset links carry."""

import datetime
from types import SimpleNamespace

from gunicorn.config import Config

from config.gunicorn_logging import RedactingLogger, redact

INVITATION = "kvi_" + "A1b2-_" * 7 + "z"


def test_invitation_tokens_are_masked():
    assert redact(f"GET /invitations/{INVITATION}/ HTTP/1.1") == (
        "GET /invitations/kvi_[redacted]/ HTTP/1.1"
    )


def test_password_reset_links_are_masked_but_not_the_page_they_lead_to():
    assert redact("/accounts/password/reset/MQ/cz8vm1-0123456789abcdef/") == (
        "/accounts/password/reset/[redacted]/[redacted]/"
    )
    assert redact("/accounts/password/reset/MQ/set-password/") == (
        "/accounts/password/reset/MQ/set-password/"
    )
    assert redact("/accounts/password/reset/sent/") == "/accounts/password/reset/sent/"
    assert redact("/accounts/password/reset/key/2-cz8vm1-0123456789abcdef/?next=/") == (
        "/accounts/password/reset/key/[redacted]/?next=/"
    )
    assert redact("/accounts/password/reset/key/2-set-password/") == (
        "/accounts/password/reset/key/2-set-password/"
    )


def test_the_access_log_line_carries_no_token():
    logger = RedactingLogger(Config())
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/invitations/{INVITATION}/",
        "PATH_INFO": f"/invitations/{INVITATION}/",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.1",
        "HTTP_REFERER": f"https://mail.example/?u=/invitations/{INVITATION}/",
    }
    response = SimpleNamespace(status="302 Found", sent=0, headers=[])
    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(0))
    assert INVITATION not in repr(atoms)
    assert atoms["r"] == "GET /invitations/kvi_[redacted]/ HTTP/1.1"
    assert atoms["s"] == "302"
