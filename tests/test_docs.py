"""The project's documents point at things that exist.

Code, tests and docs cite documents ("see docs/encryption.md") and the docs name source files
(docs/architecture.md is a map of them): a citation of a document that is not in the repository,
or a map entry for a module that moved, fails here instead of sending a reader nowhere.
"""

import re
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
SKIPPED = {".git", ".venv", "build", "var", "node_modules", "__pycache__"}

# A document named in prose or in a link: `docs/api.md`, `permissions.md`, `README.md`.
DOCUMENT = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")
# A Markdown link to a file of the repository: `[text](path)`, not to a web address or anchor.
LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)")
# A source path in backquotes: `keyvault/api/views.py`, `keyvault/crypto/` (no patterns).
SOURCE_PATH = re.compile(r"`((?:[a-z_]+/)+(?:[\w.]+\.py)?)`")


def _project_files(*suffixes: str) -> list[Path]:
    return sorted(
        path
        for path in BASE_DIR.rglob("*")
        if path.suffix in suffixes
        and path.is_file()
        and not SKIPPED & set(path.relative_to(BASE_DIR).parts)
        and not path.name.endswith(".egg-info")
    )


def _exists(reference: str, cited_from: Path) -> bool:
    """A reference resolves beside the file that makes it (Markdown links), from the root, or
    in docs/ (code names "benchmarks.md" when it writes docs/benchmarks.md)."""
    return any(
        (folder / reference).exists() for folder in (cited_from.parent, BASE_DIR, BASE_DIR / "docs")
    )


def test_the_scan_sees_the_documents_and_their_citations():
    """Guards the tests below: they must find citations to check, or they prove nothing."""
    docs = {path.name for path in _project_files(".md")}
    assert {"README.md", "api.md", "architecture.md", "permissions.md"} <= docs
    cited = {
        match
        for path in _project_files(".py")
        for match in DOCUMENT.findall(path.read_text(encoding="utf-8"))
    }
    assert "docs/encryption.md" in cited
    assert "docs/permissions.md" in cited


@pytest.mark.parametrize(
    "path", _project_files(".py", ".md"), ids=lambda p: p.relative_to(BASE_DIR).as_posix()
)
def test_every_cited_document_exists(path):
    text = path.read_text(encoding="utf-8")
    references = DOCUMENT.findall(text) + (LINK.findall(text) if path.suffix == ".md" else [])
    missing = sorted({ref for ref in references if not _exists(ref, path)})
    assert missing == [], f"{path.relative_to(BASE_DIR)} cites {missing}"


@pytest.mark.parametrize("name", ["architecture.md", "permissions.md"])
def test_every_source_path_the_map_names_exists(name):
    text = (BASE_DIR / "docs" / name).read_text(encoding="utf-8")
    paths = SOURCE_PATH.findall(text)
    assert paths, f"docs/{name} names no source path"
    assert sorted(p for p in paths if not (BASE_DIR / p).exists()) == []
