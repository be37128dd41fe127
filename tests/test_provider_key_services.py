"""`keyvault.services` for provider keys: happy paths, every bad input from the issue (a clear
field error and nothing written), the database constraints behind the checks, the decrypt path,
and property-based round trips."""

import json
import logging
import sys
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import crypto, providers, sealing, services
from keyvault.errors import KeyDisabledError
from keyvault.fields import SealedSecret
from keyvault.models import SECRET_MAX_BYTES, ProviderKey
from organizations import roles
from organizations.access import Access
from tests import matrix
from tests.helpers import key_row, raw_secret_column, snapshot
from tests.test_text import INVISIBLE_NAMES, VISIBLE_NAMES

OPERATOR = Access.operator("tests")

SYSTEM = Access.operator("tests")
KIB_16 = 16 * 1024

SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "my-project",
    "private_key_id": "0123456789abcdef0123456789abcdef01234567",
    "private_key": (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    ),
    "client_email": "svc@my-project.iam.gserviceaccount.com",
}
VERTEX_CONFIG = {"project": "my-project", "location": "us-central1"}

AZURE_CONFIG = {
    "endpoint": "https://example.openai.azure.com",
    "deployment": "gpt-4o",
    "api_version": "2024-06-01",
}


def create(organization, **overrides):
    kwargs = {
        "organization": organization,
        "actor": SYSTEM,
        "provider": "openai",
        "name": "Production",
        "secret": "sk-proj-service-test-abcdefghijklmnop1234",
    }
    kwargs.update(overrides)
    return services.provider_key_create(**kwargs)


def raw_audit_rows() -> list[tuple]:
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
        return cursor.fetchall()


def assert_field_error(exc_info, field: str) -> None:
    assert field in exc_info.value.message_dict, exc_info.value.message_dict


# --- create ---------------------------------------------------------------------------------


def test_create_stores_the_key_and_records_an_audit_event(organization, owner):
    key = create(
        organization,
        actor=Access.for_user(owner, ip="203.0.113.9"),
        name="  Production  ",
        secret="  sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ\n",
        config={"base_url": " https://proxy.example.com/v1 ", "organization": ""},
        is_default=True,
    )
    key.refresh_from_db()
    assert key.name == "Production"
    assert key.config == {"base_url": "https://proxy.example.com/v1"}
    assert key.is_default is True
    assert key.enabled is True
    assert key.version == 1
    assert key.rotated_at is None
    assert key.kek_id == "test-primary"
    assert key.secret_hint == "sk-proj-…WXYZ"
    assert key.created_by == owner
    assert (
        services.provider_key_reveal(actor=OPERATOR, key=key)
        == "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ"
    )

    event = AuditEvent.objects.get()
    assert event.action == AuditAction.KEY_CREATED
    assert event.organization == organization
    assert event.actor_user == owner
    assert event.actor_label == owner.email
    assert event.ip_address == "203.0.113.9"
    assert event.target_type == "keyvault.providerkey"
    assert event.target_id == str(key.pk)
    assert event.metadata == {
        "provider": "openai",
        "name": "Production",
        "hint": "sk-proj-…WXYZ",
        "is_default": True,
        "enabled": True,
        "priority": 100,
    }


def test_create_by_the_operator_has_no_created_by(organization):
    key = create(organization)
    assert key.created_by is None
    assert AuditEvent.objects.get().actor_label == "tests"


def test_create_accepts_an_azure_key_with_its_required_config(organization):
    key = create(
        organization, provider="azure_openai", secret="0123456789abcdef", config=AZURE_CONFIG
    )
    assert key.config == AZURE_CONFIG


def test_same_name_in_another_org_or_another_provider_is_fine(organization, other_organization):
    create(organization, name="Shared")
    create(other_organization, name="shared")
    create(organization, name="SHARED", provider="anthropic", secret="sk-ant-0123456789abcdef")
    assert ProviderKey.objects.filter(name__iexact="shared").count() == 3


def test_one_default_per_provider_and_org(organization, other_organization):
    create(organization, name="A", is_default=True)
    create(organization, name="B", provider="groq", secret="gsk_0123456789abcdef", is_default=True)
    create(other_organization, name="C", is_default=True)
    assert ProviderKey.objects.filter(is_default=True).count() == 3


def test_a_viewer_cannot_create_a_key_and_nothing_is_written(organization, member_of):
    viewer = member_of(organization, roles.VIEWER.id).user
    before = snapshot()
    with pytest.raises(PermissionDenied):
        create(organization, actor=Access.for_user(viewer))
    assert snapshot() == before


def test_a_user_of_another_org_cannot_create_a_key(organization, other_organization, member_of):
    outsider = member_of(other_organization, roles.OWNER.id).user
    before = snapshot()
    with pytest.raises(PermissionDenied):
        create(organization, actor=Access.for_user(outsider))
    assert snapshot() == before


# --- create: bad input ----------------------------------------------------------------------


BAD_CREATE_INPUT = [
    ("empty secret", {"secret": ""}, "secret"),
    ("whitespace-only secret", {"secret": " \t\r\n\u00a0\u2003 "}, "secret"),
    ("non-text secret", {"secret": b"sk-bytes-0123456789"}, "secret"),
    ("secret one byte over 16 KiB", {"secret": "a" * (KIB_16 + 1)}, "secret"),
    ("multi-byte secret over 16 KiB", {"secret": "é" * (KIB_16 // 2) + "a"}, "secret"),
    ("unknown provider", {"provider": "openai2"}, "provider"),
    ("non-text provider", {"provider": None}, "provider"),
    ("empty name", {"name": "   "}, "name"),
    ("name too long", {"name": "n" * 101}, "name"),
    ("name with NUL", {"name": "prod\x00uction"}, "name"),
    ("unknown config key", {"config": {"region": "us-east-1"}}, "config"),
    ("bad config URL", {"config": {"base_url": "ftp://example.com"}}, "config"),
    ("config URL with NUL", {"config": {"base_url": "https://example.com/\x00"}}, "config"),
    ("config of the wrong type", {"config": {"base_url": 42}}, "config"),
    ("config not an object", {"config": ["https://example.com"]}, "config"),
    ("config a string", {"config": "base_url=https://example.com"}, "config"),
    ("bad config pattern", {"config": {"organization": "acme"}}, "config"),
    (
        "azure without endpoint",
        {
            "provider": "azure_openai",
            "config": {k: v for k, v in AZURE_CONFIG.items() if k != "endpoint"},
        },
        "config",
    ),
    ("openai-compatible without base URL", {"provider": "openai_compatible"}, "config"),
    ("vertex secret not JSON", {"provider": "vertex", "secret": "not-json-at-all"}, "secret"),
    ("is_default not a bool", {"is_default": "yes"}, "is_default"),
    ("enabled not a bool", {"enabled": 1}, "enabled"),
]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [case[1:] for case in BAD_CREATE_INPUT],
    ids=[case[0] for case in BAD_CREATE_INPUT],
)
def test_create_rejects_bad_input_and_writes_nothing(organization, overrides, field):
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        create(organization, **overrides)
    assert_field_error(exc_info, field)
    assert snapshot() == before


def test_create_reports_every_field_error_at_once(organization):
    with pytest.raises(ValidationError) as exc_info:
        create(organization, name="", secret="", config={"nope": "x"}, enabled="no")
    assert set(exc_info.value.message_dict) == {"name", "secret", "config", "enabled"}


def test_a_bad_secret_is_never_echoed_in_the_error(organization):
    secret = "x" * (KIB_16 + 1)
    with pytest.raises(ValidationError) as exc_info:
        create(organization, secret=secret)
    assert "xxxxxxxx" not in str(exc_info.value)
    with pytest.raises(ValidationError) as exc_info:
        create(organization, provider="vertex", secret="sk-not-a-service-account-QWERTY")
    assert "QWERTY" not in str(exc_info.value)


def _service_account_of(size: int, filler: str) -> str:
    """A service-account JSON document (multi-byte text is allowed only in those) of exactly
    `size` UTF-8 bytes, padded with `filler`."""
    document = {**SERVICE_ACCOUNT, "note": ""}
    base = len(json.dumps(document, ensure_ascii=False).encode())
    count, rest = divmod(size - base, len(filler.encode()))
    document["note"] = filler * count + "x" * rest
    return json.dumps(document, ensure_ascii=False)


def test_a_secret_of_exactly_16_kib_is_accepted(organization):
    cases = [
        ("mistral", "a" * KIB_16, {}),
        ("vertex", _service_account_of(KIB_16, "é"), VERTEX_CONFIG),
        ("vertex", _service_account_of(KIB_16, "🔑"), VERTEX_CONFIG),
    ]
    for number, (provider, secret, config) in enumerate(cases):
        assert len(secret.encode()) == SECRET_MAX_BYTES
        key = create(
            organization, name=f"big {number}", provider=provider, secret=secret, config=config
        )
        assert (
            services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))
            == secret
        )


def test_the_size_limit_applies_after_stripping(organization):
    key = create(organization, provider="mistral", secret=" " + "a" * KIB_16 + "\n")
    assert services.provider_key_reveal(actor=OPERATOR, key=key) == "a" * KIB_16


def test_duplicate_name_is_rejected_ignoring_case(organization):
    create(organization, name="Production")
    before = snapshot()
    for name in ("Production", "production", "  PRODUCTION "):
        with pytest.raises(ValidationError) as exc_info:
            create(organization, name=name)
        assert_field_error(exc_info, "name")
    assert snapshot() == before


def test_a_name_the_database_folds_together_is_a_field_error_never_a_crash(organization):
    # The Kelvin sign lower-cases to "k" in PostgreSQL; SQLite folds only ASCII. Either way the
    # service must answer with a field error or accept the key, never an IntegrityError.
    create(organization, name="k")
    try:
        create(organization, name="\u212a")
    except ValidationError as exc:
        assert "name" in exc.message_dict
        assert ProviderKey.objects.count() == 1
    else:
        assert ProviderKey.objects.count() == 2


def test_a_second_default_is_rejected_on_create(organization):
    create(organization, name="First", is_default=True)
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        create(organization, name="Second", is_default=True)
    assert_field_error(exc_info, "is_default")
    assert snapshot() == before


def test_a_deeply_nested_json_secret_is_a_field_error_for_vertex(organization):
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        create(organization, provider="vertex", secret='{"a":' + "[" * 16000)
    assert_field_error(exc_info, "secret")
    assert snapshot() == before


def test_a_deeply_nested_json_secret_is_stored_as_is_for_other_providers(organization):
    secret = '{"a":' + "[" * 16000
    key = create(organization, provider="mistral", secret=secret)
    assert services.provider_key_reveal(actor=OPERATOR, key=key) == secret


# --- names must be visible, one-line text -----------------------------------------------------


@pytest.mark.parametrize("name", INVISIBLE_NAMES.values(), ids=INVISIBLE_NAMES.keys())
def test_create_refuses_a_name_with_invisible_characters_and_writes_nothing(organization, name):
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        create(organization, name=name)
    assert set(exc_info.value.message_dict) == {"name"}
    assert snapshot() == before


@pytest.mark.parametrize("name", VISIBLE_NAMES.values(), ids=VISIBLE_NAMES.keys())
def test_create_keeps_a_visible_name_in_any_script(organization, name):
    key = create(organization, name=f" {name} ")
    assert ProviderKey.objects.get(pk=key.pk).name == name


@pytest.mark.parametrize("name", INVISIBLE_NAMES.values(), ids=INVISIBLE_NAMES.keys())
def test_rename_refuses_a_name_with_invisible_characters(organization, name):
    key = create(organization, name="Production")
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        services.provider_key_update(key=key, actor=SYSTEM, name=name)
    assert set(exc_info.value.message_dict) == {"name"}
    assert ProviderKey.objects.get(pk=key.pk).name == "Production"
    assert snapshot() == before


# --- database constraints behind the service checks -----------------------------------------


def _direct(organization, **fields):
    key = ProviderKey(
        organization=organization,
        provider="openai",
        secret="sk-proj-direct-0123456789abcdef",
        secret_hint="sk-proj-…cdef",
        **fields,
    )
    with transaction.atomic():
        key.save()
    return key


def test_the_database_rejects_a_second_default(organization):
    _direct(organization, name="A", is_default=True)
    with pytest.raises(IntegrityError):
        _direct(organization, name="B", is_default=True)
    _direct(organization, name="C", is_default=False)
    assert ProviderKey.objects.filter(organization=organization).count() == 2


def test_the_database_rejects_a_duplicate_name_ignoring_case(organization, other_organization):
    _direct(organization, name="Production")
    with pytest.raises(IntegrityError):
        _direct(organization, name="PRODUCTION")
    _direct(other_organization, name="PRODUCTION")
    assert ProviderKey.objects.count() == 2


# --- update ---------------------------------------------------------------------------------


def test_update_changes_name_config_default_and_enabled_without_a_version_bump(organization):
    key = create(organization)
    envelope_before = raw_secret_column(key)
    updated = services.provider_key_update(
        key=key,
        actor=SYSTEM,
        name="Renamed",
        config={"project": "proj_abc123"},
        is_default=True,
        enabled=False,
    )
    updated.refresh_from_db()
    assert (updated.name, updated.config, updated.is_default, updated.enabled) == (
        "Renamed",
        {"project": "proj_abc123"},
        True,
        False,
    )
    assert updated.version == 1
    assert updated.rotated_at is None
    assert updated.kek_id == "test-primary"
    assert raw_secret_column(key) == envelope_before
    event = AuditEvent.objects.filter(action=AuditAction.KEY_UPDATED).get()
    assert event.target_id == str(key.pk)
    assert event.metadata == {
        "changes": {
            "name": {"from": "Production", "to": "Renamed"},
            "config": {"from": {}, "to": {"project": "proj_abc123"}},
            "is_default": {"from": False, "to": True},
            "enabled": {"from": True, "to": False},
        }
    }


def test_update_that_changes_nothing_records_nothing(organization):
    key = create(organization)
    services.provider_key_update(key=key, actor=SYSTEM, name="Production", enabled=True)
    assert AuditEvent.objects.count() == 1


def test_renaming_a_key_to_another_case_of_its_own_name_is_fine(organization):
    key = create(organization, name="production")
    assert services.provider_key_update(key=key, actor=SYSTEM, name="Production").name == (
        "Production"
    )


BAD_UPDATE_INPUT = [
    ("empty name", {"name": ""}, "name"),
    ("name with a newline", {"name": "a\nb"}, "name"),
    ("unknown config key", {"config": {"endpoint": "https://x.example.com"}}, "config"),
    ("bad config URL", {"config": {"base_url": "not a url"}}, "config"),
    ("config not an object", {"config": 7}, "config"),
    ("is_default not a bool", {"is_default": None}, "is_default"),
    ("enabled not a bool", {"enabled": "false"}, "enabled"),
    ("duplicate name", {"name": "OTHER"}, "name"),
    ("second default", {"is_default": True}, "is_default"),
]


@pytest.mark.parametrize(
    ("changes", "field"),
    [case[1:] for case in BAD_UPDATE_INPUT],
    ids=[case[0] for case in BAD_UPDATE_INPUT],
)
def test_update_rejects_bad_input_and_leaves_the_row_unchanged(organization, changes, field):
    create(organization, name="Other", is_default=True)
    key = create(organization, name="Mine")
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        services.provider_key_update(key=key, actor=SYSTEM, **changes)
    assert_field_error(exc_info, field)
    assert snapshot() == before


def test_azure_update_cannot_drop_a_required_setting(organization):
    key = create(
        organization, provider="azure_openai", secret="0123456789abcdef", config=AZURE_CONFIG
    )
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        services.provider_key_update(key=key, actor=SYSTEM, config={**AZURE_CONFIG, "endpoint": ""})
    assert_field_error(exc_info, "config")
    assert snapshot() == before


# --- rotate ---------------------------------------------------------------------------------


def test_rotate_replaces_the_secret_bumps_the_version_and_recomputes_the_hint(organization):
    key = create(organization, secret="sk-proj-original-secret-value-AAAA")
    envelope_before = ProviderKey.objects.get(pk=key.pk).secret.envelope
    rotated = services.provider_key_rotate(
        key=key, actor=SYSTEM, secret=" sk-proj-rotated-secret-value-BBBB\n"
    )
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert loaded.version == 2
    assert loaded.rotated_at is not None
    assert loaded.secret_hint == "sk-proj-…BBBB"
    assert loaded.kek_id == "test-primary"
    assert loaded.secret.envelope != envelope_before
    assert rotated.version == 2
    assert (
        services.provider_key_reveal(actor=OPERATOR, key=loaded)
        == "sk-proj-rotated-secret-value-BBBB"
    )

    event = AuditEvent.objects.get(action=AuditAction.KEY_ROTATED)
    assert event.metadata == {
        "previous_hint": "sk-proj-…AAAA",
        "hint": "sk-proj-…BBBB",
        "version": 2,
        "sent_to": {},
    }

    services.provider_key_rotate(key=loaded, actor=SYSTEM, secret="sk-proj-third-secret-value-CCCC")
    assert ProviderKey.objects.get(pk=key.pk).version == 3


def test_rotate_moves_a_key_sealed_under_an_old_kek_to_the_primary(organization, settings):
    old = "test-old:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="
    primary = "test-primary:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    settings.KEYVAULT_KEKS = old
    key = create(organization)
    assert key.kek_id == "test-old"
    settings.KEYVAULT_KEKS = f"{primary},{old}"
    rotated = services.provider_key_rotate(
        key=key, actor=SYSTEM, secret="sk-proj-new-0123456789abc"
    )
    assert rotated.kek_id == "test-primary"
    assert ProviderKey.objects.get(pk=key.pk).kek_id == "test-primary"


@pytest.mark.parametrize(
    ("secret", "provider"),
    [("", "openai"), ("  \n", "openai"), ("a" * (KIB_16 + 1), "openai"), ("{}", "vertex")],
    ids=["empty", "whitespace", "too large", "vertex without service account fields"],
)
def test_rotate_rejects_bad_secrets_and_leaves_the_row_unchanged(organization, secret, provider):
    if provider == "vertex":
        key = create(
            organization,
            provider="vertex",
            secret=json.dumps(SERVICE_ACCOUNT),
            config={"project": "my-project", "location": "us-central1"},
        )
    else:
        key = create(organization)
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        services.provider_key_rotate(key=key, actor=SYSTEM, secret=secret)
    assert_field_error(exc_info, "secret")
    assert snapshot() == before


def test_a_member_cannot_rotate_a_key_someone_else_added(organization, owner, member_of):
    key = create(organization, actor=Access.for_user(owner))
    member = member_of(organization, roles.MEMBER.id).user
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.provider_key_rotate(
            key=key, actor=Access.for_user(member), secret="sk-new-0123456789"
        )
    assert snapshot() == before


# --- delete ---------------------------------------------------------------------------------


def test_delete_removes_the_row_and_records_the_event(organization):
    key = create(organization, name="Doomed")
    services.provider_key_delete(key=key, actor=SYSTEM)
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action=AuditAction.KEY_DELETED)
    assert event.target_id == str(key.pk)
    assert event.target_label == f"OpenAI: Doomed ({key.secret_hint})"
    assert event.metadata == {"provider": "openai", "name": "Doomed", "hint": key.secret_hint}


# --- reveal ---------------------------------------------------------------------------------


def test_a_disabled_key_is_not_revealed(organization):
    key = create(organization, enabled=False)
    with pytest.raises(KeyDisabledError):
        services.provider_key_reveal(actor=OPERATOR, key=key)
    enabled = services.provider_key_update(key=key, actor=SYSTEM, enabled=True)
    assert services.provider_key_reveal(actor=OPERATOR, key=enabled).startswith("sk-proj-")


def test_a_tampered_secret_raises_a_typed_error_logs_the_key_id_and_changes_nothing(
    organization, caplog
):
    secret = "sk-proj-tamper-target-0123456789QRST"
    victim = create(organization, name="Victim", secret=secret)
    source = create(organization, name="Source", secret="sk-proj-source-0123456789abcdefUVWX")
    ProviderKey.objects.filter(pk=victim.pk).update(
        secret=ProviderKey.objects.get(pk=source.pk).secret
    )
    before = snapshot()
    loaded = ProviderKey.objects.get(pk=victim.pk)
    with (
        caplog.at_level(logging.ERROR, logger="keyvault.services.provider_keys"),
        pytest.raises(crypto.IntegrityError) as exc_info,
    ):
        services.provider_key_reveal(actor=OPERATOR, key=loaded)
    assert str(victim.pk) in caplog.text
    for text in (caplog.text, str(exc_info.value)):
        assert secret not in text
        assert "sk-proj-source" not in text
        assert loaded.secret.envelope not in text
    assert isinstance(loaded.secret, SealedSecret)
    assert snapshot() == before


def test_a_key_whose_kek_was_removed_raises_unknown_kek(organization, settings):
    key = create(organization)
    settings.KEYVAULT_KEKS = "elsewhere:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    with pytest.raises(crypto.UnknownKEKError):
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))


# --- reveal: who may decrypt ---------------------------------------------------------------

REVEALED = "sk-proj-reveal-authorization-0123456789"


def _reveal_target(organization, **overrides):
    return ProviderKey.objects.get(pk=create(organization, secret=REVEALED, **overrides).pk)


@pytest.mark.parametrize("role", matrix.ROLES)
def test_no_user_may_reveal_a_key_whatever_their_role(organization, member_of, opened, role):
    key = _reveal_target(organization)
    user = member_of(organization, role).user
    with pytest.raises(PermissionDenied):
        services.provider_key_reveal(key=key, actor=Access.for_user(user))
    opened.assert_not_called()


@pytest.mark.parametrize("role", matrix.in_order(matrix.ALLOWED["key.add"]))
def test_not_even_the_user_who_added_the_key_may_reveal_it(organization, member_of, opened, role):
    user = member_of(organization, role).user
    key = _reveal_target(organization, actor=Access.for_user(user))
    assert key.created_by == user
    with pytest.raises(PermissionDenied):
        services.provider_key_reveal(key=key, actor=Access.for_user(user))
    opened.assert_not_called()


def test_a_user_is_refused_before_learning_that_a_key_is_disabled(organization, owner, opened):
    key = _reveal_target(organization, enabled=False)
    with pytest.raises(PermissionDenied):
        services.provider_key_reveal(key=key, actor=Access.for_user(owner))
    opened.assert_not_called()


def test_a_token_with_keys_secret_of_the_keys_organization_may_reveal_it(organization, make_token):
    key = _reveal_target(organization)
    token = make_token("keys:secret")
    assert services.provider_key_reveal(key=key, actor=Access.for_token(token)) == REVEALED


@pytest.mark.parametrize(
    "scopes",
    [["keys:read"], ["keys:write"], ["keys:read", "keys:write"]],
    ids=["keys:read", "keys:write", "keys:read+write"],
)
def test_a_token_without_keys_secret_may_not_reveal(organization, make_token, opened, scopes):
    key = _reveal_target(organization)
    with pytest.raises(PermissionDenied):
        services.provider_key_reveal(key=key, actor=Access.for_token(make_token(*scopes)))
    opened.assert_not_called()


def test_a_keys_secret_token_of_another_organization_may_not_reveal(
    organization, other_organization, make_token, opened
):
    key = _reveal_target(organization)
    outsider = make_token("keys:read", "keys:secret", "keys:write", organization=other_organization)
    with pytest.raises(PermissionDenied):
        services.provider_key_reveal(key=key, actor=Access.for_token(outsider))
    opened.assert_not_called()


def test_the_operator_may_reveal(organization):
    key = _reveal_target(organization)
    assert services.provider_key_reveal(key=key, actor=Access.operator()) == REVEALED


# --- nothing in the database reveals the secret ---------------------------------------------


STORED_SECRETS = [
    ("openai", "sk-proj-RawColumnCheck0123456789abcdefXYZ1", {}),
    ("anthropic", "sk-ant-api03-RawColumnCheck-0123456789-ZZ99", {}),
    ("mistral", "mistral-RawColumnCheck-0123456789-~!@#$%^&*", {}),
    ("groq", "gsk_" + "Q" * 60, {}),
    ("vertex", json.dumps(SERVICE_ACCOUNT), {"project": "my-project", "location": "us-central1"}),
    (
        "vertex",
        json.dumps({**SERVICE_ACCOUNT, "note": "clé-ünïcødé-🔑-日本語"}, ensure_ascii=False),
        {"project": "my-project", "location": "us-central1"},
    ),
]


def test_no_column_and_no_audit_row_contains_the_plaintext(organization):
    keys = []
    for number, (provider, secret, config) in enumerate(STORED_SECRETS):
        key = create(
            organization, name=f"k{number}", provider=provider, secret=secret, config=config
        )
        key = services.provider_key_update(key=key, actor=SYSTEM, name=f"renamed {number}")
        keys.append((services.provider_key_rotate(key=key, actor=SYSTEM, secret=secret), secret))

    audit_rows = repr(raw_audit_rows())
    assert "kv2." not in audit_rows
    for key, secret in keys:
        row = key_row(key)
        assert raw_secret_column(key).startswith("kv2.test-primary.")
        for needle in (secret, secret[:12], secret[-12:], json.dumps(secret)[1:-1]):
            assert needle not in repr(row)
            assert needle not in audit_rows
        if secret.startswith("{"):
            assert SERVICE_ACCOUNT["private_key"][28:60] not in repr(row)
        assert (
            services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))
            == secret
        )

    for key, _secret in keys:
        services.provider_key_delete(key=key, actor=SYSTEM)
    audit_rows = repr(raw_audit_rows())
    for _key, secret in keys:
        assert secret[:12] not in audit_rows


@pytest.mark.parametrize(("provider", "secret", "config"), STORED_SECRETS)
def test_the_hint_shows_no_more_than_a_public_prefix_and_four_characters(
    organization, provider, secret, config
):
    key = create(organization, provider=provider, secret=secret, config=config)
    prefix, _, tail = key.secret_hint.partition("…")
    assert len(tail) <= 4
    if provider == "vertex":
        assert prefix == "service account "
        assert SERVICE_ACCOUNT["private_key_id"].endswith(tail)
    else:
        assert secret.startswith(prefix)
        assert prefix in key.provider_obj.key_prefixes or prefix == ""
        assert secret.endswith(tail)


# --- properties -----------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WHITESPACE = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
_example_counter = iter(range(10**9))


def _unique_name() -> str:
    return f"property {next(_example_counter)}"


def _fits(text: str) -> bool:
    """Storable as a single-line provider's secret: not blank, not too large, and free of the
    control characters that are refused inside a secret (tests/test_secret_safety.py)."""
    stripped = text.strip()
    return (
        bool(stripped)
        and len(stripped.encode("utf-8")) <= SECRET_MAX_BYTES
        and providers.secret_control_problem(providers.get_provider("mistral"), stripped) is None
    )


@PROPERTY_SETTINGS
@given(secret=st.text(min_size=1, max_size=300).filter(_fits))
@example(secret="  sk-with-padding-0123456789 \n")
@example(secret="\t\nline breaks only at the ends\r\n")
def test_any_non_blank_text_round_trips_to_its_stripped_form(organization, secret):
    key = create(organization, provider="mistral", name=_unique_name(), secret=secret)
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert services.provider_key_reveal(actor=OPERATOR, key=loaded) == secret.strip()
    if len(secret.strip()) >= 12:
        assert secret.strip() not in raw_secret_column(key)
    _prefix, _, tail = loaded.secret_hint.partition("…")
    assert len(tail) <= 4
    assert secret.strip().endswith(tail)


@PROPERTY_SETTINGS
@given(secret=st.text(alphabet=st.sampled_from(WHITESPACE), max_size=50))
def test_whitespace_only_text_is_rejected_and_nothing_written(organization, secret):
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        create(organization, provider="mistral", name=_unique_name(), secret=secret)
    assert_field_error(exc_info, "secret")
    assert snapshot() == before


def _fill_to_limit(seed: str, extra_bytes: int = 0) -> str:
    """`seed` repeated to exactly 16 KiB (+ `extra_bytes`) of UTF-8, or as close as its widths
    allow, with no surrounding whitespace."""
    seed = seed.strip() or "x"
    limit = SECRET_MAX_BYTES + extra_bytes
    text = seed * (limit // len(seed.encode()) + 1)
    while len(text.encode()) > limit:
        text = text[:-1]
    text = text.strip()
    return text + "x" * (limit - len(text.encode()))


@PROPERTY_SETTINGS
@given(seed=st.text(min_size=1, max_size=20).filter(_fits))
def test_a_16_kib_value_round_trips_and_one_byte_more_is_rejected(organization, seed):
    secret = _fill_to_limit(seed)
    assert len(secret.encode()) == SECRET_MAX_BYTES
    key = create(organization, provider="mistral", name=_unique_name(), secret=secret)
    assert (
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))
        == secret
    )

    too_big = _fill_to_limit(seed, extra_bytes=1)
    assert len(too_big.encode()) == SECRET_MAX_BYTES + 1
    before = snapshot()
    with pytest.raises(ValidationError) as exc_info:
        create(organization, provider="mistral", name=_unique_name(), secret=too_big)
    assert_field_error(exc_info, "secret")
    assert snapshot() == before


def test_not_even_a_superuser_may_reveal_a_key(provider_key):
    superuser = ProviderKey._meta.get_field("created_by").related_model.objects.create_superuser(
        username="root@example.com", email="root@example.com", password="x" * 20
    )
    with (
        mock.patch.object(sealing, "open_secret") as opened,
        pytest.raises(PermissionDenied),
    ):
        services.provider_key_reveal(key=provider_key, actor=Access.for_user(superuser))
    opened.assert_not_called()
