"""The `keyvault` command: Django's management commands with Keyvault's settings.

`keyvault migrate`, `keyvault check --deploy`, `keyvault create_token …` are, for an installed
Keyvault and from any folder, what `python manage.py …` is in a checkout (manage.py runs this
same function).
"""

import os
import sys

# Set by manage.py alone (the checkout's entry point, which the wheel does not ship): the
# settings give development defaults only to a command started this way (config/settings.py).
run_from_checkout = False


def main(argv: list[str] | None = None, *, checkout: bool = False) -> None:
    global run_from_checkout
    run_from_checkout = checkout
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (loads the settings module)
    except ImproperlyConfigured as exc:
        # A setting the operator got wrong (an unwritable KEYVAULT_VAR_DIR, a malformed
        # DATABASE_URL) is one line on stderr and a non-zero exit, not a traceback.
        sys.exit(f"{os.path.basename(sys.argv[0])}: {exc}")
    execute_from_command_line(sys.argv if argv is None else argv)
