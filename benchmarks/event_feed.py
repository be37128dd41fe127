"""Benchmark of the proxy client and the event feed it follows.

Starts the app with the production command (`gunicorn -c config/gunicorn.conf.py config.wsgi`,
the worker class and threads the config file chooses) on PostgreSQL with Redis as the cache,
seeds one organization, and measures:

1. the client's `resolve` in process: microseconds per call from one thread, and with N reader
   threads at once (memory only: the sync thread is parked on a long poll);
2. propagation: the time from sending a `PATCH` (a rotation, a disable) until the caches of
   50 clients, each following the feed with `wait`, hold the change; p50 and p99 over 100
   changes of each kind;
3. retrieval throughput (wrk on `GET resolve`) with 200 `events?wait=30` requests parked on
   the server, against the same run without them.

Prints the numbers and rewrites the "Proxy client and event feed" section of
docs/benchmarks.md, with a plot.

    make bench                                   # runs it after the proxy API benchmark
    python -m benchmarks.event_feed --changes 20 --no-report
    python -m benchmarks.event_feed --server "" --server "--worker-class gthread --threads 128"
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import runpy
import secrets
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import DOCS, ROOT, app_env, gunicorn, manage, psql, update_report, wrk

PORT = int(os.environ.get("BENCH_PORT", "8766"))
DATABASE = os.environ.get("BENCH_DATABASE", "keyvault_bench_feed")
HEADING = "Proxy client and event feed"
# A client that has not seen a change this long after its PATCH counts as having missed it.
MISSED_SECONDS = 30.0


# The server


class Server:
    def __init__(self, database: str, workers: int):
        self.database = database
        self.workers = workers
        self.url = f"http://127.0.0.1:{PORT}"
        kek = f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
        self.env = app_env(database, kek)
        self.process = None
        self.token = ""  # keys:read + keys:secret, the proxies'
        self.writer = ""  # keys:read + keys:write, the benchmark's own changes

    def __enter__(self) -> "Server":
        psql(f"DROP DATABASE IF EXISTS {self.database}")
        psql(f"CREATE DATABASE {self.database}")
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")

    def seed(self, keys: int) -> None:
        manage(self.env, "migrate", "--noinput")
        output = manage(
            self.env, "shell", "-c", f"from benchmarks.seed import seed; seed({keys})", capture=True
        )
        self.token = output.split()[-2]
        self.writer = manage(
            self.env,
            "create_token",
            "--org",
            "bench",
            "--name",
            "feed-writer",
            "--scopes",
            "keys:read,keys:write",
            capture=True,
        ).strip()

    def start(self, extra: list[str], settings: dict) -> None:
        self.process = gunicorn({**self.env, **settings}, PORT, self.workers, extra)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api/v1/ping", token=self.token)[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not come up")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None

    def request(self, method: str, path: str, body=None, *, token=None):
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.writer}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)

    def create_key(self, provider: str, name: str) -> str:
        body = {"provider": provider, "name": name, "secret": _secret()}
        return self.request("POST", "/api/v1/keys", body)[1]["id"]


def _secret() -> str:
    return f"sk-bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def _client(server: Server, **options):
    from keyvault_client import KeyvaultClient

    return KeyvaultClient(server.url, server.token, start_timeout=120, **options)


# 1. resolve in process


@dataclass
class ResolveResult:
    call: str
    threads: int
    us_per_call: float  # wall time / calls made by one thread
    calls_per_second: float  # all threads together
    cpu_us_per_call: float  # the process's CPU time / all calls: what a call costs, whatever
    # else the cores are busy with


def bench_resolve(server: Server, calls: int, thread_counts: list[int]) -> list[ResolveResult]:
    results = []
    with _client(server) as client:
        named = client.resolve("openai")
        by_id = named.key_id
        cases = {
            'resolve("openai")': lambda: client.resolve("openai"),
            'resolve("openai", name=…)': lambda: client.resolve("openai", name=named.name),
            "get(key_id)": lambda: client.get(by_id),
        }
        for label, call in cases.items():
            for threads in thread_counts if label == 'resolve("openai")' else [1]:
                per_thread = max(1, calls // threads)
                elapsed, cpu = _run_threads(call, threads, per_thread)
                result = ResolveResult(
                    label,
                    threads,
                    elapsed / per_thread * 1e6,
                    threads * per_thread / elapsed,
                    cpu / (threads * per_thread) * 1e6,
                )
                results.append(result)
                print(
                    f"{label:<28} {threads:>2} threads  {result.us_per_call:7.2f} µs/call  "
                    f"{result.calls_per_second:12,.0f} calls/s  "
                    f"CPU {result.cpu_us_per_call:6.2f} µs/call",
                    flush=True,
                )
    return results


def _run_threads(call, threads: int, per_thread: int) -> tuple[float, float]:
    """Wall time and the process's CPU time for `threads` threads making `per_thread` calls."""
    barrier = threading.Barrier(threads + 1)

    def reader():
        barrier.wait()
        for _ in range(per_thread):
            call()

    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, time.process_time() - cpu


# 2. propagation to 50 clients


class _Probe:
    """Notes when a client's cache first satisfies the condition the benchmark waits for. It
    wraps the client's store (what `resolve` reads): the moment recorded is the moment a reader
    would see the change."""

    def __init__(self):
        self.lock = threading.Lock()
        self.condition = None
        self.seen_at: float | None = None
        self.done = threading.Event()

    def expect(self, condition) -> None:
        with self.lock:
            self.condition, self.seen_at = condition, None
            self.done.clear()

    def check(self, store) -> None:
        with self.lock:
            if self.condition is not None and self.seen_at is None and self.condition(store):
                self.seen_at = time.perf_counter()
                self.done.set()


def _watch(client) -> _Probe:
    """Replace the client's store, before it starts, by one that reports to a probe."""
    from keyvault_client.store import Store

    probe = _Probe()

    class WatchedStore(Store):
        _depth = 0

        def put(self, credential):
            self._depth += 1
            try:
                super().put(credential)
            finally:
                self._depth -= 1
            probe.check(self)

        def drop(self, key_id):
            self._depth += 1
            try:
                found = super().drop(key_id)
            finally:
                self._depth -= 1
            if not self._depth:  # not the drop inside a put
                probe.check(self)
            return found

        def replace_all(self, credentials):
            self._depth += 1
            try:
                super().replace_all(credentials)
            finally:
                self._depth -= 1
            probe.check(self)

    client._store = WatchedStore()
    return probe


@dataclass
class Propagation:
    kind: str
    per_client_ms: list[float] = field(default_factory=list)  # every client, every change
    all_clients_ms: list[float] = field(default_factory=list)  # the last client of each change
    missed: int = 0  # (client, change) pairs not seen within MISSED_SECONDS
    changes: int = 0  # measured


def bench_propagation(
    server: Server, clients: int, changes: int, run: int, budget: float
) -> list[Propagation]:
    rotating = server.create_key("anthropic", f"feed rotating {run}")
    toggled = server.create_key("mistral", f"feed toggled {run}")
    fleet = [_client(server) for _ in range(clients)]
    probes = [_watch(client) for client in fleet]
    # One after another: 50 snapshots at once would measure a start-up stampede, not the feed.
    for client in fleet:
        client.start()
    rotate, disable = Propagation("rotate"), Propagation("disable")
    ends = time.monotonic() + budget
    try:
        for number in range(changes):
            if time.monotonic() > ends:
                print(f"  stopped after {number} changes of each kind: {budget:g} s", flush=True)
                break
            version = 2 + number
            _measure(
                server,
                probes,
                rotate,
                lambda store, v=version: (c := store.get(rotating)) is not None and c.version == v,
                f"/api/v1/keys/{rotating}",
                {"secret": _secret()},
            )
            _measure(
                server,
                probes,
                disable,
                lambda store: store.get(toggled) is None,
                f"/api/v1/keys/{toggled}",
                {"enabled": False},
            )
            _measure(  # not reported: sets up the next disable
                server,
                probes,
                None,
                lambda store: store.get(toggled) is not None,
                f"/api/v1/keys/{toggled}",
                {"enabled": True},
            )
            if (number + 1) % 20 == 0:
                print(f"  {number + 1} changes of each kind", flush=True)
    finally:
        for client in fleet:
            client.close()
    for result in (rotate, disable):
        print(
            f"propagation {result.kind:<8} to {clients} clients: per client p50 "
            f"{_pct(result.per_client_ms, 50):6.1f} ms p99 {_pct(result.per_client_ms, 99):6.1f} "
            f"ms; all {clients}: p50 {_pct(result.all_clients_ms, 50):6.1f} ms p99 "
            f"{_pct(result.all_clients_ms, 99):6.1f} ms",
            flush=True,
        )
    return [rotate, disable]


def _measure(server, probes, result, condition, path, body) -> None:
    for probe in probes:
        probe.expect(condition)
    sent = time.perf_counter()
    server.request("PATCH", path, body)
    deadline = time.perf_counter() + MISSED_SECONDS
    for probe in probes:
        probe.done.wait(max(0.0, deadline - time.perf_counter()))
    delays = [(p.seen_at - sent) * 1000 for p in probes if p.seen_at is not None]
    if result is not None:
        result.changes += 1
        result.per_client_ms.extend(delays)
        result.missed += len(probes) - len(delays)
        if len(delays) == len(probes):
            result.all_clients_ms.append(max(delays))
    if len(delays) < len(probes):
        print(f"  {len(probes) - len(delays)} clients missed PATCH {sorted(body)}", flush=True)
        for probe in probes:  # let them catch up before the next change
            probe.done.wait(MISSED_SECONDS)


def _pct(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


# 3. retrieval throughput with parked waits


@dataclass
class Throughput:
    parked: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    waiter_answers: dict = field(default_factory=dict)  # status -> count, during the run


class _Waiters:
    """`count` connections, each keeping one `events?wait=30` request parked on the server (a
    new one as soon as the last is answered), as that many idle proxies would."""

    def __init__(self, server: Server, count: int):
        self.server = server
        self.count = count
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: dict[int | str, int] = {}
        self.in_flight = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        self.connections: list[http.client.HTTPConnection] = []

    def __enter__(self) -> "_Waiters":
        _status, snapshot = self.server.request("GET", "/api/v1/snapshot", token=self.server.token)
        self.cursor = snapshot["cursor"]
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 60
        while self.in_flight < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # let the last ones reach the server and park
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(5)

    def answered(self) -> dict:
        with self.lock:
            return dict(self.answers)

    def _run(self) -> None:
        path = f"/api/v1/events?after={self.cursor}&wait=30"
        headers = {"Authorization": f"Bearer {self.server.token}"}
        while not self.stop.is_set():
            began = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            with self.lock:
                self.connections.append(connection)
                self.in_flight += 1
            try:
                connection.request("GET", path, headers=headers)
                status = connection.getresponse().status
            except OSError as exc:
                status = type(exc).__name__
            finally:
                with self.lock:
                    self.in_flight -= 1
                    self.connections.remove(connection)
                connection.close()
            if self.stop.is_set():
                return
            with self.lock:
                self.answers[status] = self.answers.get(status, 0) + 1
            # As the client does: a poll answered at once (not parked) is sent again a second
            # later, a refused one after a pause.
            pause = 1.0 - (time.monotonic() - began) if status == 200 else 0.5
            if pause > 0:
                self.stop.wait(pause)


def bench_parked(server: Server, parked: int, concurrency: int, duration: int) -> list[Throughput]:
    url = f"{server.url}/api/v1/resolve?provider=openai"
    wrk(url, server.token, concurrency, 2)  # warm up every worker
    results = []
    for count in (0, parked):
        if count:
            with _Waiters(server, count) as waiters:
                before = waiters.answered()
                rps, p50, p99, errors = wrk(url, server.token, concurrency, duration)
                # Parked waits are not answered during the run (nothing changes, wait=30 s);
                # polls the server answered at once are.
                answers = {
                    status: n - before.get(status, 0)
                    for status, n in waiters.answered().items()
                    if n > before.get(status, 0)
                }
        else:
            rps, p50, p99, errors = wrk(url, server.token, concurrency, duration)
            answers = {}
        results.append(Throughput(count, rps, p50, p99, errors, answers))
        print(
            f"resolve with {count:>3} parked waits: {rps:8.0f} req/s  p50 {p50:6.2f} ms  "
            f"p99 {p99:6.2f} ms"
            + (f"  NON-2XX {errors}" if errors else "")
            + (f"  polls answered during the run: {answers}" if count else ""),
            flush=True,
        )
    return results


# The report


@dataclass
class Run:
    """Propagation and retrieval on one server configuration."""

    label: str  # the worker class and threads it ran with
    propagation: list[Propagation]
    throughput: list[Throughput]


def worker_label(extra: list[str]) -> str:
    """The worker class and threads gunicorn runs with: the config file's, unless `extra`
    overrides them."""
    settings = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    worker, threads = str(settings.get("worker_class", "sync")), settings.get("threads", 1)
    words = iter(" ".join(extra).replace("=", " ").split())
    for word in words:
        if word in ("-k", "--worker-class"):
            worker = next(words, worker)
        elif word == "--threads":
            threads = next(words, threads)
    worker = worker.rsplit(".", 1)[-1]
    return f"{worker}, {threads} threads" + (
        " (overridden: " + " ".join(extra) + ")" if extra else ""
    )


def _plot(resolve, runs: list[Run], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    rows = [r for r in resolve if r.call == 'resolve("openai")']
    axes[0].plot([r.threads for r in rows], [r.us_per_call for r in rows], marker="o")
    axes[0].set(title="client.resolve in process", xlabel="reader threads", ylabel="µs per call")
    axes[0].set_xscale("log", base=2)
    for number, run in enumerate(runs):
        for result, style in zip(run.propagation, ("-", "--"), strict=True):
            values = sorted(result.per_client_ms)
            share = [(i + 1) / len(values) for i in range(len(values))]
            axes[1].plot(
                values, share, style, color=f"C{number}", label=f"{result.kind}, {run.label[:40]}"
            )
    axes[1].set(
        title="PATCH to client caches",
        xlabel="ms after the PATCH was sent (log)",
        ylabel="share of client caches updated",
        xscale="log",
    )
    axes[1].legend(fontsize=7)
    labels, values, colors = [], [], []
    for number, run in enumerate(runs):
        for t in run.throughput:
            labels.append(f"{t.parked} waits\n{run.label[:18]}")
            values.append(t.rps)
            colors.append(f"C{number}")
    axes[2].bar(range(len(values)), values, color=colors)
    axes[2].set_xticks(range(len(values)), labels, fontsize=7)
    axes[2].set(title="GET resolve (wrk)", ylabel="requests/s")
    for axis in axes:
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_report(resolve, runs: list[Run], args) -> Path:
    plot = DOCS / "benchmarks-event-feed.png"
    has_plot = _plot(resolve, runs, plot)
    clients = args.clients
    load = os.getloadavg()[0]
    lines = [
        f"## {HEADING}",
        "",
        f"`make bench` on {os.cpu_count()} cores (load average {load:.1f} when it ended): the "
        f"production command (`gunicorn -c config/gunicorn.conf.py config.wsgi`) with "
        f"{args.workers} workers, PostgreSQL, Redis as the cache, {args.keys:,} keys in one "
        "organization; the clients, wrk and the parked requests run on the same cores. "
        "`python -m benchmarks.event_feed --help` lists the knobs; `--server` runs the "
        "propagation and retrieval parts on other worker settings.",
        "",
        "**The client's `resolve`, in process** (memory only; the sync thread parked on a long "
        "poll). With several reader threads, µs per call is wall time over the calls one thread "
        "made: the threads share one interpreter lock. Wall time counts the moments the cores "
        "were busy with something else (the server, other processes); CPU µs per call is the "
        "process's CPU time over every call made, what a call costs.",
        "",
        "| call | reader threads | µs per call (wall) | calls/s (all threads) | CPU µs per call |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| `{r.call}` | {r.threads} | {r.us_per_call:.2f} | {r.calls_per_second:,.0f} | "
            f"{r.cpu_us_per_call:.2f} |"
            for r in resolve
        ),
        "",
        f"**Propagation to {clients} clients**: from sending the `PATCH` until a client's cache "
        f"holds the change (what its next `resolve` returns), up to {args.changes} changes of "
        f"each kind (or {args.budget:g} s per server), {clients} clients in one process, "
        "each following the feed with `wait=25`. A "
        "rotation makes every client fetch the key's secret (one request each); a disable is "
        'applied from the event alone. "All clients" is the last of the 50, per change; '
        f'"missed" counts the (client, change) pairs not seen within {MISSED_SECONDS:g} s.',
        "",
        "| gunicorn workers | change | changes | per client p50 ms | per client p99 ms | "
        "all clients p50 ms | all clients p99 ms | missed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {run.label} | {p.kind} | {p.changes} | {_pct(p.per_client_ms, 50):.1f} | "
            f"{_pct(p.per_client_ms, 99):.1f} | {_pct(p.all_clients_ms, 50):.1f} | "
            f"{_pct(p.all_clients_ms, 99):.1f} | {p.missed} |"
            for run in runs
            for p in run.propagation
        ),
        "",
        f"**Retrieval with parked waits**: wrk on `GET resolve?provider=openai`, "
        f"{args.concurrency} connections for {args.duration} s, alone and while "
        f"{args.parked} other connections each keep an `events?wait=30` request open (asking "
        "again a second later when one is answered at once, as the client does). A parked wait "
        "is not answered during the run; the last column counts those that were. Errors are "
        "non-2xx answers and requests wrk gave up on (no answer within its 2 s timeout).",
        "",
        "| gunicorn workers | waits | req/s | p50 ms | p99 ms | errors | "
        "polls answered during the run |",
        "|---|---:|---:|---:|---:|---:|---|",
        *(
            f"| {run.label} | {t.parked} | {t.rps:,.0f} | {t.p50_ms:.2f} | {t.p99_ms:.2f} | "
            f"{t.errors} | "
            + (", ".join(f"{s}: {n}" for s, n in t.waiter_answers.items()) or "none")
            + " |"
            for run in runs
            for t in run.throughput
        ),
        "",
        *(
            ["![Client resolve, propagation and retrieval](benchmarks-event-feed.png)", ""]
            if has_plot
            else []
        ),
    ]
    return update_report(HEADING, "\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # What the feed costs does not grow with the keys (proxy_api measures that); a few hundred
    # keep 50 snapshots at start-up short.
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200_000, help="resolve calls per case")
    parser.add_argument("--threads", default="1,2,4,8", help="reader thread counts")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--changes", type=int, default=100, help="changes of each kind")
    parser.add_argument(
        "--budget",
        type=float,
        default=600,
        help="seconds each server's propagation part may take; it stops after the change "
        "under way (the report says how many were measured)",
    )
    parser.add_argument("--parked", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument(
        "--server",
        action="append",
        dest="variants",
        metavar="SETTINGS",
        help="a server to run the propagation and retrieval parts on: gunicorn arguments added "
        "to the config file's, and NAME=VALUE environment settings, e.g. 'CONN_MAX_AGE=0 "
        "--worker-class gthread --threads 128'; repeatable (default: one server with the "
        "config file's settings, '')",
    )
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    try:
        import keyvault_client  # noqa: F401
    except ImportError:
        print("keyvault-client is not installed (pip install -e clients/python)", file=sys.stderr)
        return 1
    runs = []
    with Server(args.database, args.workers) as server:
        print(f"seeding {args.keys} keys…", flush=True)
        server.seed(args.keys)
        for number, variant in enumerate(args.variants or [""]):
            words = variant.split()
            settings = dict(w.split("=", 1) for w in words if "=" in w and w[0] != "-")
            extra = [w for w in words if not ("=" in w and w[0] != "-")]
            label = worker_label(extra) + "".join(f", {n}={v}" for n, v in settings.items())
            print(f"gunicorn: {args.workers} workers, {label}", flush=True)
            server.start(extra, settings)
            try:
                if number == 0:
                    threads = [int(n) for n in args.threads.split(",")]
                    resolve = bench_resolve(server, args.calls, threads)
                propagation = bench_propagation(
                    server, args.clients, args.changes, run=number, budget=args.budget
                )
                throughput = bench_parked(server, args.parked, args.concurrency, args.duration)
            finally:
                server.stop()
            runs.append(Run(label, propagation, throughput))
    if not args.no_report:
        print(f"\nwrote {write_report(resolve, runs, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
