"""Keyvault settings, read from the environment with django-environ.

Every variable is listed with a one-line explanation in `.env.example`. Development works with
no environment at all: SQLite under `var/` and a generated development KEK. With `DEBUG` off the
production safeguards are on unless switched off one by one.

The same module serves a checkout (manage.py beside config/) and an installed wheel (config/ in
site-packages, run through the `keyvault` command from any folder); the two differ only in the
three places marked below.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config import cli

BASE_DIR = Path(__file__).resolve().parent.parent
CHECKOUT = (BASE_DIR / "manage.py").is_file()
# 1. Templates and static files: the checkout keeps templates/ and static/ at its top; the wheel
# ships them inside this package (pyproject.toml), not as top-level folders of site-packages.
SITE_DIR = BASE_DIR if CHECKOUT else Path(__file__).resolve().parent

env = environ.Env()
# 2. A `.env` file is a development convenience of the checkout. An installed Keyvault reads
# only its environment: a `.env` in site-packages, or in whatever folder a command happens to
# run from, is nobody's configuration and must not switch DEBUG on.
if CHECKOUT:
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Development defaults: `python manage.py …` in a checkout, with DEBUG unset and none of the
# variables only a deployment sets, runs as development (DEBUG on: the development KEK in
# var/dev-kek.txt, a development SECRET_KEY, console email, no HTTPS safeguards), so the README's
# commands work as written. Nothing else gets them: not the installed `keyvault` command (no
# checkout), not an application server (config.wsgi is not manage.py), not a process that names
# a SECRET_KEY, KEK, host or database (a deployment's, which the system checks then hold to
# production rules). See docs/decisions.md, "Development defaults".
PRODUCTION_VARIABLES = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "KEYVAULT_KEKS",
    "KEYVAULT_KEKS_FILE",
    "KEYVAULT_KMS_KEYS",
)
DEVELOPMENT_DEFAULTS = (
    CHECKOUT
    and cli.run_from_checkout
    and "DEBUG" not in os.environ
    and not any(os.environ.get(name) for name in PRODUCTION_VARIABLES)
)
DEBUG = env.bool("DEBUG", default=DEVELOPMENT_DEFAULTS)

# 3. Writable state (the default SQLite database, collected static files, the development KEK):
# KEYVAULT_VAR_DIR, else var/ beside manage.py in a checkout, else var/ in the folder the
# installed command runs from (`check --deploy` warns about that last case: keyvault.W108).
_var_dir = env.str("KEYVAULT_VAR_DIR", default="")
KEYVAULT_VAR_DIR_FROM_CWD = not _var_dir and not CHECKOUT
VAR_DIR = (
    Path(_var_dir).expanduser() if _var_dir else (BASE_DIR if CHECKOUT else Path.cwd()) / "var"
).absolute()
# The state folder is created on load, as the checkout's var/ always was (SQLite creates its
# file but not the folder), except where it would only litter: under whatever folder an
# installed command happens to run from while the database lives elsewhere.
if not (KEYVAULT_VAR_DIR_FROM_CWD and env.str("DATABASE_URL", default="")):
    try:
        # Only its owner may list it: it holds the database and the development KEK.
        VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        (VAR_DIR / "staticfiles").mkdir(exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"Cannot create the folder for Keyvault's state {VAR_DIR} ({exc.strerror}); "
            "set KEYVAULT_VAR_DIR to a writable folder."
        ) from None

# A development secret is only acceptable while DEBUG is on; production must set its own.
SECRET_KEY = env.str("SECRET_KEY", default="") or (
    "django-insecure-development-only-secret-key-do-not-use-in-production" if DEBUG else ""
)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Lowest layer first (docs/architecture.md): each app imports only those listed before it.
    "audit",
    "accounts",
    "organizations",
    "keyvault",
]

MIDDLEWARE = [
    # /healthz for load balancers, before the host check and the HTTPS redirect (config/health.py).
    "config.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, the signed-in user and messages for the pages only: requests under /api/ skip
    # them (config/middleware.py). CSRF stays by its name, which Django's deploy check looks
    # for; the API's views are exempt from it.
    "config.middleware.PagesSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.PagesAuthenticationMiddleware",
    "config.middleware.PagesMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.PrivatePagesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SITE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "organizations.web.context.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'keyvault.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when their transaction starts and wait for it, instead of failing
    # with "database is locked" when two of them meet halfway.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
# A pool of PostgreSQL connections per process, shared by its threads: DATABASE_POOL_MAX_SIZE
# connections at most (0: no pool; each thread keeps its own connection for CONN_MAX_AGE).
# The production gunicorn settings turn it on (config/gunicorn.conf.py): with a hundred threads
# per worker, a connection per thread could exceed the server's max_connections.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=0)
if DATABASE_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        # A request that finds every connection busy waits this long, then fails.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
    # Pooled connections go back to the pool after each request; Django refuses both at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
# The secret retrievals' one statement is prepared once per database connection (PostgreSQL).
# Off for a connection pooler that does not keep prepared statements (PgBouncer before 1.21 in
# transaction mode, or with max_prepared_statements = 0).
KEYVAULT_DB_PREPARED_STATEMENTS = env.bool("KEYVAULT_DB_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [SITE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "accounts:sign_in"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:sign_in"

# Email (invitations, password resets): printed to the console in development.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
# Seconds to wait for the mail server before giving up (an invitation is then withdrawn).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Keyvault <keyvault@localhost>")

# --- Production safeguards -------------------------------------------------------------------
# On by default whenever DEBUG is off; each can be switched off to run behind a TLS-terminating
# proxy (which then sets X-Forwarded-Proto) or on loopback.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts, styles, images and fonts from this app's own origin only: no inline code, no CDN.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

# --- Keyvault --------------------------------------------------------------------------------
# Key-encryption keys: `id:base64key[,id:base64key…]`, the first is primary (encrypts), the
# others only decrypt. Or a file with one `id:base64key` per line.
KEYVAULT_KEKS = env.str("KEYVAULT_KEKS", default="")
KEYVAULT_KEKS_FILE = env.str("KEYVAULT_KEKS_FILE", default="")
# AWS KMS keys as KEKs: `id:key-arn[,id:key-arn…]` (needs the `kms` extra, boto3). Can be loaded
# beside local KEKs to migrate; the primary is then KEYVAULT_PRIMARY_KEK, else the first KMS key.
KEYVAULT_KMS_KEYS = env.str("KEYVAULT_KMS_KEYS", default="")
KEYVAULT_KMS_REGION = env.str("KEYVAULT_KMS_REGION", default="")
# Unwrapped data keys are cached in process memory this long, this many at most (0 disables).
KEYVAULT_KMS_CACHE_SECONDS = env.float("KEYVAULT_KMS_CACHE_SECONDS", default=300.0)
KEYVAULT_KMS_CACHE_SIZE = env.int("KEYVAULT_KMS_CACHE_SIZE", default=10_000)
# Which loaded KEK encrypts new data keys, when several keyrings are loaded.
KEYVAULT_PRIMARY_KEK = env.str("KEYVAULT_PRIMARY_KEK", default="")
# Where the development KEK is generated when DEBUG is on and no KEK is configured.
KEYVAULT_DEV_KEK_FILE = VAR_DIR / "dev-kek.txt"
# Where a key's secret may be sent (keyvault/endpoints.py): hosts added to a setting's own list
# (Azure's endpoint hosts), and whether private, loopback and link-local addresses are allowed
# (self-hosted servers on an internal network); the same switch governs Keyvault's own calls.
KEYVAULT_ALLOWED_ENDPOINT_HOSTS = env.list("KEYVAULT_ALLOWED_ENDPOINT_HOSTS", default=[])
KEYVAULT_ALLOW_PRIVATE_ENDPOINTS = env.bool("KEYVAULT_ALLOW_PRIVATE_ENDPOINTS", default=False)
# Where connection tests call each provider instead of its public endpoint (and instead of a
# key's own endpoint): "openai=https://…,anthropic=https://…". An operator's setting: http is
# accepted too, the address rules above still apply.
KEYVAULT_PROVIDER_BASE_URLS = env.dict("KEYVAULT_PROVIDER_BASE_URLS", default={})
# Key health: a key not used for this many days is "stale"; health reports per key and minute
# (never fewer than 60).
KEYVAULT_STALE_DAYS = env.int("KEYVAULT_STALE_DAYS", default=90)
KEYVAULT_REPORTS_PER_KEY_PER_MINUTE = env.int("KEYVAULT_REPORTS_PER_KEY_PER_MINUTE", default=600)
# Open envelopes of the legacy format 1 (not bound to their endpoint): on only while
# `upgrade_envelopes` brings them to the current format; off, an old envelope put back from a
# backup cannot undo the binding.
KEYVAULT_OPEN_LEGACY_ENVELOPES = env.bool("KEYVAULT_OPEN_LEGACY_ENVELOPES", default=False)

# Days an emailed invitation to join an organization stays valid.
KEYVAULT_INVITATION_DAYS = env.int("KEYVAULT_INVITATION_DAYS", default=7)

# Shared state (throttle counters) lives here so several app instances behave as one:
# local memory by default, Redis in production (redis://127.0.0.1:6379/0).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# Team pages: failed sign-ins allowed per window, per (address, account) and per address,
# before the sign-in form refuses to try (the admin's sign-in counts too).
KEYVAULT_SIGNIN_WINDOW_SECONDS = env.int("KEYVAULT_SIGNIN_WINDOW_SECONDS", default=900)
KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT = env.int("KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT", default=5)
KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS = env.int("KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS", default=50)

# Sign-up does not verify addresses, so what one account can make Keyvault do is limited (0: no
# limit): invitations per day per organization and per inviter, organizations per day per
# person, and sign-ups per hour per client address.
KEYVAULT_INVITATIONS_PER_DAY = env.int("KEYVAULT_INVITATIONS_PER_DAY", default=50)
KEYVAULT_ORGANIZATIONS_PER_DAY = env.int("KEYVAULT_ORGANIZATIONS_PER_DAY", default=10)
KEYVAULT_SIGNUPS_PER_HOUR = env.int("KEYVAULT_SIGNUPS_PER_HOUR", default=20)

# Proxy API.
# Requests per minute per token (0 turns the throttle off).
KEYVAULT_API_TOKEN_RATE_PER_MINUTE = env.int("KEYVAULT_API_TOKEN_RATE_PER_MINUTE", default=60_000)
# Failed authentications per minute per client address before answering 429.
KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = env.int("KEYVAULT_API_AUTH_FAILURES_PER_MINUTE", default=30)
# A request.META key (e.g. HTTP_X_FORWARDED_FOR) that a trusted proxy in front of the app sets
# to the client's address; empty means REMOTE_ADDR. Used for throttling and audit addresses.
KEYVAULT_CLIENT_IP_HEADER = env.str("KEYVAULT_CLIENT_IP_HEADER", default="")
# Usage counters are flushed to the database this often (seconds), and at clean shutdown.
KEYVAULT_USAGE_FLUSH_SECONDS = env.float("KEYVAULT_USAGE_FLUSH_SECONDS", default=5.0)
KEYVAULT_USAGE_MAX_PENDING = env.int("KEYVAULT_USAGE_MAX_PENDING", default=10_000)
# The event feed keeps events this many days (at least 7; `prune_events` deletes older ones).
KEYVAULT_EVENTS_RETENTION_DAYS = env.int("KEYVAULT_EVENTS_RETENTION_DAYS", default=7)
# Long polls of the event feed (`wait`) parked at once per process; each holds a worker thread.
# Beyond it a poll is answered at once. Keep it below the worker's threads (docs/operations.md).
KEYVAULT_EVENTS_MAX_WAITERS = env.int("KEYVAULT_EVENTS_MAX_WAITERS", default=100)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["keyvault.api.authentication.ProxyTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["keyvault.api.permissions.TokenMayTakeActions"],
    "DEFAULT_THROTTLE_CLASSES": ["keyvault.api.throttling.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "keyvault.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Keyvault proxy API",
    "DESCRIPTION": "Provider keys for LLM proxies. Authenticate with "
    "`Authorization: Bearer kvp_…`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["keyvault.api.schema.leave_out_alternate_spellings"],
}

# Error reports mask what `sensitive_variables` and `sensitive_post_parameters` mark even with
# DEBUG on, and tokens in request URLs (see config/error_reports.py).
DEFAULT_EXCEPTION_REPORTER = "config.error_reports.KeyvaultExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.KeyvaultExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_tokens": {"()": "config.error_reports.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # HTTP clients log request and response bodies at DEBUG; for KMS those hold data keys.
        # They never log below WARNING, whatever LOG_LEVEL says.
        **{name: {"level": "WARNING"} for name in ("botocore", "boto3", "urllib3", "s3transfer")},
        # "Not Found: /invitations/kvi_…/": Django names the path of every 4xx and 5xx.
        "django.request": {"filters": ["redact_tokens"]},
        "django.server": {"filters": ["redact_tokens"]},
    },
}
