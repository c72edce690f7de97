"""Benchmark: state-agency reads over many districts (issue "State agencies").

Loads ``--districts`` district tenants (default 10) with ``--learners`` learners in all
(default 20,000) and ``--evidence`` evidence items in all (default 1,000,000), each
district granting a ``state`` tenant a de-identified grant to people and evidence, then
measures on PostgreSQL (or SQLite without ``--postgres-url``):

1. **change feed**: the state pages through every granted change, 10,000 a page
   (``ChangeFeed.page``, what ``GET /v1/changes`` runs, without HTTP) up to the newest
   version at its start, as a sync does (so each next page is read ahead while one is
   served: ``gateway/sharing/feed_ahead.py``): changes/s (target >= 100,000/s);
   ``bench/state_feed.py --read-ahead both`` compares it with the feed not read ahead; then
   the same changes read by ``--feed-readers`` processes at once (default 2), each paging
   its own window of the sync's versions (``since``/``until``, as a client with several
   connections may: ``docs/sharing.md``); then one district through its own changes
   (identified: records pass through as stored);
2. **bulk export**: a de-identified Parquet export of one district's evidence and then of
   every district's, in a child process so its peak RSS is its own (plus its part
   processes', summed: ``export`` may split a large kind over ``TESSERA_EXPORT_WORKERS``
   processes on PostgreSQL; by default not on fewer than 4 cores, and its pseudonym helper
   process, counted too), then every district's with the pseudonyms made on the converting
   thread (no helper process) and in 2 part processes to compare, and every district's in
   ONE multi-grant export (``export_many``: one read of the table for all districts),
   and (``--exports manyparts``) that one with its districts in ``--parts`` part processes (2):
   rows/s (target >= 200,000/s), peak RSS (target < 1 GB) and CPU a row (the exporting
   processes' and the database's); ``--exports`` picks which;
3. **one learner's evidence for one month**: ``--probes`` random learners, p50/p99
   (target p99 < 10 ms).

The issue's figures are for 200,000 learners and 20 million evidence items; this machine
(2 cores, shared) loads a twentieth in a few minutes. Rates per row do not depend on the
total much (keyset pages, streamed export), which the figures at two sizes show. Host
speed (``bench/host_speed.py``) is printed before and after, and with each rate the CPU it
cost a row (this process's ``process_time``, its part processes', and the PostgreSQL server
processes' from /proc when the server runs on this machine): the wall-clock rate of a shared
machine is low by its load, the CPU a row much less so.

    python bench/state.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    python bench/state.py --learners 2000 --evidence 100000          # small, on SQLite
    python bench/state.py --postgres-url ... --keep-database statebench   # load once, measure again later
    python bench/state.py --postgres-url ... --keep-database statebench --only export   # the export alone

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import host_speed  # noqa: E402
from harness import postgres_url  # noqa: E402
from sqlalchemy import text  # noqa: E402

from gateway.model import Competency, Evidence, Framework, Identifier, Org, OrgRole, Person, Provenance, Score  # noqa: E402
from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds  # noqa: E402
from gateway.sharing.export import EXPORT_WORKERS_ENV, HELPER_ENV, export, process_cpu  # noqa: E402
from gateway.sharing.export_many import export_many, sources_of  # noqa: E402
from gateway.sharing.feed import ChangeFeed  # noqa: E402
from gateway.sharing.grants import GrantStore  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.wiring import default as default_wiring  # noqa: E402

KEY = b"bench-pseudonym-key-0123456789ab"
START = datetime(2026, 1, 5, tzinfo=UTC)


def load(store: Store, districts: int, learners: int, evidence: int, which: range | None = None) -> None:
    """Load the districts in ``which`` (default all ``districts``), each from its own seeded
    random source, so a district's data does not depend on which process loads it."""
    per_d, ev_per_d = learners // districts, evidence // districts
    t0 = time.perf_counter()
    for d in which if which is not None else range(districts):
        rng = random.Random(7 + d)
        tenant = f"district-{d:02d}"
        school = Org(tenant=tenant, source="sis", native_id="school", name="School", type="school")
        fw = Framework(tenant=tenant, source="case", native_id="fw", title="Math")
        comps = [Competency(tenant=tenant, source="case", native_id=f"c{i}", framework_id=fw.id, statement=f"Standard {i}", code=f"M.{i}")
                 for i in range(40)]
        people = [Person(tenant=tenant, source="sis", native_id=f"u{i}", given_name="Given", family_name=f"Family {i}",
                         roles=[OrgRole(role="student", org_id=school.id, primary=True)],
                         identifiers=[Identifier(system="sis", kind="oneroster.sourcedId", value=f"u{i}"),
                                      Identifier(system="sis", kind="oneroster.userId.state", value=f"IA-{d}-{i}")])
                  for i in range(per_d)]
        store.records.apply(tenant, [school, fw, *comps])
        for i in range(0, len(people), 5000):
            store.records.apply(tenant, people[i:i + 5000])
        batch: list[Evidence] = []
        for n in range(ev_per_d):
            p = people[rng.randrange(per_d)]
            at = START + timedelta(minutes=rng.randrange(60 * 24 * 240))
            batch.append(Evidence(tenant=tenant, source="lrs", native_id=f"s{n}", learner_id=p.id, competency_id=comps[n % 40].id,
                                  score=Score(raw=rng.randrange(11), min=0, max=10), observed_at=at,
                                  provenance=Provenance(standard="xapi", version="1.0.3", system="lrs", native_id=f"s{n}", received_at=at)))
            if len(batch) == 10_000:
                store.records.apply(tenant, batch)
                batch = []
        if batch:
            store.records.apply(tenant, batch)
        GrantStore(store.engine).create(tenant, "state", purpose="bench", starts_at=START - timedelta(days=1),
                                        ends_at=START + timedelta(days=3650), scopes=["changes.readonly", "exports"],
                                        kinds=["person", "evidence"], deidentified=True, created_by="bench")
        print(f"  loaded {tenant}: {per_d} learners, {ev_per_d} evidence ({time.perf_counter() - t0:.0f} s so far)", flush=True)


def _load_part(url: str, districts: int, learners: int, evidence: int, which: range) -> None:
    store = Store.from_url(url, migrations=default_wiring().migrations)
    load(store, districts, learners, evidence, which)
    store.dispose()


def load_in(url: str, store: Store, districts: int, learners: int, evidence: int, workers: int) -> None:
    """``load`` with the districts shared between ``workers`` processes (every ``workers``-th
    district each), so the database and the model code both keep busy: a full-size load
    takes about an hour in one process on this machine."""
    if workers <= 1:
        load(store, districts, learners, evidence)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_load_part, args=(url, districts, learners, evidence, range(w, districts, workers)))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a loading process failed (exit code {p.exitcode})")


def backend_cpu(store: Store) -> float:
    """CPU seconds of the database's server processes serving this database (PostgreSQL on
    this machine: /proc), 0 elsewhere; with the client's ``time.process_time`` it gives the
    CPU a row costs, which a shared machine does not change much (its wall clock it does)."""
    if store.engine.dialect.name != "postgresql":
        return 0.0
    with store.engine.connect() as conn:  # this process's connections only (``_own_connections``): others may share the database
        pids = list(conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND application_name = current_setting('application_name')")))
    return sum(process_cpu(p) for p in pids)


def _own_connections() -> None:
    """Name this process's PostgreSQL connections (libpq's ``PGAPPNAME``, before any is made),
    so ``backend_cpu`` counts its server processes, not those of another program reading the
    same database meanwhile."""
    os.environ["PGAPPNAME"] = f"tessera-bench-state-{os.getpid()}"


def feed_rate(store: Store, tenant: str = "state", since: int = 0, until: int | None = None) -> tuple[int, float, float, float]:
    """Page through every change ``tenant`` may read (after ``since``, up to ``until``: by
    default the newest): the state's under de-identified grants, or a district's own
    (identified: the stored JSON passes through unparsed). Returns (changes, seconds, client
    CPU seconds: this process's and its pseudonym helper's, database CPU seconds)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    ch0 = children.ru_utime + children.ru_stime
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    reader = feed.reader(tenant, "bench", frozenset({"changes.readonly"}))
    if until is None:
        until = feed.available()["newest"]
    n = 0
    b0, c0, t0 = backend_cpu(store), time.process_time(), time.perf_counter()
    while True:
        page = feed.page(reader, since=since, until=until, limit=10_000)
        n += len(page.changes)
        since = page.next_since
        if not page.more:
            break
    s, c, b = time.perf_counter() - t0, time.process_time() - c0, backend_cpu(store) - b0
    feed.close()  # the de-identifying worker process (feed_records): ended, its CPU counted as the client's
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return n, s, c + children.ru_utime + children.ru_stime - ch0, b


def _feed_window(url: str, since: int, until: int, ready: Any, go: Any, q: Any) -> None:
    """One of ``feed_windows``' readers: the state's changes after ``since`` up to ``until``."""
    _own_connections()
    store = Store.from_url(url, migrations=default_wiring().migrations)
    backend_cpu(store)  # the pool's connection made before measuring
    ready.put(None)
    go.wait()
    q.put(feed_rate(store, "state", since, until))


def feed_windows(url: str, readers: int) -> tuple[int, float, float, float]:
    """The state's de-identified changes read as a client with ``readers`` connections may
    read them: the versions up to the newest (one snapshot: ``until``, as a sync takes it) cut
    into ``readers`` windows of as many versions, each paged by its own process at once (the
    feed's ``since``/``until``: a window's pages hold its changes exactly once, so the windows
    together hold each change once). (changes, wall seconds from all of them starting to the
    last one done, their CPU seconds, their database server processes' CPU seconds)."""
    store = Store.from_url(url, migrations=default_wiring().migrations)
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    span = feed.available()
    feed.close()
    lo, hi = span["oldest"] - 1, span["newest"]
    bounds = [lo + (hi - lo) * i // readers for i in range(readers + 1)]
    ctx = multiprocessing.get_context("spawn")
    ready, go, q = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_feed_window, args=(url, a, b, ready, go, q)) for a, b in zip(bounds, bounds[1:], strict=False)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    t0 = time.perf_counter()
    go.set()
    results = [q.get() for _ in procs]
    s = time.perf_counter() - t0
    for p in procs:
        p.join()
    return sum(r[0] for r in results), s, sum(r[2] for r in results), sum(r[3] for r in results)


def _rows_estimate(table: str) -> str:
    """SQL: the planner's count of ``table``'s rows (its partitions', when partitioned), at least 1."""
    return (f"(SELECT greatest(1, sum(c.reltuples))::bigint FROM pg_class c WHERE (c.relname = '{table}' AND c.relkind <> 'p') "
            f"OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = '{table}'::regclass))")


def _own_peak_mib() -> float:
    """This process's own peak resident memory since exec (``VmHWM``; ``ru_maxrss`` where there
    is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _export_child(url: str, tenants: list[str], out: str, workers: int | None, helper: bool, many: bool,
                  q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    if workers is not None:
        os.environ[EXPORT_WORKERS_ENV] = str(workers)
    if not helper:
        os.environ[HELPER_ENV] = "0"
    _own_connections()
    store = Store.from_url(url, migrations=default_wiring().migrations)
    rows, stats = 0, {"workers": 0.0, "worker_cpu_s": 0.0, "worker_rss_mib": 0.0, "worker_backend_cpu_s": 0.0}
    backend_cpu(store)  # the pool's connection made before measuring
    ch0 = sum(getattr(resource.getrusage(resource.RUSAGE_CHILDREN), f) for f in ("ru_utime", "ru_stime"))
    b0, c0, t0 = backend_cpu(store), time.process_time(), time.perf_counter()
    if many:  # one multi-grant export of every district: one read of the table
        grants = [g for g in GrantStore(store.engine).active_for("state", "exports") if g.grantor in tenants]
        many_stats: dict[str, float] = {}
        m2 = export_many(store, Path(out) / "many", recipient="state", sources=sources_of(grants, key=KEY, engine=store.engine),
                         kinds=["evidence"], fmt="parquet", stats=many_stats)
        rows += sum(f.rows for f in m2.files)
        for k in stats:
            stats[k] = many_stats.get(k, 0.0)
    for t in tenants if not many else ():
        deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, t))
        one: dict[str, float] = {}
        m = export(store, Path(out) / t, tenant=t, kinds=["evidence"], fmt="parquet", deidentifier=deid, stats=one)
        rows += sum(f.rows for f in m.files)
        for k in ("worker_cpu_s", "worker_backend_cpu_s"):
            stats[k] += one.get(k, 0.0)
        stats["workers"] = max(stats["workers"], one.get("workers", 0.0))
        stats["worker_rss_mib"] = max(stats["worker_rss_mib"], one.get("worker_rss_mib", 0.0))
    s = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pseudonym helper processes (ended, waited for)
    reader = time.process_time() - c0 + stats["worker_cpu_s"] + children.ru_utime + children.ru_stime - ch0
    database = backend_cpu(store) - b0 + stats["worker_backend_cpu_s"]
    # (the helper's own peak, ~20 MiB, is left out.) Its own peak, not ``ru_maxrss``: Linux carries
    # the peak of the process that forked a child into the child's ``ru_maxrss`` across exec, so a
    # spawned child reports this bench's own peak when that is higher (after the feed's stages,
    # 1,079-1,105 MiB reported for exports whose processes peaked at 825-851); ``VmHWM`` is the
    # peak of this process's own memory since exec. The part processes (forked from a fork
    # server started fresh) report their own.
    rss = _own_peak_mib() + stats["worker_rss_mib"]
    q.put((rows, s, rss, (reader, database), int(stats["workers"])))


def export_rate(url: str, tenants: list[str], workers: int | None = None, helper: bool = True,
                many: bool = False) -> tuple[int, float, float, tuple[float, float], int]:
    """(rows, seconds, peak RSS in MiB of the exporting process plus its part processes, CPU
    seconds (of all of them and their pseudonym helper processes; of their database server
    processes), part processes). ``many``: one multi-grant export of all ``tenants``."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as out:
        p = ctx.Process(target=_export_child, args=(url, tenants, out, workers, helper, many, q))
        p.start()
        result = q.get()
        p.join()
    return result


def learner_month(store: Store, probes: int) -> list[float]:
    rng = random.Random(11)
    with store.engine.connect() as conn:
        learners = [(r[0], r[1]) for r in conn.execute(text("SELECT tenant, id FROM people ORDER BY id LIMIT 20000"))]
        times = []
        q = text("SELECT data FROM evidence WHERE tenant = :t AND learner_id = :l AND observed_at >= :a AND observed_at < :b")
        for _ in range(probes):
            tenant, lid = rng.choice(learners)
            month = START + timedelta(days=30 * rng.randrange(7))
            t0 = time.perf_counter()
            conn.execute(q, {"t": tenant, "l": lid, "a": month, "b": month + timedelta(days=31)}).all()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def keep_database(url: str, name: str) -> str:
    """A database named ``name`` next to the one in ``url``, made if missing, kept afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres-url")
    ap.add_argument("--districts", type=int, default=10)
    ap.add_argument("--learners", type=int, default=20_000)
    ap.add_argument("--evidence", type=int, default=1_000_000)
    ap.add_argument("--load-workers", type=int, default=1,
                    help="processes loading the districts at once (default 1; 2 on this machine's 2 cores loads faster)")
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--keep-database", metavar="NAME",
                    help="PostgreSQL: load into this database and keep it; a later run with the same name skips the load")
    ap.add_argument("--only", default="feed,export,month",
                    help="what to measure, of feed, export and month (comma-separated; default all of them)")
    ap.add_argument("--feed-readers", type=int, default=2,
                    help="after the one-reader feed, the state's feed read by this many processes at once, each a window of "
                         "versions (1: not)")
    ap.add_argument("--parts", type=int, default=2,
                    help="part processes of the parts and manyparts exports (TESSERA_EXPORT_WORKERS; default 2, the cores here)")
    ap.add_argument("--exports", default="one,every,many,nohelper,parts",
                    help="which exports to measure, of one, every, many (one multi-grant export of every district), nohelper, "
                         "parts and manyparts (comma-separated; default all but manyparts; at 20 million items each reads the "
                         "whole table)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    _own_connections()
    print(f"host speed before: {host_speed.measure():.2f} µs (1.15 idle)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres_url and args.keep_database:
            ctx, url = None, keep_database(args.postgres_url, args.keep_database)
        elif args.postgres_url:
            ctx = postgres_url(args.postgres_url)
            url = ctx.__enter__()
        else:
            ctx, url = None, f"sqlite:///{tmp}/state.db"
        try:
            store = Store.from_url(url, migrations=default_wiring().migrations)  # no mastery listener: loading is not measured
            store.migrate()
            with store.engine.connect() as conn:
                # the planner's count, not count(*): reading 20 million rows (26 GB with the change log)
                # before the feed would leave the operating system's cache full of the wrong pages
                loaded = conn.scalar(text(f"SELECT CASE WHEN EXISTS (SELECT 1 FROM evidence) THEN {_rows_estimate('evidence')} "
                                          "ELSE 0 END" if conn.dialect.name == "postgresql" else "SELECT count(*) FROM evidence"))
            if loaded:
                print(f"reusing {loaded} evidence items already loaded in {args.keep_database} (on PostgreSQL the planner's count)")
            else:
                t0 = time.perf_counter()
                load_in(url, store, args.districts, args.learners, args.evidence, args.load_workers)
                print(f"loaded {args.learners} learners and {args.evidence} evidence in {args.districts} districts in "
                      f"{time.perf_counter() - t0:.0f} s ({store.engine.dialect.name})")
            if store.engine.dialect.name == "postgresql":
                with store.engine.connect() as conn:
                    for table in ("evidence", "changes", "people"):
                        size, rows = conn.execute(text(
                            f"SELECT (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname = '{table}' "
                            f"OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = '{table}'::regclass)), "
                            f"{_rows_estimate(table)}")).one()
                        print(f"  {table}: {rows} rows, {size / rows:,.0f} bytes a row with its indexes")
            if "feed" in only:
                n, s, c, b = feed_rate(store)
                print(f"change feed, de-identified, every district, one reader: {n} changes in {s:.2f} s = {n / s:,.0f} changes/s "
                      f"(target >= 100,000/s); CPU a change: {c / n * 1e6:.2f} µs here + {b / n * 1e6:.2f} µs the database's")
                if args.feed_readers > 1:
                    n, s, c, b = feed_windows(url, args.feed_readers)
                    print(f"change feed, de-identified, every district, {args.feed_readers} readers on windows of versions at once: "
                          f"{n} changes in {s:.2f} s = {n / s:,.0f} changes/s (target >= 100,000/s); CPU a change: "
                          f"{c / n * 1e6:.2f} µs the readers' + {b / n * 1e6:.2f} µs the database's", flush=True)
                n, s, c, b = feed_rate(store, "district-00")
                print(f"change feed, a district's own (identified): {n} changes in {s:.2f} s = {n / s:,.0f} changes/s; "
                      f"CPU a change: {c / n * 1e6:.2f} µs here + {b / n * 1e6:.2f} µs the database's")
            everyone = [f"district-{d:02d}" for d in range(args.districts)]
            runs = {"one": ("one district", everyone[:1], None, True, False),
                    "every": ("every district, one export each", everyone, None, True, False),
                    "many": ("every district in ONE multi-grant export (one read of the table)", everyone, None, True, True),
                    "nohelper": ("every district, pseudonyms on the converting thread (TESSERA_EXPORT_HELPER=0)", everyone, None, False, False),
                    "parts": (f"every district in {args.parts} part processes", everyone, args.parts, True, False),
                    "manyparts": (f"every district in ONE multi-grant export, its districts in {args.parts} part processes", everyone,
                                  args.parts, True, True)}
            for name in args.exports.split(",") if "export" in only else ():
                label, tenants, workers, helper, many = runs[name]
                rows, s, rss, (reader, database), parts = export_rate(url, tenants, workers, helper, many)
                print(f"export, {label}: {rows} rows in {s:.2f} s = {rows / s:,.0f} rows/s (target >= 200,000/s), peak RSS {rss:.0f} MiB "
                      f"(target < 1,024; {parts or 1} process{'es' if parts > 1 else ''} summed), CPU a row {(reader + database) / rows * 1e6:.2f} µs "
                      f"({reader / rows * 1e6:.2f} µs the exporting processes', {database / rows * 1e6:.2f} µs the database's)", flush=True)
            if "month" in only:
                times = learner_month(store, args.probes)
                qs = statistics.quantiles(times, n=100)
                print(f"one learner's month of evidence: p50 {qs[49]:.2f} ms, p99 {qs[98]:.2f} ms (target p99 < 10 ms)")
            store.dispose()
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
    print(f"host speed after: {host_speed.measure():.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
