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
