"""The audit trail: append-only, and `audit.record` refuses anything that looks like a secret."""

import pytest
from django.db import transaction

import audit
from audit import AuditAction
from audit.models import AuditEvent
from keyvault.fields import PendingSecret, SealedSecret
from keyvault.models import ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory, UserFactory

SYSTEM = Access.operator("tests")


@pytest.fixture
def event(organization):
    return audit.record(
        action=AuditAction.MEMBER_ADDED,
        actor=SYSTEM,
        organization=organization,
        metadata={"role": "member"},
    )


def snapshot():
    return list(AuditEvent.objects.order_by("pk").values())


def test_record_stores_actor_target_and_metadata(organization):
    user = UserFactory()
    key = ProviderKeyFactory(organization=organization)
    created = audit.record(
        action=AuditAction.KEY_UPDATED,
        actor=Access.for_user(user, ip="2001:db8::1"),
        organization=organization,
        target=key,
        metadata={"changes": {"name": {"from": "a", "to": "b"}}},
    )
    event = AuditEvent.objects.get(pk=created.pk)
    assert event.action == "provider_key.updated"
    assert event.actor_user == user
    assert event.actor_label == user.email
    assert event.ip_address == "2001:db8::1"
    assert event.target_type == "keyvault.providerkey"
    assert event.target_id == str(key.pk)
    assert event.target_label == str(key)
    assert event.metadata == {"changes": {"name": {"from": "a", "to": "b"}}}
    assert event.created_at is not None


def test_saving_an_existing_event_raises_and_changes_nothing(event):
    before = snapshot()
    loaded = AuditEvent.objects.get(pk=event.pk)
    loaded.action = "tampered"
    with pytest.raises(TypeError, match="append-only"):
        loaded.save()
    with pytest.raises(TypeError, match="append-only"):
        event.save(update_fields=["action"])
    assert snapshot() == before


def test_deleting_an_event_raises(event):
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_and_delete_raise_and_change_nothing(event):
    before = snapshot()
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        AuditEvent.objects.all().delete()
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    loaded = AuditEvent.objects.get(pk=event.pk)
    loaded.action = "tampered"
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        AuditEvent.objects.bulk_update([loaded], ["action"])
    assert snapshot() == before


def test_the_trail_outlives_the_organization_and_the_user(organization):
    user = UserFactory()
    audit.record(
        action=AuditAction.MEMBER_ADDED, actor=Access.for_user(user), organization=organization
    )
    organization.delete()
    user.delete()
    event = AuditEvent.objects.get()
    assert event.organization is None
    assert event.actor_user is None
    assert event.actor_label == user.email


@pytest.mark.parametrize(
    "metadata",
    [
        {"secret": "x"},
        {"api_token": "x"},
        {"Password": "x"},
        {"plaintext": "x"},
        {"credentials": "x"},
        {"client_secret": "x"},
        {"changes": {"secret": {"from": "a", "to": "b"}}},
        {"items": [{"ok": 1}, {"token": "x"}]},
    ],
)
def test_record_refuses_metadata_keys_that_suggest_secrets(organization, metadata):
    with pytest.raises(ValueError, match="suggests secret material"):
        audit.record(
            action=AuditAction.KEY_UPDATED,
            actor=SYSTEM,
            organization=organization,
            metadata=metadata,
        )
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize(
    "value",
    [
        PendingSecret("sk-proj-never-audit-me-0123456789"),
        SealedSecret("kv1.test-primary.AAAA.BBBB.CCCC"),
    ],
    ids=["pending", "sealed"],
)
@pytest.mark.parametrize(
    "wrap",
    [lambda v: {"value": v}, lambda v: {"nested": {"deep": v}}, lambda v: {"list": ["a", (v,)]}],
    ids=["top level", "nested", "in a list"],
)
def test_record_refuses_secret_objects_anywhere_in_metadata(organization, value, wrap):
    with pytest.raises(TypeError, match="holds a secret"):
        audit.record(
            action=AuditAction.KEY_UPDATED,
            actor=SYSTEM,
            organization=organization,
            metadata=wrap(value),
        )
    assert AuditEvent.objects.count() == 0


def test_a_service_write_that_fails_to_audit_writes_nothing(organization, monkeypatch):
    def broken_record(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record", broken_record)
    with pytest.raises(RuntimeError):
        ProviderKeyFactory(organization=organization)
    assert ProviderKey.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_every_action_has_a_readable_name_and_unknown_codes_show_as_stored():
    from audit import ACTION_LABELS, action_label

    assert set(ACTION_LABELS) == set(AuditAction)
    assert action_label("provider_key.rotated") == "Key rotated"
    assert action_label("something.from_a_newer_release") == "something.from_a_newer_release"
