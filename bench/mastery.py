"""Benchmark: the mastery engine at district scale (issue 6).

Builds a tenant of ``--learners`` learners (default 50,000) in 20 schools, one framework
of ``--competencies`` competencies (default 400: 40 domains of 9 standards each, the
standards of a domain chained by ``precedes``), and ``--evidence`` evidence items (default
5,000,000) spread over each learner's ~30 standards, then measures:

1. **full recompute** (``MasteryEngine.recompute``): every state derived from the evidence
   and written; prints evidence/s, states/s and the duration (target: <= 120 s on
   PostgreSQL);
2. **incremental**: ``--probes`` single evidence items applied one at a time through
   ``RecordStore.apply``, each in its own transaction that also recomputes its states
   (the standard, its domain's rollup); prints p50/p95/p99 of the whole apply and of the
   engine's share (target: p99 < 5 ms);
3. **district mastery distribution** report (``gateway.reports``): counts per
   competency and level over the whole district (target: <= 2 s).

The evidence is loaded with the engine's listener switched off (loading is not what is
measured; the full recompute derives every state afterwards). Peak RSS is printed, and
the CPU time the recompute took in Python (this process and its workers) and in the
PostgreSQL server: on a shared host those vary less than the duration.

    python bench/mastery.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    python bench/mastery.py --learners 5000 --evidence 500000      # a tenth, on SQLite
    python bench/mastery.py --postgres-url URL --keep-database tessera_mastery   # load once, re-measure later
    python bench/mastery.py --postgres-url URL --keep-database tessera_mastery --only recompute

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from harness import postgres_url  # bench/ is sys.path[0]
from store_upsert import peak_rss_mib, sqlite_url

from gateway.mastery.attach import engine_of
from gateway.model import (
    Competency,
    Evidence,
    EvidenceKind,
    Framework,
    Org,
    OrgRole,
    OrgType,
    Person,
    Provenance,
    Relation,
    RelationType,
    Score,
)
from gateway.store import Store
from gateway.wiring import open_store

TENANT = "bench"
DOMAIN_SIZE = 9
KINDS = [EvidenceKind.assessment] * 6 + [EvidenceKind.performance_task, EvidenceKind.observation, EvidenceKind.self_assessment]
START = datetime(2026, 8, 20, tzinfo=UTC)


def structure(n_comp: int) -> tuple[list, list[Competency]]:
    fw = Framework(tenant=TENANT, source="case", native_id="fw", title="Bench State Mathematics")
    domains = n_comp // (DOMAIN_SIZE + 1)
    recs: list = [fw]
    standards: list[Competency] = []
    for d in range(domains):
        dom = Competency(tenant=TENANT, source="case", native_id=f"D{d}", framework_id=fw.id, statement=f"Domain {d}", code=f"D{d}")
        recs.append(dom)
        prev = None
        for s in range(DOMAIN_SIZE):
            std = Competency(tenant=TENANT, source="case", native_id=f"D{d}.{s}", framework_id=fw.id,
                             statement=f"Standard {s} of domain {d}", code=f"D{d}.{s}")
            recs.append(std)
            standards.append(std)
            recs.append(Relation(tenant=TENANT, source="case", native_id=f"c:{std.native_id}", type=RelationType.is_child_of,
                                 origin_id=std.id, destination_id=dom.id))
            if prev is not None:
                recs.append(Relation(tenant=TENANT, source="case", native_id=f"p:{std.native_id}", type=RelationType.precedes,
                                     origin_id=prev.id, destination_id=std.id))
            prev = std
    return recs, standards


def people(n: int) -> tuple[list, list[Person]]:
    district = Org(tenant=TENANT, source="sis", native_id="district", name="Bench District", type=OrgType.district)
    schools = [Org(tenant=TENANT, source="sis", native_id=f"s{i}", name=f"School {i}", type=OrgType.school, parent_id=district.id)
               for i in range(20)]
    learners = [Person(tenant=TENANT, source="sis", native_id=f"u{i}", given_name="Learner", family_name=str(i),
                       roles=[OrgRole(role="student", org_id=schools[i % 20].id, primary=True)], grades=[f"{3 + i % 6:02d}"])
                for i in range(n)]
    return [district, *schools], learners


def evidence_for(learner: Person, i: int, standards: list[Competency], per_learner: int, rnd: random.Random) -> list[Evidence]:
    """~30 standards per learner (three neighbouring domains), items spread over a semester."""
    start = rnd.randrange(0, len(standards) - 30)
    mine = standards[start : start + 30]
    out = []
    ability = rnd.random()
    for k in range(per_learner):
        comp = mine[k % len(mine)]
        at = START + timedelta(days=rnd.randrange(0, 120), seconds=rnd.randrange(0, 86400))
        native = f"{learner.native_id}:{k}"
        out.append(Evidence(
            tenant=TENANT, source="lrs", native_id=native, learner_id=learner.id, competency_id=comp.id,
            evidence_kind=KINDS[k % len(KINDS)], score=Score(raw=round(min(10, max(0, rnd.gauss(4 + 5 * ability, 2))), 1), min=0, max=10),
            observed_at=at, provenance=Provenance(standard="xapi", system="lrs", native_id=native, received_at=at),
        ))
    return out


def load(store: Store, args: argparse.Namespace) -> tuple[Org, list[Person]]:
    rnd = random.Random(7)
    recs, standards = structure(args.competencies)
    orgs, learners = people(args.learners)
    store.records.apply(TENANT, [*orgs, *recs])
    for i in range(0, len(learners), 5000):
        store.records.apply(TENANT, learners[i : i + 5000])
    per = args.evidence // args.learners
    listeners = list(store.records.evidence_listeners)
    store.records.evidence_listeners.clear()  # loading is not measured: the recompute derives every state
    began = time.perf_counter()

    def chunks():
        batch: list[Evidence] = []
        for i, p in enumerate(learners):
            batch.extend(evidence_for(p, i, standards, per, rnd))
            if len(batch) >= 20000:
                yield batch
                batch = []
        if batch:
            yield batch

    done = 0
    for result in store.records.apply_stream(TENANT, chunks()):
        done += result.created
        if done % 500000 < 20000:
            print(f"  loaded {done:,} evidence ({done / (time.perf_counter() - began):,.0f}/s)", flush=True)
    store.records.evidence_listeners.extend(listeners)
    print(f"load: {done:,} evidence in {time.perf_counter() - began:.1f} s", flush=True)
    return orgs[0], learners


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def probes(store: Store, learners: list[Person], n: int, n_comp: int) -> None:
    rnd = random.Random(11)
    run_id = uuid.uuid4().hex[:8]  # new items on every run, also on a kept database
    _, standards = structure(n_comp)
    engine_ms: list[float] = []
    listener = store.records.evidence_listeners[0]

    def timed(conn, tenant, pairs, now):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        listener(conn, tenant, pairs, now)
        engine_ms.append((time.perf_counter() - t0) * 1000)

    store.records.evidence_listeners[0] = timed
    total_ms = []
    for k in range(n):
        p = rnd.choice(learners)
        comp = rnd.choice(standards)
        at = START + timedelta(days=130)
        ev = Evidence(tenant=TENANT, source="probe", native_id=f"probe-{run_id}-{k}", learner_id=p.id, competency_id=comp.id,
                      score=Score(raw=rnd.randrange(0, 11), min=0, max=10), observed_at=at,
                      provenance=Provenance(standard="xapi", system="probe", native_id=f"probe-{run_id}-{k}", received_at=at))
        t0 = time.perf_counter()
        store.records.apply(TENANT, [ev])
        total_ms.append((time.perf_counter() - t0) * 1000)
    store.records.evidence_listeners[0] = listener
    print(f"incremental: {n} single evidence items, each applied with its states in one transaction")
    print(f"  whole apply  p50 {pct(total_ms, 50):.2f} ms  p95 {pct(total_ms, 95):.2f} ms  p99 {pct(total_ms, 99):.2f} ms")
    print(f"  engine share p50 {pct(engine_ms, 50):.2f} ms  p95 {pct(engine_ms, 95):.2f} ms  p99 {pct(engine_ms, 99):.2f} ms "
          f"(mean {statistics.mean(engine_ms):.2f} ms)")


def report(store: Store, district: Org) -> None:
    from gateway.reports import Reports, parse_scope

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        rows = len(list(Reports(store).distribution(TENANT, parse_scope(org=str(district.id))).rows))
        times.append(time.perf_counter() - t0)
    print(f"district mastery distribution: {rows} rows (competency x level), best {min(times):.2f} s, worst {max(times):.2f} s")


def loaded(store: Store) -> int:
    from sqlalchemy import func, select

    from gateway.store import tables as t

    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.evidence).where(t.evidence.c.tenant == TENANT)).scalar_one()


def forget_states(store: Store) -> None:
    """Delete the states an earlier run derived, so the recompute writes every one again
    (as on a fresh load) instead of finding them unchanged."""
    from sqlalchemy import delete

    from gateway.store import tables as t

    with store.engine.begin() as conn:
        n = conn.execute(delete(t.mastery_states).where(t.mastery_states.c.tenant == TENANT)).rowcount
        conn.execute(delete(t.changes).where(t.changes.c.tenant == TENANT, t.changes.c.record_kind == "mastery_state"))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if store.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE mastery_states")
    print(f"  deleted the {n:,} states of the last run", flush=True)


def cpu_seconds() -> tuple[float, float]:
    """(CPU of this process and its finished children, CPU of the PostgreSQL server's
    processes): on a shared host, CPU spent is a steadier figure than the wall clock.
    The server's figure counts every client of that server (and its autovacuum)."""
    ours = sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
    tick = os.sysconf("SC_CLK_TCK")
    server = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in ("postgres", "postmaster"):  # ended backends are in the postmaster's cutime/cstime
            server += sum(int(x) for x in fields[11:15]) / tick
    return ours, server


def recompute(store: Store, workers: int) -> None:
    t0, (ours0, server0) = time.perf_counter(), cpu_seconds()
    rep = engine_of(store).recompute(TENANT, workers=workers)
    secs = time.perf_counter() - t0
    ours1, server1 = cpu_seconds()
    print(f"full recompute: {rep.learners:,} learners, {rep.evidence:,} evidence -> {rep.states:,} states "
          f"({rep.written:,} written) in {secs:.1f} s: {rep.evidence / secs:,.0f} evidence/s, {rep.states / secs:,.0f} states/s; "
          f"CPU: Python {ours1 - ours0:.1f} s, database server {server1 - server0:.1f} s; "
          f"largest worker's peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:,.0f} MiB", flush=True)


def run(url: str, args: argparse.Namespace) -> None:
    store = open_store(url)
    store.migrate()
    if args.keep_database and loaded(store) >= args.evidence:
        orgs, learners = people(args.learners)  # the same records (ids derive from native ids) as loaded before
        district = orgs[0]
        print("load: skipped, the kept database holds the evidence already", flush=True)
        forget_states(store)
    else:
        district, learners = load(store, args)
    recompute(store, args.workers)
    if args.only != "recompute":
        probes(store, learners, args.probes, args.competencies)
        report(store, district)
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")
    store.dispose()


@contextmanager
def kept_postgres(url: str, name: str):  # type: ignore[no-untyped-def]
    """Database ``name`` on the server of ``url``, created when missing and never dropped."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield make_url(url).set(database=name).render_as_string(hide_password=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--learners", type=int, default=50_000)
    ap.add_argument("--competencies", type=int, default=400)
    ap.add_argument("--evidence", type=int, default=5_000_000)
    ap.add_argument("--probes", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None, help="processes for the full recompute (default: as "
                    "'tessera mastery recompute', two per core)")
    ap.add_argument("--postgres-url", help="run on a throwaway database next to this one instead of SQLite")
    ap.add_argument("--keep-database", metavar="NAME", help="with --postgres-url: use (and keep) this database, loading it only "
                    "when it does not hold the evidence yet, so the recompute can be measured again without reloading")
    ap.add_argument("--only", choices=["recompute"], help="measure only this phase (with --keep-database: no reload)")
    ap.add_argument("--sqlite-path", help="keep the SQLite file here (default: a temporary folder)")
    args = ap.parse_args()
    if args.workers is None:
        from gateway.cli import default_recompute_workers

        args.workers = default_recompute_workers()
    print(f"mastery bench: {args.learners:,} learners, {args.competencies} competencies, {args.evidence:,} evidence; "
          f"{args.workers} recompute workers", flush=True)
    if args.postgres_url:
        with (kept_postgres(args.postgres_url, args.keep_database) if args.keep_database else postgres_url(args.postgres_url)) as url:
            print("backend: PostgreSQL")
            run(url, args)
    else:
        with sqlite_url(args.sqlite_path) as url:
            print("backend: SQLite")
            run(url, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
