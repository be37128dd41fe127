"""Jobs over the stored envelopes: `kek_rotate` re-wraps data keys under the primary KEK, and
`envelopes_upgrade` re-seals envelopes of an older format. The commands and the admin's
re-wrap action call these, so each job's audit event is written in one place.

A job runs in batches, each its own transaction (`keyvault.rotation`,
`keyvault.envelope_upgrade`), and records one audit event for the run, with its counts, once
it stops. A job stopped by an interruption (Ctrl-C; the commands turn SIGTERM into one) or a
database error keeps the batches it committed, and running it again continues from there: that
is an outcome to report, so it is returned in the summary rather than raised.

Both are instance-wide, not about one organization: they are offered only to the operator's
commands and to trusted superusers in the admin. Neither reveals or changes a secret.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError

import audit
from audit import AuditAction
from keyvault.crypto import Keyring, get_keyring
from keyvault.envelope_upgrade import upgrade_all
from keyvault.rotation import BatchResult, rewrap_all
from organizations.access import Access
from organizations.authorization import authorize_instance_operation

DEFAULT_BATCH_SIZE = 1000


@dataclass
class EnvelopeJob:
    """What a run of a job did."""

    written: int = 0  # envelopes replaced: re-wrapped, or re-sealed
    changed_concurrently: int = 0  # changed by someone else meanwhile; their change stands
    failed: list = field(default_factory=list)  # ids whose envelope would not open
    interrupted: bool = False
    database_error: DatabaseError | None = None

    @property
    def stopped(self) -> bool:
        """Stopped before the end; what was committed stays, and a rerun continues."""
        return self.interrupted or self.database_error is not None


@dataclass
class KekRotation(EnvelopeJob):
    primary: str = ""  # the KEK the keys were re-wrapped under


@dataclass
class EnvelopesUpgrade(EnvelopeJob):
    # Ids whose stored endpoint the current rules refuse (set before they existed): the
    # operator should look at them before the binding makes them permanent.
    refused_endpoints: list = field(default_factory=list)


OnBatch = Callable[[BatchResult], None] | None


def kek_rotate(
    *,
    actor: Access,
    keyring: Keyring | None = None,
    keys=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: OnBatch = None,
    workers: int = 1,
) -> KekRotation:
    """Re-wrap every data key that is not under the primary KEK, the keys' current secrets and
    their kept versions alike (only those of `keys`, a `ProviderKey` queryset, when given),
    calling `on_batch` after each batch, and record the run as one `kek.rotation` event. With
    `workers` above one, the crypto runs in that many processes (`keyvault.rotation`).
    Instance-wide: for the operator and active superusers."""
    authorize_instance_operation(actor)
    keyring = keyring or get_keyring()
    job = KekRotation(primary=keyring.primary_kek_id)
    _run(
        job,
        rewrap_all(keyring, batch_size=batch_size, among=keys, workers=workers),
        on_batch,
    )
    _record(
        job,
        action=AuditAction.KEK_ROTATION,
        actor=actor,
        metadata={"primary": job.primary, "rewrapped": job.written},
    )
    return job


def envelopes_upgrade(
    *,
    actor: Access,
    keyring: Keyring | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: OnBatch = None,
) -> EnvelopesUpgrade:
    """Seal every secret still in an older envelope format again in the current one, calling
    `on_batch` after each batch, and record the run as one `kek.envelopes_upgraded` event.
    Instance-wide: for the operator and active superusers."""
    authorize_instance_operation(actor)
    keyring = keyring or get_keyring()
    job = EnvelopesUpgrade()

    def batches():
        for batch, refused in upgrade_all(keyring, batch_size=batch_size):
            job.refused_endpoints += refused
            yield batch

    _run(job, batches(), on_batch)
    _record(
        job, action=AuditAction.ENVELOPES_UPGRADED, actor=actor, metadata={"resealed": job.written}
    )
    return job


def _run(job: EnvelopeJob, batches: Iterable[BatchResult], on_batch: OnBatch) -> None:
    try:
        for batch in batches:
            job.written += batch.rewrapped
            job.changed_concurrently += batch.skipped_concurrent
            job.failed += batch.failed
            if on_batch is not None:
                on_batch(batch)
    except KeyboardInterrupt:
        # Caught, not passed on: the batch in flight rolled back with its transaction, the
        # committed ones stay, and the event below must still say how far the job got.
        job.interrupted = True
    except DatabaseError as exc:
        # As after an interruption: the batch in flight rolled back, the committed ones stay.
        job.database_error = exc


def _record(job: EnvelopeJob, *, action: AuditAction, actor: Access, metadata: dict) -> None:
    try:
        audit.record(
            action=action,
            actor=actor,
            metadata={
                **metadata,
                "changed_concurrently": job.changed_concurrently,
                "failed": len(job.failed),
                "interrupted": job.stopped,
            },
        )
    except DatabaseError:
        if job.database_error is None:
            raise
        # The database that stopped the job may refuse this too; the caller reports the error
        # that stopped it, and the envelopes themselves show how far the job got.
