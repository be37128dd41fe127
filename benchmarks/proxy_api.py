"""Benchmark of the proxy API: secret retrieval against the least code doing the same work.

Starts the app with the production command (`gunicorn -c config/gunicorn.conf.py config.wsgi`)
on PostgreSQL with Redis as the cache, under `benchmarks.settings`: the production settings
plus a ceiling endpoint (`benchmarks/minimal.py`: token by digest, one key row, open the
envelope, JSON; no scopes, throttle, accounting or ETag) mounted beside the API, so both go
through the same server, workers, middleware and URL resolution. Seeds N keys (over M
organizations), then drives `GET /api/v1/resolve?provider=openai` and
`GET /api/v1/keys/{id}/secret` and their ceilings with wrk at several concurrency levels.

The machine is shared and its load drifts, so the ceiling and the real endpoint are measured
in alternation (ceiling, real, real, ceiling, …) and every pair is repeated: the ratio reported
is the median of the ratios of adjacent runs, the req/s and latencies the medians of the runs.
With `--parked N`, N long-poll-like requests stay parked in the workers (each holding a
thread, no database connection) during a second pass.

    make bench                                   # 1 000 keys; 100 000 over 10 000 orgs
    make bench BENCH_ARGS=--large                # adds 1 000 000 keys (one org, 10 000 orgs)
    python -m benchmarks.proxy_api --keys 1000 --duration 3 --repeats 1 --no-report
"""

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import DOCS, ROOT, app_env, manage, psql, update_report, wrk

PORT = int(os.environ.get("BENCH_PORT", "8765"))
# Each real endpoint and its ceiling.
PAIRS = (("resolve", "minimal resolve"), ("secret", "minimal secret"))
DEFAULT_SCENARIOS = "1000,100000/10000"
LARGE_SCENARIOS = "1000,1000000,1000000/10000"


@dataclass
class Run:
    scenario: str
    parked: int
    endpoint: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Cell:
    scenario: str
    parked: int
    endpoint: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    ratio: float | None  # real / ceiling, median over adjacent pairs
    runs: int


def _wait_until_up(url: str, token: str, timeout: float = 60) -> None:
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


def _park(count: int, token: str, seconds: int) -> list[socket.socket]:
    """`count` requests to the benchmark's parking endpoint, left waiting in the workers."""
    parked = []
    request = (
        f"GET /api/v1/bench/park?wait={seconds} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        connection.sendall(request)
        parked.append(connection)
    time.sleep(1)  # let every worker pick its share up
    return parked


def _scenario(spec: str) -> tuple[int, int]:
    keys, _, organizations = spec.partition("/")
    return int(keys), int(organizations or 1)


def _label(keys: int, organizations: int) -> str:
    return f"{keys:,} keys" + (f" / {organizations:,} orgs" if organizations > 1 else "")


def _server(env: dict, workers: int | None) -> subprocess.Popen:
    env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "GUNICORN_BIND": f"127.0.0.1:{PORT}",
    }
    if workers:
        env["GUNICORN_WORKERS"] = str(workers)
    env.pop("GUNICORN_ACCESS_LOG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
    )


def _measure(label, parked, urls, token, concurrencies, duration, repeats) -> list[Run]:
    runs = []
    for concurrency in concurrencies:
        for repeat in range(repeats):
            for real, ceiling in PAIRS:
                # Alternate which one goes first, so a drift in load favours neither.
                order = (ceiling, real) if repeat % 2 == 0 else (real, ceiling)
                for endpoint in order:
                    rps, p50, p99, errors = wrk(urls[endpoint], token, concurrency, duration)
                    runs.append(Run(label, parked, endpoint, concurrency, rps, p50, p99, errors))
                    print(
                        f"{label:<24} parked={parked:<3} {endpoint:<16} c={concurrency:<3} "
                        f"{rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
                        + (f"  NON-2XX {errors}" if errors else ""),
                        flush=True,
                    )
    return runs


def run(scenarios, concurrencies, duration, repeats, workers, parked) -> list[Run]:
    kek = f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    runs: list[Run] = []
    for keys, organizations in scenarios:
        label = _label(keys, organizations)
        database = f"{os.environ.get('BENCH_DB_PREFIX', 'keyvault_bench')}_{keys}_{organizations}"
        psql(f"DROP DATABASE IF EXISTS {database}")
        psql(f"CREATE DATABASE {database}")
        env = app_env(database, kek)
        manage(env, "migrate", "--noinput")
        print(f"seeding {label}…", flush=True)
        started = time.monotonic()
        seeded = manage(
            env,
            "shell",
            "-c",
            f"from benchmarks.seed import seed; seed({keys}, {organizations})",
            capture=True,
        ).split()
        token, key_id = seeded[-2], seeded[-1]
        print(f"seeded in {time.monotonic() - started:.1f}s", flush=True)
        server = _server(env, workers)
        base = f"http://127.0.0.1:{PORT}/api/v1"
        urls = {
            "resolve": f"{base}/resolve?provider=openai",
            "minimal resolve": f"{base}/bench/minimal/resolve?provider=openai",
            "secret": f"{base}/keys/{key_id}/secret",
            "minimal secret": f"{base}/bench/minimal/keys/{key_id}/secret",
        }
        try:
            _wait_until_up(urls["resolve"], token)
            for url in urls.values():  # warm every worker's connections and caches
                wrk(url, token, max(concurrencies), 2)
            runs += _measure(label, 0, urls, token, concurrencies, duration, repeats)
            if parked:
                wait = duration * repeats * len(PAIRS) * 2 * len(concurrencies) + 30
                sockets = _park(parked, token, min(wait, 3600))
                try:
                    runs += _measure(label, parked, urls, token, concurrencies, duration, repeats)
                finally:
                    for connection in sockets:
                        connection.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            psql(f"DROP DATABASE IF EXISTS {database}")
    return runs


def summarize(runs: list[Run]) -> list[Cell]:
    cells = []
    groups: dict = {}
    for r in runs:
        groups.setdefault((r.scenario, r.parked, r.concurrency, r.endpoint), []).append(r)
    for (scenario, parked, concurrency, endpoint), rows in groups.items():
        ratio = None
        for real, ceiling in PAIRS:
            if endpoint == real:
                ceilings = groups[(scenario, parked, concurrency, ceiling)]
                # The i-th real run and the i-th ceiling run are adjacent (same repeat).
                ratio = statistics.median(
                    a.rps / b.rps for a, b in zip(rows, ceilings, strict=True)
                )
        cells.append(
            Cell(
                scenario,
                parked,
                endpoint,
                concurrency,
                statistics.median(r.rps for r in rows),
                statistics.median(r.p50_ms for r in rows),
                statistics.median(r.p99_ms for r in rows),
                ratio,
                len(rows),
            )
        )
    return cells


def _table(cells: list[Cell]) -> str:
    lines = [
        "| keys | parked | endpoint | concurrency | req/s | p50 ms | p99 ms | x ceiling |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        ratio = f"**{c.ratio:.2f}**" if c.ratio is not None else "1.00"
        lines.append(
            f"| {c.scenario} | {c.parked} | {c.endpoint} | {c.concurrency} | {c.rps:,.0f} | "
            f"{c.p50_ms:.2f} | {c.p99_ms:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def _plot(cells: list[Cell], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    series = sorted({(c.scenario, c.parked, c.endpoint) for c in cells})
    for scenario, parked, endpoint in series:
        rows = sorted(
            (
                c
                for c in cells
                if (c.scenario, c.parked, c.endpoint) == (scenario, parked, endpoint)
            ),
            key=lambda c: c.concurrency,
        )
        style = ":" if endpoint.startswith("minimal") else "-"
        label = f"{endpoint}, {scenario}" + (f", {parked} parked" if parked else "")
        conc = [c.concurrency for c in rows]
        axes[0].plot(conc, [c.rps for c in rows], style, marker="o", label=label)
        axes[1].plot(conc, [c.p50_ms for c in rows], style, marker="o", label=label)
    axes[0].set(title="Throughput", xlabel="concurrent connections", ylabel="requests/s")
    axes[1].set(title="p50 latency", xlabel="concurrent connections", ylabel="ms")
    for axis in axes:
        axis.set_xscale("log", base=2)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_report(cells: list[Cell], args) -> Path:
    plot = DOCS / "benchmarks-proxy-api.png"
    has_plot = _plot(cells, plot)
    section = "\n".join(
        [
            "## Proxy API",
            "",
            f"`make bench` on {os.cpu_count()} cores: the production command "
            "(`gunicorn -c config/gunicorn.conf.py`, its worker class, workers and threads), "
            "PostgreSQL, Redis as the cache, wrk with one thread on the same machine (the load "
            "generator competes for the same cores). `minimal …` is the ceiling "
            "(`benchmarks/minimal.py`): token by digest, one key row, open the envelope, JSON, "
            "nothing else, served by the same server and middleware. `resolve` and `secret` "
            "add scopes, the Redis throttle, usage accounting and the ETag. Each cell is the "
            f"median of {args.repeats} runs of {args.duration} s, ceiling and real endpoint "
            "alternating; `x ceiling` is the median of the ratios of adjacent runs. `parked` "
            "requests wait in the workers meanwhile, as long-polls do.",
            "",
            _table(cells),
            "",
            *(["![Throughput and p50 latency](benchmarks-proxy-api.png)", ""] if has_plot else []),
        ]
    )
    return update_report("Proxy API", section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keys",
        default=None,
        help=f"comma-separated KEYS or KEYS/ORGS (default {DEFAULT_SCENARIOS})",
    )
    parser.add_argument("--large", action="store_true", help=f"--keys {LARGE_SCENARIOS}")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell")
    parser.add_argument("--workers", type=int, default=None, help="override GUNICORN_WORKERS")
    parser.add_argument("--parked", type=int, default=200, help="parked requests (0: none)")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--save", help="also write the cells to this JSON file")
    parser.add_argument(
        "--report-from", nargs="+", help="write the report from saved JSON files, run nothing"
    )
    args = parser.parse_args()
    if args.report_from:
        cells = [Cell(**c) for path in args.report_from for c in json.loads(Path(path).read_text())]
        print(_table(cells))
        print(f"\nwrote {write_report(cells, args)}")
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    spec = args.keys or (LARGE_SCENARIOS if args.large else DEFAULT_SCENARIOS)
    runs = run(
        [_scenario(s) for s in spec.split(",")],
        [int(n) for n in args.concurrency.split(",")],
        args.duration,
        args.repeats,
        args.workers,
        args.parked,
    )
    cells = summarize(runs)
    if args.save:
        Path(args.save).write_text(json.dumps([c.__dict__ for c in cells], indent=1))
    print()
    print(_table(cells))
    if not args.no_report:
        print(f"\nwrote {write_report(cells, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
