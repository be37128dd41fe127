"""Long polls of the event feed (`wait`), with real threads: a parked request answers as soon as
its organization's feed moves, and with an empty page when its wait ends. On PostgreSQL the
wake comes through LISTEN/NOTIFY and a parked request holds no database connection; on SQLite
the commit wakes it in-process.

No test asserts a timing: a poll that should answer early is given a wait far longer than the
test's bound on a hang.
"""

import threading
from types import SimpleNamespace

import pytest
from django.db import connection
from rest_framework.test import APIClient

from keyvault import event_wait, services
from organizations.access import Access
from tests.factories import OrganizationFactory, ProviderKeyFactory, ProxyTokenFactory

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = Access.operator("tests")
# On a server that handles one request at a time, polls are answered at once; the test client
# says it is one unless told otherwise.
THREADED = {"wsgi.multithread": True}
HANG = 20  # seconds: a bound on a hang, never a timing being tested


@pytest.fixture(autouse=True)
def _unthrottled(settings):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 0


@pytest.fixture(autouse=True)
def _woken_at_commit_on_sqlite(monkeypatch):
    """On SQLite the test database is in memory, shared between threads through a shared
    cache, where a read that meets a write in progress fails at once ("table is locked")
    instead of waiting for it as a database file does. A parked poll's reading again every
    second could meet the test's write, so here it reads again only when a commit wakes it,
    which is what these tests are about."""
    if connection.vendor == "sqlite":
        monkeypatch.setattr(event_wait, "SQLITE_POLL_SECONDS", HANG * 3)


@pytest.fixture
def feed():
    """An organization with a key and a keys:read token; `poll(after, wait)` runs a long poll
    on its own thread and connection and returns the thread and a dict for its answer."""
    organization = OrganizationFactory()
    key = ProviderKeyFactory(organization=organization)
    token = ProxyTokenFactory(organization=organization, scopes=["keys:read"])

    def poll(after, wait, **extra):
        answer = {}

        def body():
            try:
                client = APIClient()
                response = client.get(
                    f"/api/v1/events?after={after}&wait={wait}",
                    HTTP_AUTHORIZATION=f"Bearer {token.raw}",
                    **{**THREADED, **extra},
                )
                answer["status"] = response.status_code
                answer["body"] = response.json()
            except Exception as exc:  # reported by the test
                answer["error"] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=body)
        thread.start()
        return thread, answer

    return SimpleNamespace(organization=organization, key=key, token=token, poll=poll)


def wait_until(predicate, message):
    done = threading.Event()
    for _ in range(HANG * 100):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for {message}")


def parked(count):
    """Until `count` polls wait for a wake (their first read done)."""
    wait_until(lambda: event_wait.room.asleep == count, f"{count} parked polls")


def test_a_parked_poll_answers_as_soon_as_a_key_changes(feed):
    thread, answer = feed.poll(after=1, wait=30)
    parked(1)
    services.provider_key_update(key=feed.key, actor=SYSTEM, enabled=False)
    thread.join(HANG)
    assert not thread.is_alive(), "the poll did not wake"
    assert answer.get("status") == 200, answer
    assert [e["type"] for e in answer["body"]["events"]] == ["key.disabled"]
    assert answer["body"]["cursor"] == 2
    assert event_wait.room.parked == 0


def test_a_poll_with_events_already_there_answers_at_once(feed):
    thread, answer = feed.poll(after=0, wait=30)
    thread.join(HANG)
    assert not thread.is_alive()
    assert [e["id"] for e in answer["body"]["events"]] == [1]


def test_a_poll_answers_an_empty_page_when_its_wait_ends(feed):
    thread, answer = feed.poll(after=1, wait=1)
    thread.join(HANG)
    assert not thread.is_alive()
    assert answer.get("status") == 200, answer
    assert answer["body"] == {"events": [], "cursor": 1}


def test_another_organizations_change_does_not_answer_a_poll(feed):
    thread, answer = feed.poll(after=1, wait=2)
    parked(1)
    ProviderKeyFactory(organization=OrganizationFactory())
    thread.join(HANG)
    assert answer["body"] == {"events": [], "cursor": 1}


def test_a_rolled_back_change_does_not_answer_a_poll(feed):
    from django.db import transaction

    thread, answer = feed.poll(after=1, wait=2)
    parked(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.provider_key_update(key=feed.key, actor=SYSTEM, name="Never")
        raise RuntimeError("rolled back")
    thread.join(HANG)
    assert answer["body"] == {"events": [], "cursor": 1}


def test_many_parked_polls_all_wake(feed):
    polls = [feed.poll(after=1, wait=30) for _ in range(10)]
    parked(10)
    services.provider_key_update(key=feed.key, actor=SYSTEM, name="Renamed")
    for thread, answer in polls:
        thread.join(HANG)
        assert not thread.is_alive()
        assert [e["type"] for e in answer["body"]["events"]] == ["key.updated"]


def test_a_token_revoked_while_its_poll_is_parked_gets_nothing(feed):
    thread, answer = feed.poll(after=1, wait=30)
    parked(1)
    services.proxy_token_revoke(token=feed.token, actor=SYSTEM)
    services.provider_key_update(key=feed.key, actor=SYSTEM, name="Renamed")
    thread.join(HANG)
    assert answer.get("status") == 401, answer
    assert "events" not in answer["body"]


def test_a_poll_beyond_the_waiting_room_is_answered_at_once(feed, settings):
    settings.KEYVAULT_EVENTS_MAX_WAITERS = 0
    thread, answer = feed.poll(after=1, wait=30)
    thread.join(HANG)
    assert not thread.is_alive(), "a poll beyond KEYVAULT_EVENTS_MAX_WAITERS was parked"
    assert answer["body"] == {"events": [], "cursor": 1}


def test_a_single_threaded_server_never_parks_a_poll(feed):
    thread, answer = feed.poll(after=1, wait=30, **{"wsgi.multithread": False})
    thread.join(HANG)
    assert not thread.is_alive(), "a poll parked a single-threaded server"
    assert answer["body"] == {"events": [], "cursor": 1}


def test_an_expired_cursor_is_410_even_with_wait(feed):
    thread, answer = feed.poll(after=5, wait=30)
    thread.join(HANG)
    assert answer["status"] == 410
    assert answer["body"]["code"] == "cursor_expired"


# --- PostgreSQL: LISTEN/NOTIFY, and no connection held while parked ---------------------------


def _connections_to_this_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_parked_polls_hold_no_database_connection(postgresql_only, feed):
    assert event_wait.listener.ready()
    before = _connections_to_this_database()
    polls = [feed.poll(after=1, wait=30) for _ in range(20)]
    parked(20)
    # Each poll's thread closed its connection before parking (give the server a moment to
    # see the last of them go: a bound, not a timing).
    wait_until(lambda: _connections_to_this_database() <= before, "parked polls to let go")
    services.provider_key_update(key=feed.key, actor=SYSTEM, name="Renamed")
    for thread, answer in polls:
        thread.join(HANG)
        assert [e["type"] for e in answer["body"]["events"]] == ["key.updated"]


def test_a_write_from_another_connection_wakes_through_notify(postgresql_only, feed):
    """A change made outside this process's Django code (another worker, a command) reaches
    the poll through PostgreSQL, not through anything in memory."""
    thread, answer = feed.poll(after=1, wait=30)
    parked(1)
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        # What record_key_event sends, from a connection Django knows nothing of; the poll
        # reads the feed again and finds the event that a worker elsewhere wrote.
        services.provider_key_update(key=feed.key, actor=SYSTEM, name="Renamed")
        other.execute("SELECT pg_notify('keyvault_events', %s)", [str(feed.organization.pk)])
    thread.join(HANG)
    assert [e["type"] for e in answer["body"]["events"]] == ["key.updated"]


def _listener_pids() -> set:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return {row[0] for row in cursor.fetchall()}


def test_a_lost_listener_connection_is_reestablished(postgresql_only, feed):
    assert event_wait.listener.ready()
    (old,) = _listener_pids()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [old])
    wait_until(
        lambda: _listener_pids() - {old} and event_wait.listener.connected,
        "the listener to connect again",
    )
    thread, answer = feed.poll(after=1, wait=30)
    parked(1)
    services.provider_key_update(key=feed.key, actor=SYSTEM, enabled=False)
    thread.join(HANG)
    assert [e["type"] for e in answer["body"]["events"]] == ["key.disabled"]


def test_one_organization_holds_at_most_half_of_the_waiting_room(settings):
    settings.KEYVAULT_EVENTS_MAX_WAITERS = 4
    room = event_wait.WaitingRoom()
    greedy = [room.enter("org-a") for _ in range(3)]
    assert [waiter is not None for waiter in greedy] == [True, True, False]
    # Another organization still parks its polls, up to the room's size.
    assert room.enter("org-b") is not None
    assert room.enter("org-b") is not None
    assert room.enter("org-c") is None  # the room is full
    room.leave(greedy[0])
    assert room.enter("org-c") is not None
