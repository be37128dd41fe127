"""Imports flow one way: no module of a lower layer imports one of a higher layer.

Every module of the project is parsed (nothing is imported, so an import that only runs inside a
function, or only under `TYPE_CHECKING`, counts as much as one at the top) and each import is
placed in the layer of the module it names. The layers, lowest first, are docs/architecture.md's:
a module may import its own layer and those beneath it. Settings are read through
`django.conf.settings`, never by importing `config`.
"""

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

# Lowest first. A module belongs to the layer of the longest prefix it starts with, so
# `keyvault.crypto`, `keyvault.sealing` and `keyvault.fields` sit beneath the rest of `keyvault`.
LAYERS = [
    "core",
    "keyvault.crypto",
    "keyvault.sealing",
    "keyvault.fields",
    "audit",
    "accounts",
    "organizations",
    "keyvault",
    "config",
]
# Parts of the checkout that are not Keyvault itself: they may import anything.
OUTSIDE = {"tests", "benchmarks", "clients", "build"}
# What the crypto layer may not touch of Django: it knows no model and no app.
CRYPTO_FORBIDDEN = ("django.db", "django.apps", "django.contrib")


def layer_of(module: str) -> int | None:
    """The index of `module`'s layer in LAYERS, or None for a module outside the project."""
    matches = [
        (len(prefix), index)
        for index, prefix in enumerate(LAYERS)
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def _is_project_module(name: str) -> bool:
    path = BASE_DIR.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every module `source` (the code of `module`) imports, wherever the import statement is.

    `from package import name` names the submodule `package.name` when there is one, and the
    package otherwise; relative imports are resolved against `module`.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                # A name a package does not define is taken for a submodule, so that a
                # submodule that moved away is reported missing instead of passing as the
                # package.
                if _is_project_module(candidate) or not _package_defines(base, alias.name):
                    found.append(candidate)
                else:
                    found.append(base)
    return found


def _package_defines(package: str, name: str) -> bool:
    """Whether the project package `package` binds `name` itself (in its `__init__.py`);
    True for anything that is not a project package, whose names are not checked here."""
    init = BASE_DIR.joinpath(*package.split("."), "__init__.py")
    if not init.is_file():
        return True
    tree = ast.parse(init.read_text(encoding="utf-8"))
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return name in bound or "*" in bound


def missing_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The project modules `module` imports that are not in this checkout: a path left behind by
    a move (an installed copy of the project elsewhere could answer it and hide the mistake)."""
    return sorted(
        {
            target
            for target in imported_modules(source, module, is_package=is_package)
            if layer_of(target) is not None and not _is_project_module(target)
        }
    )


def upward_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The imports of `module` that reach a higher layer than its own."""
    own = layer_of(module)
    if own is None:
        return []
    return sorted(
        {
            target
            for target in imported_modules(source, module, is_package=is_package)
            if (layer := layer_of(target)) is not None and layer > own
        }
    )


def _project_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(BASE_DIR.rglob("*.py")):
        parts = path.relative_to(BASE_DIR).parts
        if parts[0] in OUTSIDE or parts[0].startswith(".") or "__pycache__" in parts:
            continue
        if len(parts) == 1:  # manage.py: the checkout's entry point, above every layer
            continue
        names = list(parts[:-1]) + ([] if path.name == "__init__.py" else [path.stem])
        modules.append((".".join(names), path))
    return modules


MODULES = _project_modules()


def test_the_scan_sees_every_layer_and_places_every_module():
    """Guards the tests below: each layer has modules, and a new top-level package of the
    project fails here until it is given a layer."""
    seen = {layer_of(module) for module, _path in MODULES}
    assert seen == set(range(len(LAYERS)))
    assert [module for module, _path in MODULES if layer_of(module) is None] == []
    assert "keyvault.management.commands.rotate_kek" in dict(MODULES)
    assert "audit.migrations.0001_initial" in dict(MODULES)


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[module for module, _path in MODULES])
def test_no_module_imports_a_higher_layer(module, path):
    source = path.read_text(encoding="utf-8")
    upward = upward_imports(source, module, is_package=path.name == "__init__.py")
    assert upward == [], f"{module} ({LAYERS[layer_of(module)]}) imports {upward}"


CRYPTO_MODULES = [(module, path) for module, path in MODULES if layer_of(module) == 1]


@pytest.mark.parametrize(
    ("module", "path"), CRYPTO_MODULES, ids=[module for module, _path in CRYPTO_MODULES]
)
def test_crypto_knows_no_model_and_no_app(module, path):
    imports = imported_modules(path.read_text(encoding="utf-8"), module)
    forbidden = sorted(
        name for name in imports if name == "django" or name.startswith(CRYPTO_FORBIDDEN)
    )
    assert forbidden == [], f"{module} imports {forbidden}"


def test_packages_holding_a_lower_layer_import_nothing_when_imported():
    """Importing `keyvault.crypto` runs `keyvault/__init__.py` first: were it to import the rest
    of keyvault, every layer beneath would import it too, whatever its own imports say."""
    assert imported_modules((BASE_DIR / "keyvault" / "__init__.py").read_text(), "keyvault") == []


# --- The check itself can fail ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "upward"),
    [
        ("audit.models", "from keyvault.models import ProxyToken\n", ["keyvault.models"]),
        ("audit", "import organizations.access\n", ["organizations.access"]),
        # `from package import module` names the module, not the package.
        ("accounts.forms", "from organizations import services\n", ["organizations.services"]),
        ("keyvault.fields", "from keyvault import services\n", ["keyvault.services"]),
        ("core.text", "from config import settings\n", ["config.settings"]),
        (
            "organizations.services",
            "def f():\n    from keyvault.locking import lock_keys\n",
            ["keyvault.locking"],
        ),
        (
            "keyvault.crypto.loading",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from audit import record\n",
            ["audit"],
        ),
        ("keyvault.crypto.loading", "from .. import models\n", ["keyvault.models"]),
    ],
)
def test_an_upward_import_is_found_wherever_it_is(module, source, upward):
    assert upward_imports(source, module) == upward


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("organizations.services", "import audit\nfrom accounts.services import find_user\n"),
        ("keyvault.services", "from organizations.access import Access\n"),
        ("audit", "from keyvault.sealing import SealedSecret\n"),
        ("keyvault.fields", "from keyvault.sealing import PendingSecret\n"),
        ("keyvault.fields", "from keyvault import crypto\n"),
        ("core.counters", "from django.conf import settings\n"),
        ("config.urls", "from keyvault.web import urls\n"),
    ],
)
def test_downward_and_outside_imports_pass(module, source):
    assert upward_imports(source, module) == []


@pytest.mark.parametrize(
    "source",
    [
        "from organizations.text import clean_display_name\n",
        "from keyvault import audit\n",
        "import config.counters\n",
    ],
)
def test_an_import_of_a_moved_module_is_found(source):
    assert missing_imports(source, "keyvault.services") != []


def test_the_crypto_check_finds_a_model_import():
    source = "def f():\n    from django.db import models\n"
    assert "django.db" in imported_modules(source, "keyvault.crypto.loading")
