"""Test settings: the real settings with a fast hasher and fixed, test-only KEKs."""

from config.settings import *  # noqa: F403

SECRET_KEY = "test-only-secret-key-that-signs-nothing-outside-the-test-suite"
# Schemathesis calls the app in-process as "localhost".
ALLOWED_HOSTS = ["testserver", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Two KEKs so that decrypt-only keys are exercised; these keys protect nothing real.
KEYVAULT_KEKS = (
    "test-primary:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,"
    "test-old:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="
)
KEYVAULT_KEKS_FILE = ""
SECURE_SSL_REDIRECT = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests flush usage counters explicitly instead of from a background thread.
KEYVAULT_USAGE_FLUSH_SECONDS = None
KEYVAULT_KMS_KEYS = ""
KEYVAULT_PRIMARY_KEK = ""
# Connection tests never reach a real provider: every provider is pointed at the discard port
# of the loopback address, which the outbound rules refuse before connecting. Tests of the
# probes point one provider at their local fake instead.
# Every provider of the catalog, so that a provider added later is covered too.
from keyvault.providers import PROVIDERS  # noqa: E402

KEYVAULT_PROVIDER_BASE_URLS = dict.fromkeys(
    (provider.id for provider in PROVIDERS), "http://127.0.0.1:9"
)
