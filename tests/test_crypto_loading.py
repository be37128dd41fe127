"""Building the process keyring from settings (keyvault.crypto.loading)."""

import base64
import logging
import stat
import threading

import pytest

from keyvault.crypto import (
    EncryptionContext,
    KeyringConfigurationError,
    get_keyring,
    open_sealed,
    reset_keyring,
    seal,
)
from keyvault.crypto.loading import build_keyring, keks_configured, new_kek_line, parse_kek_entries

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()
KEY_SHORT = base64.b64encode(bytes(range(16))).decode()
KEY_LONG = base64.b64encode(bytes(range(64))).decode()
CONTEXT = EncryptionContext(model="m", field="f", organization_id="o", row_id="r")


@pytest.fixture(autouse=True)
def fresh_keyring():
    """Every test starts and ends with no cached keyring, so the next test sees its settings."""
    reset_keyring()
    yield
    reset_keyring()


@pytest.fixture
def kek_settings(settings, tmp_path):
    """Settings with no KEK configured and the development KEK file under `tmp_path`."""
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KEKS_FILE = ""
    settings.KEYVAULT_DEV_KEK_FILE = tmp_path / "var" / "dev-kek.txt"
    settings.DEBUG = False
    return settings


def configuration_error() -> str:
    with pytest.raises(KeyringConfigurationError) as excinfo:
        build_keyring()
    return str(excinfo.value)


def test_the_test_settings_load_two_keks_primary_first():
    assert get_keyring().kek_ids == ("test-primary", "test-old")


def test_the_keyring_is_built_once_and_cached():
    assert get_keyring() is get_keyring()


def test_keks_setting_loads_several_keks_and_the_first_is_primary(kek_settings):
    kek_settings.KEYVAULT_KEKS = f" new:{KEY_A} , old:{KEY_B},"
    keyring = get_keyring()
    assert keyring.kek_ids == ("new", "old")
    assert keyring.primary_kek_id == "new"


def test_changing_a_kek_setting_resets_the_cached_keyring(kek_settings):
    kek_settings.KEYVAULT_KEKS = f"first:{KEY_A}"
    first = get_keyring()
    kek_settings.KEYVAULT_KEKS = f"second:{KEY_B},first:{KEY_A}"
    second = get_keyring()
    assert second is not first
    assert second.kek_ids == ("second", "first")


def test_keks_file_skips_comments_and_blank_lines(kek_settings, tmp_path):
    path = tmp_path / "keks.txt"
    path.write_text(
        f"# rotated 2024-05-01\n\nnew:{KEY_A}\r\n   # old, decrypt only\n  old:{KEY_B}  \n\n",
        encoding="utf-8",
    )
    kek_settings.KEYVAULT_KEKS_FILE = str(path)
    assert get_keyring().kek_ids == ("new", "old")


def test_keks_file_may_start_with_a_byte_order_mark(kek_settings, tmp_path):
    path = tmp_path / "keks.txt"
    path.write_text(f"\ufeffnew:{KEY_A}\n", encoding="utf-8")
    kek_settings.KEYVAULT_KEKS_FILE = str(path)
    assert get_keyring().kek_ids == ("new",)


def test_keks_from_the_file_and_the_setting_open_the_same_secrets(kek_settings, tmp_path):
    kek_settings.KEYVAULT_KEKS = f"a:{KEY_A}"
    text = seal(b"value", CONTEXT, get_keyring())
    path = tmp_path / "keks.txt"
    path.write_text(f"a:{KEY_A}\n", encoding="utf-8")
    kek_settings.KEYVAULT_KEKS = ""
    kek_settings.KEYVAULT_KEKS_FILE = str(path)
    assert open_sealed(text, CONTEXT, get_keyring()) == b"value"


def test_setting_both_the_keks_and_the_file_is_an_error(kek_settings, tmp_path):
    path = tmp_path / "keks.txt"
    path.write_text(f"a:{KEY_A}\n", encoding="utf-8")
    kek_settings.KEYVAULT_KEKS = f"a:{KEY_A}"
    kek_settings.KEYVAULT_KEKS_FILE = str(path)
    assert "not both" in configuration_error()


@pytest.mark.parametrize(
    ("value", "material", "expected"),
    [
        (f"a:{KEY_A[:-2]}!=", KEY_A[:-2], "not valid base64"),
        (f"a:{KEY_A[:-1]}", KEY_A[:-1], "not valid base64"),  # padding removed
        (f"a:{KEY_A[:20]} {KEY_A[20:]}", KEY_A[:20], "not valid base64"),
        (f"a:{KEY_SHORT}", KEY_SHORT, "must decode to 32 bytes"),
        (f"a:{KEY_LONG}", KEY_LONG, "must decode to 32 bytes"),
        (f"a:{KEY_A}{KEY_SHORT}", KEY_SHORT, "not valid base64"),
        (KEY_A, KEY_A, "not of the form id:base64key"),  # key pasted without an id
        (f"{KEY_A}:a", KEY_A, "invalid KEK id"),  # id and key swapped
        (f"bad id:{KEY_A}", KEY_A, "invalid KEK id"),
        (f"{'x' * 65}:{KEY_A}", KEY_A, "invalid KEK id"),
        (f":{KEY_A}", KEY_A, "invalid KEK id"),
        (f"a:{KEY_A},a:{KEY_B}", KEY_B, "appears twice"),
        (f"a:{KEY_A},b", KEY_A, "entry 2 is not of the form"),
        (",, ,", "", "lists no KEK"),
    ],
    ids=[
        "bad-base64",
        "missing-padding",
        "inner-space",
        "16-byte-key",
        "64-byte-key",
        "two-keys-run-together",
        "no-id",
        "swapped",
        "space-in-id",
        "long-id",
        "empty-id",
        "duplicate-id",
        "second-entry-no-colon",
        "only-separators",
    ],
)
def test_malformed_keks_setting_is_refused_without_echoing_key_material(
    kek_settings, value, material, expected
):
    kek_settings.KEYVAULT_KEKS = value
    message = configuration_error()
    assert expected in message
    assert "KEYVAULT_KEKS" in message
    if material:
        assert material not in message
    for key in (KEY_A, KEY_B, KEY_SHORT, KEY_LONG):
        assert key not in message


def test_malformed_keks_file_is_refused_and_names_the_file_source(kek_settings, tmp_path):
    path = tmp_path / "keks.txt"
    path.write_text(f"# header\na:{KEY_A}\nb:{KEY_SHORT}\n", encoding="utf-8")
    kek_settings.KEYVAULT_KEKS_FILE = str(path)
    message = configuration_error()
    assert message.startswith("KEYVAULT_KEKS_FILE:")
    assert "'b'" in message
    assert KEY_SHORT not in message and KEY_A not in message


def test_an_empty_keks_file_is_refused(kek_settings, tmp_path):
    path = tmp_path / "keks.txt"
    path.write_text("# nothing here yet\n\n", encoding="utf-8")
    kek_settings.KEYVAULT_KEKS_FILE = str(path)
    assert "lists no KEK" in configuration_error()


def test_a_missing_keks_file_is_refused(kek_settings, tmp_path):
    kek_settings.KEYVAULT_KEKS_FILE = str(tmp_path / "absent.txt")
    assert "cannot read" in configuration_error()


def test_a_failed_build_caches_nothing(kek_settings):
    kek_settings.KEYVAULT_KEKS = "no-colon"
    for _ in range(2):
        with pytest.raises(KeyringConfigurationError):
            get_keyring()
    kek_settings.KEYVAULT_KEKS = f"a:{KEY_A}"
    assert get_keyring().kek_ids == ("a",)


def test_debug_off_and_no_kek_is_a_configuration_error(kek_settings):
    assert not keks_configured()
    assert "No key-encryption key is configured" in configuration_error()
    assert not kek_settings.KEYVAULT_DEV_KEK_FILE.exists()


def test_debug_on_and_no_kek_generates_a_private_development_kek_once(kek_settings, caplog):
    kek_settings.DEBUG = True
    path = kek_settings.KEYVAULT_DEV_KEK_FILE

    with caplog.at_level(logging.WARNING, logger="keyvault.crypto.loading"):
        first = get_keyring()
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "development KEK" in caplog.records[0].getMessage()
    assert first.primary_kek_id.startswith("dev-")
    content = path.read_bytes()
    sealed = seal(b"dev secret", CONTEXT, first)

    caplog.clear()
    reset_keyring()
    with caplog.at_level(logging.WARNING, logger="keyvault.crypto.loading"):
        second = get_keyring()
    assert second is not first
    assert second.kek_ids == first.kek_ids
    assert path.read_bytes() == content
    assert caplog.records == []
    assert open_sealed(sealed, CONTEXT, second) == b"dev secret"
    assert [p.name for p in path.parent.iterdir()] == ["dev-kek.txt"]  # no temporary left


def test_the_development_kek_is_never_logged(kek_settings, caplog):
    kek_settings.DEBUG = True
    with caplog.at_level(logging.DEBUG):
        get_keyring()
    material = kek_settings.KEYVAULT_DEV_KEK_FILE.read_text().splitlines()[-1].split(":")[1]
    assert material not in caplog.text


def test_concurrent_starts_share_one_complete_development_kek(kek_settings, caplog):
    kek_settings.DEBUG = True
    barrier = threading.Barrier(12)
    results, errors = [], []

    def start():
        barrier.wait()
        try:
            results.append(build_keyring().kek_ids)
        except Exception as exc:
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="keyvault.crypto.loading"):
        threads = [threading.Thread(target=start) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert len(set(results)) == 1 and len(results) == 12
    assert len(caplog.records) == 1


def test_an_existing_development_kek_is_used_as_is(kek_settings):
    kek_settings.DEBUG = True
    path = kek_settings.KEYVAULT_DEV_KEK_FILE
    path.parent.mkdir(parents=True)
    path.write_text(f"dev-fixed:{KEY_A}\n", encoding="utf-8")
    assert get_keyring().kek_ids == ("dev-fixed",)


def test_a_configured_kek_wins_over_the_development_file_in_debug(kek_settings):
    kek_settings.DEBUG = True
    kek_settings.KEYVAULT_KEKS = f"real:{KEY_A}"
    assert get_keyring().kek_ids == ("real",)
    assert not kek_settings.KEYVAULT_DEV_KEK_FILE.exists()


def test_new_kek_line_is_loadable_and_fresh_each_time():
    first, second = new_kek_line(), new_kek_line()
    assert first != second
    keks = parse_kek_entries([first, second], source="test")
    assert [len(material) for material in keks.values()] == [32, 32]
    assert next(iter(keks)).startswith("kek-")


def test_new_kek_line_uses_the_given_id_and_loads_through_settings(kek_settings):
    kek_settings.KEYVAULT_KEKS = new_kek_line("prod-2025")
    assert get_keyring().kek_ids == ("prod-2025",)


def test_new_kek_line_refuses_a_bad_id():
    with pytest.raises(KeyringConfigurationError):
        new_kek_line("not valid")
