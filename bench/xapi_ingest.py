"""Benchmark: statement ingest over real HTTP into a running ``tessera serve`` (and a peer LRS).

Starts ``tessera serve`` (``--workers``, default 2: both cores) on a fresh, migrated
database holding a CASE framework (``adapters/case/samples/northwind-state-mathematics.json``)
and a roster of ``LEARNERS`` students whose ``xapi.account`` identifiers are the statements'
actors, creates LRS credentials, then 4 concurrent clients POST batches of 100 realistic
statements (1-2 KB each: account actors, cmi5-style context naming one of the framework's
standards, results, extensions) to ``/xapi/statements`` over HTTP Basic until N statements
(default 200,000) are stored. So every statement is strictly validated, stored with its
index rows, and becomes evidence aligned to a competency whose mastery state is updated.
The request bodies are generated before the clock starts, so that the load generator takes
as little of the shared CPU as it can.

Prints the host's speed (``host_speed.py``) before and after, statements/s, p50/p95/p99
batch latency, the server's CPU time per statement and peak RSS (summed over its
processes), and checks the database: N statements, N evidence items all aligned, mastery
states > 0. Any batch that fails, or a count that is off, ends the run with exit status 1.

``--derive inline|async`` (``TESSERA_XAPI__DERIVE`` of the server; ``both`` runs each in
turn): with ``async`` the LRS answers once the statements are durable and derives their
evidence just behind (``adapters/xapi/derive.py``). Acknowledgement-to-evidence is then
measured for every batch: a sampler reads the deriver's cursor every 20 ms and notes when
it passes the batch's last statement (p50/p99 printed); the counts are checked once the
deriver has caught up, and how long that took after the last acknowledgement is printed.
Inline it is 0: the evidence commits with the statements. ``--rate R`` paces the clients to
at most R statements a second, to measure that delay at a rate the server sustains.

The deriver runs in the server's processes, so in ``async`` mode the server CPU of the run
is the acknowledgement path's and the deriver's together. ``--split`` (with ``async``)
measures them apart: this process holds the deriver's election lock (the lock file next to
a SQLite database, the advisory lock on PostgreSQL, and with ``TESSERA_XAPI__DERIVE_SHARDS``
every shard's) while the clients post, so every server
process's deriver stands by and the CPU printed is the acknowledgement path's alone; then
it lets go, and the deriver's catch-up over the whole run is timed on its own
(statements/s and server CPU per statement). Acknowledgement-to-evidence is not measured
then. ``--ack-only`` (with ``--split``) stops there: no catch-up, the statements are counted
(not their evidence).

On PostgreSQL (the database on this machine) the server's connections carry their own
``application_name`` (``bench/pg_watch.py``), and the run prints the CPU of the database
backends serving them a statement, where those backends spent their time (running, waiting
for a lock, for the WAL's flush, or idle in a transaction: waiting for the server's next round
trip), and, when the database server loads ``pg_stat_statements``, the statements it answered
a batch.

``--peer ralph`` also runs Ralph (``bench/peers/ralph_peer.py``: ralph-malph in its own virtual
environment under a temporary folder) with the same client and bodies, alternating
Tessera, Ralph, Tessera, ... ``--rounds`` times each (default 3), and prints both rates and
the median of the ratios of adjacent pairs. The two share the machine: compare ratios and
CPU per statement, not absolute rates taken at different times.

Run from the repository root::

    python bench/xapi_ingest.py                       # SQLite, 200,000 statements
    python bench/xapi_ingest.py --statements 20000    # a quick run
    python bench/xapi_ingest.py --peer ralph          # side by side with Ralph
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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from harness import free_port, postgres_url, wait_up  # bench/ is sys.path[0]
from host_speed import measure as host_speed
from pg_watch import Watch, server_env
from sqlalchemy import func, select

from gateway.auth import ClientStore
from gateway.store import Store
from gateway.wiring import open_store

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK = ROOT / "adapters" / "case" / "samples" / "northwind-state-mathematics.json"
TENANT = "bench"
BATCH = 100
CLIENTS = 4
LEARNERS = 5000
RATE = [0.0]  # --rate: statements a second the clients send at most (0: as fast as answered)
RSS_EVERY = [0.0]  # --rss-every: seconds between two samples of the server processes' RSS (0: none)
ACK_ONLY = [False]  # --ack-only: with --split, no catch-up (the statements counted, not their evidence)
IN_WORKER = [False]  # --derive-in-worker: TESSERA_XAPI__DERIVE_IN_SERVER=false and a `tessera worker` derives
HOME_PAGE = "https://sis.example.edu"
VERBS = [
    "http://adlnet.gov/expapi/verbs/passed", "http://adlnet.gov/expapi/verbs/failed",
    "http://adlnet.gov/expapi/verbs/completed", "http://adlnet.gov/expapi/verbs/answered",
    "http://adlnet.gov/expapi/verbs/experienced", "http://adlnet.gov/expapi/verbs/attempted",
]


def _standards() -> list[str]:
    """The CASE URIs of the framework's Standards (200 of them): what statements align to."""
    items = orjson.loads(FRAMEWORK.read_bytes())["CFItems"]
    return [it["uri"] for it in items if it.get("CFItemType") == "Standard"][:200]


COMPETENCIES = _standards()

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
    '{{"id":"{competency}"}}]}},'
    '"extensions":{{"https://w3id.org/xapi/cmi5/context/extensions/sessionid":"{registration}"}}}},'
    '"timestamp":"2026-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"}}'
)


def make_batch(rng_seed: int, n: int = BATCH) -> bytes:
    """``n`` statements, the ``rng_seed``-th batch. Statement k is learner k mod 4,999's answer
    to a question of quiz k mod 200, aligned to that quiz's standard: 4,999 and 200 share no
    factor, so each learner meets a different standard each time (40 of them in 200,000
    statements), and their states roll up through clusters, domains and grades as a class's
    would."""
    parts = []
    for i in range(n):
        k = rng_seed * n + i
        raw = k % 11
        verb = VERBS[k % len(VERBS)]
        parts.append(TEMPLATE.format(
            id=uuid.uuid4(), learner=k % (LEARNERS - 1), verb=verb, verb_name=verb.rsplit("/", 1)[1], quiz=k % 200,
            question=k % 10, scaled=raw / 10, raw=raw, competency=COMPETENCIES[k % 200], success="true" if raw >= 7 else "false", secs=30 + k % 300,
            registration=uuid.UUID(int=k // 10 + 1), day=1 + k % 25, hour=k % 24, minute=k % 60, second=k % 60, ms=k % 1000,
        ))
    return ("[" + ",".join(parts) + "]").encode()


#: ``--derive-in-worker``: the session of the ``tessera worker`` that derives, counted with the server's
WORKER_SESSIONS: list[int] = []


def session_usage(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of the server and every process of its session
    (uvicorn's workers), and of the ``tessera worker`` deriving beside it
    (``--derive-in-worker``): the sum of their VmHWM and of their user + system time."""
    rss_kib, ticks = 0, 0
    sessions = {pid, *WORKER_SESSIONS}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) not in sessions:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    rss_kib += int(line.split()[1])
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ProcessLookupError):
            continue
    return rss_kib / 1024, ticks / os.sysconf("SC_CLK_TCK")


class RssCurve:
    """``--rss-every S``: the resident memory (VmRSS) of each of the server's processes every
    ``S`` seconds, against the statements acknowledged so far, to tell a cost that grows
    with the statements from a fixed one."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid, self.every = pid, every
        self.acked = [0]
        self.points: list[tuple[float, int, dict[int, float]]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self) -> dict[int, float]:
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) != self.pid:
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[int(entry.name)] = int(line.split()[1]) / 1024
            except (OSError, ProcessLookupError):
                continue
        return out

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.points.append((time.perf_counter() - self.t0, self.acked[0], self.sample()))

    def finish(self) -> list[str]:
        self.stop.set()
        self.thread.join()
        self.points.append((time.perf_counter() - self.t0, self.acked[0], self.sample()))
        pids = sorted({p for _, _, s in self.points for p in s})
        lines = ["RSS curve (MiB of each server process, pids " + ", ".join(map(str, pids)) + "):"]
        step = max(1, len(self.points) // 12)
        for t, n, s in [*self.points[::step], self.points[-1]][:14]:
            lines.append(f"  {t:6.1f} s {n:>9,} statements: " + " + ".join(f"{s.get(p, 0):,.0f}" for p in pids)
                         + f" = {sum(s.values()):,.0f}")
        return lines


def load_reference(store: Store) -> None:
    """The framework and the roster the statements name: a district, a school and
    ``LEARNERS`` students, each carrying the ``xapi.account`` identifier of its actor."""
    from adapters.case import CaseAdapter
    from gateway.model import Identifier, Org, OrgRole, OrgType, Person

    CaseAdapter().import_package(store, TENANT, FRAMEWORK.read_bytes())
    district = Org(tenant=TENANT, source="sis", native_id="district", name="Bench District", type=OrgType.district)
    school = Org(tenant=TENANT, source="sis", native_id="school", name="Bench School", type=OrgType.school, parent_id=district.id)
    learners = [
        Person(tenant=TENANT, source="sis", native_id=f"stu-{i:06d}", given_name="Learner", family_name=str(i),
               roles=[OrgRole(role="student", org_id=school.id, primary=True)],
               identifiers=[Identifier(system="sis", kind="oneroster.sourcedId", value=f"stu-{i:06d}"),
                            Identifier(system="lms", kind="xapi.account", value=f"{HOME_PAGE}|stu-{i:06d}")])
        for i in range(LEARNERS)
    ]
    store.records.apply(TENANT, [district, school, *learners])


@dataclass
class Outcome:
    """One run of the client against one LRS."""

    name: str
    statements: int
    took: float
    latencies: list[float]
    errors: list[str]
    cpu: float = 0.0  # server CPU seconds during the run
    rss: float = 0.0  # server peak RSS, MiB
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.statements / self.took if self.took else 0.0

    def report(self) -> None:
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [0.0] * 99
        print(f"  {self.name}: {self.statements:,} statements in {self.took:.1f} s: {self.rate:,.0f} statements/s; "
              f"batch latency p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
        if self.cpu and self.statements:
            print(f"    server CPU {self.cpu:.1f} s ({self.cpu / self.took:.2f} cores, {self.cpu / self.statements * 1e6:.0f} us "
                  f"per statement); peak RSS {self.rss:,.0f} MiB")
        for note in self.notes:
            print(f"    {note}")


def drive(name: str, base: str, auth: tuple[str, str], bodies: list[bytes], pid: int | None,
          on_ack: Callable[[bytes, float], None] | None = None) -> Outcome:
    """POST ``bodies`` from ``CLIENTS`` concurrent clients; the server's CPU and RSS are
    read from the process session of ``pid``. ``on_ack(response body, time)`` for each
    acknowledged batch."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_batch = iter(bodies)
    sent = [0]
    start = time.perf_counter()

    def worker() -> None:
        with httpx.Client(base_url=base, auth=auth, timeout=120,
                          headers={"X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}) as c:
            while True:
                with lock:
                    body = next(next_batch, None)
                    due = start + sent[0] * BATCH / RATE[0] if RATE[0] else 0.0
                    sent[0] += 1
                if body is None:
                    return
                if due > time.perf_counter():  # --rate: batch n leaves at n * 100 / rate seconds
                    time.sleep(due - time.perf_counter())
                t0 = time.perf_counter()
                try:
                    r = c.post("/xAPI/statements", content=body)  # as Ralph spells it (Tessera answers both)
                    status, text = r.status_code, r.text
                except httpx.HTTPError as exc:
                    status, text = 0, repr(exc)
                dt = time.perf_counter() - t0
                if on_ack is not None and status == 200:
                    on_ack(r.content, t0 + dt)
                with lock:
                    latencies.append(dt)
                    if curve is not None and status == 200:
                        curve.acked[0] += BATCH
                    if status != 200:
                        errors.append(f"{status} {text[:300]}")

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    curve = RssCurve(pid, RSS_EVERY[0]) if pid and RSS_EVERY[0] else None
    cpu0 = session_usage(pid)[1] if pid else 0.0
    t0 = start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    rss, cpu = session_usage(pid) if pid else (0.0, 0.0)
    return Outcome(name, len(bodies) * BATCH - len(errors) * BATCH, took, latencies, errors, cpu - cpu0, rss,
                   curve.finish() if curve is not None else [])


class Tracker:
    """Acknowledgement-to-evidence (``--derive async``): the time from each batch's
    acknowledgement until the deriver's cursor passes its last statement, sampled every
    ``every`` seconds from a connection of this process."""

    def __init__(self, store: Store, every: float = 0.02) -> None:
        self.store, self.every = store, every
        self.lock = threading.Lock()
        self.waiting: list[tuple[str, float]] = []  # (last statement id of the batch, acknowledged at)
        self.seqs: list[tuple[int, float]] = []  # (its seq, acknowledged at), in no order
        self.delays: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def acked(self, response: bytes, at: float) -> None:
        with self.lock:
            self.waiting.append((orjson.loads(response)[-1], at))

    def run(self) -> None:
        from adapters.xapi.tables import xapi_derive_cursor as cur
        from adapters.xapi.tables import xapi_statements as st

        while not self.stop.is_set():
            with self.lock:
                fresh, self.waiting = self.waiting, []
            with self.store.engine.connect() as conn:
                if fresh:
                    found = dict(conn.execute(select(st.c.id, st.c.seq).where(st.c.tenant == TENANT,
                                                                              st.c.id.in_([uuid.UUID(i) for i, _ in fresh]))).all())
                    self.seqs += [(found[uuid.UUID(i)], at) for i, at in fresh]
                cursor = conn.scalar(select(cur.c.seq).where(cur.c.name == "evidence")) or 0
            now = time.perf_counter()
            done = [(q, at) for q, at in self.seqs if q <= cursor]
            if done:
                self.delays += [now - at for _, at in done]
                self.seqs = [(q, at) for q, at in self.seqs if q > cursor]
            self.stop.wait(self.every)

    def finish(self, timeout: float = 600) -> float:
        """Wait until every batch has its evidence; the seconds that took."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            with self.lock:
                idle = not self.waiting
            if idle and not self.seqs:
                break
            time.sleep(self.every)
        self.stop.set()
        self.thread.join()
        return time.perf_counter() - t0


@contextmanager
def tessera(url: str, workers: int, derive: str = "inline") -> Iterator[tuple[str, int]]:
    env = server_env({**os.environ, "TESSERA_DATABASE_URL": url, "TESSERA_LOG_LEVEL": "WARNING", "TESSERA_XAPI__DERIVE": derive})
    in_worker = derive == "async" and IN_WORKER[0]
    if in_worker:
        env["TESSERA_XAPI__DERIVE_IN_SERVER"] = "false"
    exe = str(Path(sys.executable).with_name("tessera"))
    port = free_port()
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    # the consumer in a process of its own: ``tessera worker`` (its CPU is counted with the server's)
    worker = (subprocess.Popen([exe, "worker"], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              if in_worker else None)
    if worker is not None:
        WORKER_SESSIONS.append(worker.pid)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, base, "tessera serve")
        yield base, proc.pid
    finally:
        for p in (proc, worker):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
        WORKER_SESSIONS.clear()


@contextmanager
def deriver_held(store: Store) -> Iterator[Callable[[], None]]:
    """Hold the deriver's election lock (``adapters/xapi/derive.py``): every server process's
    deriver stands by until the function yielded is called (or the block ends)."""
    from adapters.xapi.derive import CONSUMER_LOCK
    from adapters.xapi.derive_shards import SHARD_LOCK
    from adapters.xapi.settings import XapiSettings
    from gateway.config import load_adapter_settings
    from gateway.store.filelock import FileLock

    if store.engine.dialect.name == "postgresql":
        # the single consumer's lock and, with TESSERA_XAPI__DERIVE_SHARDS=K (the server's
        # environment is this one's), every shard's: a shard consumer takes only a free shard
        shards = load_adapter_settings(XapiSettings).derive_shards  # type: ignore[attr-defined]
        keys = [CONSUMER_LOCK, *(SHARD_LOCK + i for i in range(shards if shards > 1 else 0))]
        conn = store.engine.connect()
        for key in keys:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
        conn.commit()

        def release() -> None:
            if not conn.closed:  # unlocked first: a pooled connection keeps its session
                for key in keys:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                conn.commit()
                conn.close()
    else:
        lock = FileLock(f"{store.engine.url.database}-xapi-derive")
        if not lock.acquire():
            raise RuntimeError("the deriver's lock file is held already")
        release = lock.release
    try:
        yield release
    finally:
        release()


def run_tessera(url: str, bodies: list[bytes], workers: int, *, recheck: bool = False, derive: str = "inline",
                split: bool = False) -> Outcome:
    store = open_store(url)
    store.migrate()
    t0 = time.perf_counter()
    load_reference(store)
    print(f"  loaded the framework and {LEARNERS:,} learners in {time.perf_counter() - t0:.1f} s")
    how = "async in a tessera worker" if derive == "async" and IN_WORKER[0] else derive
    # held from before the server starts: a ``tessera worker`` (--derive-in-worker) starts deriving at once
    with deriver_held(store) if split else nullcontext(None) as release, tessera(url, workers, derive) as (base, pid):
        client, secret = ClientStore(store.engine).create(TENANT, ["xapi/all"], name="bench")
        watch = Watch(url).start() if url.startswith("postgresql") else None
        if release is not None:
            out = drive(f"Tessera ({workers} workers, derive {how}, acknowledgement path alone)", base,
                        (client.client_id, secret), bodies, pid)
            if watch is not None:
                out.notes += watch.finish(len(bodies), out.statements)
            if ACK_ONLY[0]:
                out.rss = session_usage(pid)[0]
                out.notes[:0] = verify(store, out, len(bodies) * BATCH, derive=derive, derived=False)
                store.dispose()
                return out
            cpu0 = session_usage(pid)[1]
            release()
            behind = caught_up(store)
            rss, cpu = session_usage(pid)
            out.rss = rss
            n = max(1, out.statements)
            out.notes.append(f"then the deriver alone: {out.statements:,} statements derived in {behind:.1f} s "
                             f"({out.statements / max(behind, 1e-9):,.0f}/s), server CPU {(cpu - cpu0) / n * 1e6:.0f} us per statement "
                             f"({(cpu - cpu0) / max(behind, 1e-9):.2f} cores)")
            out.notes[:0] = verify(store, out, len(bodies) * BATCH, recheck=recheck, derive=derive)
            store.dispose()
            return out
        tracker = Tracker(store) if derive == "async" else None
        out = drive(f"Tessera ({workers} workers, derive {how})", base, (client.client_id, secret), bodies, pid,
                    on_ack=tracker.acked if tracker else None)
        if watch is not None:
            out.notes += watch.finish(len(bodies), out.statements)
        if tracker is not None:
            behind = tracker.finish()
            rss, cpu = session_usage(pid)
            out.rss = rss
            d = sorted(tracker.delays)
            q = statistics.quantiles(d, n=100) if len(d) > 1 else [d[0] if d else 0.0] * 99
            out.notes.append(f"acknowledgement to evidence: p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, max "
                             f"{(d[-1] if d else 0) * 1000:.0f} ms over {len(d):,} batches; all derived {behind:.1f} s after the "
                             f"last acknowledgement; server CPU with the catch-up {cpu / max(1, out.statements) * 1e6:.0f} us per statement")
        out.notes[:0] = verify(store, out, len(bodies) * BATCH, recheck=recheck, derive=derive)
    store.dispose()
    return out


def caught_up(store: Store, timeout: float = 600, every: float = 0.02) -> float:
    """Wait until the deriver's cursor reaches the last statement stored; the seconds that took."""
    from adapters.xapi.tables import xapi_derive_cursor as cur
    from adapters.xapi.tables import xapi_statements as st

    t0 = time.perf_counter()
    with store.engine.connect() as conn:
        last = conn.scalar(select(func.max(st.c.seq))) or 0
    while time.perf_counter() - t0 < timeout:
        with store.engine.connect() as conn:
            if (conn.scalar(select(cur.c.seq).where(cur.c.name == "evidence")) or 0) >= last:
                break
        time.sleep(every)
    return time.perf_counter() - t0


def verify(store: Store, out: Outcome, n: int, *, recheck: bool = False, derive: str = "inline",
           derived: bool = True) -> list[str]:
    """What the database holds after the run; a count that is off is an error of the run
    (``derived=False``: the statements only, their evidence not derived yet)."""
    from adapters.xapi.tables import xapi_statements
    from gateway.store import tables as t

    ev, ms = t.evidence, t.mastery_states
    with store.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(xapi_statements).where(xapi_statements.c.tenant == TENANT)).scalar()
        evidence = conn.execute(select(func.count()).select_from(ev).where(ev.c.tenant == TENANT)).scalar()
        unaligned = conn.execute(select(func.count()).select_from(ev).where(ev.c.tenant == TENANT, ev.c.competency_id.is_(None))).scalar()
        states = conn.execute(select(func.count()).select_from(ms).where(ms.c.tenant == TENANT)).scalar() or 0
    expect = n - len(out.errors) * BATCH
    if stored != expect:
        out.errors.append(f"{stored:,} statements stored, {expect:,} acknowledged")
    if not derived:
        return [f"stored: {stored:,} statements (--ack-only: their evidence not derived)"]
    if evidence != expect or unaligned:
        out.errors.append(f"{evidence:,} evidence items ({unaligned:,} unaligned) for {expect:,} statements")
    if not states:
        out.errors.append("no mastery state was derived")
    if recheck:
        from gateway.mastery.attach import engine_of

        # a full recompute derives every state from scratch: any it has to write differs
        # from what the incremental updates of the run left (with concurrent workers, a
        # state derived from a snapshot that missed another batch's evidence)
        report = engine_of(store).recompute(TENANT)
        if report.written:
            out.errors.append(f"a full recompute changed {report.written:,} of {report.states:,} states")
        out.notes.append(f"full recompute: {report.states:,} states, {report.written:,} different from the incremental ones")
    # inline: counted right after the last acknowledgement, without waiting: the evidence and
    # the states are written in the statements' own transaction (acknowledgement-to-evidence 0)
    when = "counted right after the last acknowledgement" if derive == "inline" else "counted once the deriver caught up"
    return [f"stored: {stored:,} statements, {evidence:,} evidence items ({unaligned:,} unaligned), {states:,} mastery states, {when}"]


def fresh_database(database_url: str | None) -> AbstractContextManager[str]:
    """A fresh database: a SQLite file in a temporary folder, or one on the PostgreSQL server."""
    if database_url is not None:
        return postgres_url(database_url)

    @contextmanager
    def sqlite() -> Iterator[str]:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"

    return sqlite()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database-url", default=None, help="a PostgreSQL server URL (a fresh database is made on it)")
    ap.add_argument("--peer", choices=["ralph"], default=None, help="run a peer LRS too, alternating with Tessera")
    ap.add_argument("--derive", choices=["inline", "async", "both"], default="inline",
                    help="TESSERA_XAPI__DERIVE of the server (both: one run of each, in turn)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="send at most this many statements a second (0: as fast as the server answers); "
                         "acknowledgement-to-evidence is measured at a given rate this way")
    ap.add_argument("--split", action="store_true",
                    help="with --derive async: hold the deriver back while the clients post (the acknowledgement path's "
                         "CPU alone), then time its catch-up on its own")
    ap.add_argument("--ack-only", action="store_true",
                    help="with --split: stop after the acknowledgement path (no catch-up; the statements are counted)")
    ap.add_argument("--rss-every", type=float, default=0.0,
                    help="sample each server process's RSS every this many seconds and print the curve against the "
                         "statements acknowledged (a cost that grows with them, or a fixed one)")
    ap.add_argument("--derive-in-worker", action="store_true",
                    help="with --derive async: TESSERA_XAPI__DERIVE_IN_SERVER=false, and a `tessera worker` derives, in a "
                         "process of its own (its CPU and RSS are counted with the server's)")
    ap.add_argument("--rounds", type=int, default=3, help="with --peer: runs of each")
    ap.add_argument("--recompute-check", action="store_true",
                    help="after the run, recompute every state from scratch: none may differ from the incremental ones")
    args = ap.parse_args()
    RATE[0] = args.rate
    IN_WORKER[0] = args.derive_in_worker
    ACK_ONLY[0] = args.ack_only
    RSS_EVERY[0] = args.rss_every
    print(f"host speed: record_id {host_speed():.2f} us (bench/host_speed.py; lower is faster)")
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}, {args.statements:,} statements; {CLIENTS} clients x batches of {BATCH}; server workers: {args.workers}")
    # The bodies are built before the clock starts: the load generator shares the two
    # cores with the server, and formatting 100 statements costs ~4 ms of its CPU.
    bodies = [make_batch(i) for i in range(args.statements // BATCH)]
    print(f"  statement size: {len(bodies[0]) / BATCH:,.0f} bytes")
    runs: list[Callable[[], Outcome]] = []

    def ours(derive: str) -> Callable[[], Outcome]:
        def run() -> Outcome:
            with fresh_database(args.database_url) as url:
                return run_tessera(url, bodies, args.workers, recheck=args.recompute_check, derive=derive,
                                   split=args.split and derive == "async")

        return run

    modes = ["inline", "async"] if args.derive == "both" else [args.derive]
    runs.extend(ours(m) for m in modes)
    if args.peer == "ralph":
        from peers import ralph_peer

        runs.append(lambda: ralph_peer.run(bodies, drive))
    outcomes: list[list[Outcome]] = [[] for _ in runs]
    failed = False
    for _ in range(args.rounds if args.peer else 1):
        for i, run in enumerate(runs):
            out = run()
            out.report()
            outcomes[i].append(out)
            if out.errors:
                failed = True
                print(f"  FAILED: {len(out.errors)} errors, e.g. {out.errors[0]}")
    if args.peer:
        peer = outcomes[-1]
        for mode, ours_ in zip(modes, outcomes, strict=False):
            ratios = [a.rate / b.rate for a, b in zip(ours_, peer, strict=True)]
            print(f"Tessera (derive {mode}) {', '.join(f'{o.rate:,.0f}' for o in ours_)} statements/s; "
                  f"{peer[0].name} {', '.join(f'{o.rate:,.0f}' for o in peer)} statements/s")
            print(f"ratio Tessera (derive {mode}) / {peer[0].name}: median {statistics.median(ratios):.2f} "
                  f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"host speed: record_id {host_speed():.2f} us")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
