"""WSGI entry point (gunicorn config.wsgi).

Application servers do not run Django's system checks, so Keyvault's own checks run here: a
process without a usable key-encryption key refuses to start instead of serving errors.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from keyvault.checks import refuse_to_start_on_errors  # noqa: E402

refuse_to_start_on_errors()
