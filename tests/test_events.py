"""The event outbox (`keyvault/events.py`): every write path writes one event of its most
specific type in the transaction of the change, a refused or rolled-back write writes none,
and no event holds a secret or a hint of one."""

from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction

from keyvault import events, services
from keyvault.models import EventFeed, KeyEvent, KeyEventType, ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import bearer, snapshot, url
from tests.test_admin_writes import KEYS, add_key, change
from tests.test_pages_keys import post_key

pytestmark = pytest.mark.django_db

SYSTEM = Access.operator("tests")
SECRET = "sk-proj-EventS3cretQwErTyUiOpAsDfGhJkLzXcV0001"
NEW_SECRET = "sk-proj-EventR0tat3dZxCvBnMmLkJhGfDsAqWe0002"


def types_since(number: int, organization) -> list[str]:
    return list(
        KeyEvent.objects.filter(organization=organization, number__gt=number)
        .order_by("number")
        .values_list("type", flat=True)
    )


def last_number(organization) -> int:
    return events.current_cursor(organization.pk)


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(organization=organization, name="Prod", secret=SECRET)


# --- One event per change, of its most specific type -----------------------------------------


UPDATES = {
    "rename": ({"name": "Renamed"}, KeyEventType.UPDATED),
    "config": ({"config": {"organization": "org-acme"}}, KeyEventType.UPDATED),
    "default": ({"is_default": True}, KeyEventType.UPDATED),
    "disable": ({"enabled": False}, KeyEventType.DISABLED),
    "secret": ({"secret": NEW_SECRET}, KeyEventType.ROTATED),
    "same secret again": ({"secret": SECRET}, KeyEventType.ROTATED),
    "rename and rotate": ({"name": "Renamed", "secret": NEW_SECRET}, KeyEventType.ROTATED),
    "rename and disable": ({"name": "Renamed", "enabled": False}, KeyEventType.DISABLED),
    "rotate and disable": ({"secret": NEW_SECRET, "enabled": False}, KeyEventType.DISABLED),
}


@pytest.mark.parametrize(("changes", "expected"), UPDATES.values(), ids=UPDATES.keys())
def test_an_update_writes_one_event_of_its_most_specific_type(organization, key, changes, expected):
    before = last_number(organization)
    services.provider_key_update(key=key, actor=SYSTEM, **changes)
    assert types_since(before, organization) == [expected]


def test_enabling_is_key_enabled_and_rotating_while_enabling_too(organization):
    key = ProviderKeyFactory(organization=organization, enabled=False)
    before = last_number(organization)
    services.provider_key_update(key=key, actor=SYSTEM, enabled=True)
    services.provider_key_update(key=key, actor=SYSTEM, enabled=False)
    services.provider_key_update(key=key, actor=SYSTEM, enabled=True, secret=NEW_SECRET)
    assert types_since(before, organization) == ["key.enabled", "key.disabled", "key.enabled"]


def test_an_update_that_changes_nothing_writes_no_event(organization, key):
    before = last_number(organization)
    services.provider_key_update(key=key, actor=SYSTEM, name="Prod", enabled=True)
    assert types_since(before, organization) == []


def test_an_event_describes_the_key_after_the_change(organization, key):
    services.provider_key_update(key=key, actor=SYSTEM, secret=NEW_SECRET, is_default=True)
    event = KeyEvent.objects.get(organization=organization, number=last_number(organization))
    assert (event.type, event.key_id, event.provider, event.name) == (
        "key.rotated",
        key.pk,
        "openai",
        "Prod",
    )
    assert (event.version, event.is_default, event.enabled) == (2, True, True)


def test_a_deleted_keys_event_describes_it_as_it_was(organization, key):
    services.provider_key_delete(key=key, actor=SYSTEM)
    event = KeyEvent.objects.get(organization=organization, number=last_number(organization))
    assert (event.type, event.key_id, event.name) == ("key.deleted", key.pk, "Prod")
    assert event.version == 1


def test_numbers_are_consecutive_per_organization(organization, other_organization):
    for _ in range(3):
        ProviderKeyFactory(organization=organization)
        ProviderKeyFactory(organization=other_organization)
    for org in (organization, other_organization):
        numbers = KeyEvent.objects.filter(organization=org).values_list("number", flat=True)
        assert sorted(numbers) == [1, 2, 3]
        assert EventFeed.objects.get(pk=org.pk).last_event == 3


# --- Refused and rolled-back writes write nothing --------------------------------------------


def test_a_refused_write_writes_no_event(organization, key):
    ProviderKeyFactory(organization=organization, name="Taken")
    before = snapshot()
    with pytest.raises(ValidationError):
        services.provider_key_update(key=key, actor=SYSTEM, name="Taken")
    with pytest.raises(ValidationError):
        services.provider_key_create(
            organization=organization, actor=SYSTEM, provider="openai", name="Taken", secret=SECRET
        )
    assert snapshot() == before


def test_a_write_rolled_back_with_its_caller_leaves_no_event(organization, key):
    before = snapshot()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.provider_key_update(key=key, actor=SYSTEM, enabled=False)
        services.provider_key_create(
            organization=organization, actor=SYSTEM, provider="openai", name="New", secret=SECRET
        )
        services.provider_key_delete(key=key, actor=SYSTEM)
        assert types_since(1, organization) == ["key.disabled", "key.created", "key.deleted"]
        raise RuntimeError("the caller's transaction fails after the writes")
    assert snapshot() == before
    assert last_number(organization) == 1


def test_an_event_fails_the_change_with_it(organization, key, monkeypatch):
    """The outbox is part of the write: if the event cannot be written, neither is the change."""
    before = snapshot()

    def broken(*args, **kwargs):
        raise RuntimeError("the event could not be written")

    monkeypatch.setattr(KeyEvent.objects, "create", broken)
    with pytest.raises(RuntimeError):
        services.provider_key_update(key=key, actor=SYSTEM, enabled=False)
    assert snapshot() == before


def test_an_event_outside_a_transaction_is_refused(key):
    with pytest.raises(RuntimeError, match="transaction"):
        # The test's own transaction is not enough for this check: run it in autocommit.
        connection = transaction.get_connection()
        in_block = connection.in_atomic_block
        connection.in_atomic_block = False
        try:
            events.record_key_event(key, KeyEventType.UPDATED)
        finally:
            connection.in_atomic_block = in_block


def test_an_unknown_event_type_is_refused(key):
    with pytest.raises(ValueError), transaction.atomic():
        events.record_key_event(key, "key.exploded")


# --- Every write path ------------------------------------------------------------------------


def test_the_api_writes_one_event_per_request(client, organization, make_token):
    token = make_token("keys:read", "keys:write")

    def call(method, path, body=None):
        kwargs = bearer(token)
        if body is not None:
            kwargs.update(data=body, content_type="application/json")
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code < 300, response.content
        return response

    created = call(
        "post", "/api/v1/keys", {"provider": "openai", "name": "Api", "secret": SECRET}
    ).json()
    path = f"/api/v1/keys/{created['id']}"
    call("patch", path, {"name": "Api 2"})
    call("patch", path, {"secret": NEW_SECRET})
    call("patch", path, {"enabled": False})
    call("patch", path, {"enabled": True})
    call("delete", path)
    assert types_since(0, organization) == [
        "key.created",
        "key.updated",
        "key.rotated",
        "key.disabled",
        "key.enabled",
        "key.deleted",
    ]
    # A refused request writes nothing.
    response = client.patch(
        "/api/v1/keys/00000000-0000-0000-0000-000000000000",
        data={"name": "x"},
        content_type="application/json",
        **bearer(token),
    )
    assert response.status_code == 404
    assert last_number(organization) == 6


def test_the_team_pages_write_one_event_per_change(organization, owner_client):
    assert post_key(owner_client, organization, secret=SECRET).status_code == 302
    key = ProviderKey.objects.get(organization=organization)
    edit = url("keys:edit", organization, pk=key.pk)
    assert owner_client.post(edit, {"name": "Renamed", "enabled": "on"}).status_code == 302
    # The form without the box ticked disables it, and renames it: one event, key.disabled.
    assert owner_client.post(edit, {"name": "Renamed again"}).status_code == 302
    rotate = url("keys:rotate", organization, pk=key.pk)
    assert owner_client.post(rotate, {"secret": NEW_SECRET}).status_code == 302
    assert owner_client.post(url("keys:delete", organization, pk=key.pk)).status_code == 302
    assert types_since(0, organization) == [
        "key.created",
        "key.updated",
        "key.disabled",
        "key.rotated",
        "key.deleted",
    ]


def test_the_admin_writes_one_event_per_change(tenants, signed_in, form_data):
    a = tenants.a
    admin = signed_in(a.admin)
    before = last_number(a.org)
    assert add_key(admin, a.org).status_code == 302
    key = ProviderKey.objects.get(organization=a.org, name="Admin Key")
    page = f"{KEYS}{key.pk}/change/"
    assert change(admin, page, form_data, name="Renamed Key").status_code == 302
    assert change(admin, page, form_data, new_secret=NEW_SECRET).status_code == 302
    selected = {ACTION_CHECKBOX_NAME: [str(key.pk)], "index": "0"}
    admin.post(KEYS, {"action": "disable_keys", **selected})
    admin.post(KEYS, {"action": "enable_keys", **selected})
    assert admin.post(f"{KEYS}{key.pk}/delete/", {"post": "yes"}).status_code == 302
    admin.post(KEYS, {"action": "delete_selected", "post": "yes", **selected})
    other = ProviderKeyFactory(organization=a.org, name="Bulk doomed")
    admin.post(
        KEYS,
        {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [str(other.pk)]},
    )
    assert types_since(before, a.org) == [
        "key.created",
        "key.updated",
        "key.rotated",
        "key.disabled",
        "key.enabled",
        "key.deleted",
        "key.created",
        "key.deleted",
    ]


def test_seed_demo_writes_a_created_event_per_key(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    demo = ProviderKey.objects.first().organization
    assert types_since(0, demo) == ["key.created"] * ProviderKey.objects.count()


def test_rekey_writes_an_updated_event_per_key(organization, key):
    second = ProviderKeyFactory(organization=organization)
    before = last_number(organization)
    call_command("rekey", "--org", organization.slug, stdout=StringIO(), stderr=StringIO())
    rows = KeyEvent.objects.filter(organization=organization, number__gt=before)
    assert sorted((e.type, e.key_id, e.version) for e in rows) == sorted(
        [("key.updated", key.pk, 1), ("key.updated", second.pk, 1)]
    )


def test_kek_rotation_writes_no_event(organization, old_kek_first):
    """Re-wrapping data keys changes nothing an event or a snapshot shows (the secret, its
    version, the metadata), and touches every key at once: no event."""
    with old_kek_first():
        ProviderKeyFactory(organization=organization)
    before = last_number(organization)
    call_command("rotate_kek", stdout=StringIO(), stderr=StringIO())
    assert ProviderKey.objects.get(organization=organization).kek_id == "test-primary"
    assert last_number(organization) == before


def test_deleting_an_organization_takes_its_feed_with_it(organization, key):
    from organizations import services as org_services

    org_services.organization_delete(organization=organization, actor=SYSTEM)
    assert not KeyEvent.objects.filter(organization_id=organization.pk).exists()
    assert not EventFeed.objects.filter(pk=organization.pk).exists()


# --- Never a secret or a hint ----------------------------------------------------------------


def test_no_event_holds_a_secret_or_a_hint(client, organization, make_token, key):
    services.provider_key_update(key=key, actor=SYSTEM, secret=NEW_SECRET)
    services.provider_key_update(key=key, actor=SYSTEM, enabled=False)
    hints = {ProviderKey.objects.get(pk=key.pk).secret_hint, key.secret_hint}
    services.provider_key_delete(key=key, actor=SYSTEM)
    rows = list(KeyEvent.objects.filter(organization=organization).values())
    assert len(rows) == 4
    page = client.get("/api/v1/events?after=0", **bearer(make_token("keys:read"))).content.decode()
    for text in (str(rows), page):
        for secret in (SECRET, NEW_SECRET, SECRET[-8:], NEW_SECRET[-8:], *hints):
            assert secret not in text
    assert "hint" not in page
    assert "config" not in page
