"""Benchmark of KEK rotation: re-wrap throughput on PostgreSQL.

Seeds N keys under an old KEK, then times `manage.py rotate_kek` with a new primary (the old
KEK still loaded) and checks afterwards that nothing is left under the old KEK. Prints rows per
second and writes the "KEK rotation" section of docs/benchmarks.md.

    make bench-rotation                                     # 10 000 and 100 000 keys
    python -m benchmarks.kek_rotation --keys 10000 --no-report
"""

import argparse
import base64
import secrets
import sys
import time

from benchmarks.harness import app_env, manage, psql, update_report


def _kek(kek_id: str) -> str:
    return f"{kek_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def run(count: int, batch_size: int) -> tuple[float, float]:
    database = f"keyvault_bench_rotation_{count}"
    psql(f"DROP DATABASE IF EXISTS {database}")
    psql(f"CREATE DATABASE {database}")
    old, new = _kek("old"), _kek("new")
    try:
        manage(app_env(database, old), "migrate", "--noinput")
        print(f"seeding {count} keys under the old KEK…", flush=True)
        manage(
            app_env(database, old),
            "shell",
            "-c",
            f"from benchmarks.seed import seed; seed({count})",
        )
        env = app_env(database, f"{new},{old}")
        started = time.monotonic()
        manage(env, "rotate_kek", "--batch-size", str(batch_size))
        elapsed = time.monotonic() - started
        left = manage(
            env,
            "shell",
            "-c",
            "from keyvault.models import ProviderKey; "
            "print(ProviderKey.objects.exclude(kek_id='new').count())",
            capture=True,
        ).split()[-1]
        if left != "0":
            raise RuntimeError(f"{left} keys were left under the old KEK")
    finally:
        psql(f"DROP DATABASE IF EXISTS {database}")
    return elapsed, count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="10000,100000")
    parser.add_argument("--batch-size", type=int, default=1000, dest="batch_size")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    rows = []
    for count in (int(n) for n in args.keys.split(",")):
        elapsed, rate = run(count, args.batch_size)
        print(f"{count:>7} keys re-wrapped in {elapsed:6.1f} s: {rate:8,.0f} rows/s", flush=True)
        rows.append((count, elapsed, rate))
    table = "\n".join(
        ["| keys | seconds (whole command) | rows/s |", "|---:|---:|---:|"]
        + [f"| {c:,} | {e:.1f} | {r:,.0f} |" for c, e, r in rows]
    )
    print("\n" + table)
    if not args.no_report:
        section = (
            "## KEK rotation\n\n"
            f"`make bench-rotation`: `manage.py rotate_kek --batch-size {args.batch_size}` on "
            "PostgreSQL, timed as a whole command (process start, system checks and the "
            "closing audit event included), after seeding the keys under an old KEK. Each row "
            "is read, its envelope fully opened (so a corrupt value is never re-wrapped), its "
            "data key re-wrapped under the new primary and written back with a "
            "compare-and-swap on the old envelope.\n\n" + table + "\n"
        )
        print(f"\nwrote {update_report('KEK rotation', section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
