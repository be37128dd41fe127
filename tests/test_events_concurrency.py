"""The event feed beside concurrent writers, with real threads on PostgreSQL: a reader that
follows the feed while writers commit in any order sees every event once, in order, with no
gap; and every snapshot is exactly the state its cursor names."""

import threading

import pytest
from rest_framework.test import APIClient

from keyvault import events, services
from keyvault.models import KeyEvent
from organizations.access import Access
from tests.factories import OrganizationFactory, ProviderKeyFactory, ProxyTokenFactory
from tests.test_live_traffic import Traffic

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = Access.operator("tests")


@pytest.fixture(autouse=True)
def _unthrottled(settings):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 0


def secret_of(index: int, version: int) -> str:
    return f"sk-proj-concurrent{index:03d}v{version:05d}abcdefghijklmnop"


class Writer:
    """One thread's keys: each step changes one of them (rename, rotate, disable, enable),
    so the thread knows every version it wrote."""

    def __init__(self, keys, offset):
        self.keys = {key.pk: (index, key) for index, key in enumerate(keys, start=offset)}
        self.step_number = 0

    def __call__(self):
        self.step_number += 1
        key_id = list(self.keys)[self.step_number % len(self.keys)]
        index, key = self.keys[key_id]
        kind = self.step_number % 4
        if kind == 0:
            key = services.provider_key_update(
                key=key, actor=SYSTEM, secret=secret_of(index, key.version + 1)
            )
        elif kind == 1:
            key = services.provider_key_update(key=key, actor=SYSTEM, enabled=not key.enabled)
        else:
            key = services.provider_key_update(
                key=key, actor=SYSTEM, name=f"Key {index} step {self.step_number}"
            )
        self.keys[key_id] = (index, key)


def organization_with_writers(writers=4, keys_each=2):
    organization = OrganizationFactory()
    steps = []
    for w in range(writers):
        keys = [
            ProviderKeyFactory(
                organization=organization,
                name=f"Key {w * keys_each + k}",
                secret=secret_of(w * keys_each + k, 1),
            )
            for k in range(keys_each)
        ]
        steps.append(Writer(keys, offset=w * keys_each))
    return organization, steps


def test_a_follower_of_the_feed_sees_every_event_once_in_order(postgresql_only):
    organization, writers = organization_with_writers()
    seen = []
    cursor = {"at": 0}

    def follow():
        page, next_cursor = events.events_after(organization_id=organization.pk, after=cursor["at"])
        seen.extend(event.number for event in page)
        cursor["at"] = next_cursor

    with Traffic(*writers, follow) as traffic:
        traffic.wait_for_rounds(400)
    assert traffic.errors == []
    # Caught up after the writers stopped.
    while True:
        before = len(seen)
        follow()
        if len(seen) == before:
            break
    total = KeyEvent.objects.filter(organization=organization).count()
    assert total > 100
    assert seen == list(range(1, total + 1))
    assert events.current_cursor(organization.pk) == total


def test_every_snapshot_is_exactly_the_state_at_its_cursor(postgresql_only):
    organization, writers = organization_with_writers()
    token = ProxyTokenFactory(organization=organization, scopes=["keys:secret"])
    snapshots = []

    def take_snapshot():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.raw}")
        response = client.get("/api/v1/snapshot")
        assert response.status_code == 200, response.content
        body = response.json()
        keys = {k["id"]: (k["version"], k["name"], k["secret"]) for k in body["keys"]}
        snapshots.append((body["cursor"], keys))

    # A writer that creates and deletes keys too, so the snapshot's set of keys changes.
    churn = {"n": 0}

    def create_and_delete():
        churn["n"] += 1
        key = ProviderKeyFactory(
            organization=organization,
            name=f"Churn {churn['n']}",
            secret=secret_of(900 + churn["n"] % 100, 1),
        )
        services.provider_key_delete(key=key, actor=SYSTEM)

    with Traffic(*writers, create_and_delete, take_snapshot, take_snapshot) as traffic:
        traffic.wait_for_rounds(300)
    assert traffic.errors == []
    assert len(snapshots) > 10

    history = list(KeyEvent.objects.filter(organization=organization).order_by("number"))
    assert [event.number for event in history] == list(range(1, len(history) + 1))
    index_of = {
        str(key_id): index for writer in writers for key_id, (index, _key) in writer.keys.items()
    }
    for cursor, keys in snapshots:
        state = {}
        for event in history[:cursor]:
            if event.type == "key.deleted":
                state.pop(str(event.key_id), None)
            else:
                state[str(event.key_id)] = event
        expected = {key_id: (e.version, e.name) for key_id, e in state.items() if e.enabled}
        assert {key_id: (v, name) for key_id, (v, name, _s) in keys.items()} == expected, cursor
        # And each secret is the one of the version shown.
        for key_id, (version, _name, secret) in keys.items():
            if key_id in index_of:
                assert secret == secret_of(index_of[key_id], version)


def test_writers_of_one_organization_do_not_wait_for_another_organizations(postgresql_only):
    """Each organization's feed row is its own lock: a transaction holding one organization's
    feed does not hold up a write in another."""
    first = ProviderKeyFactory(organization=OrganizationFactory())
    second = ProviderKeyFactory(organization=OrganizationFactory())
    from django.db import connection, transaction

    holding = threading.Event()
    release = threading.Event()
    errors = []

    def hold_first_feed():
        try:
            with transaction.atomic():
                services.provider_key_update(key=first, actor=SYSTEM, name="Held")
                holding.set()
                release.wait(20)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_first_feed)
    thread.start()
    try:
        assert holding.wait(20)
        # Would block until `release` if the feeds shared a lock.
        services.provider_key_update(key=second, actor=SYSTEM, name="Not held up")
        assert events.current_cursor(second.organization_id) == 2
        assert events.current_cursor(first.organization_id) == 1
    finally:
        release.set()
        thread.join(20)
    assert errors == []
    assert events.current_cursor(first.organization_id) == 2
