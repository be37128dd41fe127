"""Shared pieces of the benchmarks: a scratch PostgreSQL database, the app's environment,
running manage.py, and updating one section of docs/benchmarks.md."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")


def app_env(database: str, kek: str) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=f"{PG}/{database}",
        CACHE_URL=REDIS,
        KEYVAULT_KEKS=kek,
        CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
        # Throttling stays on (its cache round trip is part of the cost), above the load.
        KEYVAULT_API_TOKEN_RATE_PER_MINUTE="100000000",
    )
    return env


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", sql, "postgres"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def manage(env: dict, *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
    )
    return result.stdout if capture else ""


def update_report(heading: str, section: str) -> Path:
    """Replace (or add) the `## heading` section of docs/benchmarks.md."""
    report = DOCS / "benchmarks.md"
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    marker = f"## {heading}"
    start = text.find(marker)
    if start != -1:
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1 :] if end != -1 else "")
    report.write_text(text.rstrip() + "\n\n" + section.rstrip() + "\n")
    return report
