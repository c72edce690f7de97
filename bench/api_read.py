"""Benchmark: read latency of ``GET /v1/people?limit=100`` on the real server.

Loads N people (default 100,000) into a fresh database through the store, starts
``tessera serve`` as a separate process on a free port of 127.0.0.1, gets an access token
through ``POST /oauth/token`` (client credentials), walks the whole collection once to
collect every page's cursor, then drives a fixed number of requests (default 4,000) from
C concurrent clients (default 8 threads, one keep-alive httpx client each). Each request
asks for a random page of the whole set (a random cursor, or the first page), and must
answer 200 with a full page. Prints p50/p90/p99/max latency as the clients saw it, and
requests/s.

Run from the repository root::

    python bench/api_read.py                                 # SQLite, 1 server worker
    python bench/api_read.py --workers 2
    python bench/api_read.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

``--postgres-url`` (or TESSERA_BENCH_POSTGRES_URL) adds a PostgreSQL run in a throwaway
database. The whole run is bounded (``--deadline``, default 300 s). Not a test: pytest
never collects this file (bench/ is outside testpaths, and the name does not match
test_*.py).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port, postgres_url  # noqa: E402
from store_upsert import TENANT, build_orgs, build_people  # noqa: E402

from gateway.auth import ClientStore  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.wiring import open_store


def load(store: Store, n: int, report: Callable[[str], None]) -> None:
    store.migrate()
    orgs = build_orgs()
    store.records.apply(TENANT, orgs)
    t0 = time.perf_counter()
    loaded = 0
    step = 10_000
    for start in range(0, n, step):
        people = build_people(min(step, n - start), orgs, start=start)
        for r in store.records.apply_stream(TENANT, [people[i : i + 5_000] for i in range(0, len(people), 5_000)]):
            loaded += r.created + r.updated + r.unchanged
    report(f"  loaded {loaded:,} people in {time.perf_counter() - t0:.1f} s (records built and applied)")


@contextmanager
def server(url: str, workers: int, workdir: Path, deadline: float) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).with_name("tessera")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gateway.cli"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "TESSERA_DATABASE_URL": url}
    env.pop("TESSERA_CONFIG", None)  # no gateway.yaml (the server runs in an empty folder): defaults only
    log = (workdir / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not come up")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and, with --workers, its workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def token(base: str, engine) -> str:  # noqa: ANN001
    client, secret = ClientStore(engine).create(TENANT, ["roster-core.readonly"], name="bench")
    r = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret), timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


def walk(base: str, tok: str, limit: int) -> tuple[list[str], int, float]:
    """Every cursor of the collection, by following next_cursor from the first page."""
    cursors: list[str] = []
    seen = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tok}"}, timeout=30) as c:
        cursor = None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            r = c.get("/v1/people", params=params)
            r.raise_for_status()
            body = r.json()
            seen += len(body["items"])
            cursor = body["next_cursor"]
            if not cursor:
                break
            cursors.append(cursor)
    return cursors, seen, time.perf_counter() - t0


def drive(
    base: str, tok: str, cursors: list[str], *, requests: int, clients: int, limit: int, seed: int, deadline: float
) -> tuple[list[float], int, float]:
    """``requests`` GETs from ``clients`` threads (fewer if ``deadline`` passes first);
    returns (latencies in s, failures, wall s)."""
    lock = threading.Lock()
    remaining = [requests]
    latencies: list[float] = []
    failures = [0]
    start = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        rnd = random.Random(seed + k)
        mine: list[float] = []
        bad = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tok}"}, timeout=30) as c:
            c.get("/healthz")  # open the keep-alive connection before the clock starts
            start.wait()
            while True:
                with lock:
                    if remaining[0] <= 0 or time.monotonic() > deadline:
                        break
                    remaining[0] -= 1
                i = rnd.randrange(len(cursors) + 1)
                params = {"limit": str(limit)} if i == len(cursors) else {"limit": str(limit), "cursor": cursors[i]}
                t0 = time.perf_counter()
                r = c.get("/v1/people", params=params)
                ok = r.status_code == 200 and r.content.startswith(b'{"items":[')
                mine.append(time.perf_counter() - t0)
                bad += not ok
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    return latencies, failures[0], time.perf_counter() - t0


def pct(sorted_values: list[float], p: float) -> float:
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def bench_backend(label: str, url: str, args: argparse.Namespace, workdir: Path, report: Callable[[str], None]) -> None:
    deadline = time.monotonic() + args.deadline
    store = open_store(url)
    load(store, args.people, report)
    try:
        with server(url, args.workers, workdir, deadline) as base:
            tok = token(base, store.engine)
            cursors, seen, walked = walk(base, tok, args.limit)
            report(f"  walked all {seen:,} people in {len(cursors) + 1:,} pages of {args.limit} (one client, sequential): "
                   f"{walked:.1f} s, {(len(cursors) + 1) / walked:,.0f} pages/s")
            if seen != args.people:
                report(f"  !! the walk saw {seen:,} people, expected {args.people:,}")
            # warm-up: the server's caches and every client connection, not measured
            drive(base, tok, cursors, requests=min(400, args.requests), clients=args.clients, limit=args.limit, seed=1, deadline=deadline)
            gc.collect()
            lat, failures, wall = drive(
                base, tok, cursors, requests=args.requests, clients=args.clients, limit=args.limit, seed=2, deadline=deadline
            )
    finally:
        store.dispose()
    if len(lat) < args.requests:
        report(f"  !! only {len(lat):,} of {args.requests:,} requests ran before --deadline {args.deadline:.0f} s")
    if not lat:
        return
    lat.sort()
    ms = [x * 1000 for x in lat]
    report(
        f"{label:<10} GET /v1/people?limit={args.limit}  {len(lat):,} requests, {args.clients} clients, "
        f"{args.workers} server worker(s): p50 {pct(ms, 50):.1f} ms  p90 {pct(ms, 90):.1f} ms  "
        f"p99 {pct(ms, 99):.1f} ms  max {ms[-1]:.1f} ms  mean {statistics.fmean(ms):.1f} ms  "
        f"{len(lat) / wall:,.0f} req/s  failures {failures}"
    )
    report(f"{label:<10} p99 target < 50 ms: {'met' if pct(ms, 99) < 50 else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=4_000, help="measured requests (default 4,000)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--limit", type=int, default=100, help="page size (default 100)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the server (default 1)")
    p.add_argument("--postgres-url", default=os.environ.get("TESSERA_BENCH_POSTGRES_URL"),
                   help="PostgreSQL server URL (env TESSERA_BENCH_POSTGRES_URL); without one, PostgreSQL is skipped")
    p.add_argument("--skip-sqlite", action="store_true")
    p.add_argument("--deadline", type=float, default=300, help="per backend: stop sending requests after this many seconds")
    args = p.parse_args(argv)

    def report(line: str) -> None:
        print(line, flush=True)

    report(f"api_read: {args.people:,} people, {args.requests:,} requests of GET /v1/people?limit={args.limit} "
           f"from {args.clients} concurrent clients, server `tessera serve --workers {args.workers}` in its own process")
    report(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s) shared by server and clients")
    workdir = Path(tempfile.mkdtemp(prefix="tessera-api-bench-"))
    try:
        if not args.skip_sqlite:
            bench_backend("sqlite", f"sqlite:///{workdir}/bench.db", args, workdir, report)
        if args.postgres_url:
            with postgres_url(args.postgres_url) as url:
                bench_backend("postgresql", url, args, workdir, report)
        else:
            report("postgresql: skipped (no server given: pass --postgres-url or set TESSERA_BENCH_POSTGRES_URL)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
