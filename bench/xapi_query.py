"""Benchmark: GET /xapi/statements filtered by agent and verb over 1,000,000 stored statements.

Loads N statements (default 1,000,000: 5,000 learners, 6 verbs, 2,000 activities; the
statements of ``xapi_ingest``) into a fresh database through ``StatementStore`` (the LRS's
own write path, without evidence mapping, which this benchmark does not measure), starts
``tessera serve``, then asks ``GET /xapi/statements?agent=<learner>&verb=<verb>&limit=25``
for random learner/verb pairs over HTTP Basic and prints the p50/p95/p99 latency
(target: p50 < 30 ms), and the query plan.

Run from the repository root::

    python bench/xapi_query.py                        # SQLite, 1,000,000 statements
    python bench/xapi_query.py --statements 200000
    python bench/xapi_query.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

Not a test: pytest never collects this file.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xapi_ingest import TENANT, VERBS, make_batch, tessera

from adapters.xapi import validation
from adapters.xapi.http import iso
from adapters.xapi.statement_store import StatementStore
from gateway.auth import ClientStore
from gateway.model import utcnow
from gateway.store import Store
from gateway.wiring import open_store

LOAD_BATCH = 2_000
REQUESTS = 300
AUTHORITY = {"objectType": "Agent", "name": "bench", "account": {"homePage": "https://tessera.invalid/xapi/credentials", "name": "bench"}}


def load(store: Store, n: int) -> None:
    statements = StatementStore(store)
    t0 = time.perf_counter()
    for i in range(n // LOAD_BATCH):
        batch = validation.statements(orjson.loads(make_batch(i, LOAD_BATCH)), "1.0.3")
        stored = utcnow()
        for s in batch:
            s.update(stored=iso(stored), authority=AUTHORITY, version="1.0.0")
        statements.save(TENANT, batch, stored=stored, authority=validation.agent_key(AUTHORITY))
        if (i + 1) % 50 == 0:
            done = (i + 1) * LOAD_BATCH
            print(f"  loaded {done:,} ({done / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    print(f"  loaded {n:,} statements in {time.perf_counter() - t0:.0f} s")


def run(url: str, n: int) -> None:
    store = open_store(url)
    store.migrate()
    load(store, n)
    with tessera(url, 1) as (base, _):
        client, secret = ClientStore(store.engine).create(TENANT, ["xapi/all"], name="bench")
        rng = random.Random(7)
        latencies = []
        found = 0
        with httpx.Client(base_url=base, auth=(client.client_id, secret), timeout=60,
                          headers={"X-Experience-API-Version": "1.0.3"}) as c:
            for i in range(REQUESTS + 20):
                agent = orjson.dumps({"account": {"homePage": "https://sis.example.edu", "name": f"stu-{rng.randrange(5000):06d}"}}).decode()
                params = {"agent": agent, "verb": rng.choice(VERBS), "limit": "25"}
                t0 = time.perf_counter()
                r = c.get("/xapi/statements", params=params)
                dt = time.perf_counter() - t0
                r.raise_for_status()
                if i >= 20:  # the first requests warm the credential cache and the page cache
                    latencies.append(dt)
                    found += len(r.json()["statements"])
        q = statistics.quantiles(latencies, n=100)
        print(f"  GET agent+verb (limit 25), {REQUESTS} requests, {found / REQUESTS:.1f} statements each: "
              f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms  [target p50 < 30 ms]")
    explain(store)
    store.dispose()


def explain(store: Store) -> None:
    """The query plan in each tier of the index (adapters/xapi/tables.py): the merged one,
    and on SQLite the recent one, which holds the last statements (fewer than
    ``MERGE_EVERY``) and is read first."""
    from adapters.xapi import tables
    from adapters.xapi.statement_query import MERGED, RECENT, Query

    sql = StatementStore(store)
    q = Query(agent="account:https://sis.example.edu|stu-000042", verb=VERBS[0], limit=25)
    sqlite = store.engine.dialect.name == "sqlite"
    with store.engine.connect() as conn:
        recent = conn.execute(text(f"SELECT count(DISTINCT seq) FROM {tables.xapi_recent_agents.name}")).scalar()
        for name, tier in [("recent", RECENT), ("merged", MERGED)] if sqlite else [("merged", MERGED)]:
            compiled = sql.statement(TENANT, q, tier).compile(store.engine)
            if sqlite:
                params = tuple(compiled.params[k] for k in compiled.positiontup)
                lines = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params).all()]
            else:
                lines = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()]
            held = f", {recent:,} statements" if name == "recent" else ""
            print(f"  query plan ({store.engine.dialect.name}, {name} tier{held}):")
            for line in lines:
                print(f"    {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=1_000_000)
    ap.add_argument("--database-url", default=None, help="a PostgreSQL server URL (a fresh database is made on it)")
    args = ap.parse_args()
    if args.database_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"SQLite, {args.statements:,} statements")
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.statements)
        return
    name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        print(f"PostgreSQL, {args.statements:,} statements")
        run(args.database_url.rsplit("/", 1)[0] + f"/{name}", args.statements)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
