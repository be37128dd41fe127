"""Proxy tokens: their format, digest, and the create and revoke services."""

import base64
import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from core.tokens import token_digest
from keyvault import services, tokens
from keyvault.models import ProxyToken
from organizations import roles
from organizations.access import Access
from organizations.roles import TokenScope
from tests import matrix
from tests.helpers import snapshot
from tests.test_text import INVISIBLE_NAMES, VISIBLE_NAMES

SYSTEM = Access.operator("tests")


def create(organization, **kwargs):
    kwargs = {"name": "edge", "scopes": ["keys:read"], **kwargs}
    return services.proxy_token_create(organization=organization, actor=SYSTEM, **kwargs)


# --- The token ------------------------------------------------------------------------------


def test_generated_token_is_prefixed_and_carries_256_random_bits():
    token = tokens.generate_token()
    assert token.startswith("kvp_")
    assert len(token) == 4 + 43
    assert tokens.looks_like_token(token)
    assert len(base64.urlsafe_b64decode(token[4:] + "=")) == 32


def test_every_generated_token_has_the_documented_shape():
    """Over many draws, so that both of base64url's non-alphanumeric characters turn up: the
    prefix, then exactly 43 characters of the URL-safe alphabet, never padding, `+` or `/`, and
    each one a token `looks_like_token` accepts."""
    drawn = [tokens.generate_token() for _ in range(500)]
    for token in drawn:
        assert re.fullmatch(r"kvp_[A-Za-z0-9_-]{43}", token), token
        assert tokens.looks_like_token(token), token
    # 21,500 random characters: missing either one has a chance below 1e-140.
    assert {"-", "_"} <= set("".join(token[4:] for token in drawn))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "kvp_",
        "kvp_" + "a" * 42,
        "kvp_" + "a" * 44,
        "KVP_" + "a" * 43,
        "kvx_" + "a" * 43,
        "kvp_" + "a" * 42 + "=",
        "kvp_" + "a" * 42 + "/",
        "kvp_" + "a" * 42 + "é",
        "kvp_" + "a" * 43 + "\n",
        " kvp_" + "a" * 43,
    ],
)
def test_looks_like_token_refuses_other_shapes(value):
    assert not tokens.looks_like_token(value)


def test_looks_like_token_accepts_the_whole_alphabet():
    assert tokens.looks_like_token("kvp_" + "Az09-_" * 7 + "x")


def test_digest_is_sha256_hex():
    """A fixed vector (from `sha256sum`), so the test cannot agree with a wrong digest."""
    token = "kvp_" + "Az09-_" * 7 + "x"
    assert token_digest(token) == (
        "c39aed5ad6959762088a8159139f6f60f1941117f0f68be9361e6614b02b9b2a"
    )


def test_scopes_are_the_three_documented():
    assert [scope.value for scope in TokenScope] == list(matrix.TOKEN_SCOPES)


# --- proxy_token_create ---------------------------------------------------------------------


def test_create_stores_only_the_digest_and_last_four(organization):
    token, raw = create(organization, scopes=["keys:secret", "keys:read"])
    assert tokens.looks_like_token(raw)
    row = ProxyToken.objects.get(pk=token.pk)
    assert row.digest == token_digest(raw)
    assert row.last_four == raw[-4:]
    assert row.scopes == ["keys:read", "keys:secret"]
    assert row.organization == organization
    assert row.revoked_at is None and row.expires_at is None
    assert row.is_active
    for text in (str(row), repr(row)):
        assert raw not in text and raw[4:-4] not in text


def test_create_accepts_comma_separated_scopes_and_dedupes(organization):
    token, _ = create(organization, scopes=" keys:write, keys:read,keys:write ")
    assert token.scopes == ["keys:read", "keys:write"]


def test_create_with_expiry(organization):
    token, _ = create(organization, expires_in_days=30)
    expected = timezone.now() + timedelta(days=30)
    assert abs(token.expires_at - expected) < timedelta(seconds=30)


def test_create_records_an_audit_event_without_the_token(organization, owner):
    token, raw = services.proxy_token_create(
        organization=organization,
        actor=Access.for_user(owner, ip="10.0.0.1"),
        name="edge",
        scopes=["keys:read"],
    )
    event = AuditEvent.objects.get(action=AuditAction.TOKEN_CREATED)
    assert event.target_id == str(token.pk)
    assert event.actor_user == owner
    assert event.metadata["last_four"] == raw[-4:]
    assert token.created_by == owner
    assert_event_holds_no_token(event, raw)


def assert_event_holds_no_token(event, raw):
    for field in AuditEvent._meta.concrete_fields:
        text = str(getattr(event, field.attname))
        assert raw not in text
        assert raw[4:-4] not in text
        assert token_digest(raw) not in text


@pytest.mark.parametrize(
    "scopes",
    [[], "", " , ", ["keys:admin"], "keys:read,keys:all", ["KEYS:READ"], [None], 7],
)
def test_create_with_bad_scopes_writes_nothing(organization, scopes):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        create(organization, scopes=scopes)
    assert "scopes" in excinfo.value.message_dict
    assert snapshot() == before


@pytest.mark.parametrize("days", [0, -1, 3651, True, "30", 1.5])
def test_create_with_bad_expiry_writes_nothing(organization, days):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        create(organization, expires_in_days=days)
    assert "expires_in" in excinfo.value.message_dict
    assert snapshot() == before


@pytest.mark.parametrize("name", ["", "   ", None, 42, "x" * 101, "a\x00b"])
def test_create_with_bad_name_writes_nothing(organization, name):
    before = snapshot()
    with pytest.raises(ValidationError):
        create(organization, name=name)
    assert snapshot() == before


@pytest.mark.parametrize("name", INVISIBLE_NAMES.values(), ids=INVISIBLE_NAMES.keys())
def test_create_with_an_invisible_name_writes_nothing(organization, name):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        create(organization, name=name)
    assert set(excinfo.value.message_dict) == {"name"}
    assert snapshot() == before


@pytest.mark.parametrize("name", VISIBLE_NAMES.values(), ids=VISIBLE_NAMES.keys())
def test_create_keeps_a_visible_name_in_any_script(organization, name):
    token, _raw = create(organization, name=name)
    assert ProxyToken.objects.get(pk=token.pk).name == name


def test_duplicate_active_name_is_refused_whatever_the_case(organization):
    create(organization, name="Edge")
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        create(organization, name=" edge ")
    assert "name" in excinfo.value.message_dict
    assert snapshot() == before


def test_same_name_in_another_organization_is_fine(organization, other_organization):
    create(organization, name="edge")
    create(other_organization, name="edge")
    assert ProxyToken.objects.filter(name="edge").count() == 2


def test_a_revoked_tokens_name_can_be_reused(organization):
    first, _ = create(organization, name="edge")
    services.proxy_token_revoke(token=first, actor=SYSTEM)
    second, _ = create(organization, name="edge")
    assert second.pk != first.pk
    assert ProxyToken.objects.filter(organization=organization, name="edge").count() == 2


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(roles.OWNER.id, True), (roles.ADMIN.id, True), (roles.MEMBER.id, False)],
)
def test_only_owners_and_admins_create_tokens(organization, member_of, role, allowed):
    user = member_of(organization, role).user
    actor = Access.for_user(user)
    if allowed:
        services.proxy_token_create(
            organization=organization, actor=actor, name="edge", scopes=["keys:read"]
        )
    else:
        with pytest.raises(PermissionDenied):
            services.proxy_token_create(
                organization=organization, actor=actor, name="edge", scopes=["keys:read"]
            )
        assert ProxyToken.objects.count() == 0


def test_a_token_cannot_create_tokens(organization, make_token):
    writer = make_token("keys:read", "keys:secret", "keys:write")
    with pytest.raises(PermissionDenied):
        services.proxy_token_create(
            organization=organization,
            actor=Access.for_token(writer),
            name="child",
            scopes=["keys:read"],
        )


# --- proxy_token_revoke ---------------------------------------------------------------------


def test_revoke_sets_revoked_at_keeps_the_row_and_audits(organization):
    token, raw = create(organization)
    revoked = services.proxy_token_revoke(token=token, actor=SYSTEM)
    row = ProxyToken.objects.get(pk=token.pk)
    assert row.revoked_at is not None
    assert revoked.revoked_at == row.revoked_at
    assert not row.is_active
    event = AuditEvent.objects.get(action=AuditAction.TOKEN_REVOKED)
    assert event.target_id == str(token.pk)
    assert_event_holds_no_token(event, raw)


def test_revoking_twice_is_a_no_op(organization):
    token, _ = create(organization)
    first = services.proxy_token_revoke(token=token, actor=SYSTEM).revoked_at
    again = services.proxy_token_revoke(token=token, actor=SYSTEM).revoked_at
    assert again == first
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REVOKED).count() == 1


def test_a_member_cannot_revoke(organization, member_of):
    token, _ = create(organization)
    member = member_of(organization, roles.MEMBER.id).user
    with pytest.raises(PermissionDenied):
        services.proxy_token_revoke(token=token, actor=Access.for_user(member))
    assert ProxyToken.objects.get(pk=token.pk).revoked_at is None


def test_an_admin_of_another_organization_cannot_revoke(
    organization, other_organization, member_of
):
    token, _ = create(organization)
    outsider = member_of(other_organization, roles.OWNER.id).user
    with pytest.raises(PermissionDenied):
        services.proxy_token_revoke(token=token, actor=Access.for_user(outsider))
    assert ProxyToken.objects.get(pk=token.pk).revoked_at is None


def test_expiry_is_judged_at_use(organization):
    token, _ = create(organization, expires_in_days=1)
    token.expires_at = timezone.now() - timedelta(seconds=1)
    assert not token.is_active
