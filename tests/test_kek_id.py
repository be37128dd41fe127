"""`ProviderKey.kek_id` is computed by the database from the envelope a row holds, whoever
wrote it: every write path leaves it equal to the envelope's KEK id without setting it, nobody
can set it to anything else, the migration derives it for the rows already stored, and the
queries that find keys by KEK use its index."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from keyvault import rotation, services
from keyvault.checks import check_stored_keks_loaded
from keyvault.crypto import get_keyring
from keyvault.models import SECRET_CONTEXT_FIELDS, ProviderKey, SecretVersion
from keyvault.sealing import SealedSecret, open_secret, rewrap_secret, seal_secret
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.test_endpoint_binding import seal_format_1

OPERATOR = Access.operator("tests")
PRIMARY, OLD = "test-primary", "test-old"
SECRET = "sk-proj-kek-id-column-0123456789abcdef"
_TABLE = connection.ops.quote_name(ProviderKey._meta.db_table)


def _db_pk(key):
    return ProviderKey._meta.pk.get_db_prep_value(key.pk, connection)


def stored(key) -> tuple[str, str]:
    """The row's `(kek_id, envelope)`, read with plain SQL."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT kek_id, secret FROM {_TABLE} WHERE id = %s", [_db_pk(key)])  # noqa: S608
        return cursor.fetchone()


def stored_kek_id(key) -> str:
    """The stored `kek_id`, after checking it is the KEK id the row's envelope names."""
    kek_id, envelope = stored(key)
    assert kek_id == envelope.split(".")[1]
    return kek_id


@pytest.fixture
def key_under_old_kek(organization, old_kek_first):
    """A key sealed under `test-old`, with the keyring back to primary + old."""
    with old_kek_first():
        key = ProviderKeyFactory(organization=organization, secret=SECRET)
    assert key.kek_id == OLD
    assert stored_kek_id(key) == OLD
    return ProviderKey.objects.get(pk=key.pk)


# --- every write path ---------------------------------------------------------------------------


def test_a_created_key_has_the_kek_id_of_its_envelope(organization):
    key = services.provider_key_create(
        organization=organization, actor=OPERATOR, provider="openai", name="new", secret=SECRET
    )
    assert key.kek_id == stored_kek_id(key) == PRIMARY


def test_a_partial_save_of_the_secret_moves_the_kek_id_on_the_instance_too(key_under_old_kek):
    key = key_under_old_kek
    key.secret = SECRET
    key.save(update_fields=["secret"])
    assert stored_kek_id(key) == PRIMARY
    # Not the value loaded before the write: the database's, read again.
    assert key.kek_id == PRIMARY


def test_a_rotated_key_has_the_kek_id_of_its_new_envelope(key_under_old_kek):
    rotated = services.provider_key_rotate(
        key=key_under_old_kek, actor=OPERATOR, secret="sk-proj-rotated-0123456789abcdef"
    )
    assert rotated.kek_id == stored_kek_id(rotated) == PRIMARY


def test_rotate_kek_moves_every_kek_id_with_its_envelope(key_under_old_kek, organization):
    ProviderKeyFactory(organization=organization)
    call_command("rotate_kek", stdout=io.StringIO(), stderr=io.StringIO())
    assert {stored_kek_id(key) for key in ProviderKey.objects.all()} == {PRIMARY}


def test_rekey_moves_the_kek_id_on_the_row_and_the_instance(key_under_old_kek):
    assert services.provider_key_rekey(key=key_under_old_kek, actor=OPERATOR) is True
    assert key_under_old_kek.kek_id == stored_kek_id(key_under_old_kek) == PRIMARY


def test_upgrade_envelopes_moves_the_kek_id_with_the_new_envelope(
    organization, old_kek_first, settings
):
    key = ProviderKeyFactory(organization=organization, secret=SECRET)
    with old_kek_first():
        seal_format_1(key, SECRET)
    assert stored_kek_id(key) == OLD
    call_command("upgrade_envelopes", stdout=io.StringIO(), stderr=io.StringIO())
    assert stored(key)[1].startswith(f"kv2.{PRIMARY}.")
    assert stored_kek_id(key) == PRIMARY


def test_queryset_update_with_a_sealed_value_moves_the_kek_id(key_under_old_kek):
    ProviderKey.objects.filter(pk=key_under_old_kek.pk).update(
        secret=rewrap_secret(key_under_old_kek)
    )
    assert stored_kek_id(key_under_old_kek) == PRIMARY
    assert open_secret(ProviderKey.objects.get(pk=key_under_old_kek.pk)) == SECRET


def test_bulk_update_of_sealed_values_moves_the_kek_ids(key_under_old_kek):
    key_under_old_kek.secret = rewrap_secret(key_under_old_kek)
    ProviderKey.objects.bulk_update([key_under_old_kek], ["secret"])
    assert stored_kek_id(key_under_old_kek) == PRIMARY


def test_the_rotation_sql_moves_the_kek_id_without_naming_it(key_under_old_kek):
    assert rotation.swap_envelope(
        key_under_old_kek.pk, key_under_old_kek.secret, rewrap_secret(key_under_old_kek)
    )
    assert stored_kek_id(key_under_old_kek) == PRIMARY


def test_an_envelope_written_with_plain_sql_gets_its_kek_id(provider_key, raw_envelope):
    """As a restore from an old backup, or any hand-written UPDATE, would write it."""
    with_another_kek = raw_envelope(provider_key).replace(f".{PRIMARY}.", ".kek-2019.", 1)
    raw_envelope(provider_key, with_another_kek)
    assert stored_kek_id(provider_key) == "kek-2019"


def test_a_restored_fixture_cannot_bring_its_own_kek_id(provider_key, tmp_path):
    dump = tmp_path / "keys.json"
    call_command("dumpdata", "keyvault.providerkey", output=str(dump), verbosity=0)
    rows = json.loads(dump.read_text())
    for row in rows:
        row["fields"]["kek_id"] = "forged"
    dump.write_text(json.dumps(rows))
    ProviderKey.objects.all().delete()
    call_command("loaddata", str(dump), verbosity=0)
    assert stored_kek_id(provider_key) == PRIMARY


# --- the envelope decides: nothing else can ---------------------------------------------------


def test_the_orm_cannot_write_another_kek_id(provider_key):
    ProviderKey.objects.filter(pk=provider_key.pk).update(kek_id="forged")
    assert stored_kek_id(provider_key) == PRIMARY
    provider_key.kek_id = "forged"
    provider_key.save()
    assert stored_kek_id(provider_key) == PRIMARY


def test_the_database_refuses_sql_that_writes_the_kek_id(provider_key):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET kek_id = %s WHERE id = %s",  # noqa: S608
            ["forged", _db_pk(provider_key)],
        )
    assert stored_kek_id(provider_key) == PRIMARY


def test_e103_sees_a_kek_that_only_an_envelope_written_with_sql_names(provider_key, raw_envelope):
    """A stale `kek_id` would hide this row from the check, and the operator could retire the
    KEK its secret needs."""
    raw_envelope(provider_key, raw_envelope(provider_key).replace(f".{PRIMARY}.", ".kek-gone.", 1))
    (error,) = check_stored_keks_loaded()
    assert error.id == "keyvault.E103"
    assert "kek-gone" in error.msg
    assert rotation.pending_by_kek(get_keyring()) == {"kek-gone": 1}


# The second `.`-separated segment, or "" when there is none: PostgreSQL's `split_part`, which
# the SQLite expression spells out. The same table holds on both databases.
SEGMENTS = {
    "kv2.kek-a.AAAA.BBBB.CCCC": "kek-a",
    "kv1.k.AAAA.BBBB.CCCC": "k",
    "kv2.only": "only",
    "kv2.": "",
    "kv2..AAAA": "",
    ".lead.x": "lead",
    "no separator": "",
    "": "",
}


@pytest.mark.parametrize(("text", "kek_id"), SEGMENTS.items(), ids=repr)
def test_the_kek_id_is_the_second_segment_of_whatever_text_is_stored(
    provider_key, raw_envelope, text, kek_id
):
    raw_envelope(provider_key, text)
    assert stored(provider_key) == (kek_id, text)


# --- the index ----------------------------------------------------------------------------------


def _kek_id_indexes(model=ProviderKey) -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    # PostgreSQL has two (the second for LIKE): the planner may pick either.
    return {
        name
        for name, constraint in constraints.items()
        if constraint["index"] and constraint["columns"] == ["kek_id"]
    }


def _plans_of_the_queries_that_read(run) -> dict:
    """The query plan of each statement `run()` sends that reads `kek_id`, by the model whose
    table it reads (the keys' and the kept versions')."""
    with CaptureQueriesContext(connection) as captured:
        run()
    plans = {}
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    for sql in (query["sql"] for query in captured.captured_queries if "kek_id" in query["sql"]):
        model = SecretVersion if SecretVersion._meta.db_table in sql else ProviderKey
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # On a table of a few rows a sequential scan is cheapest: the question is
                # whether the planner can answer from the index at all.
                cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"{explain} {sql}")
            plans[model] = "\n".join(" ".join(map(str, row)) for row in cursor.fetchall())
    return plans


@pytest.mark.parametrize(
    "run",
    [
        check_stored_keks_loaded,
        rotation.keys_per_kek,
        lambda: rotation.pending_by_kek(get_keyring()),
    ],
    ids=["the check that needed KEKs are loaded", "keys per KEK", "keys under an old KEK"],
)
def test_finding_keys_by_kek_uses_the_index(organization, old_kek_first, run):
    ProviderKeyFactory(organization=organization)
    with old_kek_first():
        ProviderKeyFactory(organization=organization)
    plans = _plans_of_the_queries_that_read(run)
    assert ProviderKey in plans
    for model, plan in plans.items():
        indexes = _kek_id_indexes(model)
        assert indexes
        assert any(f" {name}" in plan for name in indexes), plan


# --- the migration ------------------------------------------------------------------------------

BEFORE = [("keyvault", "0003_secret_bound_to_routing_settings")]
AFTER = [("keyvault", "0004_kek_id_computed_from_the_envelope")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_derives_kek_id_for_the_rows_already_stored(organization, old_kek_first):
    with old_kek_first():
        under_old = ProviderKey(organization=organization, provider="openai", secret_hint="…")
        under_old_envelope = seal_secret(under_old, SECRET).envelope
    under_primary = ProviderKey(organization=organization, provider="openai", secret_hint="…")
    under_primary_envelope = seal_secret(under_primary, SECRET + "2").envelope
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old_apps = executor.loader.project_state(BEFORE).apps
        OldProviderKey = old_apps.get_model("keyvault", "ProviderKey")
        for key, envelope, kek_id in [
            (under_old, under_old_envelope, OLD),
            # A value the mirror writes of before could leave behind (a forgotten partial save).
            (under_primary, under_primary_envelope, OLD),
        ]:
            OldProviderKey.objects.create(
                id=key.pk,
                organization_id=organization.pk,
                provider="openai",
                name=str(key.pk),
                secret=SealedSecret(envelope),
                kek_id=kek_id,
                secret_hint="…",
            )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)

        assert stored(under_old) == (OLD, under_old_envelope)
        assert stored(under_primary) == (PRIMARY, under_primary_envelope)
        # Only what the secret needs: columns of later migrations are not there yet.
        current = ProviderKey.objects.only(*SECRET_CONTEXT_FIELDS)
        assert open_secret(current.get(pk=under_old.pk)) == SECRET
        assert open_secret(current.get(pk=under_primary.pk)) == SECRET + "2"

        # And back: the plain column of before is filled from the envelopes, not left empty.
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        old_apps = executor.loader.project_state(BEFORE).apps
        OldProviderKey = old_apps.get_model("keyvault", "ProviderKey")
        assert dict(OldProviderKey.objects.values_list("id", "kek_id")) == {
            under_old.pk: OLD,
            under_primary.pk: PRIMARY,
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_table_stays_introspectable(db):
    """Later migrations read the table's definition back (SQLite rebuilds tables from it)."""
    with connection.cursor() as cursor:
        columns = connection.introspection.get_table_description(cursor, "keyvault_providerkey")
    assert "kek_id" in {column.name for column in columns}
