"""Benchmark: the xAPI evidence consumer alone (``adapters/xapi/derive.py``), in process.

Loads the framework and roster of ``bench/xapi_ingest.py`` into a fresh database, stores N
of its statements deferred (``TESSERA_XAPI__DERIVE=async``: no evidence yet), then derives
them with ``Deriver.drain`` in this thread and prints the consumer's CPU per statement
(process time, so the figure is load-insensitive), the states written (``--shards K``: one
consumer holding all K shards of PostgreSQL, to see what the split costs), and with
``--inline`` the same statements stored with their evidence in the request's transaction
(``StatementStore.save`` without a deriver) for comparison. ``--profile FILE`` writes a
cProfile of the drain; ``--recompute-check`` recomputes every state from scratch after it
and fails when any differs from what the consumer wrote. The consumer's rounds grow while it
is behind, as they do in a server (``--max-batch 250``: fixed rounds of 250); the rounds it
took and the largest are printed.

Run from the repository root::

    python bench/xapi_derive.py --statements 20000
    python bench/xapi_derive.py --statements 20000 --database-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

Not a test: pytest never collects this file.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import orjson
from harness import postgres_url  # bench/ is sys.path[0]
from host_speed import measure as host_speed
from sqlalchemy import func, select
from xapi_ingest import BATCH, TENANT, load_reference, make_batch

from adapters.xapi.derive import Deriver
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.mastery.attach import engine_of
from gateway.store import tables as t
from gateway.wiring import open_store

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "bench"}}


def run(url: str, n: int, *, inline: bool, batch: int, profile: str | None, recheck: bool, shards: int = 1,
        max_batch: int | None = None) -> int:
    store = open_store(url)
    store.migrate()
    load_reference(store)
    engine_of(store)  # the mastery engine listens to evidence, as in a server
    mapper = EvidenceMapper(store)
    deriver = None if inline else Deriver(store, mapper, batch=batch, shards=shards, max_batch=max_batch)
    if deriver is not None:
        deriver.notify = lambda: None  # type: ignore[method-assign]  # derived below, in this thread
    lrs = StatementStore(store, mapper, deriver=deriver)
    raw = [make_batch(i) for i in range(n // BATCH)]  # bytes: a parsed copy of every batch would weigh on the collector
    t0, c0 = time.perf_counter(), time.process_time()
    for data in raw:
        body = orjson.loads(data)
        stored = complete(body, AUTHORITY, "1.0.3")
        lrs.save(TENANT, body, stored=stored, authority="bench")
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    mode = "inline (statements, evidence and states)" if inline else "async ack path (statements only)"
    print(f"  store, {mode}: {n:,} statements, {cpu / n * 1e6:.0f} us CPU per statement ({n / took:,.0f}/s)")
    del raw
    gc.collect()
    if deriver is not None:
        sizes: list[int] = []  # statements of each round
        once = deriver.derive_once

        def counted() -> int:
            sizes.append(once())
            return sizes[-1]

        deriver.derive_once = counted  # type: ignore[method-assign]
        prof = cProfile.Profile() if profile else None
        t0, c0 = time.perf_counter(), time.process_time()
        with prof if prof is not None else nullcontext():
            done = deriver.drain(timeout=3600)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"  consumer: {done:,} statements derived, {cpu / n * 1e6:.0f} us CPU per statement ({n / took:,.0f}/s, batch {batch} growing to {deriver._ceiling()} while behind: {len(sizes) - 1} rounds, "
              f"the largest {max(sizes)}, shards {shards})")
        if prof is not None and profile:
            prof.dump_stats(profile)
    with store.engine.connect() as conn:
        evidence = conn.scalar(select(func.count()).select_from(t.evidence).where(t.evidence.c.tenant == TENANT))
        states = conn.scalar(select(func.count()).select_from(t.mastery_states).where(t.mastery_states.c.tenant == TENANT))
    print(f"  stored: {evidence:,} evidence items, {states:,} mastery states")
    failed = evidence != n
    if recheck:
        report = engine_of(store).recompute(TENANT)
        print(f"  full recompute: {report.states:,} states, {report.written:,} different from the consumer's")
        failed = failed or bool(report.written)
    store.dispose()
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=None, help="statements derived in one transaction (the Deriver's default)")
    ap.add_argument("--max-batch", type=int, default=None,
                    help="statements a transaction at most while the consumer is behind (the Deriver's default; --max-batch 250 --batch 250: fixed)")
    ap.add_argument("--database-url", default=None, help="a PostgreSQL server URL (a fresh database is made on it)")
    ap.add_argument("--inline", action="store_true", help="store with evidence in the request's transaction instead")
    ap.add_argument("--profile", default=None, help="write a cProfile of the consumer to this file")
    ap.add_argument("--recompute-check", action="store_true")
    ap.add_argument("--shards", type=int, default=1, help="PostgreSQL: TESSERA_XAPI__DERIVE_SHARDS of the consumer")
    args = ap.parse_args()
    from adapters.xapi.derive import BATCH as DERIVE_BATCH

    print(f"host speed: record_id {host_speed():.2f} us (bench/host_speed.py; lower is faster)")
    with (postgres_url(args.database_url) if args.database_url else _sqlite()) as url:
        rc = run(url, args.statements, inline=args.inline, batch=args.batch or DERIVE_BATCH, profile=args.profile,
                 recheck=args.recompute_check, shards=args.shards, max_batch=args.max_batch)
    print(f"host speed: record_id {host_speed():.2f} us")
    return rc


class _sqlite:
    def __enter__(self) -> str:
        self.tmp = tempfile.TemporaryDirectory()
        return f"sqlite:///{Path(self.tmp.name) / 'bench.db'}"

    def __exit__(self, *exc: object) -> None:
        self.tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
