"""`keyvault_status [--verify]`: secrets per KEK, loaded and retirable KEKs, unused and disabled
keys, and (with --verify) every secret opened; non-zero exit when anything is unreadable."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from keyvault import services
from keyvault.checks import check_stored_keks_loaded
from keyvault.models import ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory

SYSTEM = Access.operator("t")


class Result:
    def __init__(self, out: str, err: str, error: CommandError | None):
        self.out, self.err, self.error = out, err, error

    def row(self, kek_id: str) -> re.Match | None:
        """The per-KEK line: (count, state)."""
        return re.search(rf"^  {re.escape(kek_id)}\s+(\d+)  (.+)$", self.out, re.MULTILINE)

    def section(self, header: str) -> list[str]:
        """The indented lines under the line that starts with `header`."""
        lines = self.out.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(header))
        body = []
        for line in lines[start + 1 :]:
            if not line.startswith("  "):
                break
            body.append(line.strip())
        return body


def status(*args, capsys=None) -> Result:
    """Run the command; a CommandError is returned (as `.error`), not raised."""
    out, err = StringIO(), StringIO()
    error = None
    try:
        call_command("keyvault_status", *args, stdout=out, stderr=err)
    except CommandError as exc:
        error = exc
    extra = capsys.readouterr() if capsys is not None else None
    # Progress goes to the process's stderr; it counts as output too.
    err_text = err.getvalue() + (extra.out + extra.err if extra else "")
    return Result(out.getvalue(), err_text, error)


def secret_for(n: int) -> str:
    return f"sk-proj-status-{n:02d}-do-not-print-me-0123456789"


@pytest.fixture
def mixed_keys(organization, old_kek_first):
    """Two keys under test-old and three under test-primary."""
    with old_kek_first():
        old = [ProviderKeyFactory(organization=organization, secret=secret_for(n)) for n in (0, 1)]
    current = [
        ProviderKeyFactory(organization=organization, secret=secret_for(n)) for n in (2, 3, 4)
    ]
    return old, current


def test_status_lists_stored_secrets_per_kek_and_which_kek_is_still_needed(mixed_keys):
    result = status()

    assert result.error is None
    assert "KEKs loaded (first is primary): test-primary, test-old" in result.out
    assert result.row("test-primary").groups() == ("3", "primary")
    assert result.row("test-old").groups() == ("2", "loaded, still needed")
    assert "KEKs that can be retired (loaded, nothing under them): none" in result.out
    assert "Run rotate_kek before retiring: test-old" in result.out


def test_a_clean_database_exits_zero_and_reports_the_old_kek_as_retirable(organization):
    for n in range(3):
        ProviderKeyFactory(organization=organization, secret=secret_for(n))

    result = status("--verify")

    assert result.error is None
    assert result.row("test-primary").groups() == ("3", "primary")
    assert result.row("test-old") is None
    assert "KEKs that can be retired (loaded, nothing under them): test-old" in result.out
    assert "Verified 3 secrets." in result.out
    assert "fail to open" not in result.out


def test_after_rotate_kek_the_old_kek_is_retirable(mixed_keys):
    call_command("rotate_kek", stdout=StringIO(), stderr=StringIO())
    result = status("--verify")
    assert result.error is None
    assert result.row("test-primary").groups() == ("5", "primary")
    assert "KEKs that can be retired (loaded, nothing under them): test-old" in result.out


def test_an_empty_database_exits_zero(db):
    result = status("--verify")
    assert result.error is None
    assert "Verified 0 secrets." in result.out


def test_a_stored_kek_that_is_not_loaded_exits_non_zero_and_is_e103(mixed_keys, settings):
    settings.KEYVAULT_KEKS = settings.KEYVAULT_KEKS.split(",")[0]  # test-primary only

    result = status()

    assert result.error is not None
    assert str(result.error) == "2 stored secrets cannot be opened."
    assert result.row("test-old").groups() == ("2", "NOT LOADED: these secrets cannot be opened")
    assert "KEKs loaded (first is primary): test-primary" in result.out
    (error,) = check_stored_keks_loaded()
    assert error.id == "keyvault.E103"
    assert "test-old" in error.msg


def test_verify_lists_a_tampered_key_by_id_and_never_prints_a_secret(mixed_keys, tamper, capsys):
    old, current = mixed_keys
    bad = current[1]
    tamper(bad)

    result = status("--verify", capsys=capsys)

    assert result.error is not None
    assert str(result.error) == "1 stored secrets cannot be opened."
    assert result.section("Secrets that fail to open: 1") == [f"{bad.pk}  IntegrityError"]
    assert "Verified 5 secrets." in result.out
    printed = result.out + result.err + str(result.error)
    for n in range(5):
        assert secret_for(n) not in printed
    for key in old + current:
        assert ProviderKey.objects.get(pk=key.pk).secret.envelope not in printed


def test_verify_reports_malformed_and_unloaded_envelopes_too(mixed_keys, raw_envelope, settings):
    old, current = mixed_keys
    raw_envelope(current[0], "kv1.test-primary.not-an-envelope")
    settings.KEYVAULT_KEKS = settings.KEYVAULT_KEKS.split(",")[0]

    result = status("--verify")

    assert result.error is not None
    assert sorted(result.section("Secrets that fail to open: 3")) == sorted(
        [
            f"{current[0].pk}  MalformedEnvelopeError",
            f"{old[0].pk}  UnknownKEKError",
            f"{old[1].pk}  UnknownKEKError",
        ]
    )
    assert str(result.error) == "3 stored secrets cannot be opened."


def test_verify_opens_disabled_keys_as_well(organization, tamper):
    key = ProviderKeyFactory(organization=organization, enabled=False)
    tamper(key)
    result = status("--verify")
    assert result.error is not None
    assert result.section("Secrets that fail to open: 1") == [f"{key.pk}  IntegrityError"]


def test_keys_unused_for_90_days_are_listed(organization):
    long_ago = timezone.now() - timedelta(days=100)
    used_long_ago = ProviderKeyFactory(organization=organization, name="used long ago")
    never_used_old = ProviderKeyFactory(organization=organization, name="never used, old")
    used_recently = ProviderKeyFactory(organization=organization, name="used yesterday")
    never_used_new = ProviderKeyFactory(organization=organization, name="never used, new")
    ProviderKey.objects.filter(pk=used_long_ago.pk).update(
        created_at=long_ago, last_used_at=long_ago
    )
    ProviderKey.objects.filter(pk=never_used_old.pk).update(created_at=long_ago)
    ProviderKey.objects.filter(pk=used_recently.pk).update(
        created_at=long_ago, last_used_at=timezone.now() - timedelta(days=1)
    )

    result = status()

    assert result.error is None
    listed = result.section("Keys unused for 90 days: 2")
    slug = organization.slug
    assert sorted(listed) == sorted(
        [
            f"{used_long_ago.pk}  {slug}/openai/used long ago",
            f"{never_used_old.pk}  {slug}/openai/never used, old",
        ]
    )
    assert str(never_used_new.pk) not in result.out


def test_disabled_keys_are_listed(organization):
    disabled = ProviderKeyFactory(organization=organization, name="switched off")
    ProviderKeyFactory(organization=organization, name="in use")
    services.provider_key_update(key=disabled, actor=SYSTEM, enabled=False)

    result = status()

    assert result.error is None
    assert result.section("Disabled keys: 1") == [
        f"{disabled.pk}  {organization.slug}/openai/switched off"
    ]


def test_an_unusable_kek_configuration_is_a_one_line_error(db, settings):
    settings.KEYVAULT_KEKS = "broken"
    result = status()
    assert result.error is not None
    assert "\n" not in str(result.error)
    assert "KEYVAULT_KEKS" in str(result.error)
