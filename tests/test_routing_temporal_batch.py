"""Batched deliveries on the ``temporal`` engine: a connection with ``batch_size`` > 1 has its
outbox rows delivered by one workflow per batch (``tessera.delivery_batch``) whose activity runs
the embedded engine's ``Deliverer.deliver_rows``, each row keeping its own outcome.

Against a real Temporal server (the fixtures of ``test_routing_temporal``) and a real HTTP sink
that unpacks the webhook's batch form and counts by each event's idempotency key: N rows in
ceil(N / batch_size) workflows and requests, each applied once; a 5xx for a batch retries
each of its rows in a later batch; a 400 for one record of a batch dead-letters that record
only; a relay that claims the same rows again is refused the second start; a worker SIGKILLed mid-batch (PostgreSQL, worker
processes) is recovered by Temporal's retry of the activity with the same keys.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from gateway.routing.temporal_dev import start_workers, stop_workers
from gateway.routing.temporal_engine import TemporalEngine, batch_tag
from gateway.routing.temporal_workflows import BATCH_WORKFLOW, DELIVERY_WORKFLOW
from gateway.store import Store
from gateway.wiring import default as default_wiring
from gateway.wiring import open_store
from tests import factories as f
from tests.test_routing_temporal import (  # noqa: F401 (fixtures)
    ROOT,
    _client,
    _doubles,
    engine,
    eventually,
    outbox_rows,
    pg_url,
    push_route,
    temporal,
)


class EventSink:
    """A real HTTP server on a free port that takes single events and batches alike and counts
    by each event's id (its idempotency key): ``requests`` per key, ``applied`` at the first
    2xx; ``reject``: record ids answered 400 (a batch holding one is refused as a whole, and
    the webhook then sends each event on its own)."""

    def __init__(self, delay: float = 0.0, reject: set[str] | None = None, fail_first: int = 0) -> None:
        self.delay, self.reject, self.fail_first = delay, reject or set(), fail_first
        self.requests: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.posts = 0
        self.batches = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                events = body["events"] if body.get("type") == "tessera.record.batch" else [body]
                if sink.delay:
                    time.sleep(sink.delay)
                with sink.lock:
                    sink.posts += 1
                    sink.batches += len(events) > 1
                    for e in events:
                        sink.requests[e["id"]] += 1
                    status = 400 if any(e["record_id"] in sink.reject for e in events) else 200
                    if sink.posts <= sink.fail_first:
                        status = 503
                    if status == 200:
                        for e in events:
                            sink.applied[e["id"]] = 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def event_sinks() -> Iterator[Callable[..., EventSink]]:
    made: list[EventSink] = []

    def make(**kw: Any) -> EventSink:
        made.append(EventSink(**kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def workflows(address: str, task_queue: str) -> Counter[str]:
    """The workflows run on ``task_queue``, by type."""

    async def listing() -> Counter[str]:
        client = await _client(address)
        found: Counter[str] = Counter()
        async for wf in client.list_workflows(f'TaskQueue="{task_queue}"'):
            found[wf.workflow_type] += 1
        return found

    return asyncio.run(listing())


def test_a_batched_connection_delivers_n_rows_in_ceil_n_over_batch_workflows_exactly_once(
        store: Store, engine: TemporalEngine, event_sinks: Callable[..., EventSink]) -> None:  # noqa: F811
    n, size = 23, 5
    sink = event_sinks()
    route = push_route(store, sink.url, batch_size=size)
    single = event_sinks()
    other = push_route(store, single.url, name="single")  # no batch_size: one workflow a row, unchanged
    store.records.apply("t1", [f.org(f"o{i}") for i in range(n)])  # one commit: every row due at once
    eventually(lambda: all(r.state == "delivered" for r in outbox_rows(store, route) + outbox_rows(store, other)),
               timeout=30, what="every row delivered")
    keys = {r.idempotency_key for r in outbox_rows(store, route)}
    assert len(keys) == n and set(sink.applied) == keys and set(sink.requests.values()) == {1}
    assert sink.posts == math.ceil(n / size) and sink.batches == math.ceil(n / size)  # 5 + 5 + 5 + 5 + 3
    assert all(r.attempts == 1 and r.lease_owner is None for r in outbox_rows(store, route))
    assert single.posts == n and set(single.requests.values()) == {1}
    ran = eventually(lambda: (w := workflows(engine.address, engine.task_queue))[BATCH_WORKFLOW] == math.ceil(n / size) and w,
                     what="the batch workflows listed")
    assert ran == Counter({BATCH_WORKFLOW: math.ceil(n / size), DELIVERY_WORKFLOW: n})


def test_a_400_for_one_record_of_a_batch_dead_letters_that_record_only(
        store: Store, engine: TemporalEngine, event_sinks: Callable[..., EventSink]) -> None:  # noqa: F811
    orgs = [f.org(f"o{i}") for i in range(6)]
    sink = event_sinks(reject={str(orgs[2].id)})
    route = push_route(store, sink.url, batch_size=10)
    store.records.apply("t1", orgs)
    eventually(lambda: all(r.state != "pending" for r in outbox_rows(store, route)), timeout=30, what="every row settled")
    rows = {r.record_id: r for r in outbox_rows(store, route)}
    bad = rows.pop(orgs[2].id)
    assert bad.state == "dead" and bad.last_status == 400 and bad.attempts == 1 and bad.dead_at is not None
    assert all(r.state == "delivered" for r in rows.values())
    assert set(sink.applied) == {r.idempotency_key for r in rows.values()} and set(sink.applied.values()) == {1}
    assert sink.posts == 1 + 6  # the batch refused, then each event on its own: only the bad one refused


def test_the_batch_tag_names_the_same_claim_the_same_and_a_retry_of_it_another() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace as Row

    due = datetime(2026, 12, 7, tzinfo=UTC)
    rows = [Row(id=i, idempotency_key=f"r:{i}:h", attempts=0, next_attempt_at=due) for i in (3, 1, 2)]
    assert batch_tag(rows) == batch_tag(list(reversed(rows))) and len(batch_tag(rows)) <= 64
    again = [Row(id=r.id, idempotency_key=r.idempotency_key, attempts=1, next_attempt_at=due + timedelta(seconds=2)) for r in rows]
    assert batch_tag(again) != batch_tag(rows)


@pytest.mark.slow
def test_a_worker_killed_mid_batch_is_recovered_with_the_same_keys(pg_url: str, temporal: str,  # noqa: F811
                                                                   event_sinks: Callable[..., EventSink]) -> None:
    n, size = 60, 10
    sink = event_sinks(delay=0.6)  # each request is in flight for a while: the kill lands mid-batch
    store = open_store(pg_url)
    try:
        route = push_route(store, sink.url, retries=20, batch_size=size)
        store.records.apply("t1", [f.org(f"o{i}") for i in range(n)])
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TW_URL": pg_url, "TW_ADDRESS": temporal,
               "TW_QUEUE": f"tessera-batch-crash-{uuid.uuid4().hex[:8]}", "TW_ATTEMPT": "3"}
        procs = start_workers(2, env, cwd=ROOT)
        try:
            eventually(lambda: sum(sink.requests.values()) > 0, timeout=60, what="a batch in flight")
            procs[0].send_signal(signal.SIGKILL)  # its batches' requests are at the sink, unanswered
            procs[0].wait(10)
            eventually(lambda: all(r.state == "delivered" for r in outbox_rows(store, route)), timeout=60, what="every row delivered")
        finally:
            stop_workers(procs)
        keys = {r.idempotency_key for r in outbox_rows(store, route)}
        assert len(keys) == n and set(sink.applied) == keys and set(sink.applied.values()) == {1}  # none lost, once each
        print({"posts": sink.posts, "requests": sum(sink.requests.values()), "applied": len(sink.applied)})
    finally:
        store.dispose()


def test_a_relay_that_claims_the_same_rows_again_names_the_same_workflow_and_is_refused(
        store: Store, temporal: str, event_sinks: Callable[..., EventSink]) -> None:  # noqa: F811
    from sqlalchemy import update

    from gateway.routing.temporal_workflows import BatchJob
    from gateway.store.db import WRITE
    from gateway.store.tables import outbox

    sink = event_sinks()
    route = push_route(store, sink.url, batch_size=4)
    store.records.apply("t1", [f.org(f"o{i}") for i in range(6)])
    eng = TemporalEngine(store, default_wiring(), address=temporal, task_queue=f"tessera-norun-{uuid.uuid4().hex[:8]}")
    first = eng._claim(route)  # a relay that claimed, started, then died before marking
    assert [len(j.ids) for j in first if isinstance(j, BatchJob)] == [4, 2]
    assert all(r.lease_owner in {j.tag for j in first if isinstance(j, BatchJob)} for r in outbox_rows(store, route))

    async def start_all(jobs: list[Any]) -> list[bool]:
        client = await _client(temporal)
        return [await eng.start_batch(client, j) for j in jobs]

    assert asyncio.run(start_all(first)) == [True, True]
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():  # its claim runs out
        conn.execute(update(outbox).where(outbox.c.route_id == route).values(locked_until=None))
    again = eng._claim(route)
    assert [j.tag for j in again] == [j.tag for j in first]  # the same rows: the same workflow ids
    assert asyncio.run(start_all(again)) == [False, False]  # refused: each batch starts once
    assert not sink.posts  # no worker on that task queue: nothing was sent


def test_a_5xx_for_a_batch_retries_each_of_its_rows_in_a_later_batch(
        store: Store, engine: TemporalEngine, event_sinks: Callable[..., EventSink]) -> None:  # noqa: F811
    from sqlalchemy import select

    from gateway.store.tables import connection_health

    sink = event_sinks(fail_first=1)
    route = push_route(store, sink.url, batch_size=10)
    store.records.apply("t1", [f.org(f"o{i}") for i in range(4)])
    eventually(lambda: all(r.state == "delivered" for r in outbox_rows(store, route)), timeout=30, what="every row delivered")
    rows = outbox_rows(store, route)
    assert all(r.attempts == 2 for r in rows)  # each row's own attempt count: the 503, then the 2xx
    # each row's retry time has its own jitter: the rows due again may go out in one later batch or several
    assert sink.posts >= 2 and set(sink.requests.values()) == {2} and set(sink.applied.values()) == {1}
    with store.engine.connect() as conn:
        health = conn.execute(select(connection_health)).one()
    assert health.consecutive_failures == 0 and health.last_failure_at is not None  # the failure recorded, then the success
    ran = eventually(lambda: (w := workflows(engine.address, engine.task_queue))[BATCH_WORKFLOW] == sink.posts and w,
                     what="a workflow per batch")
    assert set(ran) == {BATCH_WORKFLOW}
