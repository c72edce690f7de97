"""Diagnosis: where an xAPI statement's write costs go on SQLite, in one process, without HTTP.

``bench/xapi_ingest.py`` measures the LRS end to end; this one (on the same framework and roster) takes the HTTP server and the
second worker away and splits what is left. It stores ``--preload`` statements (the ones
``xapi_ingest`` posts), then times ``--measure`` more, ``--per-transaction`` per
transaction, through the LRS's own path (validation, ``StatementStore.save``, evidence
mapping, one transaction per batch), and prints per statement:

* CPU time of the process (user + system);
* wall time in validation and in ``save``;
* time under SQLite's write lock (BEGIN IMMEDIATE to the end of COMMIT, checkpoints
  included) and the COMMIT's share of it;
* WAL frames written per statement and the pages of each table and index (``--pages``).

``--without`` switches one part off to see what it costs (not a mode of the LRS):
``evidence`` (no evidence mapping), ``activity-rows`` / ``agent-rows`` (no rows in
``xapi_statement_activities`` / ``xapi_statement_agents``, which the agent, verb and
activity filters of GET read).

    python bench/xapi_write_path.py
    python bench/xapi_write_path.py --without activity-rows
    python bench/xapi_write_path.py --checkpoint 0 --pages      # no checkpoints: every frame stays in the WAL

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import orjson
from sqlalchemy import event
from xapi_ingest import load_reference, make_batch  # bench/ is sys.path[0]

from adapters.xapi import validation as v
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.api.app import tune_gc
from gateway.wiring import open_store

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "bench"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preload", type=int, default=50_000)
    ap.add_argument("--measure", type=int, default=20_000)
    ap.add_argument("--per-transaction", type=int, default=400, help="a multiple of 100")
    ap.add_argument("--without", choices=["evidence", "activity-rows", "agent-rows"])
    ap.add_argument("--checkpoint", type=int, default=None, help="PRAGMA wal_autocheckpoint (frames; 0: never)")
    ap.add_argument("--pages", action="store_true", help="print the pages of each table and index")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the measured statements to FILE")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp) / "write-path.db", args)


def run(path: Path, args: argparse.Namespace) -> None:
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    load_reference(store)  # the framework and roster xapi_ingest loads: statements align, mastery runs
    if args.checkpoint is not None:
        event.listen(store.engine, "connect", lambda dbapi, _rec: dbapi.execute(f"PRAGMA wal_autocheckpoint={args.checkpoint}"))
        store.engine.dispose()
    statements = StatementStore(store, None if args.without == "evidence" else EvidenceMapper(store))
    statements._group = None  # one transaction per batch, in this thread
    if args.without == "activity-rows":
        statements._activities.execute = lambda conn, rows: None  # type: ignore[method-assign]
    if args.without == "agent-rows":
        statements._agents.execute = lambda conn, rows: None  # type: ignore[method-assign]

    locked = {"in": 0.0, "commit": 0.0, "began": 0.0, "committing": 0.0}
    merges: list[float] = []
    merge = statements.merge

    def timed_merge(conn: object, below: int | None = None) -> None:
        m0 = time.perf_counter()
        merge(conn, below)  # type: ignore[arg-type]
        merges.append(time.perf_counter() - m0)

    statements.merge = timed_merge  # type: ignore[method-assign]

    @event.listens_for(store.engine, "begin")
    def began(conn: object) -> None:
        if conn.get_execution_options().get("tessera_write"):  # type: ignore[attr-defined]
            locked["began"] = time.perf_counter()

    @event.listens_for(store.engine, "commit")
    def committing(conn: object) -> None:
        locked["committing"] = time.perf_counter()

    apply = store.records.writer.apply

    def timed_apply(*a: object, **kw: object) -> object:
        out = apply(*a, **kw)  # type: ignore[arg-type]
        end = time.perf_counter()
        locked["in"] += end - locked["began"]
        locked["commit"] += end - locked["committing"]
        return out

    store.records.writer.apply = timed_apply  # type: ignore[method-assign]
    tune_gc()  # as a server process does
    per = args.per_transaction // 100

    def one(i: int) -> tuple[float, float]:
        raw = b"[" + b",".join(make_batch(i * per + j)[1:-1] for j in range(per)) + b"]"
        t0 = time.perf_counter()
        batch = v.statements(orjson.loads(raw), "1.0.3")
        stored = complete(batch, AUTHORITY, "1.0.3")
        t1 = time.perf_counter()
        statements.save("bench", batch, stored=stored, authority=v.agent_key(AUTHORITY))
        return t1 - t0, time.perf_counter() - t1

    i = done = 0
    while done < args.preload:
        one(i)
        i, done = i + 1, done + 100 * per
    locked.update({"in": 0.0, "commit": 0.0})
    merges.clear()
    validate = save = 0.0
    measured = 0
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    while measured < args.measure:
        a, b = one(i)
        validate, save = validate + a, save + b
        i, measured = i + 1, measured + 100 * per
    wall = time.perf_counter() - t0
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    us = 1e6 / measured
    print(f"{measured:,} statements after {done:,}, {args.per_transaction} per transaction"
          f"{'' if args.without is None else f', without {args.without}'}: {measured / wall:,.0f} statements/s in one thread")
    print(f"  per statement: CPU {cpu * us:.0f} us; wall: validation {validate * us:.0f} us, save {save * us:.0f} us, "
          f"under the write lock {locked['in'] * us:.0f} us (COMMIT {locked['commit'] * us:.0f} us)")
    if merges:
        print(f"  {len(merges)} merge steps of the recent index tier (due every {statements.merge_every:,} statements, "
              f"{statements.merge_slice:,} a step): "
              f"{sum(merges) / len(merges) * 1000:.0f} ms each, the longest {max(merges) * 1000:.0f} ms "
              f"({sum(merges) * us:.0f} us per statement, part of the time under the write lock)")
    with store.engine.connect() as conn:
        frames = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        if args.checkpoint == 0:
            print(f"  WAL frames per statement: {frames / (done + measured):.2f}")
        if args.pages:
            for name, pages in conn.exec_driver_sql("SELECT name, count(*) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 20"):
                print(f"  {pages:8,} pages  {name}")
    store.dispose()


if __name__ == "__main__":
    main()
