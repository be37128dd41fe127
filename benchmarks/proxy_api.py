"""Benchmark of the proxy API: secret retrieval against an authenticated no-op ceiling.

Starts the app under gunicorn on PostgreSQL (with Redis as the cache), seeds one organization
with N keys, and drives `GET /api/v1/ping` (the ceiling: same authentication, throttle and
middleware, no key work), `GET /api/v1/resolve?provider=openai` and
`GET /api/v1/keys/{id}/secret` with wrk at several concurrency levels. Prints requests per
second, p50 and p99 latency and the ratio to the ceiling, for each key count, and writes
docs/benchmarks.md with a plot.

    make bench                      # 1 000 and 100 000 keys
    python -m benchmarks.proxy_api --keys 1000 --duration 5
"""

import argparse
import base64
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import DOCS, ROOT, app_env, manage, psql, update_report

PORT = int(os.environ.get("BENCH_PORT", "8765"))
ENDPOINTS = ("ping", "resolve", "secret")


@dataclass
class Result:
    keys: int
    endpoint: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _wait_until_up(url: str, token: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not come up")


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, token: str, concurrency: int, duration: int) -> tuple[float, float, float, int]:
    output = subprocess.run(
        [
            "wrk",
            "--latency",
            "-t",
            "1",
            "-c",
            str(concurrency),
            "-d",
            f"{duration}s",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        check=True,
        text=True,
        capture_output=True,
    ).stdout
    latency = {pct: float(value) * _UNIT[unit] for pct, value, unit in _LATENCY.findall(output)}
    errors = _NON_2XX.search(output)
    return (
        float(_RPS.search(output).group(1)),
        latency["50"],
        latency["99"],
        int(errors.group(1)) if errors else 0,
    )


def run(key_counts, concurrencies, duration: int, workers: int) -> list[Result]:
    kek = f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    results: list[Result] = []
    for count in key_counts:
        database = f"keyvault_bench_{count}"
        psql(f"DROP DATABASE IF EXISTS {database}")
        psql(f"CREATE DATABASE {database}")
        env = app_env(database, kek)
        manage(env, "migrate", "--noinput")
        print(f"seeding {count} keys…", flush=True)
        started = time.monotonic()
        seeded = manage(
            env, "shell", "-c", f"from benchmarks.seed import seed; seed({count})", capture=True
        ).split()
        token, key_id = seeded[-2], seeded[-1]
        print(f"seeded in {time.monotonic() - started:.1f}s", flush=True)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{PORT}",
                "--workers",
                str(workers),
                "--worker-class",
                "sync",
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{PORT}/api/v1"
        urls = {
            "ping": f"{base}/ping",
            "resolve": f"{base}/resolve?provider=openai",
            "secret": f"{base}/keys/{key_id}/secret",
        }
        try:
            _wait_until_up(urls["ping"], token)
            for url in urls.values():  # warm every worker's connections and caches
                _wrk(url, token, max(concurrencies), 2)
            for concurrency in concurrencies:
                for endpoint in ENDPOINTS:
                    rps, p50, p99, errors = _wrk(urls[endpoint], token, concurrency, duration)
                    result = Result(count, endpoint, concurrency, rps, p50, p99, errors)
                    results.append(result)
                    print(
                        f"{count:>7} keys  {endpoint:<8} c={concurrency:<3} "
                        f"{rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                        + (f"  NON-2XX {errors}" if errors else ""),
                        flush=True,
                    )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            psql(f"DROP DATABASE IF EXISTS {database}")
    return results


def _ratio(results, result) -> float:
    ceiling = next(
        r
        for r in results
        if r.keys == result.keys and r.concurrency == result.concurrency and r.endpoint == "ping"
    )
    return result.rps / ceiling.rps


def _table(results) -> str:
    lines = [
        "| keys | endpoint | concurrency | req/s | p50 ms | p99 ms | x ceiling |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.keys:,} | {r.endpoint} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {_ratio(results, r):.2f} |"
        )
    return "\n".join(lines)


def _plot(results, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    counts = sorted({r.keys for r in results})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for count in counts:
        for endpoint, style in zip(ENDPOINTS, ("-", "--", ":"), strict=True):
            rows = [r for r in results if r.keys == count and r.endpoint == endpoint]
            label = f"{endpoint}, {count:,} keys"
            conc = [r.concurrency for r in rows]
            axes[0].plot(conc, [r.rps for r in rows], style, marker="o", label=label)
            axes[1].plot(conc, [r.p99_ms for r in rows], style, marker="o", label=label)
    axes[0].set(title="Throughput", xlabel="concurrent connections", ylabel="requests/s")
    axes[1].set(title="p99 latency", xlabel="concurrent connections", ylabel="ms")
    for axis in axes:
        axis.set_xscale("log", base=2)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_report(results, workers: int, duration: int) -> Path:
    plot = DOCS / "benchmarks-proxy-api.png"
    has_plot = _plot(results, plot)
    cpus = os.cpu_count()
    section = "\n".join(
        [
            "## Proxy API",
            "",
            f"`make bench` on {cpus} cores: gunicorn with {workers} sync workers, PostgreSQL, "
            f"Redis as the cache, wrk with one thread for {duration} s per cell on the same "
            "machine (so the load generator competes for the same cores). `ping` is an "
            "authenticated no-op of the same app (token lookup, scope check, throttle), the "
            "ceiling; `resolve` and `secret` add the key lookup, the decryption and the usage "
            "accounting.",
            "",
            _table(results),
            "",
            *(["![Throughput and p99 latency](benchmarks-proxy-api.png)", ""] if has_plot else []),
        ]
    )
    return update_report("Proxy API", section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="1000,100000", help="comma-separated key counts")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--duration", type=int, default=8, help="seconds per cell")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    results = run(
        [int(n) for n in args.keys.split(",")],
        [int(n) for n in args.concurrency.split(",")],
        args.duration,
        args.workers,
    )
    print()
    print(_table(results))
    if not args.no_report:
        print(f"\nwrote {write_report(results, args.workers, args.duration)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
