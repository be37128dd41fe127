"""The two environment examples: `.env.example` is safe to copy for development (nothing a
deployment sets), `deploy/keyvault.env.example` names every variable the settings read and,
once its blanks are filled, passes `check --deploy`."""

import re
from pathlib import Path

from config.settings import PRODUCTION_VARIABLES
from keyvault.crypto.loading import new_kek_line
from tests.test_settings import SECRET_KEY, run, unconfigured_env

BASE_DIR = Path(__file__).resolve().parent.parent
DEVELOPMENT = BASE_DIR / ".env.example"
PRODUCTION = BASE_DIR / "deploy" / "keyvault.env.example"


def assignments(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def variables_read() -> set[str]:
    names = set()
    for module in ("settings.py", "gunicorn.conf.py"):
        source = (BASE_DIR / "config" / module).read_text()
        names |= set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', source))
        names |= set(re.findall(r'environ\.get\(\s*"([A-Z_]+)"', source))
    return names


def test_the_development_example_sets_debug_and_nothing_a_deployment_sets():
    values = assignments(DEVELOPMENT)
    assert values == {"DEBUG": "true"}
    assert not set(values) & set(PRODUCTION_VARIABLES)


def test_the_production_example_names_every_variable_the_settings_read():
    assert variables_read() - set(assignments(PRODUCTION)) == set()


def test_the_production_example_keeps_debug_off_and_trusts_its_proxy():
    values = assignments(PRODUCTION)
    assert values["DEBUG"] == "false"
    assert values["USE_X_FORWARDED_PROTO"] == "true"
    assert values["KEYVAULT_CLIENT_IP_HEADER"] == "HTTP_X_FORWARDED_FOR"


def test_the_production_example_with_its_blanks_filled_passes_check_deploy(tmp_path):
    values = assignments(PRODUCTION)
    values.update(
        SECRET_KEY=SECRET_KEY,
        KEYVAULT_KEKS=new_kek_line("example"),
        KEYVAULT_KEKS_FILE="",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        KEYVAULT_VAR_DIR=str(tmp_path / "state"),
        CACHE_URL="locmemcache://",
    )
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        unconfigured_env(tmp_path, **values),
    )
    assert result.returncode == 0, result.stdout + result.stderr
