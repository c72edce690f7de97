"""Benchmark: LTI Assignment and Grade Services score ingest over real HTTP (Tessera as platform).

Seeds a section with L learners and a CASE competency into a fresh database, registers a
tool (a real RSA key pair), serves the app with the LTI adapter under uvicorn in a separate
process on a free port of 127.0.0.1, gets an AGS access token from
``/lti/platform/token`` with a signed client assertion (RFC 7523), creates a line item
aligned with the competency, then posts N scores (``application/vnd.ims.lis.v1.score+json``)
from C client threads with keep-alive connections. Every score becomes one Evidence row in
its own transaction. Prints scores/s (target >= 500), per-request p50/p99 latency and the
server's peak RSS, and checks that exactly N evidence records were stored.

Run from the repository root::

    python bench/lti_ags.py                       # 5,000 scores, 8 client threads
    python bench/lti_ags.py --scores 20000 --clients 16 --postgres-url postgresql+psycopg://...

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from harness import free_port, wait_up
from jwt.algorithms import RSAAlgorithm

from gateway.model import (
    Competency,
    Course,
    Enrollment,
    Framework,
    Identifier,
    Org,
    OrgRole,
    Person,
    Section,
)
from gateway.store import Store
from gateway.wiring import open_store

TENANT = "bench"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"


def bench_app() -> Any:
    """The app with the LTI adapter only, on ``TESSERA_DATABASE_URL`` (uvicorn's factory)."""
    from adapters.lti import LtiAdapter
    from gateway.api.app import create_app, for_serving
    from gateway.config import Settings

    settings = Settings(database_url=os.environ["TESSERA_DATABASE_URL"], log_level="WARNING",
                        workers=int(os.environ.get("TESSERA_WORKERS", "1")))
    return for_serving(create_app(settings, registry=[LtiAdapter()]), settings)  # as ``tessera serve`` does


def serve(url: str, port: int, workers: int) -> None:
    """The child process: ``bench_app`` under uvicorn, with ``workers`` processes."""
    import uvicorn

    os.environ["TESSERA_DATABASE_URL"] = url
    os.environ["TESSERA_WORKERS"] = str(workers)
    uvicorn.run("lti_ags:bench_app", factory=True, app_dir=str(Path(__file__).resolve().parent), host="127.0.0.1", port=port,
                workers=workers, log_level="warning", access_log=False)


def seed(store: Store, learners: int) -> tuple[Section, list[Person], Competency]:
    school = Org(tenant=TENANT, source="sis", native_id="school", name="School", type="school")
    course = Course(tenant=TENANT, source="sis", native_id="c", title="Maths", org_id=school.id)
    section = Section(tenant=TENANT, source="sis", native_id="s", title="Maths 1", course_id=course.id, org_id=school.id)
    people = [Person(tenant=TENANT, source="sis", native_id=f"u{i}", given_name="Ada", family_name=f"L{i}",
                     roles=[OrgRole(role="student", org_id=school.id, primary=True)]) for i in range(learners)]
    enrollments = [Enrollment(tenant=TENANT, source="sis", native_id=f"e{i}", person_id=p.id, section_id=section.id, role="student")
                   for i, p in enumerate(people)]
    fw = Framework(tenant=TENANT, source="case", native_id="fw", title="Framework")
    guid = uuid.uuid4()
    uri = f"https://case.example.org/uri/{guid}"
    comp = Competency(tenant=TENANT, source="case", native_id="c1", framework_id=fw.id, statement="Adds fractions", guid=guid, uri=uri,
                      identifiers=[Identifier(system="case", kind="case.uri", value=uri)])
    store.records.apply(TENANT, [school, course, section, *people, *enrollments, fw, comp])
    return section, people, comp


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (workers), from /proc."""
    def one(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return one(pid) + sum(one(int(c)) for c in children)


def server_rss_kib(pid: int) -> int:
    """Peak RSS of the server: the process itself plus its worker processes, if any."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return peak_rss_kib(pid) + sum(peak_rss_kib(int(c)) for c in children)


def run(url: str, n: int, clients: int, learners: int, workers: int) -> None:
    from adapters.lti.platform.registrations import ToolRegistration, ToolRegistry

    store = open_store(url)
    store.migrate()
    section, people, comp = seed(store, learners)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    jwk = {**orjson.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "bench"}
    tool = ToolRegistry(store.engine).add(TENANT, ToolRegistration(
        name="bench tool", login_url="https://tool.example.org/login", redirect_uris=["https://tool.example.org/launch"],
        target_link_uri="https://tool.example.org/launch", public_jwk=jwk))
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port), "--workers", str(workers)], start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, base)
        token_url = f"{base}/lti/platform/token"
        now = int(time.time())
        assertion = jwt.encode({"iss": tool.client_id, "sub": tool.client_id, "aud": token_url, "iat": now, "exp": now + 60,
                                "jti": uuid.uuid4().hex}, pem, algorithm="RS256", headers={"kid": "bench"})
        tok = httpx.post(token_url, data={"grant_type": "client_credentials", "client_assertion_type":
                                          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
                                          "scope": f"{AGS}lineitem {AGS}score"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {tok}"}
        item = httpx.post(f"{base}/lti/platform/ags/contexts/{section.id}/lineitems", headers={
            **headers, "Content-Type": "application/vnd.ims.lis.v2.lineitem+json"},
            content=orjson.dumps({"label": "Quiz", "scoreMaximum": 100, "resourceId": comp.uri})).json()
        scores_url = f"{item['id']}/scores"
        start = datetime(2026, 11, 1, tzinfo=UTC)
        bodies = [orjson.dumps({"userId": str(people[i % learners].id), "scoreGiven": i % 101, "scoreMaximum": 100,
                                "timestamp": (start + timedelta(seconds=i)).isoformat(), "activityProgress": "Completed",
                                "gradingProgress": "FullyGraded"}) for i in range(n)]
        latencies: list[float] = []
        lock = threading.Lock()
        errors: list[str] = []

        def worker(part: list[bytes]) -> None:
            mine = []
            with httpx.Client(headers={**headers, "Content-Type": "application/vnd.ims.lis.v1.score+json"}, timeout=60) as c:
                for body in part:
                    t0 = time.perf_counter()
                    r = c.post(scores_url, content=body)
                    mine.append(time.perf_counter() - t0)
                    if r.status_code >= 300:
                        errors.append(f"{r.status_code} {r.text[:200]}")
            with lock:
                latencies.extend(mine)

        # each learner's scores come from one client, in timestamp order (an older score after
        # a newer one is refused with 409, as AGS 2.0 3.4 allows)
        parts: list[list[bytes]] = [[] for _ in range(clients)]
        for i, body in enumerate(bodies):
            parts[(i % learners) % clients].append(body)
        threads = [threading.Thread(target=worker, args=(part,)) for part in parts]
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        rss = server_rss_kib(proc.pid)
        if errors:
            raise RuntimeError(f"{len(errors)} scores refused, first: {errors[0]}")
        stored = store.records.count(TENANT, "evidence")
        assert stored == n, (stored, n)
        q = statistics.quantiles(latencies, n=100)
        print(f"  {n:,} scores from {clients} clients in {took:.2f} s: {n / took:,.0f} scores/s  [target >= 500]")
        print(f"  latency p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; server peak RSS {rss / 1024:.0f} MiB ({workers} worker(s)); "
              f"{stored:,} evidence records stored")
        print(f"  server CPU {cpu * 1000 / n:.2f} ms per score: {n / cpu:,.0f} scores per CPU-second "
              f"(load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scores", type=int, default=5_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--learners", type=int, default=500)
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    ap.add_argument("--postgres-url", default=os.environ.get("TESSERA_BENCH_POSTGRES_URL"))
    ap.add_argument("--serve")
    ap.add_argument("--port", type=int)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite, {args.scores:,} scores")
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.scores, args.clients, args.learners, args.workers)
    if args.postgres_url:
        from sqlalchemy import create_engine, text

        name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            print(f"PostgreSQL, {args.scores:,} scores")
            run(args.postgres_url.rsplit("/", 1)[0] + f"/{name}", args.scores, args.clients, args.learners, args.workers)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
