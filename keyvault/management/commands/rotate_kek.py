import os

from django.core.management.base import CommandError

from core.management import ProvisioningCommand, database_error_message
from keyvault import services
from keyvault.crypto import CryptoError, get_keyring
from keyvault.management.jobs import run_envelope_job
from keyvault.rotation import pending_by_kek

# Below this many envelopes, forking workers costs more than it saves.
AUTO_WORKERS_FROM = 20_000


def _default_workers(total: int) -> int:
    if total < AUTO_WORKERS_FROM:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class Command(ProvisioningCommand):
    help = (
        "Re-wrap every data key that is not under the primary KEK, kept secret versions "
        "included (the data ciphertext is not touched); counts are of secrets, current and "
        "kept. Resumable: interrupt it at any point and run it again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, dest="batch_size")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only report what would be re-wrapped."
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="Processes that re-wrap beside the one that reads and writes (default: one "
            f"per CPU for {AUTO_WORKERS_FROM:,} envelopes or more, else none).",
        )

    def handle(self, *, batch_size, dry_run, workers, **options):
        if not 1 <= batch_size <= 50_000:
            raise CommandError("--batch-size must be between 1 and 50000.")
        if workers is not None and not 1 <= workers <= 64:
            raise CommandError("--workers must be between 1 and 64.")
        try:
            keyring = get_keyring()
        except CryptoError as exc:
            raise CommandError(str(exc)) from None
        pending = pending_by_kek(keyring)
        total = sum(pending.values())
        self.stdout.write(f"Primary KEK: {keyring.primary_kek_id}")
        for kek_id, count in sorted(pending.items()):
            loaded = "" if keyring.has_kek(kek_id) else "  (not loaded: cannot be re-wrapped)"
            self.stdout.write(f"  {count} keys under {kek_id}{loaded}")
        if dry_run or not total:
            self.stdout.write(
                f"{total} keys would be re-wrapped (dry run)." if dry_run else "Nothing to do."
            )
            return
        job, progress = run_envelope_job(
            services.kek_rotate,
            command="rotate_kek",
            total=total,
            label="re-wrap",
            keyring=keyring,
            batch_size=batch_size,
            workers=workers or _default_workers(total),
        )
        rewrapped, failed = job.written, job.failed
        self.stdout.write(
            f"Re-wrapped {rewrapped} keys under {keyring.primary_kek_id} in "
            f"{progress.elapsed:.1f}s ({progress.rate:,.0f} rows/s); "
            f"{job.changed_concurrently} changed by users meanwhile (already under the primary)."
        )
        if job.database_error is not None:
            raise CommandError(
                f"Stopped after {rewrapped} keys by a database error "
                f"({database_error_message(job.database_error)}); run rotate_kek again to finish."
            )
        if job.interrupted:
            raise CommandError(
                f"Interrupted after {rewrapped} keys; run rotate_kek again to finish."
            )
        if failed:
            raise CommandError(
                f"{len(failed)} keys could not be opened and were left as they are: "
                + ", ".join(str(pk) for pk in failed[:20])
                + (" …" if len(failed) > 20 else "")
                + " (see keyvault_status --verify)."
            )
