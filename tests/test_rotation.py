"""KEK rotation: `rotate_kek` and `keyvault.rotation`.

Keys are sealed under `test-old` (made primary for a moment), then the default order of the
test settings is back (`test-primary` first) and the job moves them. What must hold: every
secret still reveals to its original, only the wrapped data key changes (the nonce and the
ciphertext are byte-identical), an interrupted job resumes, and a user's concurrent change wins.
"""

import logging
import multiprocessing
import os
import signal
import threading
from io import StringIO

import psycopg.errors
import pytest
from django.core.management import CommandError, call_command, load_command_class
from django.db import OperationalError, connection, connections

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import rotation, services
from keyvault.crypto import get_keyring
from keyvault.management.interrupts import interrupt_on_sigterm
from keyvault.models import ProviderKey
from keyvault.sealing import SealedSecret, rewrap_secret
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import reveal

SYSTEM = Access.operator("t")
PRIMARY_ID, OLD_ID = "test-primary", "test-old"


def run(*args):
    """call_command("rotate_kek"), returning what it printed on stdout."""
    out = StringIO()
    call_command("rotate_kek", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def segments(envelope: str) -> list[str]:
    return envelope.split(".")


def kek_of(pk) -> str:
    return ProviderKey.objects.values_list("kek_id", flat=True).get(pk=pk)


def by_id(keys):
    """In the order the job walks them."""
    return sorted(keys, key=lambda key: str(key.pk))


@pytest.fixture
def secrets_by_pk():
    return {}


@pytest.fixture
def old_keys(organization, old_kek_first, secrets_by_pk):
    """Ten keys sealed under test-old; `secrets_by_pk` holds what each must reveal to."""
    keys = []
    with old_kek_first():
        assert get_keyring().primary_kek_id == OLD_ID
        for n in range(10):
            secret = f"sk-proj-rotation-{n:02d}-0123456789abcdefghijklmnop"
            key = ProviderKeyFactory(organization=organization, secret=secret)
            secrets_by_pk[key.pk] = secret
            keys.append(key)
    assert get_keyring().primary_kek_id == PRIMARY_ID
    assert {kek_of(key.pk) for key in keys} == {OLD_ID}
    return keys


@pytest.fixture
def user(owner):
    return Access.for_user(owner)


# --- the job ---------------------------------------------------------------------------------


def test_rotate_kek_rewraps_every_key_and_keeps_nonce_and_ciphertext_byte_identical(
    old_keys, secrets_by_pk, raw_envelope
):
    before = {key.pk: segments(raw_envelope(key)) for key in old_keys}

    output = run("--batch-size", "3")

    assert "Re-wrapped 10 keys under test-primary" in output
    for key in old_keys:
        after = segments(raw_envelope(key))
        old = before[key.pk]
        assert kek_of(key.pk) == PRIMARY_ID
        assert after[0] == old[0] == "kv2"
        assert (old[1], after[1]) == (OLD_ID, PRIMARY_ID)
        assert after[2] != old[2]  # the wrapped data key
        assert after[3] == old[3]  # the nonce
        assert after[4] == old[4]  # the ciphertext and tag
        assert reveal(key.pk) == secrets_by_pk[key.pk]


def test_keys_already_under_the_primary_are_not_touched(old_keys, organization, raw_envelope):
    current = ProviderKeyFactory(organization=organization)
    envelope = raw_envelope(current)

    run()

    assert raw_envelope(current) == envelope


def test_the_output_lists_what_is_pending_per_kek_and_a_summary(old_keys):
    output = run()
    assert "Primary KEK: test-primary" in output
    assert "10 keys under test-old" in output
    assert "rows/s" in output
    assert "0 changed by users meanwhile" in output


def test_a_dry_run_reports_and_writes_nothing(old_keys, raw_envelope):
    before = {key.pk: raw_envelope(key) for key in old_keys}
    events = AuditEvent.objects.count()

    output = run("--dry-run")

    assert "10 keys under test-old" in output
    assert "10 keys would be re-wrapped (dry run)." in output
    assert {key.pk: raw_envelope(key) for key in old_keys} == before
    assert {kek_of(key.pk) for key in old_keys} == {OLD_ID}
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("size", ["0", "-1", "50001"])
def test_a_batch_size_out_of_range_is_a_one_line_error_and_changes_nothing(
    old_keys, raw_envelope, size
):
    before = {key.pk: raw_envelope(key) for key in old_keys}
    with pytest.raises(CommandError) as excinfo:
        run("--batch-size", size)
    message = str(excinfo.value)
    assert "--batch-size must be between 1 and 50000" in message
    assert "\n" not in message
    assert {key.pk: raw_envelope(key) for key in old_keys} == before


@pytest.mark.parametrize("size", ["1", "50000"])
def test_the_batch_size_limits_are_accepted(old_keys, size):
    run("--batch-size", size)
    assert set(ProviderKey.objects.values_list("kek_id", flat=True)) == {PRIMARY_ID}


def test_a_batch_size_that_is_not_a_number_is_a_one_line_error(old_keys):
    with pytest.raises(CommandError) as excinfo:
        run("--batch-size", "many")
    assert "\n" not in str(excinfo.value)


def test_a_second_run_has_nothing_to_do_and_changes_nothing(old_keys, raw_envelope):
    run()
    after_first = {key.pk: raw_envelope(key) for key in old_keys}
    events = AuditEvent.objects.count()

    output = run()

    assert "Nothing to do." in output
    assert {key.pk: raw_envelope(key) for key in old_keys} == after_first
    assert AuditEvent.objects.count() == events


def test_an_empty_database_has_nothing_to_do(db):
    assert "Nothing to do." in run()


def test_the_rotation_is_recorded_in_the_audit_log_with_counts(old_keys):
    run("--batch-size", "4")
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert event.actor_label == "manage.py rotate_kek"
    assert event.metadata == {
        "primary": PRIMARY_ID,
        "rewrapped": 10,
        "changed_concurrently": 0,
        "failed": 0,
        "interrupted": False,
    }


def test_kek_rotate_limited_to_some_keys_rewraps_only_those(old_keys, secrets_by_pk):
    chosen, others = by_id(old_keys)[:3], by_id(old_keys)[3:]
    batches = []

    job = services.kek_rotate(
        actor=SYSTEM,
        keys=ProviderKey.objects.filter(pk__in=[key.pk for key in chosen]),
        batch_size=2,
        on_batch=batches.append,
    )

    assert (job.primary, job.written, job.stopped) == (PRIMARY_ID, 3, False)
    assert [batch.rewrapped for batch in batches] == [2, 1]
    assert {kek_of(key.pk) for key in chosen} == {PRIMARY_ID}
    assert {kek_of(key.pk) for key in others} == {OLD_ID}
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert (event.actor_label, event.metadata["rewrapped"]) == ("t", 3)
    assert all(reveal(key.pk) == secrets_by_pk[key.pk] for key in old_keys)


# --- interruption and resumption ---------------------------------------------------------------


def test_an_interruption_after_some_batches_keeps_them_and_a_rerun_finishes(
    old_keys, secrets_by_pk, monkeypatch
):
    real_batch = rotation.rewrap_batch
    calls = []

    def interrupted_on_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(rotation, "rewrap_batch", interrupted_on_the_third_batch)
    with pytest.raises(CommandError) as excinfo:
        run("--batch-size", "2")
    message = str(excinfo.value)
    assert message.startswith("Interrupted after 4 keys")
    assert "\n" not in message

    ordered = by_id(old_keys)
    assert [kek_of(key.pk) for key in ordered] == [PRIMARY_ID] * 4 + [OLD_ID] * 6
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert event.metadata["interrupted"] is True
    assert event.metadata["rewrapped"] == 4

    monkeypatch.setattr(rotation, "rewrap_batch", real_batch)
    assert "Re-wrapped 6 keys" in run("--batch-size", "2")
    for key in old_keys:
        assert kek_of(key.pk) == PRIMARY_ID
        assert reveal(key.pk) == secrets_by_pk[key.pk]


def test_an_interruption_inside_a_batch_rolls_that_batch_back(
    old_keys, secrets_by_pk, raw_envelope, monkeypatch
):
    before = {key.pk: raw_envelope(key) for key in old_keys}
    real_swaps = rotation.swap_envelopes
    calls = []

    def interrupted_in_the_second_batch(swaps, *model):
        calls.append(1)
        if len(calls) == 2:
            real_swaps(swaps[:1], *model)  # a write inside the second batch's transaction...
            raise KeyboardInterrupt  # ...that the interruption must roll back
        return real_swaps(swaps, *model)

    monkeypatch.setattr(rotation, "swap_envelopes", interrupted_in_the_second_batch)
    with pytest.raises(CommandError, match=r"^Interrupted after 4 keys"):
        run("--batch-size", "4")

    # The first batch (4 keys) is committed; the fifth key, written in the interrupted batch,
    # was rolled back with it.
    ordered = by_id(old_keys)
    assert [kek_of(key.pk) for key in ordered] == [PRIMARY_ID] * 4 + [OLD_ID] * 6
    for key in ordered[4:]:
        assert raw_envelope(key) == before[key.pk]

    monkeypatch.setattr(rotation, "swap_envelopes", real_swaps)
    run("--batch-size", "4")
    for key in old_keys:
        assert kek_of(key.pk) == PRIMARY_ID
        assert reveal(key.pk) == secrets_by_pk[key.pk]


def test_sigterm_stops_the_job_like_ctrl_c(old_keys, secrets_by_pk, monkeypatch):
    real_batch = rotation.rewrap_batch
    calls = []

    def terminated_before_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(rotation, "rewrap_batch", terminated_before_the_second_batch)
    with pytest.raises(CommandError, match=r"^Interrupted after 5 keys"):
        run("--batch-size", "5")

    monkeypatch.setattr(rotation, "rewrap_batch", real_batch)
    run()
    assert all(reveal(key.pk) == secrets_by_pk[key.pk] for key in old_keys)


def test_the_previous_sigterm_handler_is_restored_after_the_job(old_keys):
    before = signal.getsignal(signal.SIGTERM)
    run()
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_job_can_run_outside_the_main_thread():
    # Signal handlers can be set only from the main thread: elsewhere (call_command in a worker
    # thread) the job runs without one instead of failing.
    errors = []

    def body():
        try:
            with interrupt_on_sigterm():
                pass
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert errors == []


# --- database errors ---------------------------------------------------------------------------


def lock_conflict(cls=psycopg.errors.DeadlockDetected) -> OperationalError:
    """What Django raises when PostgreSQL aborts a transaction to resolve a lock conflict."""
    error = OperationalError(
        "deadlock detected\nDETAIL:  Process 1 waits for ShareLock on transaction 2; "
        "blocked by process 3.\nHINT:  See server log for query details."
    )
    error.__cause__ = cls("deadlock detected")
    return error


def failing_swaps(monkeypatch, errors):
    """`swap_envelopes` that writes one row of its batch, then raises the next of `errors`
    (while any are left); the write must go with the rolled-back batch."""
    real_swaps = rotation.swap_envelopes
    errors = list(errors)

    def swap(swaps, *model):
        if not errors:
            return real_swaps(swaps, *model)
        real_swaps(swaps[:1], *model)
        raise errors.pop(0)

    monkeypatch.setattr(rotation, "swap_envelopes", swap)
    return errors


def test_a_database_error_stops_the_job_with_one_line_and_a_non_zero_exit(
    old_keys, secrets_by_pk, monkeypatch, capsys
):
    real_batch = rotation.rewrap_batch
    calls = []

    def connection_lost_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError(
                "server closed the connection unexpectedly\n\tThis probably means the server "
                "terminated abnormally\n\tbefore or while processing the request."
            )
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(rotation, "rewrap_batch", connection_lost_on_the_second_batch)
    # As `manage.py rotate_kek` runs it: the exit status and what reaches the terminal. (Django
    # closes the connections afterwards; the test still needs its own.)
    monkeypatch.setattr(connections, "close_all", lambda: None)
    command = load_command_class("keyvault", "rotate_kek")
    with pytest.raises(SystemExit) as excinfo:
        command.run_from_argv(["manage.py", "rotate_kek", "--batch-size", "4"])

    assert excinfo.value.code == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors[-1] == (
        "CommandError: Stopped after 4 keys by a database error (server closed the connection "
        "unexpectedly); run rotate_kek again to finish."
    )
    assert not any("Traceback" in line for line in errors)
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert (event.metadata["rewrapped"], event.metadata["interrupted"]) == (4, True)

    monkeypatch.setattr(rotation, "rewrap_batch", real_batch)
    assert "Re-wrapped 6 keys" in run()
    assert all(reveal(key.pk) == secrets_by_pk[key.pk] for key in old_keys)


def test_a_database_error_outside_the_batches_is_one_line(old_keys, monkeypatch):
    def database_down(keyring):
        raise OperationalError('connection to server at "db" failed: Connection refused\n\t…')

    monkeypatch.setattr("keyvault.management.commands.rotate_kek.pending_by_kek", database_down)
    with pytest.raises(CommandError) as excinfo:
        run()
    assert str(excinfo.value) == (
        'Database error: connection to server at "db" failed: Connection refused'
    )


# Real transactions: a batch is retried only when it is the outermost one (not inside a test's).
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "cls", [psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure]
)
def test_a_batch_rolled_back_by_a_lock_conflict_is_tried_again(
    old_keys, secrets_by_pk, raw_envelope, monkeypatch, caplog, cls
):
    failing_swaps(monkeypatch, [lock_conflict(cls), lock_conflict(cls)])

    with caplog.at_level(logging.WARNING, logger="keyvault.rotation"):
        output = run("--batch-size", "4")

    assert "Re-wrapped 10 keys" in output
    assert "0 changed by users meanwhile" in output  # the rolled-back writes left no trace
    assert [r.getMessage() for r in caplog.records] == [
        f"KEK rotation: a batch of 4 keys was rolled back by a lock conflict ({cls.sqlstate}); "
        f"trying it again (attempt {n} of 3)."
        for n in (2, 3)
    ]
    for key in old_keys:
        assert kek_of(key.pk) == PRIMARY_ID
        assert reveal(key.pk) == secrets_by_pk[key.pk]


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_keeps_conflicting_stops_the_job_after_three_attempts(
    old_keys, secrets_by_pk, monkeypatch
):
    failing_swaps(monkeypatch, [lock_conflict()] * 3)

    with pytest.raises(CommandError) as excinfo:
        run("--batch-size", "4")

    assert str(excinfo.value) == (
        "Stopped after 0 keys by a database error (deadlock detected); "
        "run rotate_kek again to finish."
    )
    assert {kek_of(key.pk) for key in old_keys} == {OLD_ID}
    assert "Re-wrapped 10 keys" in run("--batch-size", "4")


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_tried_again(old_keys, monkeypatch):
    left = failing_swaps(monkeypatch, [OperationalError("disk full"), OperationalError("again")])
    with pytest.raises(CommandError, match=r"\(disk full\)"):
        run()
    assert len(left) == 1


# --- live traffic during the job ---------------------------------------------------------------


def racing(monkeypatch, target, action):
    """Run `action()` the first time the job re-wraps `target`: after the job read the row and
    before it writes it back."""
    done = []

    real_rewrap = rotation.rewrap_row

    def rewrap(store, row, keyring, legacy):
        if row[0] == target.pk and not done:
            done.append(action())
        return real_rewrap(store, row, keyring, legacy)

    monkeypatch.setattr(rotation, "rewrap_row", rewrap)
    return done


def test_a_user_rotation_during_the_job_is_kept(
    old_keys, secrets_by_pk, user, raw_envelope, monkeypatch
):
    target = old_keys[3]
    new_secret = "sk-proj-rotated-by-a-user-while-the-job-ran-0123"
    done = racing(
        monkeypatch,
        target,
        lambda: services.provider_key_rotate(
            key=ProviderKey.objects.get(pk=target.pk), actor=user, secret=new_secret
        ),
    )

    output = run("--batch-size", "3")

    assert done, "the user rotation did not run during the job"
    assert "1 changed by users meanwhile" in output
    key = ProviderKey.objects.get(pk=target.pk)
    assert reveal(target.pk) == new_secret
    assert key.version == 2
    assert key.kek_id == PRIMARY_ID
    assert segments(raw_envelope(target))[1] == PRIMARY_ID
    for other in old_keys:
        if other.pk != target.pk:
            assert reveal(other.pk) == secrets_by_pk[other.pk]
            assert kek_of(other.pk) == PRIMARY_ID
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert (event.metadata["rewrapped"], event.metadata["changed_concurrently"]) == (9, 1)


def test_a_name_edit_during_the_job_is_kept(old_keys, secrets_by_pk, user, monkeypatch):
    target = old_keys[6]
    done = racing(
        monkeypatch,
        target,
        lambda: services.provider_key_update(
            key=ProviderKey.objects.get(pk=target.pk), actor=user, name="Renamed meanwhile"
        ),
    )

    run("--batch-size", "3")

    assert done
    key = ProviderKey.objects.get(pk=target.pk)
    assert key.name == "Renamed meanwhile"
    assert key.kek_id == PRIMARY_ID
    assert key.version == 1
    assert reveal(target.pk) == secrets_by_pk[target.pk]


def test_a_key_deleted_during_the_job_is_skipped(old_keys, user, monkeypatch):
    target = old_keys[2]
    racing(
        monkeypatch,
        target,
        lambda: services.provider_key_delete(key=ProviderKey.objects.get(pk=target.pk), actor=user),
    )

    output = run()

    assert "Re-wrapped 9 keys" in output
    assert not ProviderKey.objects.filter(pk=target.pk).exists()
    assert set(ProviderKey.objects.values_list("kek_id", flat=True)) == {PRIMARY_ID}


# --- keys that cannot be re-wrapped ------------------------------------------------------------


def test_a_key_that_fails_to_open_is_reported_by_id_left_unchanged_and_the_others_rewrapped(
    old_keys, secrets_by_pk, tamper, raw_envelope
):
    bad = old_keys[4]
    tampered = tamper(bad)

    with pytest.raises(CommandError) as excinfo:
        run("--batch-size", "3")

    message = str(excinfo.value)
    assert str(bad.pk) in message
    assert message.startswith("1 keys could not be opened")
    assert "\n" not in message
    assert raw_envelope(bad) == tampered
    assert kek_of(bad.pk) == OLD_ID
    for key in old_keys:
        if key.pk != bad.pk:
            assert kek_of(key.pk) == PRIMARY_ID
            assert reveal(key.pk) == secrets_by_pk[key.pk]
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert (event.metadata["rewrapped"], event.metadata["failed"]) == (9, 1)

    # A rerun tries it again (and only it), and still reports it.
    with pytest.raises(CommandError, match=str(bad.pk)):
        run()
    assert raw_envelope(bad) == tampered


def test_keys_under_a_kek_that_is_not_loaded_are_reported_and_left_alone(
    old_keys, organization, settings, raw_envelope
):
    before = {key.pk: raw_envelope(key) for key in old_keys}
    settings.KEYVAULT_KEKS = settings.KEYVAULT_KEKS.split(",")[0]  # test-primary only

    assert "10 keys under test-old  (not loaded: cannot be re-wrapped)" in run("--dry-run")
    with pytest.raises(CommandError, match=r"^10 keys could not be opened"):
        run()
    assert {key.pk: raw_envelope(key) for key in old_keys} == before


# --- keyvault.rotation -------------------------------------------------------------------------


def test_pending_by_kek_counts_keys_outside_the_primary(old_keys, organization):
    ProviderKeyFactory(organization=organization)
    assert rotation.pending_by_kek(get_keyring()) == {OLD_ID: 10}


def test_swap_envelope_writes_only_over_the_envelope_it_read_and_moves_kek_id(
    old_keys, raw_envelope
):
    key = ProviderKey.objects.get(pk=old_keys[0].pk)
    old = key.secret
    new = rewrap_secret(key)
    stale = SealedSecret(raw_envelope(old_keys[1]))

    assert rotation.swap_envelope(key.pk, stale, new) is False
    assert raw_envelope(key) == old.envelope
    assert rotation.swap_envelope(key.pk, old, new) is True
    assert raw_envelope(key) == new.envelope
    assert kek_of(key.pk) == PRIMARY_ID
    # Done once: the same compare-and-swap cannot apply twice.
    assert rotation.swap_envelope(key.pk, old, new) is False


def test_rewrap_all_ends_even_when_keys_keep_failing(old_keys, tamper):
    bad = {old_keys[0].pk, old_keys[7].pk}
    for key in old_keys:
        if key.pk in bad:
            tamper(key, segment=2)
    batches = list(rotation.rewrap_all(get_keyring(), batch_size=3))
    assert len(batches) == 4
    assert sum(batch.rewrapped for batch in batches) == 8
    assert {pk for batch in batches for pk in batch.failed} == bad


# --- real concurrency (PostgreSQL: a second connection, row locks) ----------------------------


def in_thread(function):
    """Run `function` on its own database connection; returns (thread, results)."""
    results = []

    def body():
        try:
            results.append(function())
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    return thread, results


@pytest.mark.django_db(transaction=True)
def test_a_user_rotation_committed_between_read_and_write_is_kept(
    postgresql_only, old_keys, secrets_by_pk, user, monkeypatch
):
    target = old_keys[5]
    new_secret = "sk-proj-another-connection-rotated-this-key-0123"
    threads = []

    def rotate_elsewhere():
        thread, results = in_thread(
            lambda: services.provider_key_rotate(
                key=ProviderKey.objects.get(pk=target.pk), actor=user, secret=new_secret
            )
        )
        thread.join(timeout=30)
        threads.append(results)

    racing(monkeypatch, target, rotate_elsewhere)
    run("--batch-size", "4")

    assert not isinstance(threads[0][0], Exception)
    key = ProviderKey.objects.get(pk=target.pk)
    assert (reveal(target.pk), key.version, key.kek_id) == (new_secret, 2, PRIMARY_ID)
    for other in old_keys:
        if other.pk != target.pk:
            assert reveal(other.pk) == secrets_by_pk[other.pk]


@pytest.mark.django_db(transaction=True)
def test_a_user_rotation_waiting_on_the_jobs_row_lock_is_applied_after_it(
    postgresql_only, old_keys, user, monkeypatch
):
    # The job has already written the target in its open batch (the row is locked); the user's
    # rotation waits for the batch to commit, then applies on top of the re-wrapped row.
    ordered = by_id(old_keys)
    target, next_key = ordered[0], ordered[1]
    new_secret = "sk-proj-rotated-after-waiting-for-the-batch-0123"
    started = []
    racing(
        monkeypatch,
        next_key,
        lambda: started.append(
            in_thread(
                lambda: services.provider_key_rotate(
                    key=ProviderKey.objects.get(pk=target.pk), actor=user, secret=new_secret
                )
            )
        ),
    )

    run("--batch-size", "10")

    thread, results = started[0]
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not isinstance(results[0], Exception)
    key = ProviderKey.objects.get(pk=target.pk)
    assert (reveal(target.pk), key.version, key.kek_id) == (new_secret, 2, PRIMARY_ID)


# --- crypto in worker processes ----------------------------------------------------------------


def test_workers_rewrap_every_key_and_version_and_end_with_the_job(
    old_keys, secrets_by_pk, old_kek_first
):
    from keyvault.models import SecretVersion

    with old_kek_first():
        for key in old_keys[:3]:
            services.provider_key_rotate(
                key=key, actor=Access.operator("t"), secret=secrets_by_pk[key.pk] + "-next"
            )
    output = run("--batch-size", "3", "--workers", "2")
    assert "Re-wrapped 13 keys" in output
    assert set(ProviderKey.objects.values_list("kek_id", flat=True)) == {PRIMARY_ID}
    assert set(SecretVersion.objects.values_list("kek_id", flat=True)) == {PRIMARY_ID}
    for key in old_keys[3:]:
        assert reveal(key.pk) == secrets_by_pk[key.pk]
    # The workers are gone with the job (the pool ended them; none is left behind).
    assert multiprocessing.active_children() == []


def test_workers_under_sigterm_stop_like_the_sequential_job(old_keys, secrets_by_pk, monkeypatch):
    real_written = rotation._written
    calls = []

    def terminated_after_the_first_batch(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_written(*args)

    monkeypatch.setattr(rotation, "_written", terminated_after_the_first_batch)
    with pytest.raises(CommandError, match=r"^Interrupted after"):
        run("--batch-size", "3", "--workers", "2")
    assert multiprocessing.active_children() == []
    monkeypatch.setattr(rotation, "_written", real_written)
    run("--workers", "2")
    assert all(reveal(key.pk) == secrets_by_pk[key.pk] for key in old_keys)
