"""Usage accounting: coalesced in memory, flushed additively, never written by the request."""

import logging
import threading
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from keyvault import services, usage
from keyvault.models import KeyUsage, ProviderKey, ProxyToken
from keyvault.usage import UsageRecorder, recorder
from organizations.access import Access
from tests.factories import ProviderKeyFactory

NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def token(make_token):
    return make_token("keys:secret")


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(organization=organization, is_default=True)


def fresh_recorder(**kwargs) -> UsageRecorder:
    return UsageRecorder(**{"flush_seconds": None, "max_pending": 10_000, **kwargs})


def counts() -> dict:
    return {
        (row.token_id, row.key_id, row.hour): row.count for row in KeyUsage.objects.order_by("hour")
    }


def fetch(client, token, key, **headers):
    return client.get(
        f"/api/v1/keys/{key.pk}/secret", HTTP_AUTHORIZATION=f"Bearer {token.raw}", **headers
    )


# --- Through the API ------------------------------------------------------------------------


def test_retrievals_are_counted_per_token_and_key(client, organization, make_token, key):
    other_key = ProviderKeyFactory(organization=organization, name="Other")
    first, second = make_token("keys:secret"), make_token("keys:secret")
    for _ in range(3):
        assert fetch(client, first, key).status_code == 200
    assert fetch(client, first, other_key).status_code == 200
    resolved = client.get(
        "/api/v1/resolve?provider=openai", HTTP_AUTHORIZATION=f"Bearer {second.raw}"
    )
    assert resolved.status_code == 200
    assert KeyUsage.objects.count() == 0

    assert recorder.flush() == 5

    def total(token, key):
        rows = KeyUsage.objects.filter(token=token, key=key)
        return rows.aggregate(n=Sum("count"))["n"]

    assert (total(first, key), total(first, other_key), total(second, key)) == (3, 1, 1)
    assert total(second, other_key) is None


def test_last_used_is_set_on_key_and_token_after_the_flush(client, token, key):
    assert fetch(client, token, key).status_code == 200
    key.refresh_from_db()
    token.refresh_from_db()
    assert key.last_used_at is None and token.last_used_at is None

    recorder.flush()

    key.refresh_from_db()
    token.refresh_from_db()
    assert key.last_used_at is not None
    assert token.last_used_at == key.last_used_at
    assert fetch(client, token, key).json()["last_used_at"] is not None


def test_a_revalidation_counts_as_a_use(client, token, key):
    etag = fetch(client, token, key)["ETag"]
    assert fetch(client, token, key, HTTP_IF_NONE_MATCH=etag).status_code == 304
    recorder.flush()
    assert KeyUsage.objects.get().count == 2


def test_failed_retrievals_are_not_counted(client, organization, make_token, key):
    disabled = ProviderKeyFactory(organization=organization, name="Off", enabled=False)
    reader = make_token("keys:read")
    secret = make_token("keys:secret")
    assert fetch(client, secret, disabled).status_code == 409
    assert fetch(client, reader, key).status_code == 403
    assert recorder.pending() == 0


def test_metadata_reads_refresh_the_token_but_count_no_retrieval(client, make_token, key):
    reader = make_token("keys:read")
    response = client.get(f"/api/v1/keys/{key.pk}", HTTP_AUTHORIZATION=f"Bearer {reader.raw}")
    assert response.status_code == 200
    recorder.flush()
    reader.refresh_from_db()
    key.refresh_from_db()
    assert reader.last_used_at is not None
    assert key.last_used_at is None
    assert KeyUsage.objects.count() == 0


@pytest.mark.parametrize("path", ["secret", "resolve", "revalidate", "ping", "snapshot", "events"])
def test_the_request_itself_writes_nothing(client, token, make_token, key, path):
    etag = fetch(client, token, key)["ETag"]
    if path == "events":  # the feed is keys:read's
        token = make_token("keys:read")
    urls = {
        "secret": (f"/api/v1/keys/{key.pk}/secret", {}),
        "resolve": ("/api/v1/resolve?provider=openai", {}),
        "revalidate": (f"/api/v1/keys/{key.pk}/secret", {"HTTP_IF_NONE_MATCH": etag}),
        "ping": ("/api/v1/ping", {}),
        "snapshot": ("/api/v1/snapshot", {}),
        "events": ("/api/v1/events?after=0&wait=5", {"wsgi.multithread": True}),
    }
    url, headers = urls[path]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token.raw}", **headers)
    assert response.status_code in (200, 304)
    statements = [q["sql"].lstrip().split(None, 1)[0].upper() for q in queries]
    # A snapshot reads in one transaction (a savepoint inside the test's): reads only.
    assert statements and set(statements) - {"SAVEPOINT", "RELEASE"} == {"SELECT"}, statements


# --- The recorder ---------------------------------------------------------------------------


def test_counts_are_bucketed_per_hour(token, key):
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON + timedelta(minutes=5))
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON + timedelta(minutes=59))
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON + timedelta(minutes=61))
    assert rec.pending() == 3
    assert rec.flush() == 3
    assert rec.pending() == 0
    assert counts() == {
        (token.pk, key.pk, NOON): 2,
        (token.pk, key.pk, NOON + timedelta(hours=1)): 1,
    }


def test_two_app_instances_add_up(token, key):
    one, two = fresh_recorder(), fresh_recorder()
    for _ in range(3):
        one.record_secret_retrieval(token.pk, key.pk, at=NOON)
    for _ in range(4):
        two.record_secret_retrieval(token.pk, key.pk, at=NOON)
    one.flush()
    two.flush()
    one.record_secret_retrieval(token.pk, key.pk, at=NOON)
    one.flush()
    assert counts() == {(token.pk, key.pk, NOON): 8}


def test_last_used_only_moves_forward(token, key):
    later, earlier = fresh_recorder(), fresh_recorder()
    later.record_secret_retrieval(token.pk, key.pk, at=NOON + timedelta(minutes=30))
    earlier.record_secret_retrieval(token.pk, key.pk, at=NOON)
    later.flush()
    earlier.flush()
    key.refresh_from_db()
    token.refresh_from_db()
    assert key.last_used_at == NOON + timedelta(minutes=30)
    assert token.last_used_at == NOON + timedelta(minutes=30)


def test_last_used_does_not_touch_updated_at(token, key):
    """The secret's ETag follows `updated_at`: recording use must not change it."""
    before = ProviderKey.objects.get(pk=key.pk).updated_at
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk)
    rec.flush()
    assert ProviderKey.objects.get(pk=key.pk).updated_at == before


def test_a_failed_flush_keeps_its_counts_for_the_next(token, key, caplog):
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    real_write = usage._write
    with (
        mock.patch.object(
            usage, "_write", side_effect=[RuntimeError("database is down"), None]
        ) as write,
        caplog.at_level(logging.ERROR, logger="keyvault.usage"),
    ):
        assert rec.flush() == 0
        assert "2 counts kept" in caplog.text
        assert rec.pending() == 2
        assert KeyUsage.objects.count() == 0
        # Counts recorded meanwhile join the kept ones.
        rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
        write.side_effect = real_write
        assert rec.flush() == 3
    assert counts() == {(token.pk, key.pk, NOON): 3}
    token.refresh_from_db()
    assert token.last_used_at == NOON


def test_a_flush_failing_half_way_rolls_back_and_retries(token, key):
    """Counts written before the failure are rolled back, so the retry does not add them
    twice."""
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    real_filter = ProxyToken.objects.filter
    calls = []

    def fail_on_the_last_used_update(*args, **kwargs):
        calls.append(kwargs)
        if "pk" in kwargs:  # The last_used_at update, after the counts were inserted.
            raise RuntimeError("connection lost")
        return real_filter(*args, **kwargs)

    with mock.patch.object(ProxyToken.objects, "filter", fail_on_the_last_used_update):
        assert rec.flush() == 0
    assert any("pk" in call for call in calls)
    assert KeyUsage.objects.count() == 0
    assert rec.flush() == 1
    assert counts() == {(token.pk, key.pk, NOON): 1}


def test_counts_for_a_deleted_key_are_dropped(organization, token, key):
    gone = ProviderKeyFactory(organization=organization, name="Gone")
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    rec.record_secret_retrieval(token.pk, gone.pk, at=NOON)
    gone_pk = gone.pk
    ProviderKey.objects.filter(pk=gone_pk).delete()

    rec.flush()

    assert counts() == {(token.pk, key.pk, NOON): 1}
    assert rec.pending() == 0


def test_counts_for_a_deleted_token_are_dropped(make_token, key):
    kept, gone = make_token("keys:secret"), make_token("keys:secret")
    rec = fresh_recorder()
    rec.record_secret_retrieval(kept.pk, key.pk, at=NOON)
    rec.record_secret_retrieval(gone.pk, key.pk, at=NOON)
    ProxyToken.objects.filter(pk=gone.pk).delete()

    rec.flush()

    assert counts() == {(kept.pk, key.pk, NOON): 1}
    assert rec.pending() == 0
    # The next flush is not poisoned by the dropped counts.
    rec.record_secret_retrieval(kept.pk, key.pk, at=NOON)
    assert rec.flush() == 1
    assert counts() == {(kept.pk, key.pk, NOON): 2}


def test_a_full_backlog_flushes_at_once(organization, token, key):
    other = ProviderKeyFactory(organization=organization, name="Other")
    rec = fresh_recorder(max_pending=2)
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)  # Same counter: still one pending.
    assert KeyUsage.objects.count() == 0
    rec.record_secret_retrieval(token.pk, other.pk, at=NOON)
    assert rec.pending() == 0
    assert sum(counts().values()) == 3


def test_stop_flushes_what_is_pending(token, key):
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    rec.stop()
    assert counts() == {(token.pk, key.pk, NOON): 1}


def test_flush_with_nothing_pending_touches_no_database(django_assert_num_queries, db):
    with django_assert_num_queries(0):
        assert fresh_recorder().flush() == 0


def test_token_use_alone_refreshes_the_token(token):
    rec = fresh_recorder()
    rec.record_token_use(token.pk, at=NOON)
    rec.flush()
    token.refresh_from_db()
    assert token.last_used_at == NOON
    assert KeyUsage.objects.count() == 0


def test_no_thread_when_flush_seconds_is_none():
    rec = fresh_recorder()
    rec.record_token_use("anything")
    assert rec._thread is None


def test_background_thread_flushes_periodically():
    flushed = threading.Event()
    rec = UsageRecorder(flush_seconds=0.01, max_pending=10_000)
    with mock.patch.object(usage, "_write", side_effect=lambda *args: flushed.set()) as write:
        rec.record_token_use("token-id", at=NOON)
        assert flushed.wait(5), "the background thread never flushed"
        rec.stop()
        rec._thread.join(5)
    assert not rec._thread.is_alive()
    assert write.call_args.args[1] == {"token-id": NOON}


def test_concurrent_recording_loses_nothing(token, key):
    rec = fresh_recorder()

    def hammer():
        for _ in range(500):
            rec.record_secret_retrieval(token.pk, key.pk, at=NOON)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rec.pending() == 4000
    rec.flush()
    assert counts() == {(token.pk, key.pk, NOON): 4000}


# --- Usage outlives the key -----------------------------------------------------------------


def test_usage_rows_survive_the_deletion_of_their_key(organization, make_token, key):
    token, other_token = make_token("keys:secret"), make_token("keys:secret")
    kept = ProviderKeyFactory(organization=organization, name="Kept")
    rec = fresh_recorder()
    for _ in range(3):
        rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    rec.record_secret_retrieval(other_token.pk, key.pk, at=NOON + timedelta(hours=1))
    rec.record_secret_retrieval(token.pk, kept.pk, at=NOON)
    assert rec.flush() == 5

    services.provider_key_delete(key=key, actor=Access.operator("tests"))

    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    assert counts() == {
        (token.pk, None, NOON): 3,
        (other_token.pk, None, NOON + timedelta(hours=1)): 1,
        (token.pk, kept.pk, NOON): 1,
    }


def test_usage_of_several_deleted_keys_in_one_hour_is_kept_apart(organization, token, key):
    """Rows whose key is gone no longer differ by key; the one-row-per-token-key-hour rule must
    not merge or refuse them."""
    second = ProviderKeyFactory(organization=organization, name="Second")
    rec = fresh_recorder()
    rec.record_secret_retrieval(token.pk, key.pk, at=NOON)
    for _ in range(2):
        rec.record_secret_retrieval(token.pk, second.pk, at=NOON)
    rec.flush()

    for doomed in (key, second):
        services.provider_key_delete(key=doomed, actor=Access.operator("tests"))

    rows = KeyUsage.objects.filter(token=token, hour=NOON)
    assert sorted(rows.values_list("key", "count")) == [(None, 1), (None, 2)]
    # Later counts for a live key still add up in their own row.
    live = ProviderKeyFactory(organization=organization, name="Live")
    for _ in range(2):
        rec.record_secret_retrieval(token.pk, live.pk, at=NOON)
        rec.flush()
    assert KeyUsage.objects.get(key=live).count == 2


def test_usage_survives_a_key_deleted_over_the_api(client, make_token, key):
    token = make_token("keys:secret", "keys:write", "keys:read")
    assert fetch(client, token, key).status_code == 200
    recorder.flush()
    response = client.delete(f"/api/v1/keys/{key.pk}", HTTP_AUTHORIZATION=f"Bearer {token.raw}")
    assert response.status_code == 204
    usage_row = KeyUsage.objects.get()
    assert (usage_row.token_id, usage_row.key_id, usage_row.count) == (token.pk, None, 1)


# --- Only a permitted request counts as the token being used --------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/keys/{id}/secret"),
        ("get", "/api/v1/resolve?provider=openai"),
        ("get", "/api/v1/snapshot"),
        ("post", "/api/v1/keys"),
        ("patch", "/api/v1/keys/{id}"),
        ("delete", "/api/v1/keys/{id}"),
    ],
    ids=["secret", "resolve", "snapshot", "create", "update", "delete"],
)
def test_a_request_refused_for_a_missing_scope_does_not_refresh_the_token(
    client, make_token, key, method, path
):
    reader = make_token("keys:read")
    body = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
    response = getattr(client, method)(
        path.format(id=key.pk), HTTP_AUTHORIZATION=f"Bearer {reader.raw}", **body
    )
    assert response.status_code == 403
    recorder.flush()
    reader.refresh_from_db()
    key.refresh_from_db()
    assert reader.last_used_at is None
    assert key.last_used_at is None
    assert KeyUsage.objects.count() == 0


def test_a_permitted_request_refreshes_the_token(client, make_token, key):
    reader = make_token("keys:read")
    assert client.get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {reader.raw}").status_code == 200
    reader.refresh_from_db()
    assert reader.last_used_at is None  # Not until the flush.
    recorder.flush()
    reader.refresh_from_db()
    assert reader.last_used_at is not None


# --- A full backlog wakes the flush thread --------------------------------------------------


def test_a_full_backlog_wakes_the_flush_thread_instead_of_flushing_in_the_request():
    calls = []
    written = threading.Event()

    def write(counts, token_last_used, key_last_used):
        calls.append((threading.current_thread().name, sum(counts.values())))
        written.set()

    rec = UsageRecorder(flush_seconds=60, max_pending=2)
    try:
        with mock.patch.object(usage, "_write", side_effect=write):
            rec.record_secret_retrieval("token", "key-1", at=NOON)
            assert rec._thread is not None and rec._thread.is_alive()
            assert not written.is_set()  # One pending counter: below the backlog limit.
            rec.record_secret_retrieval("token", "key-2", at=NOON)
            # Without the wake-up the thread would sleep its 60 seconds first.
            assert written.wait(5), "the flush thread was not woken"
            assert calls == [("keyvault-usage-flush", 2)]
            assert threading.current_thread().name != "keyvault-usage-flush"
            assert rec.pending() == 0
    finally:
        rec.stop()
        if rec._thread is not None:
            rec._thread.join(5)
    assert not rec._thread.is_alive()


@pytest.mark.parametrize("seconds", [0, -1, -0.5])
def test_a_flush_interval_that_is_not_positive_is_refused(seconds):
    # Zero would make the flush thread spin on the CPU.
    with pytest.raises(ImproperlyConfigured):
        UsageRecorder(flush_seconds=seconds, max_pending=10)


def test_a_failed_flush_of_only_last_used_times_is_remembered_for_backing_off():
    rec = UsageRecorder(flush_seconds=None, max_pending=10)
    rec.record_token_use("token-id")
    with mock.patch.object(usage, "_write", side_effect=RuntimeError("database down")):
        rec.flush()
    assert rec.last_flush_failed
    with mock.patch.object(usage, "_write"):
        rec.flush()
    assert not rec.last_flush_failed
