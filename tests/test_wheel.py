"""The wheel `pip install .` builds, and Keyvault run from it outside the checkout.

The wheel is built as a release is (`python -m build`: an sdist, then the wheel from that sdist),
once for the module. Its file list must hold every package, migration, command, template and
static file of the checkout, and nothing else at the top of site-packages. Unpacked into a
folder of its own (`pip install --target`, no dependencies: this virtualenv provides them) and
run from yet another folder, `keyvault` must find its templates and static files inside the
package and keep its state where the operator says. `.ci/wheel-check` goes the rest of the way:
a fresh virtualenv, gunicorn and real requests.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_settings import production_env

pytestmark = pytest.mark.packaging

BASE_DIR = Path(__file__).resolve().parent.parent
# Shipped inside the config package, where top-level names this generic cannot collide.
SITE_FOLDERS = {"templates": "config/templates", "static": "config/static"}
# Parts of the checkout that are not Keyvault itself.
# Not part of the server's wheel: the suite, the benchmarks, build output, and the proxy client,
# which is a package of its own (clients/python/pyproject.toml).
NOT_SHIPPED = {"tests", "benchmarks", "build", "clients"}


def _run(args, *, cwd, env, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    try:
        import build  # noqa: F401
    except ImportError:
        reason = "the `build` package (dev extra) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("dist")
    result = _run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(BASE_DIR)],
        cwd=BASE_DIR,
        env=os.environ.copy(),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("keyvault-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def _checkout_packages() -> list[Path]:
    """Every Python package of the checkout that is part of Keyvault, found on disk, so that a
    new app or sub-package missing from pyproject.toml fails here."""
    return sorted(
        init.parent.relative_to(BASE_DIR)
        for init in BASE_DIR.glob("*/**/__init__.py")
        if init.relative_to(BASE_DIR).parts[0] not in NOT_SHIPPED
        and not init.relative_to(BASE_DIR).parts[0].startswith(".")
    )


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        path.relative_to(BASE_DIR)
        for path in (BASE_DIR / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def test_the_checkout_has_the_packages_this_module_expects():
    """Guards the discovery below: it must see the apps, or the next tests prove nothing."""
    packages = {package.as_posix() for package in _checkout_packages()}
    assert {"accounts", "audit", "config", "core", "keyvault", "organizations"} <= packages
    assert {"keyvault/migrations", "organizations/management/commands"} <= packages


def test_every_module_of_every_package_is_in_the_wheel(names):
    expected = {
        path.as_posix()
        for package in _checkout_packages()
        for path in _files_under(package)
        if path.suffix == ".py"
    }
    assert expected, "no modules found in the checkout"
    assert sorted(expected - names) == []


def test_migrations_and_commands_are_in_the_wheel(names):
    """Named separately: a wheel without them installs and imports, then fails at migrate."""
    for app in ("keyvault", "organizations"):
        assert f"{app}/migrations/0001_initial.py" in names
    assert "keyvault/management/commands/create_token.py" in names
    assert "organizations/management/commands/create_org.py" in names


@pytest.mark.parametrize("folder", sorted(SITE_FOLDERS))
def test_every_template_and_static_file_is_in_the_config_package(names, folder):
    files = _files_under(Path(folder))
    assert files, f"nothing under {folder}/"
    shipped = {f"{SITE_FOLDERS[folder]}/{path.relative_to(folder).as_posix()}" for path in files}
    assert sorted(shipped - names) == []


def test_the_gunicorn_settings_are_in_the_wheel(names):
    assert "config/gunicorn.conf.py" in names


def test_nothing_else_lands_at_the_top_of_site_packages(names):
    tops = {name.split("/", 1)[0] for name in names}
    apps = {package.parts[0] for package in _checkout_packages()}
    stray = {top for top in tops - apps if not top.endswith(".dist-info")}
    # In particular no templates/ or static/ beside other distributions, and no tests.
    assert stray == set()


def test_the_wheel_declares_the_keyvault_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "keyvault = config.cli:main" in text


# --- Run from the unpacked wheel, in a folder that is not the checkout -------------------------


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site-packages")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
    result = _run(
        [*pip, "--target", str(target), str(wheel)],
        cwd=target,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """The folder commands run from: neither the checkout nor the installed package."""
    folder = tmp_path / "operator"
    folder.mkdir()
    return folder


def _installed_env(installed, tmp_path, **overrides) -> dict[str, str]:
    # The unpacked wheel comes first on the path, before this virtualenv's editable checkout.
    return production_env(tmp_path, PYTHONPATH=str(installed), **overrides)


def keyvault(installed, *args, cwd, env) -> subprocess.CompletedProcess:
    return _run([str(installed / "bin" / "keyvault"), *args], cwd=cwd, env=env)


PRINT_PATHS = """
import json, django
django.setup()
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import get_template
import config
print(json.dumps({
    "config": str(config.__file__),
    "template": str(get_template("account/login.html").origin.name),
    "stylesheet": str(finders.find("css/keyvault.css")),
    "var": str(settings.VAR_DIR),
    "debug": settings.DEBUG,
}))
"""


def test_installed_keyvault_finds_templates_and_static_files_in_its_package(
    installed, elsewhere, tmp_path
):
    env = _installed_env(installed, tmp_path, KEYVAULT_VAR_DIR=str(tmp_path / "state"))
    result = _run([sys.executable, "-c", PRINT_PATHS], cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout.strip().splitlines()[-1])
    package = installed / "config"
    assert Path(paths["config"]).parent == package
    assert Path(paths["template"]) == package / "templates" / "account" / "login.html"
    assert Path(paths["stylesheet"]) == package / "static" / "css" / "keyvault.css"
    assert Path(paths["var"]) == tmp_path / "state"


def test_installed_keyvault_checks_and_migrates_from_another_folder(installed, elsewhere, tmp_path):
    state = tmp_path / "state"
    env = _installed_env(installed, tmp_path, KEYVAULT_VAR_DIR=str(state))
    env.pop("DATABASE_URL")  # The default database, under KEYVAULT_VAR_DIR.
    check = keyvault(
        installed, "check", "--deploy", "--fail-level", "WARNING", cwd=elsewhere, env=env
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "System check identified no issues" in check.stdout
    migrate = keyvault(installed, "migrate", "--noinput", "-v0", cwd=elsewhere, env=env)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert (state / "keyvault.sqlite3").is_file()
    assert (state / "staticfiles").is_dir()
    # Nothing was written into the package or the folder the commands ran from.
    assert not (installed / "var").exists()
    assert list(elsewhere.iterdir()) == []


def test_installed_keyvault_without_a_state_folder_keeps_the_default_database_in_cwd(
    installed, elsewhere, tmp_path
):
    env = _installed_env(installed, tmp_path)
    env.pop("DATABASE_URL")
    result = keyvault(installed, "migrate", "--noinput", "-v0", cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (elsewhere / "var" / "keyvault.sqlite3").is_file()
    assert not (installed / "var").exists()


def test_installed_keyvault_without_a_state_folder_warns_and_litters_nothing(
    installed, elsewhere, tmp_path
):
    """With the database elsewhere nothing needs the folder yet: a command run in some folder
    (`keyvault generate_kek` in a home directory) leaves no var/ there, and `check --deploy`
    says where the state would go."""
    env = _installed_env(installed, tmp_path)
    result = keyvault(installed, "check", "--deploy", cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keyvault.W108" in result.stderr
    assert str(elsewhere / "var") in result.stderr
    generate = keyvault(installed, "generate_kek", cwd=elsewhere, env=env)
    assert generate.returncode == 0, generate.stderr
    assert list(elsewhere.iterdir()) == []


def test_installed_keyvault_reads_no_dotenv_file(installed, elsewhere, tmp_path):
    """Neither one in the folder a command runs from nor one beside the package (where a
    checkout keeps its own) may switch DEBUG on."""
    beside_the_package = installed / ".env"
    for dotenv in (elsewhere / ".env", beside_the_package):
        dotenv.write_text("DEBUG=true\n")
    env = _installed_env(installed, tmp_path, KEYVAULT_VAR_DIR=str(tmp_path / "state"))
    env.pop("DEBUG")
    try:
        result = _run([sys.executable, "-c", PRINT_PATHS], cwd=elsewhere, env=env)
    finally:
        beside_the_package.unlink()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["debug"] is False


def test_installed_keyvault_reports_an_unusable_state_folder_in_one_line(
    installed, elsewhere, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = _installed_env(installed, tmp_path, KEYVAULT_VAR_DIR=str(blocker / "state"))
    result = keyvault(installed, "check", cwd=elsewhere, env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"keyvault: Cannot create the folder for Keyvault's state {blocker / 'state'} "
        "(Not a directory); set KEYVAULT_VAR_DIR to a writable folder."
    ]
