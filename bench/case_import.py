"""CASE import and provider benchmark (issue 3): prints the figures and checks the targets.

    python bench/case_import.py [--items 20000] [--associations 40000] [--database-url URL] [--requests 500]

1. generates a framework of ``--items`` CFItems and ``--associations`` CFAssociations
   (adapters/case/samples/make_samples.py ``generate``), as JSON bytes;
2. imports it (validate + map + one atomic apply) into a fresh embedded SQLite store (or
   ``--database-url``): target <= 5 s;
3. starts the real app under uvicorn on a free port and GETs /ims/case/v1p0/CFPackages/{id}
   over HTTP: target <= 1 s;
4. GETs /ims/case/v1p0/CFItems/{id} for ``--requests`` random items, one at a time: target p99 < 10 ms;
5. prints peak memory (the process's maximum resident set size).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.case import CaseAdapter  # noqa: E402
from adapters.case.samples.make_samples import generate  # noqa: E402
from gateway.auth import ClientStore  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.wiring import open_store  # noqa: E402

TENANT = "bench"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def serve(store: Store, url: str) -> tuple[str, object, threading.Thread]:
    import socket

    import uvicorn

    from gateway.api.app import create_app

    app = create_app(Settings(database_url=url), store=store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, thread


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--associations", type=int, default=40000)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="tessera-case-bench-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    store = open_store(url)
    store.migrate()

    t = time.perf_counter()
    pkg = generate(args.items, args.associations)
    data = orjson.dumps(pkg)
    doc_id = pkg["CFDocument"]["identifier"]
    item_ids = [i["identifier"] for i in pkg["CFItems"]]
    print(f"generated: {len(pkg['CFItems'])} CFItems, {len(pkg['CFAssociations'])} CFAssociations, "
          f"{len(data) / 1e6:.1f} MB of JSON in {time.perf_counter() - t:.2f} s")
    del pkg
    rss_before = peak_rss_mb()

    adapter = CaseAdapter()
    t = time.perf_counter()
    parsed, done = adapter.import_package(store, TENANT, data)
    import_s = time.perf_counter() - t
    print(f"import:    {import_s:.2f} s  ({done.result.created} records created, atomic; "
          f"{len(parsed.competencies) + len(parsed.relations) + 1} records from the package)")
    del parsed
    t = time.perf_counter()
    _, again = adapter.import_package(store, TENANT, data)
    print(f"re-import: {time.perf_counter() - t:.2f} s  ({again.result.unchanged} unchanged, {again.result.created + again.result.updated} written)")

    base, server, thread = serve(store, url)
    try:
        client, secret = ClientStore(store.engine).create(TENANT, ["competencies.readonly"])
        tok = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)).json()["access_token"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tok}"}, timeout=60) as http:
            http.get("/healthz")
            timings = []
            for _ in range(3):
                t = time.perf_counter()
                r = http.get(f"/ims/case/v1p0/CFPackages/{doc_id}")
                timings.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text[:300]
            body = r.json()
            assert len(body["CFItems"]) == args.items and len(body["CFAssociations"]) == args.associations
            package_s = timings[0]
            print(f"CFPackages/{{id}}: {package_s:.2f} s first request (built from the store), {min(timings[1:]):.3f} s "
                  f"repeated (cached until the tenant's data changes); {len(r.content) / 1e6:.1f} MB")
            del body, r
            rng = random.Random(3)
            lat = []
            for ident in (rng.choice(item_ids) for _ in range(args.requests)):
                t = time.perf_counter()
                r = http.get(f"/ims/case/v1p0/CFItems/{ident}")
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            lat.sort()
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)]
            print(f"CFItems/{{id}}: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(lat)} requests")
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)
    print(f"peak memory: {peak_rss_mb():.0f} MB resident (maximum RSS; {rss_before:.0f} MB before the import)")
    ok = import_s <= 5 and package_s <= 1 and p99 < 10
    print(f"targets (import <= 5 s, CFPackages <= 1 s, CFItems p99 < 10 ms): {'met' if ok else 'NOT met'}")
    store.dispose()
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
