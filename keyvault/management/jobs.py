"""Running an envelope job (KEK rotation, envelope upgrade) from a command: as the operator,
with a progress line, and stopped cleanly by SIGTERM like Ctrl-C."""

from keyvault.management.interrupts import interrupt_on_sigterm
from keyvault.management.progress import Progress
from organizations.access import Access


def run_envelope_job(service, *, command: str, total: int, label: str, **options):
    """`service(actor=…, on_batch=…, **options)` run by `manage.py <command>`; returns the
    job's result and the finished progress line (for its elapsed time and rate)."""
    progress = Progress(total, label=label)
    try:
        with interrupt_on_sigterm():
            job = service(
                actor=Access.operator(f"manage.py {command}"),
                on_batch=lambda batch: progress.advance(batch.seen),
                **options,
            )
    finally:
        progress.finish()
    return job, progress
