"""Long polls of the event feed: a request parks until its organization's feed moves.

- PostgreSQL: each process runs one listener thread on a connection of its own, `LISTEN`ing on
  the channel `record_key_event` notifies in the writing transaction. PostgreSQL delivers a
  notification when that transaction commits (never when it rolls back), and the listener
  wakes the requests parked for that organization. Nothing polls the database. A parked
  request holds no database connection: it closes Django's before it parks, so parked
  requests cannot use up PostgreSQL's connections.
- SQLite: a write wakes the parked requests of its own process when it commits, and parked
  requests read the feed again every `SQLITE_POLL_SECONDS` for writes of other processes.

A request is parked only if it can be woken and it would not take a thread retrievals need:
never on a server that handles one request at a time (a parked request would stop the
worker), not while the listener is down, and not beyond `KEYVAULT_EVENTS_MAX_WAITERS` per
process. Otherwise it is answered at once, with the events there are (maybe none); the client
then asks again a second later. docs/operations.md sizes the workers.
"""

import logging
import os
import threading
import time
from collections import defaultdict

from django.conf import settings
from django.db import connection, connections

from keyvault import events

logger = logging.getLogger(__name__)

MAX_WAIT = 30
SQLITE_POLL_SECONDS = 1.0
# How long a first parked request waits for the listener to connect before it answers at once.
LISTENER_START_SECONDS = 2.0
LISTENER_RETRY_SECONDS = (0.5, 1, 2, 5)
# The listener checks this often whether it should stop (a local timeout, not a query).
_LISTENER_TICK_SECONDS = 1.0


class _Waiter:
    __slots__ = ("organization_id", "woken")

    def __init__(self, organization_id: str):
        self.organization_id = organization_id
        self.woken = threading.Event()


def share_of_one_organization() -> int:
    """How many of this process's parked polls one organization may hold: half the room."""
    return max(1, settings.KEYVAULT_EVENTS_MAX_WAITERS // 2)


class WaitingRoom:
    """The requests parked in this process, by organization."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = defaultdict(set)
        self._count = 0
        self._asleep = 0

    def enter(self, organization_id) -> _Waiter | None:
        """A place to wait for the organization's feed, or None when the room is full, or when
        the organization already holds half of it (`share_of_one_organization`): one
        organization's tokens opening polls by the hundred must not turn every other
        organization's long polls into immediate answers."""
        waiter = _Waiter(str(organization_id))
        with self._lock:
            if self._count >= settings.KEYVAULT_EVENTS_MAX_WAITERS:
                return None
            if len(self._waiters[waiter.organization_id]) >= share_of_one_organization():
                return None
            self._waiters[waiter.organization_id].add(waiter)
            self._count += 1
        return waiter

    def leave(self, waiter: _Waiter) -> None:
        with self._lock:
            waiting = self._waiters.get(waiter.organization_id)
            if waiting is not None and waiter in waiting:
                waiting.discard(waiter)
                self._count -= 1
                if not waiting:
                    del self._waiters[waiter.organization_id]

    def sleep(self, waiter: _Waiter, timeout: float) -> None:
        """Wait until `waiter` is woken or `timeout` ends, then clear its flag (before the next
        read: a commit after that read sets it again)."""
        with self._lock:
            self._asleep += 1
        try:
            waiter.woken.wait(timeout)
        finally:
            with self._lock:
                self._asleep -= 1
        waiter.woken.clear()

    def wake(self, organization_id) -> None:
        with self._lock:
            waiting = list(self._waiters.get(str(organization_id), ()))
        for waiter in waiting:
            waiter.woken.set()

    def wake_all(self) -> None:
        with self._lock:
            waiting = [waiter for group in self._waiters.values() for waiter in group]
        for waiter in waiting:
            waiter.woken.set()

    @property
    def parked(self) -> int:
        """Requests in the room: waiting, or reading between waits."""
        with self._lock:
            return self._count

    @property
    def asleep(self) -> int:
        """Requests waiting for a wake right now."""
        with self._lock:
            return self._asleep


room = WaitingRoom()


class Listener:
    """The process's PostgreSQL listener: one thread and one connection, started on the first
    long poll (in each process: a forked worker starts its own)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()

    def ready(self, timeout: float = LISTENER_START_SECONDS) -> bool:
        """Whether notifications are being received, starting the listener if need be."""
        if self._connected.is_set() and self._pid == os.getpid():
            return True
        with self._lock:
            starting = (
                self._pid != os.getpid() or self._thread is None or not self._thread.is_alive()
            )
            if starting:
                self._start()
        # Only the first request waits for the connection; while the listener is reconnecting,
        # requests are answered at once.
        return self._connected.wait(timeout if starting else 0)

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self._pid == os.getpid()

    def _start(self) -> None:
        # The parameters of Django's own connection (in tests, the test database's), read here
        # in the requesting thread.
        params = connections["default"].get_connection_params()
        self._pid = os.getpid()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(params, self._connected, self._stop),
            name="keyvault-event-listener",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join(timeout)

    def _run(self, params, connected: threading.Event, stop: threading.Event) -> None:
        import psycopg

        failures = 0
        while not stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {events.CHANNEL}")
                    connected.set()
                    if failures:
                        logger.info("Event listener connected again")
                    failures = 0
                    # Whatever committed while no one listened: parked requests read again.
                    room.wake_all()
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=_LISTENER_TICK_SECONDS):
                            room.wake(notify.payload)
            except Exception as exc:
                failures += 1
                # The type and the driver's text: names the server, never a row or a secret.
                logger.warning(
                    "Event listener lost its connection: %s: %s", type(exc).__name__, exc
                )
            finally:
                connected.clear()
                # Parked requests answer now rather than wait for a wake that may not come.
                room.wake_all()
            stop.wait(LISTENER_RETRY_SECONDS[min(failures, len(LISTENER_RETRY_SECONDS)) - 1])


listener = Listener()


def _can_wake() -> bool:
    if connection.vendor == "postgresql":
        return listener.ready()
    return True


def _release_connection() -> None:
    """Close Django's connection before parking (opened again by the next query). Not inside a
    transaction: a test's, which closing would end."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        connection.close()


def events_page(*, organization_id, after: int, wait: int, parkable: bool = True):
    """`events.events_after`, waiting up to `wait` seconds for a first event when there is
    none yet. `parkable` is false on a server that handles one request at a time."""
    if wait <= 0 or not parkable or not _can_wake():
        return events.events_after(organization_id=organization_id, after=after)
    # In the room before the first read: a change that commits after that read wakes us.
    waiter = room.enter(organization_id)
    if waiter is None:
        return events.events_after(organization_id=organization_id, after=after)
    polling = connection.vendor != "postgresql"
    deadline = time.monotonic() + wait
    try:
        while True:
            page, cursor = events.events_after(organization_id=organization_id, after=after)
            remaining = deadline - time.monotonic()
            if page or remaining <= 0 or not (polling or listener.connected):
                return page, cursor
            _release_connection()
            room.sleep(waiter, min(remaining, SQLITE_POLL_SECONDS) if polling else remaining)
    finally:
        room.leave(waiter)
