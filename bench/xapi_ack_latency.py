"""Diagnosis: how long each acknowledged xAPI batch takes to store (SQLite or PostgreSQL), in one process.

``bench/xapi_ingest.py`` measures the batch latency through HTTP with two workers and four
clients, on a machine whose load moves the tail; this one takes the HTTP server and the other
writers away and stores ``--statements`` of its statements, batch after batch, the way the LRS
does in ``TESSERA_XAPI__DERIVE=async`` mode (``StatementStore.save`` with a deriver that is
never run), with the collector set as a server sets it. It prints the CPU per statement of the
process (every thread: the checkpoint thread too) and the p50, p99 and longest ``save``: the
tail is what a slow commit (a checkpoint in it, a merge step of the recent index tier) costs the
request that meets it, and what every other writer waits meanwhile. On SQLite it prints too how long
each merge step held the write lock.

    python bench/xapi_ack_latency.py --statements 60000
    python bench/xapi_ack_latency.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

With a PostgreSQL URL (a fresh database made on that server and dropped afterwards) it prints
too the CPU of the database's backends a statement, where they waited and the statements they
answered a batch (``pg_watch``).

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from typing import Any

import orjson
from host_speed import measure as host_speed
from pg_watch import APP, Watch
from xapi_ingest import BATCH, TENANT, fresh_database, load_reference, make_batch  # bench/ is sys.path[0]

from adapters.xapi.derive import Deriver
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.mastery.attach import engine_of
from gateway.wiring import open_store

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "bench"}}


def ack_only_store(url: str) -> tuple[Any, StatementStore]:
    """A migrated store at ``url`` with the bench's framework and roster, and its LRS whose
    consumer never derives: the acknowledgement path alone (also ``xapi_ack_growth``'s)."""
    store = open_store(url)
    store.migrate()
    load_reference(store)
    engine_of(store)
    mapper = EvidenceMapper(store)
    deriver = Deriver(store, mapper)
    deriver.notify = lambda: None  # type: ignore[method-assign]  # never derives
    return store, StatementStore(store, mapper, deriver=deriver)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=60_000)
    ap.add_argument("--database-url", default=None, help="a PostgreSQL server URL (a fresh database is made on it)")
    args = ap.parse_args()
    print(f"host speed: record_id {host_speed():.2f} us (bench/host_speed.py; lower is faster)")
    os.environ["PGAPPNAME"] = APP  # this process's connections, for the backends' CPU (pg_watch)
    with fresh_database(args.database_url) as url:
        store, lrs = ack_only_store(url)
        merges: list[tuple[float, float]] = []  # (wall, CPU) of each merge step of the recent index tier (SQLite)
        merge = lrs.merge

        def timed_merge(conn: object, below: int | None = None) -> None:
            w0, c0 = time.perf_counter(), time.process_time()
            merge(conn, below)  # type: ignore[arg-type]
            merges.append((time.perf_counter() - w0, time.process_time() - c0))

        lrs.merge = timed_merge  # type: ignore[method-assign]
        raw = [make_batch(i) for i in range(args.statements // BATCH)]
        gc.collect()
        gc.freeze()  # as the server does (gateway/api/app.py)
        gc.set_threshold(50_000, 20, 100)
        took: list[float] = []
        watch = Watch(url).start() if url.startswith("postgresql") else None
        c0 = time.process_time()
        for data in raw:
            body = orjson.loads(data)
            stored = complete(body, AUTHORITY, "1.0.3")
            t0 = time.perf_counter()
            lrs.save(TENANT, body, stored=stored, authority="bench")
            took.append(time.perf_counter() - t0)
        cpu = time.process_time() - c0
        n = len(raw) * BATCH
        notes = watch.finish(len(raw), n) if watch is not None else []
        q = statistics.quantiles(took, n=100)
        print(f"  {n:,} statements in batches of {BATCH}: {cpu / n * 1e6:.0f} us CPU per statement; "
              f"save p50 {q[49] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms, longest {max(took) * 1e3:.1f} ms")
        if merges:
            walls = sorted(w for w, _ in merges)
            print(f"  {len(merges)} merge steps of the recent index tier (due every {lrs.merge_every:,} statements, "
                  f"{lrs.merge_slice:,} a step): {walls[0] * 1e3:.0f}-{walls[-1] * 1e3:.0f} ms each under the write lock "
                  f"(median {statistics.median(walls) * 1e3:.0f} ms), {sum(c for _, c in merges) / n * 1e6:.1f} us of CPU a statement")
        for line in notes:
            print(f"  {line}")
        store.dispose()
    print(f"host speed: record_id {host_speed():.2f} us")


if __name__ == "__main__":
    main()
