"""The audit trail's move from `keyvault` to its own app keeps every row.

A database is taken back to the migrations that had `AuditEvent` in keyvault, given events the
way that code wrote them (one by a proxy token, one by a person, one by the operator), and
migrated forward: the same rows must read through `audit.models.AuditEvent`, the token's id
must still be there without a foreign key to enforce it, and the content type (with the
permissions that point at it) must follow the model. Runs on SQLite and on PostgreSQL.
"""

import uuid

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AuditEvent

# The newest migrations of the code that had AuditEvent in keyvault; Django's own apps stay
# as they are.
BEFORE_THE_MOVE = [
    ("keyvault", "0004_kek_id_computed_from_the_envelope"),
    ("organizations", "0003_unlock_placeholder_accounts"),
]
MOVED = {"keyvault", "organizations", "audit"}
EVENT_FIELDS = [
    "id",
    "organization_id",
    "actor_user_id",
    "actor_token_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "ip_address",
    "metadata",
    "created_at",
]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    # A new executor reads which migrations are applied now, for the state of the next step.
    return MigrationExecutor(connection)


def _to_the_latest():
    executor = MigrationExecutor(connection)
    _migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def before_the_move(transactional_db):
    """The apps as they were before the move, on a database migrated to that point; the
    database is migrated to the latest state again afterwards, whatever the test did."""
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    targets = [node for node in leaves if node[0] not in MOVED] + BEFORE_THE_MOVE
    executor = _migrate(targets)
    try:
        yield executor.loader.project_state(targets).apps
    finally:
        _to_the_latest()


def _write_old_events(apps) -> list[dict]:
    Organization = apps.get_model("organizations", "Organization")
    User = apps.get_model("auth", "User")
    ProxyToken = apps.get_model("keyvault", "ProxyToken")
    OldAuditEvent = apps.get_model("keyvault", "AuditEvent")
    organization = Organization.objects.create(name="Acme", slug="acme")
    user = User.objects.create(username="ada@example.com", email="ada@example.com")
    token = ProxyToken.objects.create(
        organization=organization, name="edge", scopes=["keys:read"], digest="d" * 64
    )
    OldAuditEvent.objects.create(
        organization=organization,
        actor_token=token,
        actor_label="token edge (…abcd)",
        action="provider_key.created",
        target_type="keyvault.providerkey",
        target_id=str(uuid.uuid4()),
        target_label="openai: Production",
        ip_address="2001:db8::7",
        metadata={"provider": "openai", "changes": {"name": {"from": "a", "to": "b"}}},
    )
    OldAuditEvent.objects.create(
        organization=organization,
        actor_user=user,
        actor_label=user.email,
        action="member.added",
        target_type="organizations.membership",
        target_id="7",
        metadata={"user": "bob@example.com", "role": "member"},
    )
    OldAuditEvent.objects.create(actor_label="manage.py create_org", action="organization.created")
    return list(OldAuditEvent.objects.order_by("pk").values(*EVENT_FIELDS))


def test_every_event_survives_the_move_with_the_same_values(before_the_move):
    written = _write_old_events(before_the_move)
    token_id = written[0]["actor_token_id"]
    assert token_id is not None

    _to_the_latest()

    assert list(AuditEvent.objects.order_by("pk").values(*EVENT_FIELDS)) == written
    assert AuditEvent.objects.get(actor_token_id=token_id).action == "provider_key.created"


def test_after_the_move_an_event_may_name_a_token_that_is_gone(before_the_move):
    """The foreign key's constraint is dropped, not only forgotten by Django: a token's id stays
    in the trail after the token is deleted with its organization."""
    _write_old_events(before_the_move)
    _to_the_latest()

    gone = uuid.uuid4()
    # Autocommit: a constraint still in the database would refuse this row right here.
    event = AuditEvent.objects.create(actor_token_id=gone, actor_label="token gone", action="x")

    assert AuditEvent.objects.get(pk=event.pk).actor_token_id == gone


def test_the_content_type_and_its_permissions_follow_the_model(before_the_move):
    ContentType = before_the_move.get_model("contenttypes", "ContentType")
    Permission = before_the_move.get_model("auth", "Permission")
    # Taking the database back gave the content type back to keyvault, as it was then.
    old, _created = ContentType.objects.get_or_create(app_label="keyvault", model="auditevent")
    permission, _created = Permission.objects.get_or_create(
        content_type=old, codename="view_auditevent", defaults={"name": "Can view audit event"}
    )

    _to_the_latest()

    from django.contrib.auth.models import Permission as LivePermission
    from django.contrib.contenttypes.models import ContentType as LiveContentType

    LiveContentType.objects.clear_cache()
    moved = LiveContentType.objects.get(pk=old.pk)
    assert (moved.app_label, moved.model) == ("audit", "auditevent")
    assert LiveContentType.objects.get_for_model(AuditEvent).pk == old.pk
    assert LivePermission.objects.get(pk=permission.pk).content_type_id == old.pk
    assert not LiveContentType.objects.filter(app_label="keyvault", model="auditevent").exists()


def test_the_moved_models_match_their_migrations(db):
    call_command("makemigrations", "audit", "keyvault", "--check", "--dry-run", verbosity=0)
