"""`manage.py create_token` and `manage.py revoke_token`."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from core.tokens import token_digest
from keyvault import tokens
from keyvault.models import ProxyToken
from tests.helpers import snapshot

SIGMA, FINAL_SIGMA = "\u03c3", "\u03c2"


def run(command, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command(command, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_argv(monkeypatch, capsys, *argv):
    """As from a shell: (exit status, stdout, stderr)."""
    # run_from_argv closes every connection when done; the test's transaction must survive.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    command = load_command_class("keyvault", argv[0])
    try:
        command.run_from_argv(["manage.py", *argv])
        status = 0
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def create(organization, **options):
    options = {"org": organization.slug, "name": "edge", "scopes": "keys:read", **options}
    return run("create_token", **options)


# --- create_token ---------------------------------------------------------------------------


def test_create_token_prints_the_token_alone(organization, client):
    out, err = create(organization, scopes="keys:read,keys:secret")
    assert err == ""
    assert out.endswith("\n") and out.count("\n") == 1
    raw = out.strip()
    assert tokens.TOKEN_PATTERN.fullmatch(raw)
    assert len(raw) == 47
    token = ProxyToken.objects.get(organization=organization, name="edge")
    assert token.digest == token_digest(raw)
    assert token.scopes == ["keys:read", "keys:secret"]
    assert token.expires_at is None
    # The printed token works.
    response = client.get("/api/v1/ping", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_CREATED).count() == 1


def test_create_token_from_the_shell(organization, monkeypatch, capsys):
    status, out, err = run_argv(
        monkeypatch, capsys, "create_token", "--org", organization.slug, "--name", "e",
        "--scopes", "keys:read",
    )  # fmt: skip
    assert status == 0
    assert tokens.TOKEN_PATTERN.fullmatch(out.rstrip("\n"))
    assert err == ""


def test_create_token_with_expiry(organization):
    create(organization, expires_in=7)
    token = ProxyToken.objects.get(name="edge")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(seconds=30)


def test_create_token_slug_is_case_insensitive(organization):
    out, _ = create(organization, org=organization.slug.upper())
    assert tokens.looks_like_token(out.strip())


BAD_CREATES = {
    "unknown scope": {"scopes": "keys:read,keys:admin"},
    "empty scopes": {"scopes": ""},
    "only commas": {"scopes": ",,"},
    "unknown org": {"org": "no-such-org"},
    "zero days": {"expires_in": 0},
    "negative days": {"expires_in": -3},
    "too many days": {"expires_in": 100_000},
    "blank name": {"name": "   "},
    "overlong name": {"name": "n" * 101},
}


@pytest.mark.parametrize("options", BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_create_token_with_bad_input_fails_in_one_line_and_writes_nothing(organization, options):
    before = snapshot()
    with pytest.raises(CommandError) as excinfo:
        create(organization, **options)
    message = str(excinfo.value)
    assert message and "\n" not in message
    assert "kvp_" not in message
    assert snapshot() == before


def test_create_token_with_a_duplicate_active_name_fails(organization):
    create(organization)
    before = snapshot()
    with pytest.raises(CommandError) as excinfo:
        create(organization, name="EDGE")
    assert "\n" not in str(excinfo.value)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        (["--scopes", "keys:nope"], 1),
        (["--scopes", "keys:read", "--expires-in", "soon"], 2),
        (["--scopes", "keys:read", "--expires-in", "0"], 1),
        ([], 2),  # --scopes is required
    ],
    ids=["bad scope", "days not a number", "zero days", "missing scopes"],
)
def test_create_token_from_the_shell_exits_non_zero_with_one_line(
    organization, monkeypatch, capsys, extra, status
):
    before = snapshot()
    code, out, err = run_argv(
        monkeypatch, capsys, "create_token", "--org", organization.slug, "--name", "e", *extra
    )
    assert code == status
    assert out == ""
    assert err.count("\n") == 1 and err.strip()
    assert snapshot() == before


# --- revoke_token ---------------------------------------------------------------------------


def test_revoke_token_revokes_and_keeps_the_row(organization, client):
    raw = create(organization)[0].strip()
    out, err = run("revoke_token", org=organization.slug, name="edge")
    token = ProxyToken.objects.get(name="edge")
    assert token.revoked_at is not None
    assert "edge" in out and token.last_four in out
    assert raw not in out and raw not in err
    event = AuditEvent.objects.get(action=AuditAction.TOKEN_REVOKED)
    assert event.target_id == str(token.pk)
    for field in AuditEvent._meta.concrete_fields:
        assert raw not in str(getattr(event, field.attname))
    response = client.get("/api/v1/ping", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401


def test_revoke_token_name_is_case_insensitive(organization):
    create(organization, name="Edge")
    run("revoke_token", org=organization.slug, name=" EDGE ")
    assert ProxyToken.objects.get(name="Edge").revoked_at is not None


@pytest.mark.parametrize(
    "options",
    [{"name": "nope"}, {"org": "no-such-org"}],
    ids=["unknown name", "unknown org"],
)
def test_revoke_token_unknown_is_an_error(organization, options):
    create(organization)
    before = snapshot()
    with pytest.raises(CommandError) as excinfo:
        run("revoke_token", **{"org": organization.slug, "name": "edge", **options})
    assert "\n" not in str(excinfo.value)
    assert ProxyToken.objects.get(name="edge").revoked_at is None
    assert snapshot() == before


def test_revoke_token_twice_is_an_error_the_second_time(organization):
    create(organization)
    run("revoke_token", org=organization.slug, name="edge")
    with pytest.raises(CommandError):
        run("revoke_token", org=organization.slug, name="edge")
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REVOKED).count() == 1


def test_revoke_token_touches_only_its_organization(organization, other_organization):
    create(organization)
    create(other_organization)
    run("revoke_token", org=organization.slug, name="edge")
    assert ProxyToken.objects.get(organization=other_organization).revoked_at is None


@pytest.mark.parametrize("target", [SIGMA, FINAL_SIGMA])
def test_revoke_token_revokes_exactly_the_named_token(organization, target):
    """Greek sigma and final sigma are different names to the unique constraint (LOWER) but
    the same under UPPER, which `iexact` uses on PostgreSQL."""
    created = {}
    for name in (SIGMA, FINAL_SIGMA):
        # Rows made directly: both names are valid under the database constraint.
        created[name] = ProxyToken.objects.create(
            organization=organization,
            name=name,
            scopes=["keys:read"],
            digest=token_digest(tokens.generate_token()),
            last_four=name * 4,
        )
    run("revoke_token", org=organization.slug, name=target)
    revoked = {
        name for name, token in created.items() if ProxyToken.objects.get(pk=token.pk).revoked_at
    }
    assert revoked == {target}


def test_a_revoked_name_can_be_reused(organization):
    first = create(organization)[0].strip()
    run("revoke_token", org=organization.slug, name="edge")
    second = create(organization)[0].strip()
    assert first != second
    assert ProxyToken.objects.filter(name="edge").count() == 2
    assert ProxyToken.objects.filter(name="edge", revoked_at__isnull=True).count() == 1


def test_revoke_from_the_shell_unknown_exits_non_zero(organization, monkeypatch, capsys):
    code, out, err = run_argv(
        monkeypatch, capsys, "revoke_token", "--org", organization.slug, "--name", "ghost"
    )
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "ghost" in err
