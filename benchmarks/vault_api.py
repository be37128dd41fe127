"""Benchmark of the Vault-compatible surface beside `resolve`: the same key read both ways.

Starts the app under gunicorn on PostgreSQL (Redis as the cache), seeds one organization with N
keys (`benchmarks.seed`), and drives `GET /api/v1/resolve?provider=openai` and
`GET /vault/v1/keyvault/data/openai` (Vault's KV v2 read of the same default key, with
`X-Vault-Token`) with wrk at a few concurrency levels. Prints requests per second, p50 and p99
and the Vault read's ratio to `resolve`, and writes the "Vault-compatible reads" section of
docs/benchmarks.md.

    make bench-vault
    python -m benchmarks.vault_api --keys 1000 --duration 5 --no-report
"""

import argparse
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from benchmarks.harness import ROOT, app_env, manage, psql, update_report, wrk

PORT = int(os.environ.get("BENCH_VAULT_PORT", "8851"))
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "keyvault_bench")


def _measure(url: str, header: str, concurrency: int, duration: int) -> tuple[float, float, float]:
    return wrk(url, None, concurrency, duration, header=header)[:3]


def _up(url: str, header: str, timeout: float = 60) -> None:
    name, _, value = header.partition(": ")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers={name: value}), timeout=2
            ) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not come up")


def run(count: int, concurrencies, duration: int, workers: int) -> list[tuple]:
    database = f"{DATABASE_PREFIX}_vault_{count}"
    kek = f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    psql(f"DROP DATABASE IF EXISTS {database}")
    psql(f"CREATE DATABASE {database}")
    env = app_env(database, kek)
    rows = []
    try:
        manage(env, "migrate", "--noinput")
        seeded = manage(
            env, "shell", "-c", f"from benchmarks.seed import seed; seed({count})", capture=True
        ).split()
        token = seeded[-2]
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{PORT}"),
                *("--workers", str(workers), "--keep-alive", "30", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
        )
        targets = {
            "resolve": (
                f"http://127.0.0.1:{PORT}/api/v1/resolve?provider=openai",
                f"Authorization: Bearer {token}",
            ),
            "vault data": (
                f"http://127.0.0.1:{PORT}/vault/v1/keyvault/data/openai",
                f"X-Vault-Token: {token}",
            ),
        }
        try:
            _up(*targets["vault data"])
            for url, header in targets.values():
                _measure(url, header, max(concurrencies), 2)  # warm the workers
            for concurrency in concurrencies:
                measured = {
                    name: _measure(url, header, concurrency, duration)
                    for name, (url, header) in targets.items()
                }
                base = measured["resolve"][0]
                for name, (rps, p50, p99) in measured.items():
                    rows.append((count, name, concurrency, rps, p50, p99, rps / base))
                    print(
                        f"{count:>7} keys  {name:<10} c={concurrency:<3} {rps:8.0f} req/s  "
                        f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  x resolve {rps / base:.2f}",
                        flush=True,
                    )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        psql(f"DROP DATABASE IF EXISTS {database}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    rows = run(
        args.keys, [int(c) for c in args.concurrency.split(",")], args.duration, args.workers
    )
    table = "\n".join(
        [
            "| keys | endpoint | concurrency | req/s | p50 ms | p99 ms | x resolve |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        + [
            f"| {k:,} | {n} | {c} | {r:,.0f} | {a:.2f} | {b:.2f} | {x:.2f} |"
            for k, n, c, r, a, b, x in rows
        ]
    )
    print("\n" + table)
    if not args.no_report:
        section = (
            "## Vault-compatible reads\n\n"
            f"`make bench-vault`: gunicorn with {args.workers} sync workers, PostgreSQL, Redis, "
            f"wrk for {args.duration} s per cell on the same machine. `vault data` is "
            "`GET /vault/v1/keyvault/data/openai` with `X-Vault-Token` (docs/vault.md), the "
            "same default key `resolve` answers: the same token lookup, scope check, throttle, "
            "decryption and accounting, in Vault's envelope.\n\n" + table + "\n"
        )
        print(f"\nwrote {update_report('Vault-compatible reads', section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
