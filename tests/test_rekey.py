"""`rekey [--org SLUG | --key ID]` and `services.provider_key_rekey`: a fresh data key and a fresh
ciphertext for the same secret (the response to exposed envelopes); same secret, same version."""

from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import OperationalError

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import services
from keyvault.models import ProviderKey
from organizations import roles
from organizations.access import Access
from tests.factories import OrganizationFactory, ProviderKeyFactory
from tests.helpers import reveal

SYSTEM = Access.operator("t")


def run(*args) -> str:
    out = StringIO()
    call_command("rekey", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def snapshot(raw_envelope, keys) -> dict:
    return {key.pk: raw_envelope(key) for key in keys}


def assert_rekeyed(before: str, after: str):
    old, new = before.split("."), after.split(".")
    assert new[0] == "kv2"
    assert new[1] == "test-primary"
    assert new[2] != old[2], "the wrapped data key"
    assert new[3] != old[3], "the nonce"
    assert new[4] != old[4], "the ciphertext"


@pytest.fixture
def two_orgs(db):
    """{org: [(key, secret), ...]} for two organizations with three keys each."""
    result = {}
    for o in range(2):
        organization = OrganizationFactory()
        result[organization] = []
        for n in range(3):
            secret = f"sk-proj-rekey-{o}-{n}-0123456789abcdefghijklmnop"
            key = ProviderKeyFactory(organization=organization, secret=secret)
            result[organization].append((key, secret))
    return result


def all_keys(two_orgs):
    return [key for pairs in two_orgs.values() for key, _secret in pairs]


def test_rekey_changes_every_binary_segment_and_keeps_the_secret_and_version(
    two_orgs, raw_envelope
):
    keys = all_keys(two_orgs)
    before = snapshot(raw_envelope, keys)

    output = run()

    assert "Re-keyed 6 secrets" in output
    for pairs in two_orgs.values():
        for key, secret in pairs:
            assert_rekeyed(before[key.pk], raw_envelope(key))
            assert reveal(key.pk) == secret
            stored = ProviderKey.objects.get(pk=key.pk)
            assert stored.version == key.version == 1
            assert stored.secret_hint == key.secret_hint
            assert stored.kek_id == "test-primary"


def test_rekey_moves_a_key_under_an_old_kek_to_the_primary(
    organization, old_kek_first, raw_envelope
):
    with old_kek_first():
        key = ProviderKeyFactory(organization=organization, secret="sk-proj-old-kek-rekeyed-0123")
    before = raw_envelope(key)

    run("--key", str(key.pk))

    assert_rekeyed(before, raw_envelope(key))
    assert reveal(key.pk) == "sk-proj-old-kek-rekeyed-0123"
    event = AuditEvent.objects.get(action=AuditAction.KEY_REKEYED)
    assert event.metadata == {"from_kek": "test-old", "to_kek": "test-primary"}


def test_rekey_org_limits_it_to_that_organization(two_orgs, raw_envelope):
    chosen, other = list(two_orgs)
    before = snapshot(raw_envelope, all_keys(two_orgs))

    assert "Re-keyed 3 secrets" in run("--org", chosen.slug)

    for key, secret in two_orgs[chosen]:
        assert_rekeyed(before[key.pk], raw_envelope(key))
        assert reveal(key.pk) == secret
    for key, _secret in two_orgs[other]:
        assert raw_envelope(key) == before[key.pk]


def test_rekey_org_accepts_the_slug_in_any_case(two_orgs, raw_envelope):
    chosen = next(iter(two_orgs))
    assert "Re-keyed 3 secrets" in run("--org", f" {chosen.slug.upper()} ")


def test_rekey_key_limits_it_to_that_key(two_orgs, raw_envelope):
    keys = all_keys(two_orgs)
    chosen = keys[4]
    before = snapshot(raw_envelope, keys)

    assert "Re-keyed 1 secrets" in run("--key", str(chosen.pk))

    for key in keys:
        if key.pk == chosen.pk:
            assert_rekeyed(before[key.pk], raw_envelope(key))
        else:
            assert raw_envelope(key) == before[key.pk]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "no-such-org"], "No organization with slug 'no-such-org'."),
        (["--key", "6f1c1f3e-0c1b-4d8e-9a55-2f0e8a7b1c2d"], "No key with id"),
        (["--key", "not-a-uuid"], "'not-a-uuid' is not a key id."),
        (["--key", ""], "is not a key id."),
        (["--org", "x", "--key", "6f1c1f3e-0c1b-4d8e-9a55-2f0e8a7b1c2d"], "not allowed with"),
    ],
)
def test_bad_targets_are_a_one_line_error_and_change_nothing(two_orgs, raw_envelope, args, message):
    before = snapshot(raw_envelope, all_keys(two_orgs))
    events = AuditEvent.objects.count()

    with pytest.raises(CommandError) as excinfo:
        run(*args)

    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert snapshot(raw_envelope, all_keys(two_orgs)) == before
    assert AuditEvent.objects.count() == events


def test_each_rekeyed_key_is_audited(two_orgs):
    chosen = next(iter(two_orgs))
    run("--org", chosen.slug)

    events = AuditEvent.objects.filter(action=AuditAction.KEY_REKEYED)
    assert sorted(event.target_id for event in events) == sorted(
        str(key.pk) for key, _secret in two_orgs[chosen]
    )
    for event in events:
        assert event.organization == chosen
        assert event.actor_label == "manage.py rekey"
        assert event.metadata == {"from_kek": "test-primary", "to_kek": "test-primary"}


def test_a_key_that_fails_to_open_is_reported_and_the_others_are_rekeyed(
    two_orgs, raw_envelope, tamper
):
    keys = all_keys(two_orgs)
    bad = keys[2]
    tampered = tamper(bad)
    before = snapshot(raw_envelope, keys)

    with pytest.raises(CommandError) as excinfo:
        run()

    assert str(bad.pk) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert raw_envelope(bad) == tampered
    for key in keys:
        if key.pk != bad.pk:
            assert_rekeyed(before[key.pk], raw_envelope(key))


# --- the service -------------------------------------------------------------------------------


def test_the_service_rekeys_and_updates_the_instance(provider_key, raw_envelope):
    before = raw_envelope(provider_key)
    secret = reveal(provider_key.pk)

    assert services.provider_key_rekey(key=provider_key, actor=SYSTEM) is True

    assert provider_key.secret.envelope == raw_envelope(provider_key)
    assert_rekeyed(before, provider_key.secret.envelope)
    assert services.provider_key_reveal(key=provider_key, actor=SYSTEM) == secret


def test_the_service_rekeys_the_users_rotation_made_meanwhile_and_keeps_it(
    provider_key, owner, raw_envelope
):
    stale = ProviderKey.objects.get(pk=provider_key.pk)
    rotated = services.provider_key_rotate(
        key=provider_key, actor=Access.for_user(owner), secret="sk-proj-the-users-new-secret-01"
    )
    after_rotation = raw_envelope(provider_key)
    events = AuditEvent.objects.count()

    assert services.provider_key_rekey(key=stale, actor=SYSTEM) is True

    # The swap on the stale envelope missed, so the current row was rekeyed: the user's new
    # secret and version are kept, under a fresh data key.
    assert_rekeyed(after_rotation, raw_envelope(provider_key))
    assert reveal(provider_key.pk) == "sk-proj-the-users-new-secret-01"
    assert ProviderKey.objects.get(pk=provider_key.pk).version == rotated.version == 2
    assert AuditEvent.objects.count() == events + 1


def test_a_kek_rewrap_made_meanwhile_does_not_count_as_a_fresh_data_key(provider_key, raw_envelope):
    """A re-wrap keeps the data key: rekey must still replace it, not report "already fresh"."""
    from keyvault import rotation
    from keyvault.crypto import get_keyring
    from keyvault.sealing import rewrap_secret

    stale = ProviderKey.objects.get(pk=provider_key.pk)
    original = raw_envelope(provider_key)
    assert rotation.swap_envelope(
        provider_key.pk, stale.secret, rewrap_secret(stale, get_keyring())
    )
    rewrapped = raw_envelope(provider_key)
    assert rewrapped.split(".")[3:] == original.split(".")[3:]

    assert services.provider_key_rekey(key=stale, actor=SYSTEM) is True

    assert_rekeyed(original, raw_envelope(provider_key))
    assert_rekeyed(rewrapped, raw_envelope(provider_key))


def test_the_service_reports_a_key_deleted_meanwhile(provider_key, owner):
    stale = ProviderKey.objects.get(pk=provider_key.pk)
    services.provider_key_delete(key=provider_key, actor=Access.for_user(owner))

    assert services.provider_key_rekey(key=stale, actor=SYSTEM) is False


def test_the_service_is_authorized_like_a_rotation(provider_key, organization, member_of):
    viewer = member_of(organization, roles.VIEWER.id).user
    with pytest.raises(PermissionDenied):
        services.provider_key_rekey(key=provider_key, actor=Access.for_user(viewer))


def test_a_database_error_stops_rekey_with_one_line(two_orgs, monkeypatch):
    real_rekey = services.provider_key_rekey
    calls = []

    def deadlocked_on_the_third(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError(
                "deadlock detected\nDETAIL:  Process 1 waits for ShareLock on transaction 2."
            )
        return real_rekey(**kwargs)

    monkeypatch.setattr(services, "provider_key_rekey", deadlocked_on_the_third)
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("rekey", stdout=out, stderr=StringIO())

    assert str(excinfo.value) == (
        "Stopped after 2 secrets by a database error (deadlock detected); run rekey again."
    )
    assert "Re-keyed 2 secrets" in out.getvalue()
