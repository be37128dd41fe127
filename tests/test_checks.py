"""Keyvault's system checks: no KEK with DEBUG off, malformed KEKs, stored keys whose KEK is not
loaded, a weak SECRET_KEY, state kept under whatever folder a process started in; and the
start-up guard that turns any of them into a refusal to serve."""

import base64
import secrets
from unittest import mock

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from keyvault import crypto
from keyvault.checks import (
    TAG,
    check_event_settings,
    check_keyring,
    check_secret_key,
    check_state_folder_is_chosen,
    check_stored_keks_loaded,
    refuse_to_start_on_errors,
)
from tests.factories import ProviderKeyFactory

PRIMARY = "test-primary:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
OTHER = "other:" + base64.b64encode(bytes(range(100, 132))).decode()


@pytest.fixture(autouse=True)
def fresh_keyring():
    crypto.reset_keyring()
    yield
    crypto.reset_keyring()


def error_ids(messages):
    return [message.id for message in messages]


def keyvault_errors():
    return [
        message
        for message in checks.run_checks(tags=[TAG])
        if message.level >= checks.ERROR and not message.is_silenced()
    ]


def test_a_configured_keyring_passes(db):
    assert keyvault_errors() == []
    refuse_to_start_on_errors()


def test_the_checks_are_registered_under_the_keyvault_tag():
    assert TAG in checks.registry.registry.tags_available()


def test_no_kek_with_debug_off_is_e101(settings):
    settings.DEBUG = False
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KEKS_FILE = ""
    errors = check_keyring()
    assert error_ids(errors) == ["keyvault.E101"]
    assert "KEYVAULT_KEKS" in errors[0].hint


def test_no_kek_with_debug_off_refuses_to_start(db, settings):
    settings.DEBUG = False
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KEKS_FILE = ""
    with pytest.raises(ImproperlyConfigured, match=r"keyvault\.E101"):
        refuse_to_start_on_errors()


def test_no_kek_with_debug_on_generates_a_development_kek(settings, tmp_path, caplog):
    settings.DEBUG = True
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KEKS_FILE = ""
    settings.KEYVAULT_DEV_KEK_FILE = tmp_path / "var" / "dev-kek.txt"
    assert check_keyring() == []
    assert settings.KEYVAULT_DEV_KEK_FILE.exists()
    assert "development KEK" in caplog.text


@pytest.mark.parametrize(
    "keks",
    [
        "no-colon-here",
        "bad id!:" + PRIMARY.split(":", 1)[1],
        "short:" + base64.b64encode(b"too short").decode(),
        "notbase64:%%%%",
        f"{PRIMARY},{PRIMARY}",
        ",",
    ],
    ids=["no colon", "bad id", "short key", "not base64", "duplicate id", "empty list"],
)
def test_malformed_keks_are_e102(settings, keks):
    settings.KEYVAULT_KEKS = keks
    settings.KEYVAULT_KEKS_FILE = ""
    errors = check_keyring()
    assert error_ids(errors) == ["keyvault.E102"]
    key_material = PRIMARY.split(":", 1)[1]
    assert key_material not in errors[0].msg


def test_both_kek_settings_at_once_is_e102(settings, tmp_path):
    kek_file = tmp_path / "keks.txt"
    kek_file.write_text(PRIMARY + "\n")
    settings.KEYVAULT_KEKS = PRIMARY
    settings.KEYVAULT_KEKS_FILE = str(kek_file)
    assert error_ids(check_keyring()) == ["keyvault.E102"]


def test_an_unreadable_kek_file_is_e102(settings, tmp_path):
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KEKS_FILE = str(tmp_path / "missing.txt")
    assert error_ids(check_keyring()) == ["keyvault.E102"]


def test_a_kek_file_is_accepted(settings, tmp_path):
    kek_file = tmp_path / "keks.txt"
    kek_file.write_text(f"# primary first\n{OTHER}\n\n{PRIMARY}\n")
    settings.KEYVAULT_KEKS = ""
    settings.KEYVAULT_KEKS_FILE = str(kek_file)
    assert check_keyring() == []
    assert crypto.get_keyring().kek_ids == ("other", "test-primary")


def test_a_stored_key_whose_kek_is_not_loaded_is_e103(db, organization, settings):
    ProviderKeyFactory(organization=organization)
    assert check_stored_keks_loaded() == []

    settings.KEYVAULT_KEKS = OTHER
    errors = check_stored_keks_loaded()
    assert error_ids(errors) == ["keyvault.E103"]
    assert "test-primary" in errors[0].msg
    with pytest.raises(ImproperlyConfigured, match=r"keyvault\.E103.*test-primary"):
        refuse_to_start_on_errors()


def test_a_decrypt_only_old_kek_satisfies_e103(db, organization, settings):
    ProviderKeyFactory(organization=organization)
    settings.KEYVAULT_KEKS = f"{OTHER},{PRIMARY}"
    assert check_stored_keks_loaded() == []
    refuse_to_start_on_errors()


def test_e103_lists_each_missing_kek_once(db, organization, settings):
    for _ in range(3):
        ProviderKeyFactory(organization=organization)
    settings.KEYVAULT_KEKS = OTHER
    (error,) = check_stored_keks_loaded()
    assert error.msg.count("test-primary") == 1


def test_an_unusable_keyring_is_reported_once_not_as_e103(db, organization, settings):
    ProviderKeyFactory(organization=organization)
    settings.KEYVAULT_KEKS = "broken"
    assert check_stored_keks_loaded() == []
    assert error_ids(keyvault_errors()) == ["keyvault.E102"]


def test_a_silenced_check_does_not_stop_the_start(db, organization, settings):
    ProviderKeyFactory(organization=organization)
    settings.KEYVAULT_KEKS = OTHER
    # The error is still there to silence: only the silencing lets the start go on.
    assert error_ids(check_stored_keks_loaded()) == ["keyvault.E103"]
    settings.SILENCED_SYSTEM_CHECKS = ["keyvault.E103"]
    refuse_to_start_on_errors()


# --- the start-up guard closes its database connections -----------------------------------


@pytest.fixture
def close_all():
    with mock.patch("keyvault.checks.connections.close_all") as spy:
        yield spy


def test_the_start_up_guard_closes_every_database_connection(db, close_all):
    """gunicorn --preload forks workers after the guard ran: none may inherit its connection."""
    refuse_to_start_on_errors()
    close_all.assert_called_once_with()


def test_the_start_up_guard_closes_its_connections_also_when_it_refuses(db, settings, close_all):
    settings.KEYVAULT_KEKS = "broken"
    with pytest.raises(ImproperlyConfigured, match=r"keyvault\.E102"):
        refuse_to_start_on_errors()
    close_all.assert_called_once_with()


def test_the_start_up_guard_closes_its_connections_also_when_a_check_crashes(db, close_all):
    with (
        mock.patch("keyvault.checks.checks.run_checks", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError, match="boom"),
    ):
        refuse_to_start_on_errors()
    close_all.assert_called_once_with()


# --- SECRET_KEY (E104) ----------------------------------------------------------------------

STRONG_SECRET_KEY = secrets.token_urlsafe(50)
WEAK_SECRET_KEYS = {
    "empty": "",
    "49 characters": secrets.token_urlsafe(60)[:49],
    "low variety": "abcd" * 20,
    "django-insecure": "django-insecure-" + secrets.token_urlsafe(50),
}


@pytest.mark.parametrize("key", WEAK_SECRET_KEYS.values(), ids=WEAK_SECRET_KEYS.keys())
def test_a_weak_secret_key_with_debug_off_is_e104(settings, key):
    settings.DEBUG = False
    settings.SECRET_KEY = key
    errors = check_secret_key()
    assert error_ids(errors) == ["keyvault.E104"]
    assert "token_urlsafe" in errors[0].hint
    if key:
        assert key not in errors[0].msg and key not in errors[0].hint


@pytest.mark.parametrize("key", WEAK_SECRET_KEYS.values(), ids=WEAK_SECRET_KEYS.keys())
def test_a_weak_secret_key_with_debug_off_refuses_to_start(db, settings, key):
    settings.DEBUG = False
    settings.SECRET_KEY = key
    with pytest.raises(ImproperlyConfigured, match=r"keyvault\.E104"):
        refuse_to_start_on_errors()


def test_a_strong_secret_key_passes(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = STRONG_SECRET_KEY
    assert check_secret_key() == []


def test_a_secret_key_of_exactly_50_varied_characters_passes(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = ("0123456789" * 5)[:50]
    assert check_secret_key() == []


@pytest.mark.parametrize("key", WEAK_SECRET_KEYS.values(), ids=WEAK_SECRET_KEYS.keys())
def test_any_secret_key_passes_with_debug_on(settings, key):
    settings.DEBUG = True
    settings.SECRET_KEY = key
    assert check_secret_key() == []


def deploy_messages():
    return [
        message
        for message in checks.run_checks(tags=[TAG], include_deployment_checks=True)
        if not message.is_silenced()
    ]


def test_an_installed_keyvault_without_a_state_folder_warns_on_check_deploy(db, settings):
    settings.KEYVAULT_VAR_DIR_FROM_CWD = True
    warnings = check_state_folder_is_chosen()
    assert error_ids(warnings) == ["keyvault.W108"]
    assert str(settings.VAR_DIR) in warnings[0].msg
    assert "KEYVAULT_VAR_DIR" in warnings[0].hint
    assert "keyvault.W108" in error_ids(deploy_messages())


def test_the_state_folder_warning_is_a_deploy_check_only(db, settings):
    """Development and `keyvault generate_kek` in any folder are fine; only `check --deploy`
    (before a production start) asks for the folder to be chosen."""
    settings.KEYVAULT_VAR_DIR_FROM_CWD = True
    assert "keyvault.W108" not in error_ids(checks.run_checks(tags=[TAG]))
    refuse_to_start_on_errors()


def test_a_chosen_state_folder_passes(settings):
    settings.KEYVAULT_VAR_DIR_FROM_CWD = False
    assert check_state_folder_is_chosen() == []


# --- The event feed (E109, E110) ------------------------------------------------------------


def test_the_default_event_settings_pass(settings):
    assert check_event_settings() == []


@pytest.mark.parametrize("days", [0, 6])
def test_an_event_retention_below_seven_days_is_e109_and_refuses_to_start(db, settings, days):
    settings.KEYVAULT_EVENTS_RETENTION_DAYS = days
    assert error_ids(check_event_settings()) == ["keyvault.E109"]
    with pytest.raises(ImproperlyConfigured, match=r"keyvault\.E109"):
        refuse_to_start_on_errors()


def test_a_negative_number_of_parked_polls_is_e110(settings):
    settings.KEYVAULT_EVENTS_MAX_WAITERS = -1
    assert error_ids(check_event_settings()) == ["keyvault.E110"]


@pytest.mark.parametrize(
    "urls",
    [
        {"nope": "https://gw.example"},
        {"openai": "ftp://gw.example"},
        {"openai": "https://"},
        {"openai": "https://user:pw@gw.example"},
    ],
)
def test_bad_provider_base_urls_are_e111(settings, urls):
    from keyvault.checks import check_provider_base_urls

    settings.KEYVAULT_PROVIDER_BASE_URLS = urls
    assert [error.id for error in check_provider_base_urls()] == ["keyvault.E111"]


def test_provider_base_urls_of_known_providers_pass(settings):
    from keyvault.checks import check_provider_base_urls

    settings.KEYVAULT_PROVIDER_BASE_URLS = {
        "openai": "https://gw.example/openai/v1",
        "anthropic": "http://10.0.0.5:8080",
    }
    assert check_provider_base_urls() == []
