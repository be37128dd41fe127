"""KEK rotation: re-wrap every data key that is not under the primary KEK, in batches.

Only the wrapped data key changes; the nonce and the data ciphertext are carried over byte for
byte, so rotation never re-encrypts a secret and cannot change one. Each batch is its own
transaction, so the job can be interrupted anywhere and resumed by running it again: the rows
still to do are simply those whose `kek_id` is not the primary's.

Safe beside live traffic: every row is written with a compare-and-swap on the envelope it was
read with. A user who rotates or edits the key meanwhile wins: the swap misses, the row is left
alone, and (a user rotation seals under the primary anyway) it still ends up under the primary.
A batch locks its rows in the order every writer keeps (`keyvault.locking`), so it queues
behind a usage flush or a key deletion instead of deadlocking with it.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Count

from keyvault.crypto import CryptoError, Keyring
from keyvault.locking import lock_keys
from keyvault.models import SECRET_CONTEXT_FIELDS, ProviderKey
from keyvault.sealing import SealedSecret, rewrap_secret

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    rewrapped: int = 0
    skipped_concurrent: int = 0  # changed by someone else while the batch ran
    failed: list = field(default_factory=list)  # ids whose envelope would not open

    @property
    def seen(self) -> int:
        """How many keys the batch went through, whatever became of them."""
        return self.rewrapped + self.skipped_concurrent + len(self.failed)


_SWAP_ROWS_PER_STATEMENT = 1000


def swap_envelopes(swaps: list[tuple]) -> int:
    """For each `(pk, old, new)`, replace the row's envelope with `new` only if it is still
    exactly `old` (compare-and-swap), so a concurrent change by someone else is never
    overwritten. Returns how many rows were swapped. (`kek_id` is the database's to compute
    from the new envelope.)

    One statement per thousand rows (`UPDATE … FROM (VALUES …)`, which PostgreSQL and SQLite
    both run) instead of one UPDATE per row: re-wrapping is bound by round trips. Call it in a
    transaction: the rows are locked first, in primary-key order (`keyvault.locking`).
    """
    table = connection.ops.quote_name(ProviderKey._meta.db_table)
    pk_field = ProviderKey._meta.pk
    swapped = 0
    # The UPDATE reaches its rows in the order of its plan (a sequential scan: heap order),
    # while a usage flush or an organization deletion locks keys in primary-key order; each
    # could hold a row the other waits for. Locked here in key order first, the rows are the
    # UPDATE's already, whatever its plan; chunks go in key order too.
    swaps = sorted(swaps, key=lambda swap: swap[0])
    for start in range(0, len(swaps), _SWAP_ROWS_PER_STATEMENT):
        chunk = swaps[start : start + _SWAP_ROWS_PER_STATEMENT]
        lock_keys([pk for pk, _old, _new in chunk])
        values = ", ".join(["(%s, %s, %s)"] * len(chunk))
        params = []
        for pk, old, new in chunk:
            params += [pk_field.get_db_prep_value(pk, connection), old.envelope, new.envelope]
        # VALUES columns are named column1… on both databases. (Not a CTE: Python's sqlite3
        # reports no row count for a statement that does not start with UPDATE.)
        sql = (
            f"UPDATE {table} SET secret = swaps.column3 "  # noqa: S608
            f"FROM (VALUES {values}) AS swaps "
            f"WHERE {table}.id = swaps.column1 AND {table}.secret = swaps.column2"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            swapped += cursor.rowcount
    return swapped


def swap_envelope(pk, old: SealedSecret, new: SealedSecret) -> bool:
    """`swap_envelopes` for one row."""
    return swap_envelopes([(pk, old, new)]) == 1


def keys_per_kek(keys=None) -> dict[str, int]:
    """How many of `keys` (all keys by default) each KEK wraps, counted by the database."""
    keys = ProviderKey.objects.all() if keys is None else keys
    return dict(
        keys.order_by().values("kek_id").annotate(count=Count("id")).values_list("kek_id", "count")
    )


def pending_by_kek(keyring: Keyring) -> dict[str, int]:
    """How many keys each non-primary KEK still wraps."""
    return keys_per_kek(ProviderKey.objects.exclude(kek_id=keyring.primary_kek_id))


def _to_rewrap(keyring: Keyring, after, batch_size: int, among=None) -> list[ProviderKey]:
    keys = ProviderKey.objects.all()
    if among is not None:
        # By id: the caller's queryset may join or defer what this one must not.
        keys = keys.filter(pk__in=among.values("pk"))
    keys = keys.exclude(kek_id=keyring.primary_kek_id).only(*SECRET_CONTEXT_FIELDS).order_by("id")
    if after is not None:
        keys = keys.filter(id__gt=after)
    return list(keys[:batch_size])


# SQLSTATEs of a transaction PostgreSQL aborted to resolve a lock conflict: deadlock detected,
# serialization failure. Retrying the whole transaction is the documented answer to both.
_LOCK_CONFLICTS = frozenset({"40P01", "40001"})
_BATCH_ATTEMPTS = 3


def _lost_lock_conflict(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _LOCK_CONFLICTS


def rewrap_batch(
    keyring: Keyring, *, batch_size: int, after=None, among=None
) -> tuple[BatchResult, object]:
    """Re-wrap up to `batch_size` keys (of the queryset `among`, all by default) with ids above
    `after`; returns the result and the last id seen, to continue from.

    A batch aborted by a lock conflict is rolled back and tried again, a bounded number of
    times. Keyvault's own writers keep one lock order and cannot deadlock with it; a writer
    that does not (hand-written SQL, an older release during a rolling deploy) costs a retry
    instead of stopping the job."""
    keys = _to_rewrap(keyring, after, batch_size, among)
    if not keys:
        return BatchResult(), None
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return rewrap_keys(keys, keyring), keys[-1].pk
        except OperationalError as exc:
            # Inside a caller's transaction the conflict aborted theirs too: theirs to retry.
            if (
                attempt == _BATCH_ATTEMPTS
                or connection.in_atomic_block
                or not _lost_lock_conflict(exc)
            ):
                raise
            attempt += 1
            logger.warning(
                "KEK rotation: a batch of %d keys was rolled back by a lock conflict (%s); "
                "trying it again (attempt %d of %d).",
                len(keys),
                exc.__cause__.sqlstate,
                attempt,
                _BATCH_ATTEMPTS,
            )


def rewrap_keys(keys, keyring: Keyring) -> BatchResult:
    """Re-wrap `keys` under the keyring's primary KEK with one compare-and-swap pass; a key
    that will not open is listed as failed and left as it is."""
    result = BatchResult()
    swaps = []
    for key in keys:
        try:
            swaps.append((key.pk, key.secret, rewrap_secret(key, keyring)))
        except (CryptoError, ValidationError):  # ValidationError: a provider no longer known
            result.failed.append(key.pk)
    result.rewrapped = swap_envelopes(swaps)
    result.skipped_concurrent = len(swaps) - result.rewrapped
    return result


def rewrap_all(keyring: Keyring, *, batch_size: int, among=None) -> Iterator[BatchResult]:
    """Batches until nothing (of `among`, all keys by default) is left under an old KEK,
    except keys that fail to open."""
    after = None
    while True:
        result, after = rewrap_batch(keyring, batch_size=batch_size, after=after, among=among)
        if after is None:
            return
        yield result
