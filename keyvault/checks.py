"""System checks: refuse to run without a usable keyring, or with stored secrets it cannot open.

`manage.py check` (and runserver, migrate) run these; `config.wsgi` runs them at start-up too,
because application servers never run system checks themselves.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, connections

from keyvault.crypto import CryptoError, get_keyring
from keyvault.crypto.loading import keks_configured

TAG = "keyvault"


@checks.register(TAG)
def check_keyring(app_configs=None, **kwargs):
    if not settings.DEBUG and not keks_configured():
        return [
            checks.Error(
                "No key-encryption key is configured.",
                hint="Set KEYVAULT_KEKS or KEYVAULT_KEKS_FILE (`keyvault generate_kek`, or "
                "`python manage.py generate_kek` in a checkout, prints a new KEK line).",
                id="keyvault.E101",
            )
        ]
    try:
        get_keyring()
    except CryptoError as exc:
        return [checks.Error(str(exc), id="keyvault.E102")]
    return []


@checks.register(TAG)
def check_stored_keks_loaded(app_configs=None, **kwargs):
    """Every KEK id that wraps a stored data key must be loaded, or those secrets are lost."""
    from keyvault.models import ProviderKey

    try:
        if ProviderKey._meta.db_table not in connection.introspection.table_names():
            return []  # Not migrated yet: nothing is stored.
        in_use = set(ProviderKey.objects.order_by().values_list("kek_id", flat=True).distinct())
    except DatabaseError:
        return []  # The database's own errors are reported where they occur.
    try:
        keyring = get_keyring()
    except CryptoError:
        return []  # Reported by check_keyring.
    missing = sorted(kek_id for kek_id in in_use if not keyring.has_kek(kek_id))
    if missing:
        return [
            checks.Error(
                f"Stored secrets are wrapped by KEKs that are not loaded: {', '.join(missing)}.",
                hint="Load those KEKs again (as decrypt-only, after the primary) and re-wrap "
                "their keys before retiring them.",
                id="keyvault.E103",
            )
        ]
    return []


@checks.register(TAG)
def check_secret_key(app_configs=None, **kwargs):
    """With DEBUG off, SECRET_KEY must be set and strong: it signs sessions and CSRF tokens."""
    if settings.DEBUG:
        return []
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:
        key = ""
    if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure"):
        return [
            checks.Error(
                "SECRET_KEY is missing or weak (it needs 50+ random characters).",
                hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(50))"',
                id="keyvault.E104",
            )
        ]
    return []


@checks.register(TAG)
def check_client_address_behind_proxy(app_configs=None, **kwargs):
    """Behind a proxy (its protocol header trusted) every request arrives from the proxy's
    address unless the header carrying the client's is named: the sign-in and API throttles
    would then count all clients as one."""
    if (
        getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        and not settings.KEYVAULT_CLIENT_IP_HEADER
    ):
        return [
            checks.Warning(
                "A proxy's X-Forwarded-Proto is trusted but KEYVAULT_CLIENT_IP_HEADER is empty.",
                hint="Set KEYVAULT_CLIENT_IP_HEADER=HTTP_X_FORWARDED_FOR (or the header your "
                "proxy sets), so throttles and audit addresses see each client.",
                id="keyvault.W105",
            )
        ]
    return []


# Not under TAG: it scans every envelope, which a server start should not wait for.
@checks.register("keyvault_envelopes")
def check_legacy_envelopes(app_configs=None, **kwargs):
    """Secrets still in the format written before envelopes were bound to their endpoint, and
    whether this process opens that format at all."""
    from keyvault.envelope_upgrade import legacy_keys
    from keyvault.models import ProviderKey

    try:
        if ProviderKey._meta.db_table not in connection.introspection.table_names():
            return []
        legacy = legacy_keys().count()
    except DatabaseError:
        return []
    opens_legacy = settings.KEYVAULT_OPEN_LEGACY_ENVELOPES
    if legacy and not opens_legacy:
        return [
            checks.Error(
                f"{legacy} stored secrets are in the legacy envelope format, which this process "
                "does not open.",
                hint="Run python manage.py upgrade_envelopes (resumable, safe beside traffic); "
                "until it has finished, set KEYVAULT_OPEN_LEGACY_ENVELOPES=true to serve them.",
                id="keyvault.E106",
            )
        ]
    if legacy:
        return [
            checks.Warning(
                f"{legacy} stored secrets are in the legacy envelope format, not bound to their "
                "endpoint.",
                hint="Run python manage.py upgrade_envelopes, then switch "
                "KEYVAULT_OPEN_LEGACY_ENVELOPES off.",
                id="keyvault.W106",
            )
        ]
    if opens_legacy:
        return [
            checks.Warning(
                "KEYVAULT_OPEN_LEGACY_ENVELOPES is on, but no secret needs it.",
                hint="Switch it off: while it is on, an old envelope restored into a row would "
                "open without its endpoint binding.",
                id="keyvault.W107",
            )
        ]
    return []


@checks.register(TAG, deploy=True)
def check_state_folder_is_chosen(app_configs=None, **kwargs):
    """An installed Keyvault without KEYVAULT_VAR_DIR keeps its state under the folder each
    process was started from: collectstatic run in one folder and the server started in another
    would not find the same static files (every page then fails), nor the same SQLite file."""
    if getattr(settings, "KEYVAULT_VAR_DIR_FROM_CWD", False):
        return [
            checks.Warning(
                f"KEYVAULT_VAR_DIR is not set: state is kept under the current folder "
                f"({settings.VAR_DIR}).",
                hint="Set KEYVAULT_VAR_DIR to one folder (e.g. /var/lib/keyvault) for every "
                "keyvault command and server process.",
                id="keyvault.W108",
            )
        ]
    return []


@checks.register(TAG)
def check_provider_base_urls(app_configs=None, **kwargs):
    """`KEYVAULT_PROVIDER_BASE_URLS` names known providers and http(s) URLs with a host."""
    from urllib.parse import urlsplit

    from keyvault import providers

    problems = []
    for provider_id, url in (getattr(settings, "KEYVAULT_PROVIDER_BASE_URLS", {}) or {}).items():
        parts = urlsplit(str(url))
        if not providers.is_provider(provider_id):
            problems.append(f"{str(provider_id)[:40]!r} is not a provider")
        elif parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            problems.append(f"{provider_id}'s URL is not an http(s) URL naming a host")
    if problems:
        return [
            checks.Error(
                "KEYVAULT_PROVIDER_BASE_URLS: " + "; ".join(problems) + ".",
                hint="Write provider=https://host/path pairs, comma-separated, with provider "
                "ids from the catalog (openai, anthropic, azure_openai, bedrock, vertex, …).",
                id="keyvault.E111",
            )
        ]
    return []


@checks.register(TAG)
def check_event_settings(app_configs=None, **kwargs):
    """The event feed keeps a week at least (a proxy down over a weekend finds its place again),
    and parks no negative number of polls."""
    from keyvault.events import MIN_RETENTION_DAYS

    errors = []
    if settings.KEYVAULT_EVENTS_RETENTION_DAYS < MIN_RETENTION_DAYS:
        errors.append(
            checks.Error(
                f"KEYVAULT_EVENTS_RETENTION_DAYS is {settings.KEYVAULT_EVENTS_RETENTION_DAYS}; "
                f"the event feed keeps events at least {MIN_RETENTION_DAYS} days.",
                hint=f"Set it to {MIN_RETENTION_DAYS} or more.",
                id="keyvault.E109",
            )
        )
    if settings.KEYVAULT_EVENTS_MAX_WAITERS < 0:
        errors.append(
            checks.Error(
                "KEYVAULT_EVENTS_MAX_WAITERS is negative.",
                hint="0 answers every poll at once; a positive number parks that many per process.",
                id="keyvault.E110",
            )
        )
    return errors


def refuse_to_start_on_errors() -> None:
    """Raise `ImproperlyConfigured` if any Keyvault check reports an error."""
    try:
        errors = [
            message
            for message in checks.run_checks(tags=[TAG])
            if message.level >= checks.ERROR and not message.is_silenced()
        ]
    finally:
        # The checks query the database. A server that imports the app once and then forks
        # workers (gunicorn --preload) would otherwise hand this one connection to every
        # worker, and they would read each other's results: another tenant's secrets.
        connections.close_all()
    if errors:
        raise ImproperlyConfigured(
            "Keyvault cannot start: " + "; ".join(f"{e.id}: {e.msg}" for e in errors)
        )
