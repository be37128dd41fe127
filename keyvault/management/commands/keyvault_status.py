from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone

from core.management import ProvisioningCommand
from keyvault import providers
from keyvault.crypto import CryptoError, get_keyring
from keyvault.envelope_upgrade import legacy_keys
from keyvault.management.progress import Progress
from keyvault.models import (
    SECRET_CONTEXT_FIELDS,
    VERSION_CONTEXT_FIELDS,
    ProviderKey,
    SecretVersion,
)
from keyvault.rotation import envelopes_per_kek
from keyvault.sealing import open_secret

UNUSED_DAYS = 90


class Command(ProvisioningCommand):
    help = (
        "Report stored secrets per KEK, which KEKs are loaded and still needed, unused and "
        "disabled keys; with --verify, open every secret. Exits non-zero if any is unreadable."
    )

    # It must report even (especially) when a needed KEK is missing, which the system checks
    # would refuse to run with.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--verify", action="store_true", help="Open every secret (lists failures by id)."
        )

    def handle(self, *, verify, **options):
        try:
            keyring = get_keyring()
        except CryptoError as exc:
            raise CommandError(str(exc)) from None
        # Current secrets and kept versions: a KEK is needed while either names it.
        per_kek = envelopes_per_kek()
        out = self.stdout.write
        out("KEKs loaded (first is primary): " + ", ".join(keyring.kek_ids))
        out("Stored secrets per KEK:")
        unreadable = 0
        for kek_id, count in sorted(per_kek.items()):
            if keyring.has_kek(kek_id):
                state = "primary" if kek_id == keyring.primary_kek_id else "loaded, still needed"
            else:
                state = "NOT LOADED: these secrets cannot be opened"
                unreadable += count
            out(f"  {kek_id:<40} {count:>8}  {state}")
        retirable = [k for k in keyring.kek_ids[1:] if not per_kek.get(k)]
        out(
            "KEKs that can be retired (loaded, nothing under them): "
            + (", ".join(retirable) or "none")
        )
        still_needed = [k for k in keyring.kek_ids[1:] if per_kek.get(k)]
        if still_needed:
            out("Run rotate_kek before retiring: " + ", ".join(still_needed))
        legacy = legacy_keys().count()
        out(f"Secrets in the legacy format, not bound to their endpoint: {legacy}")
        if legacy:
            out("Run upgrade_envelopes to bind them.")
        cutoff = timezone.now() - timedelta(days=UNUSED_DAYS)
        unused = ProviderKey.objects.filter(
            Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff)
        )
        out(f"Keys unused for {UNUSED_DAYS} days: {unused.count()}")
        for key in unused.select_related("organization").order_by("organization__slug", "name")[
            :50
        ]:
            out(f"  {key.pk}  {key.organization.slug}/{key.provider}/{key.name}")
        disabled = ProviderKey.objects.filter(enabled=False)
        out(f"Disabled keys: {disabled.count()}")
        for key in disabled.select_related("organization").order_by("organization__slug", "name")[
            :50
        ]:
            out(f"  {key.pk}  {key.organization.slug}/{key.provider}/{key.name}")
        failures, refused = self._verify(keyring) if verify else ([], [])
        if failures:
            out(f"Secrets that fail to open: {len(failures)}")
            for pk, reason in failures:
                out(f"  {pk}  {reason}")
        if refused:
            # Stored before today's rules: they open, but a proxy may mishandle them. Rotating
            # the key applies the rules.
            out(f"Secrets with characters refused today (rotate them): {len(refused)}")
            for pk in refused[:50]:
                out(f"  {pk}")
        if unreadable or failures:
            raise CommandError(f"{max(unreadable, len(failures))} stored secrets cannot be opened.")

    def _verify(self, keyring) -> tuple[list[tuple], list]:
        """`(ids that fail to open with the reason, ids whose secret today's rules refuse)`."""
        keys = ProviderKey.objects.only(*SECRET_CONTEXT_FIELDS).order_by("id")
        versions = SecretVersion.objects.only(*VERSION_CONTEXT_FIELDS).order_by("id")
        progress = Progress(keys.count() + versions.count(), label="verify")
        failures, refused = [], []
        for version in versions.iterator(chunk_size=2000):
            try:
                open_secret(version, keyring)
            except CryptoError as exc:
                failures.append((f"{version.key_id} version {version.number}", type(exc).__name__))
            progress.advance(1)
        for key in keys.iterator(chunk_size=2000):
            try:
                secret = open_secret(key, keyring)
            except CryptoError as exc:
                failures.append((key.pk, type(exc).__name__))
            except ValidationError:  # a provider no longer in the catalog
                failures.append((key.pk, f"unknown provider {key.provider[:40]!r}"))
            else:
                if providers.secret_control_problem(key.provider_obj, secret):
                    refused.append(key.pk)
            progress.advance(1)
        progress.finish()
        self.stdout.write(f"Verified {progress.done} secrets.")
        return failures, refused
