"""Benchmark of KEK rotation: re-wrap throughput on PostgreSQL, kept secret versions included.

Seeds N keys under an old KEK (every `--versions-every`th key with `--versions-per-key` kept
previous versions, as rotations leave them), then times `manage.py rotate_kek` with a new
primary (the old KEK still loaded) and checks afterwards that no envelope, current or kept, is
left under the old KEK. Prints envelopes per second and writes the "KEK rotation" section of
docs/benchmarks.md.

    make bench-rotation                                   # 100 000 and 1 000 000 keys
    python -m benchmarks.kek_rotation --keys 10000 --no-report
"""

import argparse
import base64
import os
import resource
import secrets
import sys
import time

from benchmarks.harness import app_env, manage, psql, update_report

# The scratch databases' names start with this (BENCH_DATABASE_PREFIX to share a server).
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "keyvault_bench")


def _kek(kek_id: str) -> str:
    return f"{kek_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


# --- Seeding (runs inside `manage.py shell`) -----------------------------------------------------

PROVIDERS = ("openai", "anthropic", "groq", "mistral", "deepseek", "xai")


def _sealed_rows(args):
    """Rows for COPY of keys `start…stop` and their versions, sealed by the real sealing code
    (`crypto.seal` under `sealing.context_for`, the context `secret_context` gives)."""
    import uuid

    from keyvault import crypto, providers
    from keyvault.masking import mask_secret
    from keyvault.models import ProviderKey, SecretVersion, version_binding
    from keyvault.sealing import context_for

    organization_id, start, stop, versions_every, versions_per_key = args
    keyring = crypto.get_keyring()
    keys, versions = [], []
    for number in range(start, stop):
        pk = uuid.uuid4()
        provider = PROVIDERS[number % len(PROVIDERS)]
        secret = f"sk-bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        binding = providers.secret_binding(providers.get_provider(provider), {})
        context = context_for(
            ProviderKey, organization_id=organization_id, row_id=pk, binding=binding
        )
        kept = versions_per_key if versions_every and number % versions_every == 0 else 0
        envelope = crypto.seal(secret.encode(), context, keyring)
        keys.append((pk, provider, f"key {number}", envelope, mask_secret(secret), kept + 1))
        for version in range(1, kept + 1):
            version_pk = uuid.uuid4()
            old = f"sk-bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"
            context = context_for(
                SecretVersion,
                organization_id=organization_id,
                row_id=version_pk,
                binding=version_binding(key_id=pk, number=version, provider=provider, routing={}),
            )
            sealed = crypto.seal(old.encode(), context, keyring)
            versions.append((version_pk, pk, version, provider, sealed, mask_secret(old)))
    return keys, versions


def seed(count: int, versions_every: int, versions_per_key: int, processes: int = 2) -> None:
    """One organization with `count` keys (sealed in `processes` forked processes, written by
    COPY: going through the service one by one would spend the time writing audit events)."""
    import multiprocessing

    from django.db import connection, transaction
    from django.utils import timezone

    from organizations.models import Organization

    organization = Organization.objects.create(name="Bench", slug="bench")
    step = 20_000
    chunks = [
        (organization.pk, start, min(start + step, count), versions_every, versions_per_key)
        for start in range(0, count, step)
    ]
    now = timezone.now()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for keys, versions in pool.imap(_sealed_rows, chunks):
            with transaction.atomic(), connection.cursor() as cursor:
                with cursor.copy(
                    "COPY keyvault_providerkey (id, organization_id, provider, name, secret, "
                    "secret_hint, config, is_default, enabled, version, created_at, updated_at) "
                    "FROM STDIN"
                ) as copy:
                    for pk, provider, name, envelope, hint, version in keys:
                        row = (pk, organization.pk, provider, name, envelope, hint, "{}")
                        copy.write_row((*row, False, True, version, now, now))
                with cursor.copy(
                    "COPY keyvault_secretversion (id, key_id, organization_id, number, provider, "
                    "routing, secret, secret_hint, created_at, replaced_at) FROM STDIN"
                ) as copy:
                    for pk, key_id, number, provider, envelope, hint in versions:
                        row = (pk, key_id, organization.pk, number, provider, "{}", envelope)
                        copy.write_row((*row, hint, now, now))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE keyvault_providerkey")
        cursor.execute("ANALYZE keyvault_secretversion")


# --- The benchmark -------------------------------------------------------------------------------


def _count(env, sql: str) -> int:
    return int(
        manage(
            env,
            "shell",
            "-c",
            "from django.db import connection\n"
            "with connection.cursor() as c:\n"
            f"    c.execute({sql!r}); print(c.fetchone()[0])",
            capture=True,
        ).split()[-1]
    )


def run(count: int, batch_size: int, workers: int, versions_every: int, per_key: int):
    database = f"{DATABASE_PREFIX}_rotation_{count}"
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
            f"from benchmarks.kek_rotation import seed; seed({count}, {versions_every}, {per_key})",
        )
        env = app_env(database, f"{new},{old}")
        versions = _count(env, "SELECT count(*) FROM keyvault_secretversion")
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        manage(
            env,
            "rotate_kek",
            "--batch-size",
            str(batch_size),
            "--workers",
            str(workers),
        )
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The command's own CPU and its workers' (PostgreSQL's is not in it): steadier than
        # the wall clock on a machine whose cores are shared.
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        left = _count(
            env,
            "SELECT (SELECT count(*) FROM keyvault_providerkey WHERE kek_id <> 'new') + "
            "(SELECT count(*) FROM keyvault_secretversion WHERE kek_id <> 'new')",
        )
        if left:
            raise RuntimeError(f"{left} envelopes were left under the old KEK")
    finally:
        psql(f"DROP DATABASE IF EXISTS {database}")
    envelopes = count + versions
    return versions, elapsed, envelopes / elapsed, cpu, load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="100000,1000000")
    parser.add_argument("--batch-size", type=int, default=10_000, dest="batch_size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--versions-every", type=int, default=10, dest="versions_every")
    parser.add_argument("--versions-per-key", type=int, default=2, dest="per_key")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    rows = []
    for count in (int(n) for n in args.keys.split(",")):
        versions, elapsed, rate, cpu, load = run(
            count, args.batch_size, args.workers, args.versions_every, args.per_key
        )
        print(
            f"{count:>9,} keys + {versions:,} kept versions re-wrapped in {elapsed:6.1f} s: "
            f"{rate:8,.0f} envelopes/s ({cpu:.1f} CPU s in the app; load {load:.1f})",
            flush=True,
        )
        rows.append((count, versions, elapsed, rate, cpu, load))
    table = "\n".join(
        [
            "| keys | kept versions | seconds (whole command) | envelopes/s | app CPU s | load |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        + [
            f"| {c:,} | {v:,} | {e:.1f} | {r:,.0f} | {u:.1f} | {a:.1f} |"
            for c, v, e, r, u, a in rows
        ]
    )
    print("\n" + table)
    if not args.no_report:
        section = (
            "## KEK rotation\n\n"
            f"`make bench-rotation`: `manage.py rotate_kek --batch-size {args.batch_size} "
            f"--workers {args.workers}` on PostgreSQL, timed as a whole command (process start, "
            "system checks, the counts and the closing audit event included), after seeding "
            f"the keys under an old KEK, every {args.versions_every}th key with "
            f"{args.per_key} kept previous versions. Each envelope, current or kept, is read, "
            "fully opened (so a corrupt value is never re-wrapped), its data key re-wrapped "
            "under the new primary and written back with a compare-and-swap on the old "
            "envelope.\n\n" + table + "\n"
        )
        print(f"\nwrote {update_report('KEK rotation', section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
