"""Benchmark: batch upserts of canonical Person records through ``RecordStore``.

Loads N people (default 100,000) as a OneRoster users import would create them (a role in
a school, an email, a grade, a username, the sourcedId as an Identifier), on SQLite and,
when a URL is given, on PostgreSQL, in three passes:

* insert   -- every record is new (created)
* reapply  -- the same data again (every record unchanged: no writes)
* update   -- every record changed (updated)

and prints rows/s and CPU a row (this process, all threads) per pass, the batch size, and memory: the process RSS before each pass
and its peak (ru_maxrss; both include the records the benchmark holds), and the Python
allocation peak of one ``apply`` of one batch (tracemalloc, measured apart). The records
are built before each pass starts (building them is the adapter's work, not the store's;
its rate is printed separately), so the figures are the store's public API only:
``RecordStore.apply_stream`` (default; prepares batch n+1 in a thread while batch n is
written) or ``RecordStore.apply`` (``--mode apply``). ``--deadline`` bounds the run.

Run from the repository root::

    python bench/store_upsert.py                       # SQLite only
    python bench/store_upsert.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    TESSERA_BENCH_POSTGRES_URL=... python bench/store_upsert.py

PostgreSQL: the benchmark creates a throwaway database next to the one in the URL and
drops it afterwards. Not a test: pytest never collects this file (bench/ is outside
testpaths, and the name does not match test_*.py).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from harness import postgres_url  # noqa: F401 - mastery.py imports it from here too
from sqlalchemy import text

from gateway.model import Identifier, Org, OrgRole, OrgType, Person, Role
from gateway.store import Store
from gateway.wiring import open_store

TENANT = "bench"
SOURCE = "sis"
SCHOOLS = 40
GRADES = ["KG", *(f"{n:02d}" for n in range(1, 13))]


def build_orgs() -> list[Org]:
    district = Org(tenant=TENANT, source=SOURCE, native_id="d-1", name="Bench District", type=OrgType.district)
    schools = [
        Org(tenant=TENANT, source=SOURCE, native_id=f"s-{i}", name=f"School {i}", type=OrgType.school, parent_id=district.id)
        for i in range(SCHOOLS)
    ]
    return [district, *schools]


def build_people(n: int, orgs: list[Org], *, variant: int = 0, start: int = 0) -> list[Person]:
    """People ``start`` .. ``start + n - 1``; ``variant`` changes every record (a new family
    name and grade), as a nightly sync would."""
    schools = orgs[1:]
    base = datetime(2026, 8, 1, tzinfo=UTC) + timedelta(days=variant)
    out = []
    for i in range(start, start + n):
        sid = f"u-{i:06d}"
        school = schools[i % len(schools)]
        teacher = i % 20 == 0
        out.append(
            Person(
                tenant=TENANT,
                source=SOURCE,
                native_id=sid,
                identifiers=[Identifier(system=SOURCE, kind="oneroster.sourcedId", value=sid)],
                source_updated_at=base,
                given_name=f"Given{i}",
                family_name=f"Family{i}" + (f"-v{variant}" if variant else ""),
                username=f"user{i}",
                email=f"user{i}@schools.example.org",
                roles=[OrgRole(role=Role.teacher if teacher else Role.student, org_id=school.id, primary=True)],
                grades=[] if teacher else [GRADES[(i + variant) % len(GRADES)]],
            )
        )
    return out


def batches(records: list[Person], size: int) -> list[list[Person]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float | None:
    """Resident set size now (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def sqlite_url(path: str | None) -> Iterator[str]:
    if path:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        yield f"sqlite:///{path}"
        return
    tmp = tempfile.mkdtemp(prefix="tessera-bench-")
    try:
        yield f"sqlite:///{tmp}/bench.db"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_pass(store: Store, data: list[list[Person]], mode: str) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, CPU seconds of this process in all its threads, counts) of one pass."""
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    cpu = time.process_time()
    started = time.perf_counter()
    if mode == "stream":
        results = store.records.apply_stream(TENANT, data)
    else:
        results = (store.records.apply(TENANT, b) for b in data)
    for r in results:
        totals["created"] += r.created
        totals["updated"] += r.updated
        totals["unchanged"] += r.unchanged
    return time.perf_counter() - started, time.process_time() - cpu, totals


def bench_backend(label: str, url: str, args: argparse.Namespace, report: Callable[[str], None], deadline: float) -> None:
    store = open_store(url)
    store.migrate()
    orgs = build_orgs()
    store.records.apply(TENANT, orgs)
    n = args.rows
    expect = {"insert": "created", "reapply": "unchanged", "update": "updated"}
    data: list[list[Person]] | None = None
    for pass_name in ("insert", "reapply", "update"):
        if time.monotonic() > deadline:
            report(f"{label:<10} {pass_name:<8} skipped: the run exceeded --deadline {args.deadline:.0f} s")
            continue
        if pass_name in ("insert", "update"):
            data = None
            gc.collect()
            t0 = time.perf_counter()
            people = build_people(n, orgs, variant=0 if pass_name == "insert" else 1)
            built = time.perf_counter() - t0
            data = batches(people, args.batch)
            del people
            # Start each timed pass without the collector's debt for the records just built
            # (the benchmark's own garbage, not the store's). The collector stays enabled.
            gc.collect()
            report(f"  ({label}: built {n:,} Person records for the {pass_name} pass in {built:.1f} s, "
                   f"{n / built:,.0f} records/s; not part of the figures below)")
        assert data is not None
        before = rss_mib()
        seconds, cpu, totals = run_pass(store, data, args.mode)
        ok = totals[expect[pass_name]] == n and sum(totals.values()) == n
        memory = f"RSS before {before:,.0f} MiB, peak so far {peak_rss_mib():,.0f} MiB" if before else f"peak RSS so far {peak_rss_mib():,.0f} MiB"
        report(
            f"{label:<10} {pass_name:<8} {n:>8,} rows {seconds:7.2f} s {n / seconds:>10,.0f} rows/s {cpu / n * 1e6:6.1f} us CPU a row"
            f"   created={totals['created']:,} updated={totals['updated']:,} unchanged={totals['unchanged']:,}   {memory}"
            + ("" if ok else "   !! UNEXPECTED COUNTS")
        )
    if not args.no_tracemalloc and data:
        # The store's own allocations for one batch (every record changed), measured apart
        # from the timed passes (tracemalloc slows Python down several times over).
        one = data[0]
        tracemalloc.start()
        tracemalloc.reset_peak()
        store.records.apply(TENANT, [p.model_copy(update={"given_name": "Traced"}) for p in one])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        report(f"{label:<10} tracemalloc: peak Python allocations of one RecordStore.apply() of {len(one):,} changed rows: {peak / 2**20:.1f} MiB")
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM people")).scalar()
        changes = conn.execute(text("SELECT count(*) FROM changes WHERE record_kind = 'person'")).scalar()
        idents = conn.execute(text("SELECT count(*) FROM identifiers WHERE record_kind = 'person'")).scalar()
    expect_changes = 2 * n + (len(data[0]) if data and not args.no_tracemalloc else 0)
    report(f"{label:<10} check: people={rows:,} change-log rows={changes:,} (expect {expect_changes:,}) identifiers={idents:,} (expect {n:,})")
    store.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="people per pass (default 100,000)")
    p.add_argument("--batch", type=int, default=10_000, help="records per apply() batch (default 10,000)")
    p.add_argument("--mode", choices=("stream", "apply"), default="stream",
                   help="stream: RecordStore.apply_stream (pipelined prepare); apply: RecordStore.apply per batch")
    p.add_argument("--sqlite-path", help="SQLite file to use (deleted first); default a temporary directory")
    p.add_argument("--postgres-url", default=os.environ.get("TESSERA_BENCH_POSTGRES_URL"),
                   help="PostgreSQL server URL (env TESSERA_BENCH_POSTGRES_URL); without one, PostgreSQL is skipped")
    p.add_argument("--skip-sqlite", action="store_true")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip measuring one batch's allocations with tracemalloc")
    p.add_argument("--deadline", type=float, default=300, help="skip the passes that would start after this many seconds")
    args = p.parse_args(argv)

    def report(line: str) -> None:
        print(line, flush=True)

    report(f"store_upsert: {args.rows:,} Person records per pass, batch size {args.batch:,}, "
           f"RecordStore.{'apply_stream' if args.mode == 'stream' else 'apply'}")
    report(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s)")
    deadline = time.monotonic() + args.deadline
    if not args.skip_sqlite:
        with sqlite_url(args.sqlite_path) as url:
            bench_backend("sqlite", url, args, report, deadline)
    if args.postgres_url:
        with postgres_url(args.postgres_url) as url:
            bench_backend("postgresql", url, args, report, deadline)
    else:
        report("postgresql: skipped (no server given: pass --postgres-url or set TESSERA_BENCH_POSTGRES_URL)")
    report(f"peak memory (ru_maxrss of this process, includes the {args.rows:,} records built in memory): {peak_rss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
