"""KEK rotation: re-wrap every data key that is not under the primary KEK, in batches: the keys'
current secrets (`ProviderKey`) and their kept previous versions (`SecretVersion`) alike.

Only the wrapped data key changes; the nonce and the data ciphertext are carried over byte for
byte, so rotation never re-encrypts a secret and cannot change one. Each batch is its own
transaction, so the job can be interrupted anywhere and resumed by running it again: the rows
still to do are simply those whose `kek_id` is not the primary's.

Safe beside live traffic: every row is written with a compare-and-swap on the envelope it was
read with. A user who rotates or edits the key meanwhile wins: the swap misses, the row is left
alone, and (a user rotation seals under the primary anyway) it still ends up under the primary.
A batch locks its rows in the order every writer keeps (`keyvault.locking`), so it queues
behind a usage flush or a key deletion instead of deadlocking with it.

Where the time goes (docs/benchmarks.md): opening and re-wrapping is CPU in Python, writing is
round trips. So rows are read as tuples (no model instances; `sealing.context_for` builds the
same context as `secret_context`), written by PostgreSQL's COPY into a temporary table and one
`UPDATE … FROM` per batch, and with `workers` above one the crypto runs in forked processes
while this one reads the next batch and writes the last: the database work and the crypto
overlap instead of taking turns.
"""

import functools
import logging
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Count

from keyvault import crypto, providers
from keyvault.crypto import CryptoError, Keyring
from keyvault.locking import lock_keys
from keyvault.models import ProviderKey, SecretVersion, version_binding
from keyvault.sealing import SealedSecret, context_for, legacy_envelopes_open

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    rewrapped: int = 0
    skipped_concurrent: int = 0  # changed by someone else while the batch ran
    failed: list = field(default_factory=list)  # ids whose envelope would not open

    @property
    def seen(self) -> int:
        """How many envelopes the batch went through, whatever became of them."""
        return self.rewrapped + self.skipped_concurrent + len(self.failed)


# --- What holds envelopes ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _binding(provider: str, config_items: tuple) -> str:
    return providers.secret_binding(providers.get_provider(provider), dict(config_items))


def _key_binding(provider: str, config) -> str:
    """`ProviderKey.secret_binding` from the row's values; most rows share a few settings, so
    the text is computed once for each (provider, config) seen."""
    try:
        return _binding(provider, tuple(sorted(config.items())))
    except (AttributeError, TypeError):  # not a dict of hashable values: computed as it is
        return providers.secret_binding(providers.get_provider(provider), config)


def _key_context(row):
    pk, organization_id, provider, config, _envelope = row
    return context_for(
        ProviderKey,
        organization_id=organization_id,
        row_id=pk,
        binding=_key_binding(provider, config),
    )


def _version_context(row):
    pk, organization_id, key_id, number, provider, routing, _envelope = row
    return context_for(
        SecretVersion,
        organization_id=organization_id,
        row_id=pk,
        binding=version_binding(key_id=key_id, number=number, provider=provider, routing=routing),
    )


@dataclass(frozen=True)
class Store:
    """A table of envelopes: the values a re-wrap reads per row (the id first, the envelope
    last), the context they give, and how `among` (a `ProviderKey` queryset) selects rows."""

    name: str
    model: type
    columns: tuple
    context: Callable
    key_field: str
    plural: str  # what its rows are, in messages


KEYS = Store(
    "keys",
    ProviderKey,
    ("id", "organization_id", "provider", "config", "secret"),
    _key_context,
    "pk",
    "keys",
)
VERSIONS = Store(
    "versions",
    SecretVersion,
    ("id", "organization_id", "key_id", "number", "provider", "routing", "secret"),
    _version_context,
    "key_id",
    "kept versions",
)
STORES = {store.name: store for store in (KEYS, VERSIONS)}


# --- Writing -----------------------------------------------------------------------------------

_SWAP_ROWS_PER_STATEMENT = 1000
_SWAP_TABLE = "keyvault_rewrap_swaps"


def swap_envelopes(swaps: list[tuple], model=ProviderKey) -> int:
    """For each `(pk, old, new)`, replace the row's envelope with `new` only if it is still
    exactly `old` (compare-and-swap), so a concurrent change by someone else is never
    overwritten. Returns how many rows were swapped. (`kek_id` is the database's to compute
    from the new envelope.)

    Call it in a transaction: the rows are locked first, in primary-key order
    (`keyvault.locking`). The UPDATE reaches its rows in the order of its plan (a sequential
    scan: heap order), while a usage flush or an organization deletion locks keys in
    primary-key order; each could hold a row the other waits for. Locked in key order first,
    the rows are the UPDATE's already, whatever its plan.
    """
    if not swaps:
        return 0
    swaps = sorted(swaps, key=lambda swap: swap[0])
    if connection.vendor == "postgresql":
        return _swap_by_copy(swaps, model)
    return _swap_by_values(swaps, model)


def _swap_by_copy(swaps, model) -> int:
    """PostgreSQL: the batch COPYed into a temporary table, locked in key order and swapped by
    one `UPDATE … FROM`: four round trips for the batch instead of one or two per thousand rows
    (re-wrapping is bound by round trips once the crypto runs elsewhere)."""
    table = connection.ops.quote_name(model._meta.db_table)
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    with transaction.atomic(), connection.cursor() as cursor:
        # Kept for the session, emptied at each commit: created once per connection.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_SWAP_TABLE} "
            "(id uuid PRIMARY KEY, old text NOT NULL, new text NOT NULL) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {_SWAP_TABLE}")
        with cursor.copy(f"COPY {_SWAP_TABLE} (id, old, new) FROM STDIN") as copy:
            for pk, old, new in swaps:
                copy.write_row((pk, old.envelope, new.envelope))
        # ORDER BY runs before the locking clause: the rows are locked one by one in that order.
        cursor.execute(
            f"SELECT t.{pk_column} FROM {table} t "  # noqa: S608
            f"WHERE t.{pk_column} IN (SELECT id FROM {_SWAP_TABLE}) "
            f"ORDER BY t.{pk_column} FOR NO KEY UPDATE OF t"
        )
        cursor.execute(
            f"UPDATE {table} AS t SET secret = s.new FROM {_SWAP_TABLE} s "  # noqa: S608
            f"WHERE t.{pk_column} = s.id AND t.secret = s.old"
        )
        return cursor.rowcount


def _swap_by_values(swaps, model) -> int:
    """SQLite (one writer at a time): `UPDATE … FROM (VALUES …)`, a thousand rows a statement."""
    table = connection.ops.quote_name(model._meta.db_table)
    pk_field = model._meta.pk
    swapped = 0
    for start in range(0, len(swaps), _SWAP_ROWS_PER_STATEMENT):
        chunk = swaps[start : start + _SWAP_ROWS_PER_STATEMENT]
        if model is ProviderKey:
            lock_keys([pk for pk, _old, _new in chunk])
        values = ", ".join(["(%s, %s, %s)"] * len(chunk))
        params = []
        for pk, old, new in chunk:
            params += [pk_field.get_db_prep_value(pk, connection), old.envelope, new.envelope]
        # VALUES columns are named column1… (Not a CTE: Python's sqlite3 reports no row count
        # for a statement that does not start with UPDATE.)
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
    """`swap_envelopes` for one key."""
    return swap_envelopes([(pk, old, new)]) == 1


# --- Counting ----------------------------------------------------------------------------------


def keys_per_kek(keys=None) -> dict[str, int]:
    """How many rows of `keys` (a queryset of keys or versions; all keys by default) each KEK
    wraps, counted by the database."""
    keys = ProviderKey.objects.all() if keys is None else keys
    return dict(
        keys.order_by().values("kek_id").annotate(count=Count("id")).values_list("kek_id", "count")
    )


def envelopes_per_kek(keys=None) -> dict[str, int]:
    """How many stored envelopes each KEK wraps: the keys' (of `keys`, all by default) and
    their kept versions'. What says whether a KEK may be retired."""
    keys = ProviderKey.objects.all() if keys is None else keys
    counts = keys_per_kek(keys)
    versions = SecretVersion.objects.all()
    if keys.query.where:
        versions = versions.filter(key_id__in=keys.values("pk"))
    for kek_id, count in keys_per_kek(versions).items():
        counts[kek_id] = counts.get(kek_id, 0) + count
    return counts


def pending_by_kek(keyring: Keyring, keys=None) -> dict[str, int]:
    """How many envelopes (keys' and versions') each non-primary KEK still wraps."""
    counts = envelopes_per_kek(keys)
    counts.pop(keyring.primary_kek_id, None)
    return counts


# --- Reading and re-wrapping -------------------------------------------------------------------


def _to_rewrap(store: Store, keyring: Keyring, after, batch_size: int, among=None) -> list:
    rows = store.model.objects.exclude(kek_id=keyring.primary_kek_id)
    if among is not None:
        # By id: the caller's queryset may join or defer what this one must not.
        rows = rows.filter(**{f"{store.key_field}__in": among.values("pk")})
    if after is not None:
        rows = rows.filter(id__gt=after)
    return list(rows.order_by("id").values_list(*store.columns)[:batch_size])


def _rewrap_rows(store_name: str, rows: list, keyring: Keyring, legacy: bool):
    """`(swaps, failed ids)` for `rows` of the store: each envelope opened whole (a value that
    does not authenticate is refused, never re-wrapped) and its data key wrapped again."""
    store = STORES[store_name]
    swaps, failed = [], []
    for row in rows:
        pk, sealed = row[0], row[-1]  # the secret field reads a `SealedSecret`
        try:
            new = rewrap_row(store, row, keyring, legacy)
        except (CryptoError, ValidationError):  # ValidationError: a provider no longer known
            failed.append(pk)
            continue
        swaps.append((pk, sealed, new))
    return swaps, failed


def rewrap_row(store: Store, row: tuple, keyring: Keyring, legacy: bool) -> SealedSecret:
    """One row's envelope (its last value) with its data key re-wrapped under the primary."""
    return SealedSecret(crypto.rewrap(row[-1].envelope, store.context(row), keyring, legacy=legacy))


# SQLSTATEs of a transaction PostgreSQL aborted to resolve a lock conflict: deadlock detected,
# serialization failure. Retrying the whole transaction is the documented answer to both.
_LOCK_CONFLICTS = frozenset({"40P01", "40001"})
_BATCH_ATTEMPTS = 3


def _lost_lock_conflict(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _LOCK_CONFLICTS


def _retrying(write: Callable[[], BatchResult], size: int, what: str) -> BatchResult:
    """`write()` in a transaction; tried again, a bounded number of times, when a lock conflict
    rolled it back. Keyvault's own writers keep one lock order and cannot deadlock with it; a
    writer that does not (hand-written SQL, an older release during a rolling deploy) costs a
    retry instead of stopping the job."""
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return write()
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
                "KEK rotation: a batch of %d %s was rolled back by a lock conflict (%s); "
                "trying it again (attempt %d of %d).",
                size,
                what,
                exc.__cause__.sqlstate,
                attempt,
                _BATCH_ATTEMPTS,
            )


def _written(store: Store, swaps: list, failed: list) -> BatchResult:
    result = BatchResult(failed=list(failed))
    result.rewrapped = swap_envelopes(swaps, store.model)
    result.skipped_concurrent = len(swaps) - result.rewrapped
    return result


def rewrap_batch(
    keyring: Keyring, *, batch_size: int, after=None, among=None, store: Store = KEYS
) -> tuple[BatchResult, object]:
    """Re-wrap up to `batch_size` rows of `store` (of the keys of the queryset `among`, all by
    default) with ids above `after`; returns the result and the last id seen, to continue from.
    A batch aborted by a lock conflict is rolled back and tried again."""
    rows = _to_rewrap(store, keyring, after, batch_size, among)
    if not rows:
        return BatchResult(), None
    legacy = legacy_envelopes_open()

    def write():
        return _written(store, *_rewrap_rows(store.name, rows, keyring, legacy))

    return _retrying(write, len(rows), store.plural), rows[-1][0]


def rewrap_keys(keys, keyring: Keyring) -> BatchResult:
    """Re-wrap the `ProviderKey` instances `keys` under the keyring's primary KEK with one
    compare-and-swap pass; a key that will not open is listed as failed and left as it is."""
    rows = [
        (key.pk, key.organization_id, key.provider, key.config, key.secret.envelope) for key in keys
    ]
    return _written(KEYS, *_rewrap_rows(KEYS.name, rows, keyring, legacy_envelopes_open()))


def rewrap_all(
    keyring: Keyring, *, batch_size: int, among=None, workers: int = 1
) -> Iterator[BatchResult]:
    """Batches until nothing (of `among`, all keys by default, and their versions) is left
    under an old KEK, except envelopes that fail to open. With `workers` above one, the crypto
    runs in that many forked processes beside this one's reads and writes."""
    if workers > 1:
        yield from _pipelined(keyring, batch_size=batch_size, among=among, workers=workers)
        return
    for store in (KEYS, VERSIONS):
        after = None
        while True:
            result, after = rewrap_batch(
                keyring, batch_size=batch_size, after=after, among=among, store=store
            )
            if after is None:
                break
            yield result


# --- Crypto in worker processes ------------------------------------------------------------------

# The keyring of the job that forked the workers: inherited by them with the rest of the memory,
# never pickled (keyrings refuse to be, so KEK material never travels through a pipe).
_worker_keyring: Keyring | None = None


def _worker_start():
    # Ctrl-C reaches the whole process group: the job stops in the parent, which ends the
    # workers; a worker dying of it first would only turn a clean stop into a broken pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM handler (the commands turn SIGTERM into an interruption) is
    # inherited by the fork: a worker must simply die of it, which is how the pool ends it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker_rewrap(store_name: str, rows: list, legacy: bool):
    return _rewrap_rows(store_name, rows, _worker_keyring, legacy)


def _pipelined(keyring: Keyring, *, batch_size: int, among, workers: int):
    """Read batch n+1 while workers re-wrap batch n and this process writes batch n-1. Reads
    run ahead by id (`after`), so they never wait for a write; each write is its own
    transaction with its compare-and-swap, as in the sequential job, so stopping anywhere
    keeps what was committed."""
    global _worker_keyring
    _worker_keyring = keyring
    legacy = legacy_envelopes_open()
    # Fork: the workers need no Django setup and no KEK passed to them. They touch neither the
    # database nor the connection they inherit; they only compute.
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_start)
    try:
        for store in (KEYS, VERSIONS):
            in_flight = deque()
            after, exhausted = None, False
            while True:
                while not exhausted and len(in_flight) < workers + 1:
                    rows = _to_rewrap(store, keyring, after, batch_size, among)
                    if not rows:
                        exhausted = True
                        break
                    after = rows[-1][0]
                    in_flight.append(
                        (pool.apply_async(_worker_rewrap, (store.name, rows, legacy)), len(rows))
                    )
                if not in_flight:
                    break
                pending, size = in_flight.popleft()
                swaps, failed = pending.get()
                yield _retrying(
                    functools.partial(_written, store, swaps, failed), size, store.plural
                )
        pool.close()
    finally:
        pool.terminate()
        pool.join()
        _worker_keyring = None
