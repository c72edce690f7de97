"""Benchmark: the embedded routing engine delivering outbox rows to a local HTTP sink.

Two phases per backend:

* **throughput**: N changes (default 100,000 orgs) are written through the store with a
  ``webhook`` push route in place (so N outbox rows, in the changes' transactions), then the
  engine starts and the time until every row is delivered gives rows/s. PostgreSQL: 4
  worker processes (``python -m gateway.routing.dispatch``, what ``tessera worker`` runs),
  sharing the outbox with ``FOR UPDATE SKIP LOCKED``; SQLite: the embedded engine in one
  process (SQLite has one dispatcher per database file).
* **latency**: with the engine running, changes are written at half the measured rate for
  ``--latency-seconds``; the delay from each change's commit (``outbox.created_at``) to its
  delivery (``delivered_at``) gives p50/p99.

The sink is a minimal asyncio HTTP server in its own process: it answers 200 at once and
counts requests and distinct ``Idempotency-Key`` values (every row must arrive, repeats are
reported). Targets (issue 16): >= 2,000 rows/s with 4 workers on PostgreSQL, >= 1,000
rows/s embedded on SQLite, p99 < 1 s at half rate. The host-speed figure
(``bench/host_speed.py``) is printed next to the figures.

    python bench/routing.py                                   # SQLite only
    python bench/routing.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres
    python bench/routing.py --n 20000 --backends postgresql --postgres-url ...

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-signing-secret"
T = "t1"


# --- the sink (its own process) ------------------------------------------------------------------------------


def run_sink(port: int) -> None:
    import orjson

    keys: set[bytes] = set()
    stats = {"requests": 0, "events": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                key = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    n = name.strip().lower()
                    if n == b"content-length":
                        length = int(value)
                    elif n == b"idempotency-key":
                        key = value.strip()
                got = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /stats"):
                    body = f'{{"requests": {stats["requests"]}, "events": {stats["events"]}, "keys": {len(keys)}}}'.encode()
                else:
                    stats["requests"] += 1
                    if key and key.startswith(b"batch:"):  # several events in one signed request
                        ids = [e["id"].encode() for e in orjson.loads(got)["events"]]
                    else:
                        ids = [key] if key else []
                    stats["events"] += len(ids)
                    keys.update(ids)
                    body = b"{}"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def sink_stats(port: int) -> dict[str, int]:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()  # type: ignore[no-any-return]


# --- the phases -------------------------------------------------------------------------------------------------


def setup(store: Any, port: int, batch_size: int) -> None:
    cid = store.routing.create_connection(T, "sink", adapter="webhook", role="webhook", system="sink", base_url=f"http://127.0.0.1:{port}/hook",
                                          auth={"signing_secret": "env:BENCH_SIGNING_SECRET"},
                                          options={"timeout": 10, "retries": 10, "backoff": 0.2, "max_backoff": 2,
                                                   "batch_size": batch_size})
    store.routing.create_route(T, "to-sink", destination=cid, kinds=["org"])


def write_changes(store: Any, prefix: str, n: int, batch: int = 1000) -> float:
    from gateway.model import Org

    started = time.perf_counter()
    for i in range(0, n, batch):
        store.records.apply(T, [Org(tenant=T, source="sis", native_id=f"{prefix}{j}", name=f"School {j}", type="school")
                                for j in range(i, min(n, i + batch))])
    return time.perf_counter() - started


def counts(store: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from gateway.store.tables import outbox

    with store.engine.connect() as c:
        return dict(c.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())  # type: ignore[arg-type]


def pending(store: Any) -> int:
    """Rows still pending (through the (state, next_attempt_at) index: cheap to ask often)."""
    from sqlalchemy import func, select

    from gateway.store.tables import outbox

    with store.engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(outbox).where(outbox.c.state == "pending")) or 0)


def delays(store: Any, since_id: int) -> list[float]:
    from sqlalchemy import select

    from gateway.store.tables import outbox

    with store.engine.connect() as c:
        rows = c.execute(select(outbox.c.created_at, outbox.c.delivered_at).where(outbox.c.id > since_id, outbox.c.state == "delivered"))
        return sorted((d - cr).total_seconds() for cr, d in rows)


def max_id(store: Any) -> int:
    from sqlalchemy import func, select

    from gateway.store.tables import outbox

    with store.engine.connect() as c:
        return int(c.scalar(select(func.coalesce(func.max(outbox.c.id), 0))) or 0)


class Engines:
    """The delivery side: worker processes (PostgreSQL) or the embedded engine in this process."""

    def __init__(self, store: Any, url: str, *, processes: int, threads: int, batch: int) -> None:
        self.store, self.url, self.processes, self.threads, self.batch = store, url, processes, threads, batch
        self.procs: list[subprocess.Popen[bytes]] = []
        self.engine: Any = None

    def start(self) -> None:
        if self.processes:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            for i in range(self.processes):
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "gateway.routing.dispatch", "--database-url", self.url, "--worker-id", f"bench{i}",
                     "--threads", str(self.threads), "--batch", str(self.batch), "--poll", "0.05", "--no-scheduler"], env=env, cwd=ROOT))
        else:
            from gateway.routing.dispatch import EmbeddedEngine
            from gateway.wiring import default

            self.engine = EmbeddedEngine(self.store, default(), threads=self.threads, batch=self.batch, poll=0.05, scheduler=False)
            self.engine.start()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the delivery side used so far: the worker processes', or
        this whole process's (embedded; the writer is idle while the backlog drains)."""
        if not self.procs:
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF)
            return r.ru_utime + r.ru_stime
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for p in self.procs:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def peak_rss_mb(self) -> float:
        """Peak resident memory of one delivery process (the largest worker's, or this process's)."""
        if not self.procs:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peaks = []
        for p in self.procs:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks, default=0.0)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(timeout=30)
        self.procs = []
        if self.engine is not None:
            self.engine.stop()
            self.engine = None


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def bench_backend(name: str, url: str, args: argparse.Namespace, port: int) -> dict[str, Any]:
    from gateway.wiring import open_store

    store = open_store(url)
    store.migrate()
    setup(store, port, args.batch_size)
    base = sink_stats(port)
    wrote = write_changes(store, "a", args.n)
    print(f"  [{name}] {args.n:,} changes written with their outbox rows in {wrote:.1f} s", flush=True)
    processes = args.workers if name == "postgresql" else 0
    engines = Engines(store, url, processes=processes, threads=args.threads, batch=args.batch)
    engines.start()
    while pending(store) == args.n:  # the workers are up once the first row goes out
        time.sleep(0.05)
    started, cpu0, first_out = time.perf_counter(), engines.cpu_seconds(), args.n - pending(store)
    deadline = started + args.deadline
    while pending(store) and time.perf_counter() < deadline:
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    cpu = engines.cpu_seconds() - cpu0
    c = counts(store)
    rate = (c.get("delivered", 0) - first_out) / elapsed
    s = sink_stats(port)
    received, distinct = s["requests"] - base["requests"], s["keys"] - base["keys"]
    events = s["events"] - base["events"]
    how = f"{processes} worker processes x {args.threads} threads" if processes else f"embedded, {args.threads} threads"
    print(f"  [{name}] throughput: {c.get('delivered', 0):,} delivered, {c.get('delivered', 0) - first_out:,} of them in {elapsed:.1f} s "
          f"once the workers were up = {rate:,.0f} rows/s ({how}, "
          f"claims of {args.batch}, {args.batch_size or 1} events a request); sink got {received:,} requests, {events:,} events, "
          f"{distinct:,} distinct event ids; states {c}; "
          f"delivery CPU {cpu / max(1, c.get('delivered', 0) - first_out) * 1000:.2f} ms per row (the workers', not PostgreSQL's)", flush=True)
    # latency at half the measured rate
    half = max(1.0, rate / 2)
    first = max_id(store)
    per_tick = max(1, int(half / 20))  # 20 writes a second
    total = int(half * args.latency_seconds)
    t0 = time.perf_counter()
    written = 0
    while written < total:
        k = min(per_tick, total - written)
        write_changes(store, f"l{written}-", k, batch=k)
        written += k
        next_at = t0 + written / half
        time.sleep(max(0.0, next_at - time.perf_counter()))
    offered = written / (time.perf_counter() - t0)
    wait_until = time.perf_counter() + 30
    while pending(store) and time.perf_counter() < wait_until:
        time.sleep(0.2)
    d = delays(store, first)
    rss = engines.peak_rss_mb()
    engines.stop()
    print(f"  [{name}] latency at {offered:,.0f} changes/s for {args.latency_seconds:.0f} s: {len(d):,} delivered, "
          f"commit-to-delivery p50 {pct(d, 0.5) * 1000:.0f} ms, p99 {pct(d, 0.99) * 1000:.0f} ms, max {d[-1] * 1000 if d else 0:.0f} ms; "
          f"peak RSS {rss:.0f} MB per delivery process", flush=True)
    store.dispose()
    return {"rate": rate, "p99": pct(d, 0.99), "cpu_ms": cpu / max(1, c.get("delivered", 0) - first_out) * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--postgres-url", default=os.environ.get("TESSERA_BENCH_POSTGRES_URL"))
    p.add_argument("--workers", type=int, default=4, help="worker processes on PostgreSQL")
    p.add_argument("--threads", type=int, default=4, help="delivery threads per worker")
    p.add_argument("--batch", type=int, default=256, help="rows a claim")
    p.add_argument("--batch-size", type=int, default=50, help="events a webhook request (1: one request per row)")
    p.add_argument("--latency-seconds", type=float, default=20)
    p.add_argument("--deadline", type=float, default=600)
    p.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sink:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        run_sink(args.sink)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from harness import free_port, postgres_url
    from host_speed import measure

    os.environ["BENCH_SIGNING_SECRET"] = SECRET
    port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(port)])
    time.sleep(1.0)
    print(f"host speed: record_id {measure():.2f} us; {os.cpu_count()} cpus; load {os.getloadavg()[0]:.1f}", flush=True)
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                tmp = tempfile.mkdtemp()
                try:
                    bench_backend("sqlite", f"sqlite:///{tmp}/routing.db", args, port)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            elif backend == "postgresql":
                if not args.postgres_url:
                    print("  [postgresql] skipped: no --postgres-url")
                    continue
                with postgres_url(args.postgres_url) as url:
                    bench_backend("postgresql", url, args, port)
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
    print(f"host speed after: record_id {measure():.2f} us; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    threading.stack_size(0)
    main()
