"""`KeyvaultClient`: provider keys served from memory, kept current by one background thread.

The thread takes a snapshot of every enabled key, then long-polls the event feed from the
snapshot's cursor. Events carry no secrets, so:
- `key.disabled` and `key.deleted` (or any event saying `enabled: false`) drop the key at once,
  before anything else on the page is fetched;
- `key.created`, `key.updated`, `key.rotated` and `key.enabled` fetch that one key's secret
  (`GET keys/{id}/secret`): one decryption on the server, where a snapshot would decrypt every
  key of the organization for every proxy. A page that changes more keys than
  `snapshot_threshold` and at least a quarter of those held (a bulk rotation, a rekey) is
  applied by one new snapshot instead: then one request beats that many;
- other event types are ignored.
The cursor only moves past a page once all of it is applied, so a fetch that fails is retried
with the page; drops already made stay made.

Readers take a lock for a few dictionary lookups and never wait for the network.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from keyvault_client import wire
from keyvault_client.backoff import Backoff
from keyvault_client.credential import Credential
from keyvault_client.errors import (
    KeyvaultAuthError,
    KeyvaultClosedError,
    KeyvaultError,
    KeyvaultNotFoundError,
    KeyvaultStaleError,
    KeyvaultUnavailableError,
)
from keyvault_client.store import Store
from keyvault_client.transport import RequestFailed, Transport, TransportClosed

logger = logging.getLogger("keyvault_client")

SNAPSHOT_PATH = "/api/v1/snapshot"
EVENTS_PATH = "/api/v1/events"
SECRET_PATH = "/api/v1/keys/{key_id}/secret"
MAX_WAIT = 30  # the longest `wait` the event feed accepts
# A server that answers an empty page at once (ignoring `wait`) is polled at most this often.
MIN_EMPTY_POLL_SECONDS = 1.0
# A snapshot replaces per-key fetches only when at least 1/SNAPSHOT_SHARE of the keys held
# changed: it decrypts every key, so for a few keys of a large organization fetches are cheaper.
SNAPSHOT_SHARE = 4


@dataclass(frozen=True)
class ClientStatus:
    """For health checks and metrics; holds no secret."""

    running: bool  # the sync thread is alive
    ready: bool  # a first snapshot has arrived
    stale: bool  # resolve and get would raise KeyvaultStaleError
    cursor: int | None
    keys: int
    seconds_since_sync: float | None
    error: str | None  # why the client stopped, or the last sync error while syncs fail


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float = 0.0):
        super().__init__(message)
        self.retry_after = retry_after


class _Fatal(Exception):
    pass


class _CursorExpired(Exception):
    pass


class KeyvaultClient:
    """Provider keys of one organization, from memory.

    `url` is Keyvault's base URL and `token` a proxy token with `keys:read` (the event feed)
    and `keys:secret` (snapshot and secrets). `start()`, the first `resolve`/`get`, or entering
    a `with` block waits for the first snapshot; `close()` stops the thread and forgets the
    secrets.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        max_staleness: float = 300.0,
        wait: int = 25,
        timeout: float = 10.0,
        start_timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        snapshot_threshold: int = 20,
        ssl_context=None,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        if isinstance(wait, bool) or not isinstance(wait, int) or not 1 <= wait <= MAX_WAIT:
            raise ValueError(f"wait must be a whole number of seconds from 1 to {MAX_WAIT}")
        # A healthy client is up to `wait` seconds behind its last answer while a poll is
        # parked; a smaller staleness bound would fail requests while nothing is wrong.
        if not max_staleness > wait:
            raise ValueError("max_staleness must be longer than wait")
        if timeout <= 0 or start_timeout <= 0:
            raise ValueError("timeout and start_timeout must be positive")
        if snapshot_threshold < 0:
            raise ValueError("snapshot_threshold must not be negative")
        self._transport = Transport(
            url,
            token,
            timeout=timeout,
            ssl_context=ssl_context,
            allow_insecure_http=allow_insecure_http,
        )
        self.url = self._transport.url
        self._max_staleness = float(max_staleness)
        self._wait = wait
        self._timeout = float(timeout)
        self._start_timeout = float(start_timeout)
        self._backoff = Backoff(backoff_base, backoff_max)
        self._snapshot_threshold = snapshot_threshold
        self._clock = clock

        self._lock = threading.Lock()
        self._store = Store()
        self._cursor: int | None = None
        self._ready = False
        self._last_sync: float | None = None  # None: nothing current (not started, or lost)
        self._terminal: tuple[type[KeyvaultError], str] | None = None
        self._closed = False
        self._last_error: str | None = None

        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._settled = threading.Event()  # first snapshot, a terminal error, or close()
        self._failures = 0
        self._stale_logged = False
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"KeyvaultClient(url={self.url!r})"

    # Lifecycle

    def start(self, timeout: float | None = None) -> "KeyvaultClient":
        """Start the sync thread (once) and wait for the first snapshot.

        Raises `KeyvaultAuthError` at once if the token is refused, and
        `KeyvaultUnavailableError` (closing the client) if no snapshot arrives in time.
        """
        with self._start_lock:
            if self._thread is None:
                if self._closed:
                    raise KeyvaultClosedError("the Keyvault client is closed")
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="keyvault-client-sync", daemon=True
                )
                self._thread.start()
        timeout = self._start_timeout if timeout is None else timeout
        if not self._settled.wait(timeout):
            with self._lock:
                if not self._ready and self._terminal is None:
                    message = f"no snapshot from {self.url} within {timeout:g}s"
                    if self._last_error:
                        message += f" (last error: {self._last_error})"
                    self._terminal = (KeyvaultUnavailableError, message)
            self.close()
        with self._lock:
            if self._terminal is not None:
                kind, message = self._terminal
                raise kind(message)
            if self._closed or not self._ready:
                raise KeyvaultClosedError("the Keyvault client is closed")
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop syncing and forget every secret. A poll in progress is cut off, so this returns
        promptly; later calls to `resolve` and `get` raise."""
        with self._lock:
            self._closed = True
            self._store.clear()
        self._stop.set()
        self._transport.close()
        self._settled.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> "KeyvaultClient":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether `start()` has finished (the first snapshot arrived, or starting failed)."""
        return self._settled.is_set()

    # Reads: memory only

    def resolve(self, provider: str, name: str | None = None) -> Credential:
        """The default key of `provider`, or its key named `name` (case ignored).

        `provider` may be spelled with `-` or `_` (`azure-openai`, `azure_openai`). A disabled
        default is not replaced by another key: traffic moves only when Keyvault says another
        key is the default.
        """
        provider_id = wire.normalize_provider(provider)
        folded = None
        if name is not None:
            if not isinstance(name, str):
                raise TypeError("name must be a string")
            folded = wire.fold_name(name)
            if not folded:
                raise ValueError("name must not be empty")
        self._start_if_needed()
        with self._lock:
            self._check_usable()
            if folded is None:
                credential = self._store.default(provider_id)
            else:
                credential = self._store.named(provider_id, folded)
        if credential is None:
            if folded is None:
                raise KeyvaultNotFoundError(f"no enabled default key for provider {provider_id!r}")
            raise KeyvaultNotFoundError(
                f"no enabled key named {name.strip()[:100]!r} for provider {provider_id!r}"
            )
        return credential

    def get(self, key_id) -> Credential:
        """The key with this id (a UUID or its text)."""
        self._start_if_needed()
        if isinstance(key_id, str):
            # The id as Keyvault writes it (what a credential's `key_id` holds) is found without
            # parsing it: a UUID parse costs more than the rest of the lookup.
            with self._lock:
                self._check_usable()
                credential = self._store.get(key_id)
            if credential is not None:
                return credential
        normalized = wire.normalize_key_id(key_id)
        with self._lock:
            self._check_usable()
            credential = None if normalized is None else self._store.get(normalized)
        if normalized is None:
            # Not quoted: whatever was passed in by mistake (a secret, say) stays out of logs.
            raise KeyvaultNotFoundError("no enabled key with that id (it is not a UUID)")
        if credential is None:
            raise KeyvaultNotFoundError(f"no enabled key with id {normalized!r}")
        return credential

    def credentials(self, provider: str | None = None) -> list[Credential]:
        """Every enabled key held (of one provider if given), ordered by provider and name."""
        provider_id = None if provider is None else wire.normalize_provider(provider)
        self._start_if_needed()
        with self._lock:
            self._check_usable()
            found = self._store.all()
        return [c for c in found if provider_id is None or c.provider == provider_id]

    def status(self) -> ClientStatus:
        with self._lock:
            age = None if self._last_sync is None else max(0.0, self._clock() - self._last_sync)
            stale = self._stale_reason(age) is not None
            error = self._terminal[1] if self._terminal is not None else self._last_error
            return ClientStatus(
                running=self._thread is not None and self._thread.is_alive(),
                ready=self._ready,
                stale=stale,
                cursor=self._cursor,
                keys=len(self._store),
                seconds_since_sync=age,
                error=error,
            )

    def _start_if_needed(self) -> None:
        # Until the first snapshot is in, a reader waits for it (in `start`) rather than being
        # told that nothing exists.
        if not self._settled.is_set():
            self.start()

    def _check_usable(self) -> None:
        """Called with the lock held."""
        if os.getpid() != self._pid:
            # A forked child has the memory but not the sync thread: it would serve keys
            # without ever hearing that one was disabled.
            raise KeyvaultClosedError(
                "this Keyvault client was started in the parent of a fork; "
                "create and start one in each worker process"
            )
        if self._terminal is not None:
            kind, message = self._terminal
            raise kind(message)
        if self._closed:
            raise KeyvaultClosedError("the Keyvault client is closed")
        age = None if self._last_sync is None else self._clock() - self._last_sync
        reason = self._stale_reason(age)
        if reason is not None:
            raise KeyvaultStaleError(reason)

    def _stale_reason(self, age: float | None) -> str | None:
        if not self._ready or self._closed or self._terminal is not None:
            return None  # not stale but something else, which _check_usable reports
        if age is None:
            return "Keyvault's event feed lost the client's place; waiting for a new snapshot"
        if age > self._max_staleness:
            return (
                f"no successful sync with Keyvault for {age:.0f}s "
                f"(max_staleness is {self._max_staleness:g}s)"
                + (f"; last error: {self._last_error}" if self._last_error else "")
            )
        return None

    # The sync thread

    def _run(self) -> None:
        need_snapshot = True
        fresh_snapshot = False
        while not self._stop.is_set():
            retry_after = 0.0
            try:
                if need_snapshot:
                    self._sync_snapshot()
                    need_snapshot, fresh_snapshot = False, True
                else:
                    self._sync_events()
                    fresh_snapshot = False
                self._succeeded()
                continue
            except TransportClosed:
                return
            except _Fatal as exc:
                self._stop_for_auth(str(exc))
                return
            except _CursorExpired:
                with self._lock:
                    self._last_sync = None  # events may have been missed: serve nothing
                need_snapshot = True
                if not fresh_snapshot:
                    logger.warning(
                        "Keyvault no longer has the events after cursor %s; taking a new snapshot",
                        self._cursor,
                    )
                    continue
                # The cursor of a snapshot just taken was refused: retrying at once would only
                # loop, so this counts as a failure like any other.
                message = "Keyvault refused a fresh snapshot's cursor as expired"
            except _Retry as exc:
                message, retry_after = str(exc), exc.retry_after
            except (RequestFailed, wire.ProtocolError) as exc:
                message = str(exc)
            except Exception as exc:
                # Only the type: a message of an unexpected error could quote a value.
                message = f"unexpected {type(exc).__name__} while syncing"
            if self._stop.is_set():
                return
            delay = self._backoff.next_delay(at_least=retry_after)
            self._failed(message, delay)
            if self._stop.wait(delay):
                return

    def _sync_snapshot(self) -> None:
        response = self._request(SNAPSHOT_PATH)
        cursor, credentials, unavailable = wire.parse_snapshot(response.data)
        if unavailable:
            # Enabled keys whose stored value failed Keyvault's integrity check: not served.
            logger.error(
                "Keyvault left %d keys out of the snapshot, their stored value failing its "
                "check: %s",
                len(unavailable),
                ", ".join(unavailable[:20]),
            )
        with self._lock:
            if self._closed:
                raise TransportClosed
            self._store.replace_all(credentials)
            self._cursor = cursor
            self._last_sync = self._clock()
            self._ready = True
        self._settled.set()
        logger.info("Keyvault snapshot: %d keys at cursor %d", len(credentials), cursor)

    def _sync_events(self) -> None:
        began = time.monotonic()
        response = self._request(
            EVENTS_PATH,
            {"after": self._cursor, "wait": self._wait},
            # The server holds the request up to `wait` seconds before it answers.
            read_timeout=self._wait + self._timeout,
        )
        cursor, events = wire.parse_events(response.data)
        drops, refreshes = _plan(events)
        if drops:
            with self._lock:
                for key_id in drops:
                    if self._store.drop(key_id):
                        logger.info("Keyvault key %s disabled or deleted: dropped", key_id)
        if self._snapshot_is_cheaper(len(refreshes)):
            logger.info("%d keys changed at once: taking a new snapshot", len(refreshes))
            self._sync_snapshot()
            return
        for key_id in refreshes:
            self._refresh(key_id)
        with self._lock:
            if self._closed:
                raise TransportClosed
            self._cursor = cursor
            self._last_sync = self._clock()
        if not events:
            pause = MIN_EMPTY_POLL_SECONDS - (time.monotonic() - began)
            if pause > 0:
                self._stop.wait(pause)

    def _snapshot_is_cheaper(self, changed: int) -> bool:
        with self._lock:
            held = len(self._store)
        return changed > self._snapshot_threshold and changed * SNAPSHOT_SHARE >= held

    def _refresh(self, key_id: str) -> None:
        response = self._request(SECRET_PATH.format(key_id=key_id), also=(404, 409, 500))
        if response.status == 409 and not _has_code(response, "key_disabled"):
            raise _Retry(f"GET secret of key {key_id} answered 409: {response.error_text()}")
        if response.status == 500:
            if not _has_code(response, "key_integrity_error"):
                raise _Retry(f"GET secret of key {key_id} answered 500: {response.error_text()}")
            # Keyvault cannot open this key's stored value, now or on a retry: retrying would
            # hold up the feed (and make every other key stale) for one damaged row, and the
            # version held may be one the change just replaced. The key is not served until an
            # event says it changed again; the snapshot leaves such keys out the same way.
            logger.error(
                "Keyvault cannot open key %s (key_integrity_error): dropped until it changes",
                key_id,
            )
        credential = None if response.status in (404, 409, 500) else wire.parse_key(response.data)
        if credential is not None and credential.key_id != key_id:
            raise wire.ProtocolError(f"asked for key {key_id}, got key {credential.key_id}")
        with self._lock:
            if self._closed:
                raise TransportClosed
            if credential is None:
                # Deleted or disabled since the event: its own event is on the way.
                self._store.drop(key_id)
            else:
                self._store.put(credential)
        if credential is None:
            logger.info("Keyvault key %s is gone or disabled: dropped", key_id)
        else:
            logger.info(
                "Keyvault key %s (%s %r) is at version %d",
                key_id,
                credential.provider,
                credential.name,
                credential.version,
            )

    def _request(self, path: str, params=None, *, read_timeout=None, also=()):
        try:
            response = self._transport.get(path, params, read_timeout=read_timeout)
        except RequestFailed as exc:
            raise _Retry(f"GET {path}: {exc}") from None
        status = response.status
        if 200 <= status < 300 or status in also:
            return response
        detail = response.error_text()
        if status == 401:
            raise _Fatal(f"Keyvault refused the token (401{': ' + detail if detail else ''})")
        if status == 403:
            raise _Fatal(
                f"the token lacks a scope for GET {path} (403); the client needs keys:read "
                "and keys:secret"
            )
        if status == 410 and _has_code(response, "cursor_expired"):
            raise _CursorExpired
        retry_after = response.retry_after() if status in (429, 503) else 0.0
        raise _Retry(f"GET {path} answered {status}{': ' + detail if detail else ''}", retry_after)

    def _succeeded(self) -> None:
        self._backoff.reset()
        if self._failures:
            logger.info("Keyvault sync recovered after %d failed attempts", self._failures)
        self._failures = 0
        self._stale_logged = False
        with self._lock:
            self._last_error = None

    def _failed(self, message: str, delay: float) -> None:
        self._failures += 1
        with self._lock:
            self._last_error = message
            ready = self._ready
            age = None if self._last_sync is None else self._clock() - self._last_sync
        if self._failures == 1:
            logger.warning("Keyvault sync failed: %s; retrying in %.2fs", message, delay)
        else:
            logger.debug("Keyvault sync failed again: %s; retrying in %.2fs", message, delay)
        if ready and not self._stale_logged and (age is None or age > self._max_staleness):
            self._stale_logged = True
            logger.error(
                "Keyvault client is stale (no successful sync within max_staleness %gs): "
                "resolve and get raise KeyvaultStaleError until a sync succeeds",
                self._max_staleness,
            )

    def _stop_for_auth(self, message: str) -> None:
        with self._lock:
            self._terminal = (KeyvaultAuthError, message)
            self._store.clear()
        # Nothing will be asked again: the kept-alive connection is let go now, not when the
        # client is collected.
        self._transport.close()
        self._settled.set()
        logger.error(
            "%s: the Keyvault client stopped and serves nothing; create one with a valid token",
            message,
        )


def _plan(events: list[wire.Event]) -> tuple[list[str], list[str]]:
    """What a page of events asks for: keys to drop now, and keys to fetch afterwards (each
    once, and only if no later event on the page drops it)."""
    drops: dict[str, None] = {}
    refreshes: dict[str, None] = {}
    for event in events:
        if event.type in wire.DROP_TYPES or event.enabled is False:
            drops[event.key_id] = None
            refreshes.pop(event.key_id, None)
        elif event.type in wire.REFRESH_TYPES:
            refreshes[event.key_id] = None
    return list(drops), list(refreshes)


def _has_code(response, code: str) -> bool:
    return isinstance(response.data, dict) and response.data.get("code") == code
