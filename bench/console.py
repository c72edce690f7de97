"""Benchmark: the console's two heavy pages, served for real (issue 18).

1. **learner profile** (``/console/learners/{id}``) of a learner over a 900-competency
   framework (9 grades x 11 domains x 8 standards + the grade and domain nodes, the
   standards of each domain chained by ``precedes``) with 2,000 evidence items on it
   (spread over 500 standards and 16 weeks; their states derived by the mastery engine as
   the evidence is written). Target: p99 < 100 ms.
2. **class view** (``/console/classes/{id}``, helper cclass's page): a section of 35
   learners whose course has 120 competencies, each learner with evidence on each of them.
   Target: p99 < 150 ms. Printed as "not available" when the page does not exist (404)
   in this tree.

Both on SQLite, on the demo data (``tessera demo``) scaled up with the above. The server is
a real ``tessera serve`` on a free port; requests are real HTTP with a session cookie minted
with the server's console secret (as a sign-in would set it): a teacher of the section for
the class, the learner's guardian-equivalent (an administrator) for the profile. Prints
p50/p95/p99 of sequential requests, the throughput of 4 concurrent clients, the server's
peak RSS; for the profile also the requests right after new work was written for the
learner (the page built afresh: the profile keeps its tree until the learner's states
change), and ``host_speed`` (the machine's speed now: compare figures of the same phase).

    python bench/console.py                      # 300 requests a page
    python bench/console.py --requests 1000 --keep /tmp/console-bench.db

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness  # noqa: F401 - bench/ is sys.path[0]; puts this checkout first on sys.path
import httpx
from host_speed import measure as host_speed

from gateway import devserver
from gateway.console.web import COOKIE, SessionCodec, Viewer
from gateway.model import (
    Competency,
    Course,
    Enrollment,
    Evidence,
    EvidenceKind,
    Framework,
    OrgRole,
    Person,
    Provenance,
    Relation,
    RelationType,
    Score,
    Section,
)
from gateway.store import Store
from gateway.wiring import open_store

TENANT = "demo"
SECRET = "console-bench-" + uuid.uuid4().hex
START = datetime(2026, 8, 24, 8, tzinfo=UTC)
KINDS = [EvidenceKind.assessment] * 5 + [EvidenceKind.performance_task, EvidenceKind.observation]


def framework900() -> tuple[list, list[Competency]]:
    """900 competencies: 9 grades, each of 11 domains, each of 8 standards (chained by precedes)."""
    fw = Framework(tenant=TENANT, source="bench", native_id="fw900", title="Bench State Mathematics (900 skills)")
    recs: list = [fw]
    standards: list[Competency] = []

    def comp(native: str, statement: str, code: str) -> Competency:
        c = Competency(tenant=TENANT, source="bench", native_id=native, framework_id=fw.id, statement=statement, code=code)
        recs.append(c)
        return c

    def child(c: Competency, parent: Competency) -> None:
        recs.append(Relation(tenant=TENANT, source="bench", native_id=f"c:{c.native_id}", type=RelationType.is_child_of,
                             origin_id=c.id, destination_id=parent.id))

    for g in range(9):
        grade = comp(f"G{g}", f"Grade {g + 1} mathematics", f"B.{g + 1}")
        for d in range(11):
            dom = comp(f"G{g}D{d}", f"Domain {d + 1} of grade {g + 1}: reasoning with numbers and shapes", f"B.{g + 1}.D{d + 1}")
            child(dom, grade)
            prev = None
            for s in range(8):
                std = comp(f"G{g}D{d}S{s}", f"Standard {s + 1}: solve problems of type {s + 1} in domain {d + 1}, explaining the strategy",
                           f"B.{g + 1}.D{d + 1}.{s + 1}")
                child(std, dom)
                standards.append(std)
                if prev is not None:
                    recs.append(Relation(tenant=TENANT, source="bench", native_id=f"p:{std.native_id}", type=RelationType.precedes,
                                         origin_id=prev.id, destination_id=std.id))
                prev = std
    return recs, standards


def evidence(learner: uuid.UUID, comps: list[Competency], n: int, rnd: random.Random, tag: str, weeks: int = 16) -> list[Evidence]:
    out = []
    for k in range(n):
        c = comps[k % len(comps)]
        at = START + timedelta(days=rnd.randrange(0, weeks * 7), minutes=rnd.randrange(0, 600))
        native = f"{tag}-{learner}-{k}"
        out.append(Evidence(
            tenant=TENANT, source="bench", native_id=native, learner_id=learner, competency_id=c.id, evidence_kind=KINDS[k % len(KINDS)],
            score=Score(raw=rnd.randrange(4, 21), min=0, max=20), observed_at=at,
            artifacts=[f"https://portfolio.example.org/work/{native}"] if k % 10 == 0 else [],
            activity={"system": "lms", "id": f"https://lms.example.org/tasks/{c.code}", "title": f"{c.code} practice task"},
            provenance=Provenance(standard="xapi", system="lrs", native_id=native, received_at=at)))
    return out


def load(store: Store) -> tuple[uuid.UUID, list[Competency], uuid.UUID, uuid.UUID]:
    """(learner with the 900-competency framework, the standards they have work on, the 35-learner
    section, its teacher)."""
    rnd = random.Random(18)
    from sqlalchemy import select

    from gateway.store import tables as t

    with store.engine.connect() as conn:
        school = conn.execute(select(t.orgs.c.id).where(t.orgs.c.tenant == TENANT, t.orgs.c.type == "school")
                              .order_by(t.orgs.c.id)).first()[0]
        learner = conn.execute(select(t.people.c.id).where(t.people.c.tenant == TENANT, t.people.c.primary_role == "student")
                               .order_by(t.people.c.id)).first()[0]
    recs, standards = framework900()
    store.records.apply(TENANT, recs)
    began = time.perf_counter()
    mine = rnd.sample(standards, 500)
    batch = evidence(learner, mine, 2000, rnd, "p")
    for i in range(0, len(batch), 250):
        store.records.apply(TENANT, batch[i : i + 250])
    print(f"profile data: 900 competencies, 2,000 evidence items on 500 of them ({time.perf_counter() - began:.1f} s with their states)")
    # the class: 35 new learners, a teacher, a course of 120 competencies (of the same framework)
    began = time.perf_counter()
    course_comps = standards[:120]
    course = Course(tenant=TENANT, source="bench", native_id="course-35", title="Bench Mathematics 4", org_id=school,
                    competency_ids=[c.id for c in course_comps])
    section = Section(tenant=TENANT, source="bench", native_id="sec-35", title="Bench Mathematics 4 (35 learners)",
                      course_id=course.id, org_id=school)
    teacher = Person(tenant=TENANT, source="bench", native_id="t-35", given_name="Bench", family_name="Teacher",
                     roles=[OrgRole(role="teacher", org_id=school, primary=True)])
    kids = [Person(tenant=TENANT, source="bench", native_id=f"s-35-{i}", given_name=f"Learner{i:02d}", family_name="Bench",
                   roles=[OrgRole(role="student", org_id=school, primary=True)], grades=["04"]) for i in range(35)]
    enrol = [Enrollment(tenant=TENANT, source="bench", native_id=f"e-{p.native_id}", person_id=p.id, section_id=section.id,
                        role="student" if p is not teacher else "teacher") for p in [*kids, teacher]]
    store.records.apply(TENANT, [course, section, teacher, *kids, *enrol])
    for p in kids:
        store.records.apply(TENANT, evidence(p.id, course_comps, 240, rnd, "c"))
    print(f"class data: 35 learners x 120 competencies, 8,400 evidence items ({time.perf_counter() - began:.1f} s with their states)")
    assert section.id is not None and teacher.id is not None
    return learner, mine, section.id, teacher.id


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def peak_rss_mib(pid: int) -> float:
    """VmHWM of the server process and its children (Linux)."""
    total = 0.0
    pids = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def measure(base: str, cookie: str, path: str, n: int, name: str, target_ms: float,
            change: Callable[[int], None] | None = None) -> None:
    """Sequential requests (p50/p95/p99), then 4 concurrent clients for 5 s (pages/s). With
    ``change``: as many requests again, each right after ``change(i)`` wrote new work for the
    learner (so the page is built afresh, as on a first view)."""
    with httpx.Client(base_url=base, cookies={COOKIE: cookie}, timeout=30) as c:
        first = c.get(path)
        if first.status_code == 404:
            print(f"{name}: not available ({path} answers 404 in this tree)")
            return
        first.raise_for_status()
        for _ in range(10):
            c.get(path)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.status_code
    done = 0
    stop = time.perf_counter() + 5

    def worker() -> None:
        nonlocal done
        with httpx.Client(base_url=base, cookies={COOKIE: cookie}, timeout=30) as c:
            while time.perf_counter() < stop:
                c.get(path).raise_for_status()
                done += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rate = done / (time.perf_counter() - began)
    print(f"{name}: {len(first.content) / 1024:.0f} KiB page")
    report("  repeat views", times, target_ms)
    print(f"  4 concurrent clients: {rate:.1f} pages/s")
    if change is not None:
        fresh = []
        with httpx.Client(base_url=base, cookies={COOKIE: cookie}, timeout=30) as c:
            for i in range(n):
                change(i)
                t0 = time.perf_counter()
                r = c.get(path)
                fresh.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.status_code
        report("  after new work (built afresh)", fresh, target_ms)


def report(what: str, times: list[float], target_ms: float) -> None:
    verdict = "met" if pct(times, 99) < target_ms else "NOT met"
    print(f"{what}: {len(times)} sequential requests: p50 {pct(times, 50):.1f} ms  p95 {pct(times, 95):.1f} ms  "
          f"p99 {pct(times, 99):.1f} ms (mean {statistics.mean(times):.1f}; target p99 < {target_ms:.0f} ms: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--keep", help="build the database at this path and keep it")
    args = ap.parse_args()
    print(f"host_speed: record_id {host_speed():.2f} us (1.15 us idle)")
    tmp = Path(tempfile.mkdtemp(prefix="tessera-console-bench-"))
    db = Path(args.keep) if args.keep else tmp / "console.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    env = {**os.environ, "TESSERA_DATABASE_URL": f"sqlite:///{db}", "TESSERA_CONSOLE__SECRET": SECRET, "TESSERA_ROUTING__ENGINE": "off",
           "TESSERA_LOG_LEVEL": "warning"}
    proc = None
    store: Store | None = None
    try:
        subprocess.run([devserver.tessera_exe(), "demo", "--no-serve"], env=env, cwd=tmp, capture_output=True, check=True, timeout=300)
        store = open_store(f"sqlite:///{db}")
        learner, mine, section, teacher = load(store)
        rnd = random.Random(5)

        def new_work(i: int) -> None:
            store.records.apply(TENANT, evidence(learner, [rnd.choice(mine)], 1, rnd, f"new{i}"))
        server = devserver.start(env, tmp, ready="/healthz", what="tessera serve")
        proc, base = server.proc, server.base_url
        codec = SessionCodec(SECRET.encode(), max_age_seconds=3600)

        def cookie(role: str, person: uuid.UUID | None) -> str:
            return codec.dumps(Viewer(tenant=TENANT, role=role, person_id=person, name="Bench", via="bench"))  # type: ignore[arg-type]

        measure(base, cookie("admin", None), f"/console/learners/{learner}", args.requests,
                "learner profile (900 competencies, 2,000 evidence items)", 100, change=new_work)
        measure(base, cookie("teacher", teacher), f"/console/classes/{section}", args.requests,
                "class view (35 learners x 120 competencies)", 150)
        print(f"server peak RSS: {peak_rss_mib(proc.pid):.0f} MiB")
        print(f"host_speed: record_id {host_speed():.2f} us (1.15 us idle)")
    finally:
        if store is not None:
            store.dispose()
        if proc is not None:
            devserver.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
