"""Benchmark: page through every OneRoster 1.2 user, and the plan of a dateLastModified filter.

Loads N users (default 53,000, across 40 schools) into a fresh SQLite database through the
store, serves the app (the OneRoster provider router, ``adapters.oneroster.provider``) under
uvicorn in a separate process on a free port of 127.0.0.1, gets a token through
``POST /oauth/token``, then walks ``GET /ims/oneroster/rostering/v1p2/users?limit=1000``
by following each answer's ``Link: rel="next"`` until there is none. Prints the seconds the
walk took (target: <= 10 s for 53,000), checks every user came exactly once and matches
X-Total-Count, then prints the query plan of ``filter=dateLastModified>'...'`` (it must be a
range search of the (tenant, updated_at, id) index) and the time of that filtered request.

Run from the repository root::

    python bench/oneroster_api.py              # 53,000 users
    python bench/oneroster_api.py --users 10000 --postgres-url postgresql+psycopg://...

Not a test: pytest never collects this file.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port, postgres_url, wait_up
from store_upsert import TENANT, build_orgs, build_people

from gateway.auth import ClientStore
from gateway.store import Store
from gateway.wiring import open_store

PATH = "/ims/oneroster/rostering/v1p2/users"


def serve(url: str, port: int) -> None:
    """The child process: the app with the OneRoster provider router, under uvicorn."""
    import uvicorn

    from adapters.oneroster.provider import build_router
    from gateway.api.app import create_app
    from gateway.config import Settings

    class Routers:
        name = "oneroster"

        def routers(self, ctx: Any) -> list[Any]:
            return [build_router(self, ctx)]

    app = create_app(Settings(database_url=url, log_level="WARNING"), registry=[Routers()])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def load(store: Store, n: int) -> None:
    store.migrate()
    orgs = build_orgs()
    store.records.apply(TENANT, orgs)
    t0 = time.perf_counter()
    for start in range(0, n, 10_000):
        people = build_people(min(10_000, n - start), orgs, start=start)
        for _ in store.records.apply_stream(TENANT, [people[i : i + 5_000] for i in range(0, len(people), 5_000)]):
            pass
    print(f"  loaded {n:,} users in {time.perf_counter() - t0:.1f} s")


def links(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(", "):
        url, rel = part.split(">; rel=")
        out[rel.strip('"')] = url.lstrip("<")
    return out


def run(url: str, n: int, limit: int) -> None:
    store = open_store(url)
    load(store, n)
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port)], start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, base)
        cid, secret = ClientStore(store.engine).create(TENANT, ["roster-core.readonly"], name="bench")
        tok = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid.client_id, secret)).json()["access_token"]
        with httpx.Client(headers={"Authorization": f"Bearer {tok}"}, timeout=60) as c:
            c.get(f"{base}{PATH}?limit=1")  # warm up: token cache, statement cache
            seen: list[str] = []
            pages = 0
            next_url: str | None = f"{base}{PATH}?limit={limit}"
            t0 = time.perf_counter()
            total = None
            while next_url:
                r = c.get(next_url)
                r.raise_for_status()
                total = int(r.headers["X-Total-Count"])
                seen += [u["sourcedId"] for u in r.json()["users"]]
                pages += 1
                next_url = links(r.headers["Link"]).get("next")
            took = time.perf_counter() - t0
            assert total == n and len(seen) == n and len(set(seen)) == n, (total, len(seen), len(set(seen)))
            print(f"  paged {n:,} users in {pages} pages of {limit}: {took:.2f} s ({n / took:,.0f} users/s)  [target <= 10 s]")

            last = seen[-1]
            stamp = c.get(f"{base}{PATH}/{last}").json()["user"]["dateLastModified"]
            t1 = time.perf_counter()
            r = c.get(f"{base}{PATH}", params={"filter": f"dateLastModified>='{stamp}'", "limit": limit})
            r.raise_for_status()
            print(f"  filter=dateLastModified>='{stamp}': {r.headers['X-Total-Count']} users in {1000 * (time.perf_counter() - t1):.1f} ms")
        explain(store, stamp, limit)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        store.dispose()


def explain(store: Store, stamp: str, limit: int) -> None:
    from adapters.oneroster.query import parse_list_query, roster_query

    q = parse_list_query({"filter": f"dateLastModified>'{stamp}'", "limit": str(limit)}, "user", max_limit=1000)
    stmt = store.roster.statement(roster_query(TENANT, "person", q), limit=q.limit, offset=q.offset)
    compiled = stmt.compile(store.engine)
    print(f"  query plan of filter=dateLastModified>'{stamp}' ({store.engine.dialect.name}):")
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            params = tuple(compiled.params[k] for k in compiled.positiontup)
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params).all()
            lines = [r[-1] for r in rows]
        else:
            rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
            lines = [r[0] for r in rows]
    for line in lines:
        print(f"    {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=53_000)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--postgres-url", default=os.environ.get("TESSERA_BENCH_POSTGRES_URL"))
    ap.add_argument("--serve")
    ap.add_argument("--port", type=int)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite, {args.users:,} users")
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.users, args.limit)
    if args.postgres_url:
        with postgres_url(args.postgres_url) as url:
            print(f"PostgreSQL, {args.users:,} users")
            run(url, args.users, args.limit)

if __name__ == "__main__":
    main()
