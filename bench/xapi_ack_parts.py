"""Diagnosis: the xAPI acknowledgement path's CPU a statement, step by step, through the whole app in one process.

``bench/xapi_ingest.py`` measures the path over HTTP with two server workers, where a loaded
machine moves the figures by 10 % from one run to the next; ``bench/xapi_ack_latency.py``
measures the store alone. This one builds the app ``tessera serve`` runs (``serve_app``: both
ASGI stacks, auth, the LRS's middleware) on a fresh SQLite database with the ingest
benchmark's framework and roster, ``TESSERA_XAPI__DERIVE=async`` with no consumer, and calls
it directly as ASGI (no HTTP server) with 4 concurrent clients posting the ingest benchmark's
batches of 100. It prints the process's CPU a statement (user and system) and each step's
thread CPU a statement, measured around it: parsing, strict validation, ``complete``, the rows
(``StatementStore._plan``), the definitions' check, the group commit's leader (the write
transaction: under SQLite's write lock) and ``save`` in all. What the steps leave out is the
per-request stack (middleware, dependencies, the thread hop), the response and freeing the batch.

    python bench/xapi_ack_parts.py --statements 30000

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from host_speed import measure as host_speed
from xapi_ingest import BATCH, TENANT, load_reference, make_batch  # bench/ is sys.path[0]

SPENT: dict[str, float] = {}


def timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper adding the calling thread's CPU to ``SPENT[label]``."""
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.thread_time() - t0

    setattr(owner, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=30_000)
    args = ap.parse_args()
    print(f"host speed: record_id {host_speed():.2f} us (bench/host_speed.py; lower is faster)")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        os.environ.update({"TESSERA_DATABASE_URL": url, "TESSERA_LOG_LEVEL": "WARNING", "TESSERA_XAPI__DERIVE": "async",
                           "TESSERA_XAPI__DERIVE_IN_SERVER": "false", "TESSERA_WORKERS": "2"})
        from gateway.auth import ClientStore
        from gateway.wiring import open_store

        store = open_store(url)
        store.migrate()
        load_reference(store)
        client, secret = ClientStore(store.engine).create(TENANT, ["xapi/all"], name="bench")
        store.dispose()

        import adapters.xapi.statements as resource
        from adapters.xapi.statement_store import StatementStore
        from gateway.api.app import serve_app
        from gateway.store.group_commit import GroupCommit

        for owner, name, label in ((resource, "parse_json", "parse"), (resource, "valid_statements", "validate"),
                                   (resource, "complete", "complete"), (StatementStore, "_plan", "rows (_plan)"),
                                   (StatementStore, "_pending_definitions", "definitions"),
                                   (GroupCommit, "_lead", "write transaction (leader)"), (StatementStore, "save", "save")):
            timed(owner, name, label)
        app = serve_app()
        auth = b"Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode())
        bodies = [make_batch(i) for i in range(args.statements // BATCH + 5)]
        asyncio.run(drive(app, auth, bodies))


async def post(app: Any, auth: bytes, body: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/xapi/statements", "raw_path": b"/xapi/statements", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", auth), (b"content-type", b"application/json"),
                         (b"x-experience-api-version", b"1.0.3"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000), "state": {}}
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"POST /xapi/statements answered {status}")


async def drive(app: Any, auth: bytes, bodies: list[bytes]) -> None:
    for body in bodies[:5]:  # warm-up: the credentials' scrypt, the caches
        await post(app, auth, body)
    SPENT.clear()
    rest = iter(bodies[5:])
    n = (len(bodies) - 5) * BATCH

    async def client() -> None:
        for body in rest:
            await post(app, auth, body)

    t0, c0 = os.times(), time.process_time()
    await asyncio.gather(*(client() for _ in range(4)))
    cpu, t1 = time.process_time() - c0, os.times()
    print(f"  {n:,} statements, 4 clients x batches of {BATCH}: {cpu / n * 1e6:.1f} us CPU a statement "
          f"(user {(t1.user - t0.user) / n * 1e6:.1f}, system {(t1.system - t0.system) / n * 1e6:.1f})")
    for label, spent in SPENT.items():
        print(f"    {label}: {spent / n * 1e6:.1f} us a statement (thread CPU)")
    print(f"host speed: record_id {host_speed():.2f} us")


if __name__ == "__main__":
    main()
