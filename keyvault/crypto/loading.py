"""Build the process's keyring from settings, once.

`KEYVAULT_KEKS` (`id:base64key[,id:base64key…]`) or `KEYVAULT_KEKS_FILE` (one `id:base64key`
per line, `#` comments allowed); the first KEK is primary. With `DEBUG` on and neither set, a
development KEK is generated once under `var/` with a warning.
"""

import base64
import binascii
import logging
import os
import secrets
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

from keyvault.crypto.errors import KeyringConfigurationError
from keyvault.crypto.keyring import (
    KEK_ID_PATTERN,
    KEY_BYTES,
    Keyring,
    LocalKeyring,
    validate_kek_id,
)

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_keyring: Keyring | None = None


@sensitive_variables()
def new_kek_line(kek_id: str | None = None) -> str:
    """A fresh `id:base64key` line for a new 256-bit KEK."""
    kek_id = validate_kek_id(kek_id or f"kek-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}")
    return f"{kek_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


@sensitive_variables()
def parse_kek_entries(entries: list[str], *, source: str) -> dict[str, bytes]:
    """Parse `id:base64key` entries; errors name the source and the KEK id, never the key."""
    keks: dict[str, bytes] = {}
    for position, entry in enumerate(entries, start=1):
        kek_id, sep, encoded = entry.strip().partition(":")
        if not sep:
            raise KeyringConfigurationError(
                f"{source}: entry {position} is not of the form id:base64key."
            )
        if not KEK_ID_PATTERN.fullmatch(kek_id):
            # The id is not echoed: a malformed "id" is often key material pasted in its place.
            raise KeyringConfigurationError(
                f"{source}: entry {position} has an invalid KEK id; an id is 1-64 characters "
                "of letters, digits, '-' and '_'."
            )
        if kek_id in keks:
            raise KeyringConfigurationError(f"{source}: KEK id {kek_id!r} appears twice.")
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyringConfigurationError(
                f"{source}: KEK {kek_id!r} is not valid base64."
            ) from None
        if len(material) != KEY_BYTES:
            raise KeyringConfigurationError(
                f"{source}: KEK {kek_id!r} must decode to {KEY_BYTES} bytes."
            )
        keks[kek_id] = material
    if not keks:
        raise KeyringConfigurationError(f"{source} lists no KEK.")
    return keks


@sensitive_variables()
def _read_kek_file(path: Path, *, source: str) -> dict[str, bytes]:
    try:
        # utf-8-sig: some editors start a file with a byte-order mark, which would otherwise
        # become part of the first KEK id.
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise KeyringConfigurationError(f"{source}: cannot read {path} ({exc.strerror}).") from None
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return parse_kek_entries(lines, source=source)


def _ensure_development_kek(path: Path) -> None:
    if path.exists():
        return
    # The KEK is written whole to a private temporary file (mkstemp: mode 0600) and published
    # with link(), which fails if the name exists. Two processes starting at once then never
    # both create a KEK (one would be lost with everything sealed under it), and no process ever
    # reads a half-written file. Creating the file in place and writing it afterwards left a
    # window in which a concurrent start read an empty file and refused to run.
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("# Development KEK, generated because DEBUG is on and none is set.\n")
                handle.write(new_kek_line(f"dev-{secrets.token_hex(4)}") + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
                created = True
            except FileExistsError:
                pass  # Another process published its KEK first; use that one.
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise KeyringConfigurationError(
            f"Cannot create the development KEK file {path} ({exc.strerror})."
        ) from None
    if created:
        logger.warning(
            "Generated a development KEK in %s. Never use it in production: set KEYVAULT_KEKS "
            "or KEYVAULT_KEKS_FILE instead.",
            path,
        )


def keks_configured() -> bool:
    return bool(
        settings.KEYVAULT_KEKS
        or settings.KEYVAULT_KEKS_FILE
        or getattr(settings, "KEYVAULT_KMS_KEYS", "")
    )


@sensitive_variables()
def _local_keyring() -> Keyring | None:
    if settings.KEYVAULT_KEKS and settings.KEYVAULT_KEKS_FILE:
        raise KeyringConfigurationError("Set KEYVAULT_KEKS or KEYVAULT_KEKS_FILE, not both.")
    if settings.KEYVAULT_KEKS:
        entries = [entry for entry in settings.KEYVAULT_KEKS.split(",") if entry.strip()]
        return LocalKeyring(parse_kek_entries(entries, source="KEYVAULT_KEKS"))
    if settings.KEYVAULT_KEKS_FILE:
        return LocalKeyring(
            _read_kek_file(Path(settings.KEYVAULT_KEKS_FILE), source="KEYVAULT_KEKS_FILE")
        )
    return None


def parse_kms_keys(text: str) -> dict[str, str]:
    """`id:key-arn[,id:key-arn…]` (an ARN holds colons; the id is what precedes the first)."""
    keys: dict[str, str] = {}
    for position, entry in enumerate((e.strip() for e in text.split(",") if e.strip()), 1):
        kek_id, sep, key_arn = entry.partition(":")
        if not sep or not key_arn.strip():
            raise KeyringConfigurationError(
                f"KEYVAULT_KMS_KEYS: entry {position} is not of the form id:key-arn."
            )
        validate_kek_id(kek_id)
        key_arn = key_arn.strip()
        # A key reference is an ARN or a bare key id. Anything else with a colon is
        # an ARN whose id was left out ("arn:aws:kms:…" read as id "arn"), which would only
        # fail later, at the first KMS call.
        if ":" in key_arn and not key_arn.startswith("arn:"):
            raise KeyringConfigurationError(
                f"KEYVAULT_KMS_KEYS: entry {position} is not of the form id:key-arn (is the "
                "id missing?)."
            )
        if key_arn.startswith("alias/") or ":alias/" in key_arn:
            # An alias can be re-pointed to another key (AWS's usual rotation), after which
            # every data key wrapped under the old key would fail to open.
            raise KeyringConfigurationError(
                f"KEYVAULT_KMS_KEYS: entry {position} names an alias; use the key's ARN or id."
            )
        if kek_id in keys:
            raise KeyringConfigurationError(f"KEYVAULT_KMS_KEYS: KEK id {kek_id!r} appears twice.")
        keys[kek_id] = key_arn
    return keys


def _kms_keyring() -> Keyring | None:
    text = getattr(settings, "KEYVAULT_KMS_KEYS", "")
    if not text:
        return None
    from keyvault.crypto.kms import AwsKmsKeyring

    return AwsKmsKeyring(
        parse_kms_keys(text),
        region=getattr(settings, "KEYVAULT_KMS_REGION", "") or None,
        cache_ttl_seconds=getattr(settings, "KEYVAULT_KMS_CACHE_SECONDS", 300),
        cache_max_entries=getattr(settings, "KEYVAULT_KMS_CACHE_SIZE", 10_000),
    )


def build_keyring() -> Keyring:
    """A keyring from the current settings; `KeyringConfigurationError` if there is none.

    Local KEKs and KMS keys can be loaded together (to move from one to the other); the primary
    is `KEYVAULT_PRIMARY_KEK` if set, else the first KMS key, else the first local KEK.
    """
    keyrings = [k for k in (_kms_keyring(), _local_keyring()) if k is not None]
    if not keyrings:
        if not settings.DEBUG:
            raise KeyringConfigurationError(
                "No key-encryption key is configured: set KEYVAULT_KEKS, KEYVAULT_KEKS_FILE "
                "or KEYVAULT_KMS_KEYS."
            )
        path = Path(settings.KEYVAULT_DEV_KEK_FILE)
        _ensure_development_kek(path)
        keyrings = [LocalKeyring(_read_kek_file(path, source=str(path)))]
    primary = getattr(settings, "KEYVAULT_PRIMARY_KEK", "")
    if len(keyrings) == 1 and not primary:
        return keyrings[0]
    from keyvault.crypto.kms import CompositeKeyring

    return CompositeKeyring(keyrings, primary_kek_id=primary or keyrings[0].primary_kek_id)


def get_keyring() -> Keyring:
    """The process-wide keyring, built on first use."""
    global _keyring
    if _keyring is None:
        with _lock:
            if _keyring is None:
                _keyring = build_keyring()
    return _keyring


def reset_keyring() -> None:
    global _keyring
    with _lock:
        _keyring = None


@receiver(setting_changed)
def _reset_on_setting_change(*, setting, **kwargs):
    if setting.startswith("KEYVAULT_") or setting == "DEBUG":
        reset_keyring()
