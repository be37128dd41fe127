"""Error reports (Django's debug page, error emails) and request logs that keep secrets.

Functions that hold a provider secret, a proxy or invitation token, a data key, a KEK or a
password in a local are marked with `sensitive_variables`, and views that receive one in a
form with `sensitive_post_parameters`. Django honours those marks only with `DEBUG` off; here
they hold whatever `DEBUG` says, because a development or staging database holds real keys and
a debug page is shown to whoever caused the error.

A token in a URL (an invitation link, a password-reset link) is part of the request itself:
the report's request URL, its `PATH_INFO` and the URL arguments in Django's own frames, and
the line Django logs for an error response. No mark reaches those, so the reports and that
log line are passed through the same masking as gunicorn's access log, which also covers
proxy tokens should one end up in a report's text.
"""

import logging
import re

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from config.gunicorn_logging import redact as _redact_paths

_PROXY_TOKEN = re.compile(r"kvp_[A-Za-z0-9_-]{43}")


def redact(text: str) -> str:
    return _PROXY_TOKEN.sub("kvp_[redacted]", _redact_paths(text))


class KeyvaultExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request):
        return True


class KeyvaultExceptionReporter(ExceptionReporter):
    def get_traceback_html(self):
        return redact(super().get_traceback_html())

    def get_traceback_text(self):
        return redact(super().get_traceback_text())


class RedactingFilter(logging.Filter):
    """Masks tokens in a log record's message ("Internal Server Error: /invitations/kvi_…/")."""

    def filter(self, record):
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
