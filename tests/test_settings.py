"""The real settings module (`config.settings`), loaded in a fresh process per case: production
defaults pass `check --deploy`, a missing KEK stops the process, each safeguard can be
switched by its environment variable, and writable state goes where KEYVAULT_VAR_DIR says.
(An installed wheel, run outside the checkout, is tests/test_wheel.py's.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyvault.crypto.loading import new_kek_line

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "kv-test-" + "q7Rz!x2Lm9#Vb4Np8@Wc6Yt1Hs5Jd3Kf0Gh" * 2

# Every variable the settings read, so that neither the caller's environment nor a local `.env`
# file decides the outcome (the settings never let `.env` override the environment).
_CONTROLLED = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "CONN_MAX_AGE",
    "CACHE_URL",
    "LOG_LEVEL",
    "KEYVAULT_KEKS",
    "KEYVAULT_KEKS_FILE",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "USE_X_FORWARDED_PROTO",
    "KEYVAULT_VAR_DIR",
)
_DEFAULTS = {
    "SECURE_SSL_REDIRECT": "",
    "SESSION_COOKIE_SECURE": "",
    "CSRF_COOKIE_SECURE": "",
    "SECURE_HSTS_SECONDS": "",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "",
    "SECURE_HSTS_PRELOAD": "",
}

PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": s.SECURE_HSTS_PRELOAD,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "DATABASE": [s.DATABASES["default"]["ENGINE"], str(s.DATABASES["default"]["NAME"])],
}))
"""


def production_env(tmp_path, **overrides) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _CONTROLLED}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": SECRET_KEY,
            "ALLOWED_HOSTS": "keyvault.example.com",
            "CSRF_TRUSTED_ORIGINS": "",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
            "CACHE_URL": "locmemcache://",
            "KEYVAULT_KEKS": new_kek_line("deploy-test"),
            "KEYVAULT_KEKS_FILE": "",
            "USE_X_FORWARDED_PROTO": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    for name, value in _DEFAULTS.items():
        env.pop(name, None)
        if value:
            env[name] = value
    env.update(overrides)
    return env


def run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def loaded_settings(env) -> dict:
    result = run(["-c", PRINT_SETTINGS], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_the_production_defaults(tmp_path):
    env = production_env(tmp_path)
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert env["KEYVAULT_KEKS"].split(":", 1)[1] not in result.stdout + result.stderr


def test_check_without_a_kek_fails_with_e101(tmp_path):
    env = production_env(tmp_path, KEYVAULT_KEKS="")
    result = run(["manage.py", "check", "--deploy"], env)
    assert result.returncode != 0
    assert "keyvault.E101" in result.stdout + result.stderr


def test_the_wsgi_application_refuses_to_start_without_a_kek(tmp_path):
    env = production_env(tmp_path, KEYVAULT_KEKS="")
    result = run(["-c", "import config.wsgi"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "keyvault.E101" in result.stderr


def test_the_wsgi_application_starts_with_a_kek(tmp_path):
    result = run(["-c", "import config.wsgi"], production_env(tmp_path))
    assert result.returncode == 0, result.stderr


def test_production_safeguards_are_on_by_default_when_debug_is_off(tmp_path):
    values = loaded_settings(production_env(tmp_path))
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["ALLOWED_HOSTS"] == ["keyvault.example.com"]
    assert values["DATABASE"] == ["django.db.backends.sqlite3", str(tmp_path / "deploy.sqlite3")]


def test_each_safeguard_can_be_switched_off_by_its_variable(tmp_path):
    env = production_env(
        tmp_path,
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="false",
        USE_X_FORWARDED_PROTO="true",
    )
    values = loaded_settings(env)
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


@pytest.mark.parametrize("name", ["SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE"])
def test_one_switch_leaves_the_others_on(tmp_path, name):
    values = loaded_settings(production_env(tmp_path, **{name: "false"}))
    assert values[name] is False
    others = {"SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"} - {name}
    assert all(values[other] is True for other in others)


def test_debug_on_turns_the_safeguards_off_by_default(tmp_path):
    values = loaded_settings(production_env(tmp_path, DEBUG="true"))
    assert values["DEBUG"] is True
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0


def test_database_url_selects_postgresql(tmp_path):
    env = production_env(tmp_path, DATABASE_URL="postgres://kv:pw@db.example.com:5432/keyvault")
    engine, name = loaded_settings(env)["DATABASE"]
    assert engine == "django.db.backends.postgresql"
    assert name == "keyvault"


def test_http_client_loggers_stay_quiet_even_at_debug(tmp_path):
    """botocore logs request bodies at DEBUG, and a KMS Encrypt body holds a data key."""
    script = (
        "import django, json, logging; django.setup(); "
        "print(json.dumps({n: logging.getLogger(n).getEffectiveLevel() "
        "for n in ('botocore', 'boto3', 'urllib3', 'keyvault')}))"
    )
    result = run(["-c", script], production_env(tmp_path, LOG_LEVEL="DEBUG"))
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout.strip().splitlines()[-1])
    assert levels["botocore"] == levels["boto3"] == levels["urllib3"] == 30  # WARNING
    assert levels["keyvault"] == 10  # DEBUG reaches the project's own loggers


def test_sqlite_writers_wait_for_the_lock_instead_of_failing(tmp_path):
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {})))"
    )
    result = run(["-c", script], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5


PRINT_STATE_PATHS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "VAR_DIR": str(s.VAR_DIR),
    "DATABASE": str(s.DATABASES["default"]["NAME"]),
    "STATIC_ROOT": str(s.STATIC_ROOT),
    "KEYVAULT_DEV_KEK_FILE": str(s.KEYVAULT_DEV_KEK_FILE),
    "FROM_CWD": s.KEYVAULT_VAR_DIR_FROM_CWD,
}))
"""


def _without_database_url(env) -> dict[str, str]:
    env.pop("DATABASE_URL")  # The default SQLite database, kept under the state folder.
    return env


def test_keyvault_var_dir_holds_the_database_static_files_and_development_kek(tmp_path):
    state = tmp_path / "state" / "keyvault"
    env = _without_database_url(production_env(tmp_path, KEYVAULT_VAR_DIR=str(state)))
    result = run(["-c", PRINT_STATE_PATHS], env)
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout.strip().splitlines()[-1])
    assert paths == {
        "VAR_DIR": str(state),
        "DATABASE": str(state / "keyvault.sqlite3"),
        "STATIC_ROOT": str(state / "staticfiles"),
        "KEYVAULT_DEV_KEK_FILE": str(state / "dev-kek.txt"),
        "FROM_CWD": False,
    }
    # Created on first use, readable by its owner only: it holds the database and the dev KEK.
    assert (state / "staticfiles").is_dir()
    assert state.stat().st_mode & 0o777 == 0o700


def test_a_checkout_keeps_its_state_in_var_beside_manage_py_by_default(tmp_path):
    env = _without_database_url(production_env(tmp_path))
    result = run(["-c", PRINT_STATE_PATHS], env)
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout.strip().splitlines()[-1])
    assert paths["VAR_DIR"] == str(BASE_DIR / "var")
    assert paths["DATABASE"] == str(BASE_DIR / "var" / "keyvault.sqlite3")
    assert paths["FROM_CWD"] is False


def test_an_unusable_state_folder_is_one_line_and_a_non_zero_exit(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run(["manage.py", "check"], production_env(tmp_path, KEYVAULT_VAR_DIR=str(blocker)))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"manage.py: Cannot create the folder for Keyvault's state {blocker} (File exists); "
        "set KEYVAULT_VAR_DIR to a writable folder."
    ]


# --- Development defaults: manage.py in a checkout, and nothing else -------------------------

# (The loaded module's SECRET_KEY, read past django.conf, which refuses an empty one.)
PRINT_MODE = (
    "from django.conf import settings as s; "
    "print(s.DEBUG, vars(s._wrapped)['SECRET_KEY'].startswith('django-insecure'), "
    "s.SECURE_SSL_REDIRECT)"
)


def unconfigured_env(tmp_path, **overrides) -> dict[str, str]:
    """No DEBUG and none of the variables a deployment sets: what a fresh clone sees."""
    if (BASE_DIR / ".env").exists():
        pytest.skip("a local .env file configures this checkout")
    env = {name: value for name, value in os.environ.items() if name not in _CONTROLLED}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for name in ("KEYVAULT_KMS_KEYS", *_DEFAULTS):
        env.pop(name, None)
    env.update({"KEYVAULT_VAR_DIR": str(tmp_path / "state"), "LOG_LEVEL": "WARNING"})
    env.update(overrides)
    return env


def manage_py_mode(env) -> str:
    result = run(["manage.py", "shell", "-c", PRINT_MODE], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_manage_py_in_an_unconfigured_checkout_runs_with_development_defaults(tmp_path):
    env = unconfigured_env(tmp_path)
    assert manage_py_mode(env) == "True True False"
    result = run(["manage.py", "check"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "state" / "dev-kek.txt").is_file()


@pytest.mark.parametrize(
    "name",
    [
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "KEYVAULT_KEKS",
        "KEYVAULT_KEKS_FILE",
        "KEYVAULT_KMS_KEYS",
    ],
)
def test_any_production_variable_turns_the_development_defaults_off(tmp_path, name):
    values = {
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "keyvault.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "KEYVAULT_KEKS": new_kek_line("deploy-test"),
        "KEYVAULT_KEKS_FILE": str(tmp_path / "keks.txt"),
        "KEYVAULT_KMS_KEYS": "kms:1234abcd-12ab-34cd-56ef-1234567890ab",
    }
    (tmp_path / "keks.txt").write_text(new_kek_line("file-kek") + "\n")
    assert manage_py_mode(unconfigured_env(tmp_path, **{name: values[name]})) == (
        "False False True"
    )


def test_a_production_variable_without_debug_is_held_to_the_production_checks(tmp_path):
    # A SECRET_KEY alone: no development KEK is made up; the checks refuse to run.
    env = unconfigured_env(tmp_path, SECRET_KEY=SECRET_KEY, ALLOWED_HOSTS="kv.example.com")
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "keyvault.E101" in result.stderr
    assert not (tmp_path / "state" / "dev-kek.txt").exists()
    # A KEK alone: the development SECRET_KEY is not used either.
    env = unconfigured_env(tmp_path, KEYVAULT_KEKS=new_kek_line("deploy-test"))
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "keyvault.E104" in result.stderr


def test_debug_set_to_false_keeps_production_rules_in_a_checkout(tmp_path):
    result = run(["manage.py", "check"], unconfigured_env(tmp_path, DEBUG="false"))
    assert result.returncode != 0
    assert "keyvault.E101" in result.stderr and "keyvault.E104" in result.stderr
    assert not (tmp_path / "state" / "dev-kek.txt").exists()


def test_the_wsgi_application_never_gets_development_defaults(tmp_path):
    # gunicorn imports config.wsgi: an unconfigured process refuses to serve, even in a checkout.
    env = unconfigured_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    result = run(["-c", "import config.wsgi"], env)
    assert result.returncode != 0
    assert "keyvault.E101" in result.stderr
    assert not (tmp_path / "state" / "dev-kek.txt").exists()


def test_the_keyvault_command_never_gets_development_defaults(tmp_path):
    # The installed entry point (config.cli.main without manage.py), here run from the checkout.
    code = "from config.cli import main; main(['keyvault', 'check'])"
    result = run(["-c", code], unconfigured_env(tmp_path))
    assert result.returncode != 0
    assert "keyvault.E101" in result.stderr and "keyvault.E104" in result.stderr
    assert not (tmp_path / "state" / "dev-kek.txt").exists()


def test_importing_the_settings_elsewhere_never_gets_development_defaults(tmp_path):
    env = unconfigured_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    result = run(["-c", f"import django; django.setup(); {PRINT_MODE}"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False True"
