"""Secret versions: every rotation keeps the secret it replaces, sealed to its own row and
version number; older versions read back, roll back, survive KEK rotation, fail closed when
moved, and go with their key."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from audit import AuditAction
from audit.models import AuditEvent
from core.errors import NotFoundError
from keyvault import crypto, sealing, services
from keyvault.crypto import IntegrityError
from keyvault.models import ProviderKey, SecretVersion
from keyvault.rotation import keys_per_kek
from keyvault.selectors import secret_versions_of
from organizations.access import Access
from tests.factories import ProviderKeyFactory

OPERATOR = Access.operator("tests")
V1 = "sk-proj-versionONEabcdefghijklmnopqrstuvwxyz01"
V2 = "sk-proj-versionTWOabcdefghijklmnopqrstuvwxyz02"
V3 = "sk-proj-versionTHREEabcdefghijklmnopqrstuvwx03"


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(organization=organization, secret=V1, is_default=True)


def rotate(key, secret, actor=OPERATOR):
    return services.provider_key_rotate(key=key, actor=actor, secret=secret)


def reveal(key, number=None):
    key = ProviderKey.objects.get(pk=key.pk)
    version = None if number is None else services.provider_key_version_get(key=key, number=number)
    return services.provider_key_reveal(key=key, actor=OPERATOR, version=version)


def raw_version_envelope(version) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secret FROM {SecretVersion._meta.db_table} WHERE id = %s",  # noqa: S608
            [SecretVersion._meta.pk.get_db_prep_value(version.pk, connection)],
        )
        return cursor.fetchone()[0]


def write_version_envelope(version, text: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {SecretVersion._meta.db_table} SET secret = %s WHERE id = %s",  # noqa: S608
            [text, SecretVersion._meta.pk.get_db_prep_value(version.pk, connection)],
        )


def test_rotating_twice_keeps_each_version_readable(key):
    key = rotate(key, V2)
    key = rotate(key, V3)
    assert key.version == 3
    assert reveal(key) == V3
    assert reveal(key, 2) == V2
    assert reveal(key, 1) == V1
    assert [v.number for v in secret_versions_of(key)] == [3, 2, 1]
    assert [v.current for v in secret_versions_of(key)] == [True, False, False]


def test_each_version_has_its_own_data_key_and_envelope(key):
    key = rotate(key, V2)
    kept = SecretVersion.objects.get(key=key, number=1)
    envelope = crypto.Envelope.decode(raw_version_envelope(kept))
    current = crypto.Envelope.decode(key.secret.envelope)
    assert envelope.wrapped_key.blob != current.wrapped_key.blob
    assert envelope.nonce != current.nonce
    assert V1 not in raw_version_envelope(kept)


def test_the_listing_shows_hints_authors_and_never_a_secret(key, owner):
    key = rotate(key, V2, actor=Access.for_user(owner))
    versions = secret_versions_of(key)
    assert versions[0].created_by == owner
    assert versions[0].hint != versions[1].hint
    assert V1 not in repr(versions) and V2 not in repr(versions)


def test_a_version_moved_to_another_version_fails_closed(key):
    key = rotate(key, V2)
    key = rotate(key, V3)
    one, two = (SecretVersion.objects.get(key=key, number=n) for n in (1, 2))
    write_version_envelope(two, raw_version_envelope(one))
    with pytest.raises(IntegrityError):
        reveal(key, 2)


def test_a_version_renumbered_in_place_fails_closed(key):
    key = rotate(key, V2)
    SecretVersion.objects.filter(key=key, number=1).update(number=7)
    version = SecretVersion.objects.get(key=key, number=7)
    with pytest.raises(IntegrityError):
        sealing.open_secret(version)


def test_a_version_moved_to_another_key_fails_closed(key, organization):
    other = ProviderKeyFactory(organization=organization, secret=V3)
    key = rotate(key, V2)
    other = rotate(other, V1)
    mine = SecretVersion.objects.get(key=key, number=1)
    theirs = SecretVersion.objects.get(key=other, number=1)
    write_version_envelope(theirs, raw_version_envelope(mine))
    with pytest.raises(IntegrityError):
        reveal(other, 1)
    # Nor does the key's own envelope open as one of its versions, or the reverse.
    write_version_envelope(mine, key.secret.envelope)
    with pytest.raises(IntegrityError):
        reveal(key, 1)


def test_the_retention_keeps_the_last_versions(key, settings):
    settings.KEYVAULT_SECRET_VERSIONS_KEPT = 3
    for number in range(2, 7):
        key = rotate(key, f"sk-proj-retention{number:02d}abcdefghijklmnopqrstuvw")
    assert [v.number for v in secret_versions_of(key)] == [6, 5, 4]
    with pytest.raises(NotFoundError):
        reveal(key, 3)


def test_keeping_one_version_keeps_no_history(key, settings):
    settings.KEYVAULT_SECRET_VERSIONS_KEPT = 1
    key = rotate(key, V2)
    assert not SecretVersion.objects.filter(key=key).exists()


def test_versions_are_deleted_with_their_key(key):
    key = rotate(key, V2)
    services.provider_key_delete(key=key, actor=OPERATOR)
    assert not SecretVersion.objects.exists()


def test_rollback_makes_an_old_secret_current_as_a_new_version(key, owner):
    key = rotate(key, V2)
    key = rotate(key, V3)
    key = services.provider_key_rollback(key=key, actor=Access.for_user(owner), version=1)
    assert key.version == 4
    assert reveal(key) == V1
    assert reveal(key, 3) == V3
    event = AuditEvent.objects.filter(action=AuditAction.KEY_ROLLED_BACK).get()
    assert event.metadata["restored_version"] == 1
    assert event.metadata["version"] == 4
    assert V1 not in str(event.metadata)
    # One event for the rollback, not a rotation beside it.
    assert AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).count() == 2


@pytest.mark.parametrize("version", [0, -1, "1", True, None, 2, 99])
def test_rollback_refuses_what_is_not_a_kept_older_version(key, version):
    key = rotate(key, V2)
    with pytest.raises(ValidationError) as refused:
        services.provider_key_rollback(key=key, actor=OPERATOR, version=version)
    assert "version" in refused.value.message_dict
    assert reveal(key) == V2


def test_a_viewer_may_not_roll_back(key, actor_of):
    key = rotate(key, V2)
    with pytest.raises(PermissionDenied):
        services.provider_key_rollback(key=key, actor=actor_of("viewer"), version=1)
    assert reveal(key) == V2


def test_rollback_to_a_version_sent_elsewhere_is_refused(organization):
    key = ProviderKeyFactory(
        organization=organization,
        provider="openai_compatible",
        secret=V1,
        config={"base_url": "https://one.example.com/v1"},
    )
    key = services.provider_key_update(
        key=key, actor=OPERATOR, config={"base_url": "https://two.example.com/v1"}, secret=V2
    )
    with pytest.raises(ValidationError) as refused:
        services.provider_key_rollback(key=key, actor=OPERATOR, version=1)
    assert "other settings" in str(refused.value)
    assert reveal(key) == V2
    assert reveal(key, 1) == V1


def test_kek_rotation_rewraps_every_version(key, old_kek_first):
    with old_kek_first():
        key = rotate(key, V2)
        key = rotate(key, V3)
    assert set(keys_per_kek(SecretVersion.objects.all())) == {"test-old"}
    job = services.kek_rotate(actor=OPERATOR)
    assert job.written == 3
    assert set(keys_per_kek(SecretVersion.objects.all())) == {"test-primary"}
    assert [reveal(key, n) for n in (None, 2, 1)] == [V3, V2, V1]


def test_a_disabled_key_serves_no_version(key):
    key = rotate(key, V2)
    key = services.provider_key_update(key=key, actor=OPERATOR, enabled=False)
    version = services.provider_key_version_get(key=key, number=1)
    from keyvault.errors import KeyDisabledError

    with pytest.raises(KeyDisabledError):
        services.provider_key_reveal(key=key, actor=OPERATOR, version=version)


# --- the admin -----------------------------------------------------------------------------------

ADMIN_KEYS = "/admin/keyvault/providerkey/"


def test_the_admin_shows_the_history_and_rolls_back(tenants, signed_in, form_data):
    a = tenants.a
    key = ProviderKeyFactory(organization=a.org, created_by=a.admin, secret=V1)
    key = rotate(key, V2, actor=Access.for_user(a.admin))
    client = signed_in(a.admin)
    url = f"{ADMIN_KEYS}{key.pk}/change/"
    page = client.get(url)
    html = page.content.decode()
    assert "v1 " in html and "(current)" in html
    assert V1 not in html and V2 not in html
    data = form_data(page)
    data["rollback_to"] = "1"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    key = ProviderKey.objects.get(pk=key.pk)
    assert (key.version, reveal(key)) == (3, V1)
    assert AuditEvent.objects.filter(action=AuditAction.KEY_ROLLED_BACK).count() == 1


def test_the_admin_offers_no_rollback_to_a_member_on_someone_elses_key(tenants, signed_in):
    a = tenants.a
    key = ProviderKeyFactory(organization=a.org, created_by=a.admin, secret=V1)
    rotate(key, V2)
    response = signed_in(a.member).get(f"{ADMIN_KEYS}{key.pk}/change/")
    assert b'name="rollback_to"' not in response.content


# --- the event feed ------------------------------------------------------------------------------


def test_a_rotation_and_a_rollback_are_one_event_each(key, organization):
    from keyvault.models import KeyEvent

    before = KeyEvent.objects.filter(organization=organization).count()
    key = rotate(key, V2)
    key = services.provider_key_rollback(key=key, actor=OPERATOR, version=1)
    events = list(KeyEvent.objects.filter(organization=organization).order_by("number")[before:])
    assert [(e.type, e.version) for e in events] == [("key.rotated", 2), ("key.rotated", 3)]


def test_a_refused_rollback_writes_no_event(key, organization):
    from keyvault.models import KeyEvent

    before = KeyEvent.objects.filter(organization=organization).count()
    with pytest.raises(ValidationError):
        services.provider_key_rollback(key=key, actor=OPERATOR, version=1)
    assert KeyEvent.objects.filter(organization=organization).count() == before
