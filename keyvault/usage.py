"""Usage accounting without a write per request.

Every secret retrieval is counted per (token, key, hour) and every authenticated request
refreshes its token's `last_used_at`. Counting happens in process memory under a lock and is
flushed to the database in one transaction: every few seconds by a background thread, when the
backlog grows large, and when the process exits cleanly. The flush is additive (`count = count
+ n`), so any number of app instances can flush into the same rows and their counts add up.

Crash window: a process killed without a clean shutdown (SIGKILL, power loss) loses at most
the counts since its last flush, bounded by `KEYVAULT_USAGE_FLUSH_SECONDS`. A flush that fails
(database down) keeps its counts in memory and retries on the next flush. See docs/api.md.
"""

import atexit
import logging
import threading
from collections import Counter
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger(__name__)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _keep_latest(latest: dict, key, moment: datetime) -> None:
    if key not in latest or latest[key] < moment:
        latest[key] = moment


class UsageRecorder:
    def __init__(self, *, flush_seconds: float | None, max_pending: int):
        if flush_seconds is not None and flush_seconds <= 0:
            raise ImproperlyConfigured("KEYVAULT_USAGE_FLUSH_SECONDS must be greater than 0.")
        self.flush_seconds = flush_seconds
        self.last_flush_failed = False
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counts: Counter = Counter()
        self._token_last_used: dict = {}
        self._key_last_used: dict = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    # --- The hot path: memory only ------------------------------------------------------------

    def record_token_use(self, token_id, at: datetime | None = None) -> None:
        at = at or timezone.now()
        with self._lock:
            _keep_latest(self._token_last_used, token_id, at)
        self._ensure_thread()

    def record_secret_retrieval(self, token_id, key_id, at: datetime | None = None) -> None:
        at = at or timezone.now()
        with self._lock:
            self._counts[(token_id, key_id, _hour(at))] += 1
            _keep_latest(self._token_last_used, token_id, at)
            _keep_latest(self._key_last_used, key_id, at)
            backlog = len(self._counts)
        if backlog >= self.max_pending:
            self._flush_soon()
        else:
            self._ensure_thread()

    def pending(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    # --- Flushing -----------------------------------------------------------------------------

    def _take(self):
        with self._lock:
            taken = (self._counts, self._token_last_used, self._key_last_used)
            self._counts, self._token_last_used, self._key_last_used = Counter(), {}, {}
        return taken

    def _give_back(self, counts, token_last_used, key_last_used) -> None:
        with self._lock:
            self._counts.update(counts)
            for token_id, at in token_last_used.items():
                _keep_latest(self._token_last_used, token_id, at)
            for key_id, at in key_last_used.items():
                _keep_latest(self._key_last_used, key_id, at)

    def flush(self) -> int:
        """Write pending counts; returns how many retrievals were written."""
        with self._flush_lock:
            counts, token_last_used, key_last_used = self._take()
            if not (counts or token_last_used or key_last_used):
                return 0
            try:
                _write(counts, token_last_used, key_last_used)
                self.last_flush_failed = False
            except Exception:
                self.last_flush_failed = True
                self._give_back(counts, token_last_used, key_last_used)
                logger.exception(
                    "Usage flush failed; %d counts kept for the next flush.", sum(counts.values())
                )
                return 0
            return sum(counts.values())

    def _flush_soon(self) -> None:
        """Hand a large backlog to the flush thread; the request never waits for the database.
        Without a thread (flushing disabled, as in tests) flush right here instead."""
        if self._ensure_thread():
            self._wake.set()
        else:
            self.flush()

    def _ensure_thread(self) -> bool:
        """Start the flush thread if it should run; whether one is running."""
        if self.flush_seconds is None or self._stop.is_set():
            return False
        if self._thread is not None and self._thread.is_alive():
            return True
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="keyvault-usage-flush", daemon=True
                )
                self._thread.start()
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.flush()
            connection.close()
            if self.last_flush_failed:
                # The database is failing: wait a full interval rather than retry at once.
                self._stop.wait(self.flush_seconds)

    def stop(self) -> None:
        """Flush what is pending and stop the background thread (clean shutdown)."""
        self._stop.set()
        self._wake.set()
        self.flush()


def _write(counts: Counter, token_last_used: dict, key_last_used: dict) -> None:
    from keyvault.locking import lock_keys, lock_tokens
    from keyvault.models import KeyUsage, ProviderKey, ProxyToken

    with transaction.atomic():
        # Keys, then tokens, each in primary-key order, and only then their usage rows: the
        # lock order every writer keeps (keyvault.locking). A key deletion locks its key before
        # it touches the key's usage rows; a flush that wrote usage rows before locking their
        # key (its last_used_at update, or the foreign-key check) could each wait for the other.
        # The locks also say what still exists: keys or tokens deleted since the retrieval have
        # nothing left to account to, and writing their counts would fail the foreign key, and
        # with it this flush and every later one.
        live_keys = lock_keys({key_id for _, key_id, _ in counts} | key_last_used.keys())
        live_tokens = lock_tokens({token_id for token_id, _, _ in counts} | token_last_used.keys())
        # Then the usage rows in (token, key, hour) order: flushes of several app instances
        # sharing rows queue behind each other.
        rows = sorted(
            (token_id, key_id, hour, count)
            for (token_id, key_id, hour), count in counts.items()
            if key_id in live_keys and token_id in live_tokens
        )
        if rows:
            KeyUsage.add_counts(rows)
        for token_id, at in sorted(token_last_used.items()):
            if token_id in live_tokens:
                ProxyToken.objects.filter(pk=token_id).filter(
                    Q(last_used_at__isnull=True) | Q(last_used_at__lt=at)
                ).update(last_used_at=at)
        for key_id, at in sorted(key_last_used.items()):
            if key_id in live_keys:
                ProviderKey.objects.filter(pk=key_id).filter(
                    Q(last_used_at__isnull=True) | Q(last_used_at__lt=at)
                ).update(last_used_at=at)


recorder = UsageRecorder(
    flush_seconds=getattr(settings, "KEYVAULT_USAGE_FLUSH_SECONDS", 5.0),
    max_pending=getattr(settings, "KEYVAULT_USAGE_MAX_PENDING", 10_000),
)
atexit.register(recorder.stop)
