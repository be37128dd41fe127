from django.core.management.base import CommandError
from django.db import DatabaseError

from core.management import ProvisioningCommand, database_error_message
from keyvault import services
from keyvault.crypto import CryptoError, get_keyring
from keyvault.envelope_upgrade import legacy_keys
from keyvault.management.jobs import run_envelope_job


def _ids(ids: list) -> str:
    return ", ".join(str(pk) for pk in ids[:20]) + (" …" if len(ids) > 20 else "")


class Command(ProvisioningCommand):
    help = (
        "Seal every secret still in the legacy envelope format (not bound to its endpoint) "
        "again in the current format, under a fresh data key and the primary KEK. Resumable: "
        "interrupt it at any point and run it again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, dest="batch_size")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only report how many would be re-sealed."
        )

    def handle(self, *, batch_size, dry_run, **options):
        if not 1 <= batch_size <= 50_000:
            raise CommandError("--batch-size must be between 1 and 50000.")
        try:
            keyring = get_keyring()
            total = legacy_keys().count()
        except CryptoError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"The database refused: {database_error_message(exc)}") from None
        if dry_run or not total:
            self.stdout.write(
                f"{total} keys would be re-sealed (dry run)." if dry_run else "Nothing to do."
            )
            return
        job, progress = run_envelope_job(
            services.envelopes_upgrade,
            command="upgrade_envelopes",
            total=total,
            label="re-seal",
            keyring=keyring,
            batch_size=batch_size,
        )
        resealed, skipped = job.written, job.changed_concurrently
        failed, refused = job.failed, job.refused_endpoints
        if job.database_error is not None:
            raise CommandError(
                f"The database refused after {resealed} keys "
                f"({database_error_message(job.database_error)}); "
                "run upgrade_envelopes again to continue."
            )
        self.stdout.write(
            f"Re-sealed {resealed} keys in the current format in {progress.elapsed:.1f}s; "
            f"{skipped} changed by users meanwhile (already in the current format)."
        )
        if refused:
            self.stdout.write(
                f"{len(refused)} keys have an endpoint the current rules refuse; check them "
                f"(changing it needs the secret): {_ids(refused)}"
            )
        if job.interrupted:
            raise CommandError(
                f"Interrupted after {resealed} keys; run upgrade_envelopes again to finish."
            )
        if failed:
            raise CommandError(
                f"{len(failed)} keys could not be opened and were left as they are: "
                f"{_ids(failed)} (see keyvault_status --verify)."
            )
