"""Benchmark: statement ingest over real HTTP into a running ``tessera serve``.

Starts ``tessera serve`` (``--workers``, default 2: both cores) on a fresh, migrated
database, creates LRS credentials, then 4 concurrent clients POST batches of 100 realistic
statements (1-2 KB each: account actors, cmi5-style context, results, extensions) to
``/xapi/statements`` over HTTP Basic until N statements (default 200,000) are stored. Every
statement is strictly validated, stored with its index rows and mapped to evidence in one
transaction before the LRS answers. The request bodies are generated before the clock
starts, so that the load generator takes as little of the shared CPU as it can. Prints
statements/s, p50/p95/p99 batch latency, the server's CPU time and peak RSS (summed over
its processes), then checks the count in the database.

Run from the repository root::

    python bench/xapi_ingest.py                       # SQLite, 200,000 statements
    python bench/xapi_ingest.py --statements 20000    # a quick run
    python bench/xapi_ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

With a PostgreSQL URL a fresh database is created on that server and dropped afterwards.
Not a test: pytest never collects this file.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from harness import free_port, postgres_url, wait_up  # bench/ is sys.path[0]
from sqlalchemy import func, select

from gateway.auth import ClientStore
from gateway.wiring import open_store

TENANT = "bench"
BATCH = 100
CLIENTS = 4
VERBS = [
    "http://adlnet.gov/expapi/verbs/passed", "http://adlnet.gov/expapi/verbs/failed",
    "http://adlnet.gov/expapi/verbs/completed", "http://adlnet.gov/expapi/verbs/answered",
    "http://adlnet.gov/expapi/verbs/experienced", "http://adlnet.gov/expapi/verbs/attempted",
]

# One realistic statement (about 1.4 KB): a learner's account, a quiz question with an
# interaction definition, a scored result, cmi5-style context with a CASE competency.
TEMPLATE = (
    '{{"id":"{id}","actor":{{"objectType":"Agent","name":"Learner {learner}","account":{{"homePage":"https://sis.example.edu",'
    '"name":"stu-{learner:06d}"}}}},"verb":{{"id":"{verb}","display":{{"en-US":"{verb_name}"}}}},'
    '"object":{{"objectType":"Activity","id":"https://content.example.com/courses/math-5/quiz-{quiz}/q{question}",'
    '"definition":{{"name":{{"en-US":"Fractions quiz {quiz}, question {question}"}},"description":{{"en-US":"Add two fractions '
    'with unlike denominators and simplify the result."}},"type":"http://adlnet.gov/expapi/activities/cmi.interaction",'
    '"interactionType":"choice","correctResponsesPattern":["b"],"choices":[{{"id":"a","description":{{"en-US":"3/7"}}}},'
    '{{"id":"b","description":{{"en-US":"5/6"}}}},{{"id":"c","description":{{"en-US":"2/5"}}}}]}}}},'
    '"result":{{"score":{{"scaled":{scaled},"raw":{raw},"min":0,"max":10}},"success":{success},"completion":true,'
    '"response":"b","duration":"PT{secs}S"}},'
    '"context":{{"registration":"{registration}","platform":"Example LMS","language":"en-US",'
    '"contextActivities":{{"parent":[{{"id":"https://content.example.com/courses/math-5/quiz-{quiz}"}}],'
    '"grouping":[{{"id":"https://content.example.com/courses/math-5"}}],'
    '"category":[{{"id":"https://w3id.org/xapi/cmi5/context/categories/moveon"}},'
    '{{"id":"https://case.example.org/uri/6b2d0e6e-0f0a-4ad4-9a7e-5b1a8c{quiz:06d}"}}]}},'
    '"extensions":{{"https://w3id.org/xapi/cmi5/context/extensions/sessionid":"{registration}"}}}},'
    '"timestamp":"2026-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"}}'
)


def make_batch(rng_seed: int, n: int = BATCH) -> bytes:
    parts = []
    for i in range(n):
        k = rng_seed * n + i
        raw = k % 11
        verb = VERBS[k % len(VERBS)]
        parts.append(TEMPLATE.format(
            id=uuid.uuid4(), learner=k % 5000, verb=verb, verb_name=verb.rsplit("/", 1)[1], quiz=k % 200,
            question=k % 10, scaled=raw / 10, raw=raw, success="true" if raw >= 7 else "false", secs=30 + k % 300,
            registration=uuid.UUID(int=k // 10 + 1), day=1 + k % 25, hour=k % 24, minute=k % 60, second=k % 60, ms=k % 1000,
        ))
    return ("[" + ",".join(parts) + "]").encode()


def session_usage(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of the server and every process of its session
    (uvicorn's workers): the sum of their VmHWM and of their user + system time."""
    rss_kib, ticks = 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    rss_kib += int(line.split()[1])
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ProcessLookupError):
            continue
    return rss_kib / 1024, ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(url: str, workers: int) -> Iterator[tuple[str, int]]:
    env = {**os.environ, "TESSERA_DATABASE_URL": url, "TESSERA_LOG_LEVEL": "WARNING"}
    tessera = str(Path(sys.executable).with_name("tessera"))
    port = free_port()
    proc = subprocess.Popen([tessera, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, base, "tessera serve")
        yield base, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def run(url: str, n: int, workers: int) -> None:
    store = open_store(url)
    store.migrate()
    with server(url, workers) as (base, pid):
        client, secret = ClientStore(store.engine).create(TENANT, ["xapi/all"], name="bench")
        batches = n // BATCH
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        # The bodies are built before the clock starts: the load generator shares the two
        # cores with the server, and formatting 100 statements costs ~4 ms of its CPU.
        bodies = [make_batch(i) for i in range(batches)]
        next_batch = iter(bodies)

        def worker() -> None:
            with httpx.Client(base_url=base, auth=(client.client_id, secret), timeout=120,
                              headers={"X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}) as c:
                while True:
                    with lock:
                        body = next(next_batch, None)
                    if body is None:
                        return
                    t0 = time.perf_counter()
                    r = c.post("/xapi/statements", content=body)
                    dt = time.perf_counter() - t0
                    with lock:
                        latencies.append(dt)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {r.text[:200]}")

        print(f"  statement size: {len(make_batch(0)) / BATCH:,.0f} bytes; {CLIENTS} clients x batches of {BATCH}; "
              f"server workers: {workers}")
        threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
        cpu0 = session_usage(pid)[1]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        rss, cpu = session_usage(pid)
        cpu -= cpu0
    if errors:
        print(f"  {len(errors)} batches failed, e.g. {errors[0]}")
    from adapters.xapi.tables import xapi_statements

    with store.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(xapi_statements).where(xapi_statements.c.tenant == TENANT)).scalar()
    store.dispose()
    q = statistics.quantiles(latencies, n=100)
    print(f"  {stored:,} statements stored in {took:.1f} s: {stored / took:,.0f} statements/s  [target >= 5,000]")
    print(f"  batch latency p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
    print(f"  server CPU {cpu:.1f} s ({cpu / took:.2f} cores, {cpu / stored * 1e6:.0f} us per statement); "
          f"peak RSS {rss:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database-url", default=None, help="a PostgreSQL server URL (a fresh database is made on it)")
    args = ap.parse_args()
    if args.database_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"SQLite, {args.statements:,} statements")
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.statements, args.workers)
        return
    with postgres_url(args.database_url) as url:
        print(f"PostgreSQL, {args.statements:,} statements")
        run(url, args.statements, args.workers)

if __name__ == "__main__":
    main()
