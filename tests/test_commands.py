"""The provisioning commands: create_org, add_member, generate_kek and seed_demo.

Each is exercised through `call_command` (in the test database) and as a real `manage.py`
process against a migrated SQLite file, because the one-line error and the exit status are
what a script running them sees.
"""

import base64
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import check_password
from django.core.management import CommandError, call_command
from django.test import override_settings

from audit.models import AuditEvent
from keyvault import services
from keyvault.crypto.loading import parse_kek_entries
from keyvault.management.commands import seed_demo
from keyvault.models import ProviderKey
from organizations import roles
from organizations.access import Access
from organizations.models import Membership, Organization
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import snapshot

OPERATOR = Access.operator("tests")

User = get_user_model()
MANAGE = Path(settings.BASE_DIR) / "manage.py"
KEK_LINE = re.compile(r"^(?P<id>[A-Za-z0-9_-]{1,64}):(?P<key>[A-Za-z0-9+/]+=*)$")
STRONG_PASSWORD = "long unusual passphrase 42"
WITH_PASSWORD = ["--password", STRONG_PASSWORD]


def run(*args):
    """call_command, returning what it printed."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue()


def refused(*args) -> str:
    """call_command that must fail with a one-line CommandError and print nothing."""
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=out, stderr=StringIO())
    message = str(excinfo.value)
    assert message.strip()
    assert "\n" not in message, message
    assert out.getvalue() == ""
    return message


# --- A real manage.py process against a migrated SQLite file --------------------------------


def _environment(database: Path, **extra) -> dict:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_URL", "DEBUG", "KEYVAULT_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings_test",
        DATABASE_URL=f"sqlite:///{database}",
        DEBUG="false",
    )
    env.update(extra)
    return env


def _manage(database: Path, *args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=settings.BASE_DIR,
        env=_environment(database, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated once; each test works on its own copy."""
    path = tmp_path_factory.mktemp("cli") / "template.sqlite3"
    result = _manage(path, "migrate", "--noinput", "-v0")
    assert result.returncode == 0, result.stderr
    return path


class Cli:
    def __init__(self, database: Path):
        self.database = database

    def __call__(self, *args, **env) -> subprocess.CompletedProcess:
        return _manage(self.database, *args, **env)

    def rows(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.database) as connection:
            return connection.execute(sql, params).fetchall()

    def state(self) -> dict:
        return {
            table: self.rows(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608 - fixed names
            for table in (
                "auth_user",
                "organizations_organization",
                "organizations_membership",
                "keyvault_providerkey",
                "keyvault_auditevent",
            )
        }


@pytest.fixture
def cli(migrated_sqlite, tmp_path) -> Cli:
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(migrated_sqlite, database)
    return Cli(database)


def assert_refused(result: subprocess.CompletedProcess, *, status=1) -> str:
    """Non-zero exit, exactly one readable line on stderr, nothing on stdout."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


# --- create_org -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_org_creates_the_organization_and_its_owner():
    output = run(
        "create_org", "--name", "Acme", "--slug", "acme", "--owner", " Founder@Example.com"
    )
    organization = Organization.objects.get(slug="acme")
    membership = Membership.objects.get(organization=organization)
    assert membership.role == roles.OWNER.id
    assert membership.user.email == "founder@example.com"
    assert output.splitlines() == [
        "Created organization 'acme' owned by founder@example.com.",
        "founder@example.com has no password of their own yet: they set one with 'Forgot your "
        "password?' on the sign-in page (or you set one with "
        "`python manage.py changepassword founder@example.com`).",
    ]
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_label) == ("organization.created", "manage.py create_org")


@pytest.mark.django_db
def test_create_org_reuses_an_existing_user_as_owner():
    user = UserFactory(email="founder@example.com")
    output = run("create_org", "--name", "Acme", "--slug", "acme", "--owner", "founder@example.com")
    assert Membership.objects.get().user == user
    assert User.objects.count() == 1
    assert "no password" not in output


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "Acme", "--slug", "taken", "--owner", "a@example.com"], "already taken"),
        (["--name", "Acme", "--slug", "acme", "--owner", "not-an-email"], "email"),
        (["--name", "Acme", "--slug", "bad slug", "--owner", "a@example.com"], "slug"),
        (["--name", "Acme", "--slug", "a/b", "--owner", "a@example.com"], "slug"),
        (["--name", "  ", "--slug", "acme", "--owner", "a@example.com"], "name"),
        (["--name", "Acme", "--slug", "acme"], "required: --owner"),
        ([], "required: --name, --slug, --owner"),
    ],
    ids=["duplicate-slug", "bad-email", "bad-slug", "slash-slug", "empty-name", "no-owner", "none"],
)
def test_create_org_refuses_bad_input_in_one_line_and_writes_nothing(args, expected):
    OrganizationFactory(slug="taken")
    before = snapshot()
    assert expected in refused("create_org", *args)
    assert snapshot() == before


def test_create_org_process_creates_the_organization(cli):
    result = cli("create_org", "--name", "Acme", "--slug", "acme", "--owner", "founder@example.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Created organization 'acme' owned by founder@example.com.\n")
    assert cli.rows("SELECT name, slug FROM organizations_organization") == [("Acme", "acme")]
    assert cli.rows(
        "SELECT u.email, m.role FROM organizations_membership m "
        "JOIN auth_user u ON u.id = m.user_id"
    ) == [("founder@example.com", "owner")]


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (
            ["--name", "Other", "--slug", "acme", "--owner", "b@example.com"],
            1,
            "CommandError: slug: The slug 'acme' is already taken.",
        ),
        (
            ["--name", "Acme", "--slug", "new", "--owner", "nope"],
            1,
            "CommandError: email: Enter a valid email address.",
        ),
        (
            ["--name", "Acme", "--slug", "bad slug", "--owner", "b@example.com"],
            1,
            "CommandError: slug: A slug may contain only letters, digits, hyphens and underscores.",
        ),
        (
            ["--name", "Acme"],
            2,
            "manage.py create_org: error: the following arguments are required: --slug, --owner",
        ),
    ],
    ids=["duplicate-slug", "bad-email", "bad-slug", "missing-args"],
)
def test_create_org_process_exits_non_zero_with_one_line(cli, args, status, expected):
    seeded = cli("create_org", "--name", "Acme", "--slug", "acme", "--owner", "a@example.com")
    assert seeded.returncode == 0, seeded.stderr
    before = cli.state()
    assert assert_refused(cli("create_org", *args), status=status) == expected
    assert cli.state() == before


# --- add_member -----------------------------------------------------------------------------


@pytest.fixture
def acme(db):
    organization = OrganizationFactory(name="Acme", slug="acme")
    MembershipFactory(organization=organization, role=roles.OWNER.id)
    return organization


def test_add_member_creates_a_user_who_can_sign_in(acme):
    output = run(
        "add_member", "--org", "acme", "--email", "New@Example.com", "--role", "admin",
        "--password", STRONG_PASSWORD,
    )  # fmt: skip
    assert output == "Created user and added new@example.com to 'acme' as admin.\n"
    user = authenticate(username="new@example.com", password=STRONG_PASSWORD)
    assert user is not None
    assert Membership.objects.get(user=user, organization=acme).role == roles.ADMIN.id
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_label) == ("member.added", "manage.py add_member")
    assert event.metadata == {"user": "new@example.com", "role": "admin"}


@pytest.mark.parametrize(
    "command",
    [
        ["add_member", "--org", "acme", "--email", "new@example.com", "--role", "viewer"],
        ["create_org", "--name", "New", "--slug", "new", "--owner", "new@example.com"],
    ],
    ids=["add_member", "create_org"],
)
def test_an_account_made_without_a_password_is_not_locked_out(acme, client, mailoutbox, command):
    output = run(*command)

    assert "has no password of their own yet" in output
    user = User.objects.get(username="new@example.com")
    # Nobody knows its password, yet its owner can claim it: Django's reset reaches only
    # accounts with a usable password.
    assert user.has_usable_password()
    assert authenticate(username="new@example.com", password="") is None
    client.post("/accounts/password/reset/", {"email": "new@example.com"})
    [message] = mailoutbox
    assert message.to == ["new@example.com"]
    assert "/accounts/password/reset/" in message.body


def test_add_member_help_says_what_it_trusts():
    from organizations.management.commands.add_member import Command

    text = " ".join(Command().create_parser("manage.py", "add_member").format_help().split())
    assert "trusts you, the operator, to vouch that the address belongs to that person" in text
    assert "does not verify addresses" in text
    assert "An existing account that holds the address is attached" in text
    assert "invite them" in text


def test_add_member_adds_an_existing_user(acme):
    user = UserFactory(email="known@example.com")
    output = run(
        "add_member", "--org", " ACME ", "--email", "known@example.com", "--role", "member"
    )
    assert output == "Added the existing account known@example.com to 'acme' as member.\n"
    assert Membership.objects.get(user=user).organization == acme


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--org", "nope", "--email", "x@example.com", "--role", "member"], "No organization"),
        (["--org", "acme", "--email", "x@example.com", "--role", "boss"], "invalid choice"),
        (["--org", "acme", "--email", "member@example.com", "--role", "admin"], "already a member"),
        (
            ["--org", "acme", "--email", "x@example.com", "--role", "member", "--password", "123"],
            "password: This password is too short",
        ),
        (
            ["--org", "acme", "--email", "member@example.com", "--role", "member", *WITH_PASSWORD],
            "password: This user already exists",
        ),
        (
            [
                "--org",
                "acme",
                "--email",
                "existing@example.com",
                "--role",
                "member",
                *WITH_PASSWORD,
            ],
            "password: This user already exists",
        ),
        (["--org", "acme", "--email", "not-an-email", "--role", "member"], "email"),
        (["--org", "acme", "--role", "member"], "required: --email"),
    ],
    ids=[
        "unknown-org",
        "unknown-role",
        "duplicate",
        "weak-password",
        "password-for-member",
        "password-for-existing-user",
        "bad-email",
        "missing-email",
    ],
)
def test_add_member_refuses_bad_input_in_one_line_and_writes_nothing(acme, args, expected):
    MembershipFactory(
        organization=acme, user=UserFactory(email="member@example.com"), role=roles.VIEWER.id
    )
    UserFactory(email="existing@example.com")
    before = snapshot()
    assert expected in refused("add_member", *args)
    assert snapshot() == before


def test_add_member_process_creates_a_user_who_can_sign_in(cli):
    assert (
        cli("create_org", "--name", "Acme", "--slug", "acme", "--owner", "a@x.com").returncode == 0
    )
    result = cli(
        "add_member", "--org", "acme", "--email", "new@example.com", "--role", "member",
        "--password", STRONG_PASSWORD,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Created user and added new@example.com to 'acme' as member.\n"
    [(encoded,)] = cli.rows("SELECT password FROM auth_user WHERE username = 'new@example.com'")
    assert check_password(STRONG_PASSWORD, encoded)
    assert not check_password("wrong password", encoded)


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (
            ["--org", "nope", "--email", "x@example.com", "--role", "member"],
            1,
            "CommandError: No organization with slug 'nope'.",
        ),
        (
            ["--org", "acme", "--email", "x@example.com", "--role", "boss"],
            2,
            "manage.py add_member: error: argument --role: invalid choice: 'boss' "
            "(choose from 'owner', 'admin', 'member', 'viewer')",
        ),
        (
            ["--org", "acme", "--email", "a@x.com", "--role", "admin"],
            1,
            "CommandError: email: a@x.com is already a member of Acme.",
        ),
        (
            ["--org", "acme", "--email", "x@example.com", "--role", "member", "--password", "12"],
            1,
            "CommandError: password: This password is too short. It must contain at least "
            "8 characters. This password is too common. This password is entirely numeric.",
        ),
        (
            ["--org", "acme", "--email", "a@x.com", "--role", "member", "--password", "x" * 20],
            1,
            "CommandError: password: This user already exists; their password is left unchanged.",
        ),
    ],
    ids=["unknown-org", "unknown-role", "duplicate", "weak-password", "password-for-existing"],
)
def test_add_member_process_exits_non_zero_with_one_line(cli, args, status, expected):
    assert (
        cli("create_org", "--name", "Acme", "--slug", "acme", "--owner", "a@x.com").returncode == 0
    )
    before = cli.state()
    assert assert_refused(cli("add_member", *args), status=status) == expected
    assert cli.state() == before


# --- generate_kek ---------------------------------------------------------------------------


def _parse_kek_line(output: str) -> tuple[str, bytes]:
    lines = output.splitlines()
    assert len(lines) == 1, output
    match = KEK_LINE.fullmatch(lines[0])
    assert match, lines[0]
    return match["id"], base64.b64decode(match["key"], validate=True)


def test_generate_kek_prints_one_id_and_256_bit_key_line():
    output = run("generate_kek")
    kek_id, key = _parse_kek_line(output)
    assert re.fullmatch(r"kek-\d{8}-[0-9a-f]{6}", kek_id)
    assert len(key) == 32
    assert parse_kek_entries([output.strip()], source="test") == {kek_id: key}


def test_generate_kek_prints_a_new_key_each_time():
    first, second = _parse_kek_line(run("generate_kek")), _parse_kek_line(run("generate_kek"))
    assert first[1] != second[1]


@pytest.mark.parametrize("kek_id", ["prod-2025", "a", "x" * 64, "Under_score"])
def test_generate_kek_uses_the_given_id(kek_id):
    assert _parse_kek_line(run("generate_kek", "--id", kek_id))[0] == kek_id


@pytest.mark.parametrize(
    "kek_id", ["", " ", "has space", "x" * 65, "a:b", "ünï", "a,b", "line\nbreak"]
)
def test_generate_kek_refuses_a_bad_id_in_one_line(kek_id):
    assert "A KEK id must be" in refused("generate_kek", "--id", kek_id)


@override_settings(DEBUG=False, KEYVAULT_KEKS="", KEYVAULT_KEKS_FILE="")
def test_generate_kek_works_before_any_kek_is_configured():
    kek_id, key = _parse_kek_line(run("generate_kek", "--id", "first"))
    assert (kek_id, len(key)) == ("first", 32)


def test_generate_kek_process_works_with_production_settings_and_no_kek(tmp_path):
    """The operator runs it to make the first KEK: DEBUG off, nothing configured, no database."""
    result = _manage(
        tmp_path / "unused.sqlite3",
        "generate_kek",
        DJANGO_SETTINGS_MODULE="config.settings",
        KEYVAULT_KEKS="",
        KEYVAULT_KEKS_FILE="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    _, key = _parse_kek_line(result.stdout)
    assert len(key) == 32
    assert not (tmp_path / "unused.sqlite3").exists()


def test_generate_kek_process_refuses_a_bad_id_in_one_line(tmp_path):
    result = _manage(tmp_path / "unused.sqlite3", "generate_kek", "--id", "bad id")
    assert assert_refused(result) == (
        "CommandError: A KEK id must be 1-64 characters of letters, digits, '-' and '_'."
    )


# --- seed_demo ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_refuses_with_debug_off():
    assert not settings.DEBUG
    before = snapshot()
    assert "DEBUG" in refused("seed_demo")
    assert snapshot() == before
    assert not Organization.objects.exists()


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_seed_demo_creates_the_demo_organization_owner_and_keys():
    output = run("seed_demo")
    assert output.splitlines()[0] == (
        f"Demo organization 'demo': {len(seed_demo.DEMO_KEYS)} demo keys added."
    )
    user = authenticate(username=seed_demo.DEMO_EMAIL, password=seed_demo.DEMO_PASSWORD)
    assert user is not None
    organization = Organization.objects.get(slug=seed_demo.DEMO_SLUG)
    assert Membership.objects.get(organization=organization).user == user
    assert Membership.objects.get(organization=organization).role == roles.OWNER.id
    keys = ProviderKey.objects.filter(organization=organization)
    assert keys.count() == len(seed_demo.DEMO_KEYS)
    for spec in seed_demo.DEMO_KEYS:
        key = keys.get(provider=spec["provider"], name=spec["name"])
        assert services.provider_key_reveal(actor=OPERATOR, key=key) == spec["secret"]


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_seed_demo_twice_creates_no_duplicates():
    run("seed_demo")
    after_first = snapshot()
    output = run("seed_demo")
    assert output.splitlines()[0] == "Demo organization 'demo': 0 demo keys added."
    assert snapshot() == after_first


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_seed_demo_restores_only_a_missing_demo_key():
    run("seed_demo")
    spec = seed_demo.DEMO_KEYS[1]
    ProviderKey.objects.get(provider=spec["provider"], name=spec["name"]).delete()
    assert run("seed_demo").splitlines()[0] == "Demo organization 'demo': 1 demo keys added."
    assert ProviderKey.objects.count() == len(seed_demo.DEMO_KEYS)
    assert Organization.objects.count() == User.objects.count() == 1


def test_seed_demo_process_twice_creates_no_duplicates(cli):
    first = cli("seed_demo", DEBUG="true")
    assert first.returncode == 0, first.stderr
    after_first = cli.state()
    second = cli("seed_demo", DEBUG="true")
    assert second.returncode == 0, second.stderr
    assert "0 demo keys added" in second.stdout
    after_second = cli.state()
    for table in ("auth_user", "organizations_organization", "keyvault_providerkey"):
        assert after_second[table] == after_first[table], table
    assert len(after_second["keyvault_providerkey"]) == len(seed_demo.DEMO_KEYS)


def test_seed_demo_process_refuses_with_debug_off(cli):
    before = cli.state()
    assert assert_refused(cli("seed_demo", DEBUG="false")) == (
        "CommandError: seed_demo is for development only; it needs DEBUG on."
    )
    assert cli.state() == before
