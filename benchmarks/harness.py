"""Shared pieces of the benchmarks: a scratch PostgreSQL database, the app's environment,
running manage.py, and updating one section of docs/benchmarks.md."""

import os
import re
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


def gunicorn(env: dict, port: int, workers: int, extra=()) -> subprocess.Popen:
    """The production command, `gunicorn -c config/gunicorn.conf.py config.wsgi`, on `port`
    with `workers` workers: worker class and threads are the config file's, unless `extra`
    (more gunicorn arguments) overrides them."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"),
            *extra,
            "config.wsgi",
        ],
        cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)},
    )


_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_WRK_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


def wrk(
    url: str, token: str | None, concurrency: int, duration: int, *, header: str | None = None
) -> tuple[float, float, float, int]:
    """wrk with one thread against `url`, sending `Authorization: Bearer <token>` (or `header`
    instead): requests/s, p50 ms, p99 ms, and the errors (non-2xx answers, plus requests wrk
    gave up on: a connect, read or write error, or no answer within its 2 s timeout)."""
    output = subprocess.run(
        [
            *("wrk", "--latency", "-t", "1", "-c", str(concurrency), "-d", f"{duration}s"),
            *("-H", header or f"Authorization: Bearer {token}", url),
        ],
        check=True,
        text=True,
        capture_output=True,
    ).stdout
    latency = {p: float(v) * _WRK_UNIT[u] for p, v, u in _WRK_LATENCY.findall(output)}
    non_2xx = _WRK_NON_2XX.search(output)
    socket_errors = _WRK_SOCKET_ERRORS.search(output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    )
    return (
        float(_WRK_RPS.search(output).group(1)),
        latency.get("50", float("nan")),
        latency.get("99", float("nan")),
        errors,
    )
