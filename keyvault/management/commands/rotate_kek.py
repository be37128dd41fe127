import signal
import threading
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError

import audit
from audit import AuditAction
from core.management import ProvisioningCommand, database_error_message
from keyvault.crypto import CryptoError, get_keyring
from keyvault.management.progress import Progress
from keyvault.rotation import pending_by_kek, rewrap_all
from organizations.access import Access


@contextmanager
def _interrupt_on_sigterm():
    # A stop from a process manager ends the job like Ctrl-C: the batch in flight rolls back,
    # everything committed stays, and a rerun continues where it stopped. The previous handler
    # is put back afterwards (call_command runs inside longer-lived processes), and signal
    # handlers can only be set from the main thread, so elsewhere the job runs without one.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        # None: the previous handler was not installed from Python; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


class Command(ProvisioningCommand):
    help = (
        "Re-wrap every data key that is not under the primary KEK (the data ciphertext is not "
        "touched). Resumable: interrupt it at any point and run it again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, dest="batch_size")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only report what would be re-wrapped."
        )

    def handle(self, *, batch_size, dry_run, **options):
        if not 1 <= batch_size <= 50_000:
            raise CommandError("--batch-size must be between 1 and 50000.")
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
        progress = Progress(total, label="re-wrap")
        rewrapped = skipped = 0
        failed: list = []
        interrupted = False
        database_error = None
        try:
            with _interrupt_on_sigterm():
                for batch in rewrap_all(keyring, batch_size=batch_size):
                    rewrapped += batch.rewrapped
                    skipped += batch.skipped_concurrent
                    failed += batch.failed
                    progress.advance(batch.rewrapped + batch.skipped_concurrent + len(batch.failed))
        except KeyboardInterrupt:
            interrupted = True
        except DatabaseError as exc:
            # The batch in flight rolled back; the committed ones stay, as after an interruption.
            database_error = exc
        finally:
            progress.finish()
        try:
            audit.record(
                action=AuditAction.KEK_ROTATION,
                actor=Access.operator("manage.py rotate_kek"),
                metadata={
                    "primary": keyring.primary_kek_id,
                    "rewrapped": rewrapped,
                    "changed_concurrently": skipped,
                    "failed": len(failed),
                    "interrupted": interrupted or database_error is not None,
                },
            )
        except DatabaseError:
            if database_error is None:
                raise
            # The database that stopped the job may refuse this too; the error below says
            # what happened, and the envelopes themselves show how far the job got.
        self.stdout.write(
            f"Re-wrapped {rewrapped} keys under {keyring.primary_kek_id} in "
            f"{progress.elapsed:.1f}s ({progress.rate:,.0f} rows/s); {skipped} changed by users "
            "meanwhile (already under the primary)."
        )
        if database_error is not None:
            raise CommandError(
                f"Stopped after {rewrapped} keys by a database error "
                f"({database_error_message(database_error)}); run rotate_kek again to finish."
            )
        if interrupted:
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
