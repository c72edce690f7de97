"""The embedded routing engine and the failure policy, against a real HTTP sink on a free port
(``tests/routing_sink.py``), on SQLite and PostgreSQL: delivery, retries with backoff,
Retry-After, timeouts, waiting for a dependency, dead letters with their evidence, the
circuit breaker, replay, scheduled pulls and sync runs, and no secret in anything stored."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from gateway.errors import ConfigError
from gateway.model import utcnow
from gateway.routing.dispatch import EmbeddedEngine
from gateway.routing.engine import deliver_one, engine_for, run_pull
from gateway.routing.policy import Policy
from gateway.routing.protocol import PageResult, Retry
from gateway.store import Store
from gateway.store.tables import connection_health, outbox, routes, sync_runs
from gateway.wiring import Wiring
from gateway.wiring import default as default_wiring
from tests.factories import org, person
from tests.routing_sink import Answer, Sink, run_sink

SECRET = "whsec-Zq8v3NcT7s1p"
T = "t1"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def hook_route(store: Store, url: str, *, kinds: tuple[str, ...] = ("org", "person"), name: str = "hook", **options: Any) -> tuple[uuid.UUID, uuid.UUID]:
    opts = {"timeout": 5, "backoff": 0.05, "max_backoff": 0.2, "retries": 3, "breaker_failures": 0, **options}
    cid = store.routing.create_connection(T, name, adapter="webhook", role="webhook", system=f"{name}-system", base_url=url,
                                          auth={"signing_secret": "env:HOOK_SECRET"}, options=opts)
    rid = store.routing.create_route(T, f"to-{name}", destination=cid, kinds=list(kinds))
    return cid, rid


@pytest.fixture
def engine(store: Store) -> Iterator[EmbeddedEngine]:
    e = EmbeddedEngine(store, default_wiring(), threads=2, batch=16, poll=0.02, lease_seconds=10, scheduler=False)
    yield e
    e.stop()


def rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(select(outbox).order_by(outbox.c.id)).mappings()]


def settle(engine: EmbeddedEngine, store: Store, *, timeout: float = 10.0, until: Any = None) -> list[dict[str, Any]]:
    """Drain until no row is pending (or ``until(rows)``), within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        engine.drain(timeout=timeout)
        found = rows(store)
        if (until(found) if until else all(r["state"] != "pending" for r in found)) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_a_change_is_delivered_signed_once_with_its_lag(store: Store, engine: EmbeddedEngine) -> None:
    with run_sink(SECRET) as sink:
        hook_route(store, sink.url)
        school = org("o1")
        store.records.apply(T, [school, person("p1", school)])
        found = settle(engine, store)
    assert [r["state"] for r in found] == ["delivered", "delivered"]
    assert all(r["attempts"] == 1 and r["delivered_at"] and r["lease_owner"] is None for r in found)
    assert sorted(sink.applied) == sorted(r["idempotency_key"] for r in found) and sink.duplicates == 0
    ev = sink.applied[found[1]["idempotency_key"]]
    assert ev["op"] == "upsert" and ev["kind"] == "person" and ev["record"]["native_id"] == "p1"
    assert sink.headers[0]["Idempotency-Key"] == sink.received[0]["id"]
    # order: the org (written first in the batch) before the person
    assert [e["kind"] for e in sink.received] == ["org", "person"]


def test_a_deletion_travels_as_a_tombstone_and_a_stale_version_is_not_sent(store: Store, engine: EmbeddedEngine) -> None:
    with run_sink(SECRET) as sink:
        hook_route(store, sink.url, kinds=("org",))
        school = org("o1")
        store.records.apply(T, [school])
        store.records.apply(T, [org("o1", name="Renamed")])
        store.records.apply(T, [org("o1", name="Renamed", status="tobedeleted")])
        found = settle(engine, store)
    assert [r["state"] for r in found] == ["delivered"] * 3
    # only the current version went out: a tombstone
    assert len(sink.received) == 1
    ev = sink.received[0]
    assert ev["op"] == "delete" and ev["tombstone"]["native_id"] == "o1" and "record" not in ev
    assert [r["last_error"] for r in found[:2]] == ["superseded by a later change of the record"] * 2


def test_5xx_is_retried_with_backoff_then_delivered(store: Store, engine: EmbeddedEngine) -> None:
    calls = []

    def script(sink: Sink, ev: dict[str, Any]) -> Answer:
        calls.append(time.monotonic())
        return Answer(503, b"busy") if len(calls) <= 2 else Answer(200)

    with run_sink(SECRET, script) as sink:
        hook_route(store, sink.url, kinds=("org",))
        store.records.apply(T, [org("o1")])
        found = settle(engine, store)
    assert found[0]["state"] == "delivered" and found[0]["attempts"] == 3
    assert len(sink.received) == 3 and len(sink.applied) == 1


def test_429_retry_after_is_honoured(store: Store, engine: EmbeddedEngine) -> None:
    calls: list[float] = []

    def script(sink: Sink, ev: dict[str, Any]) -> Answer:
        calls.append(time.monotonic())
        return Answer(429, b"slow down", {"Retry-After": "2"}) if len(calls) == 1 else Answer(200)

    with run_sink(SECRET, script) as sink:
        hook_route(store, sink.url, kinds=("org",))
        store.records.apply(T, [org("o1")])
        engine.drain()
        r = rows(store)[0]
        assert r["state"] == "pending" and r["last_status"] == 429 and r["attempts"] == 1
        wait = (r["next_attempt_at"] - utcnow()).total_seconds()
        assert 0.3 < wait <= 2.0  # the 2 s asked for, not the backoff (at most 0.2 s)
        found = settle(engine, store)
    assert found[0]["state"] == "delivered"
    assert calls[1] - calls[0] >= 1.9


def test_a_timeout_is_retried(store: Store, engine: EmbeddedEngine) -> None:
    arrived: list[float] = []

    def script(sink: Sink, ev: dict[str, Any]) -> Answer:
        arrived.append(time.monotonic())
        return Answer(200, delay=5.0) if len(arrived) == 1 else Answer(200)

    with run_sink(SECRET, script) as sink:
        hook_route(store, sink.url, kinds=("org",), timeout=0.5)
        store.records.apply(T, [org("o1")])
        found = settle(engine, store)
    assert found[0]["state"] == "delivered" and found[0]["attempts"] == 2 and len(sink.received) == 2
    # the first call was abandoned after its 0.5 s timeout: the retry came while the sink still
    # held the first call's answer back (5 s), with seconds to spare for a loaded machine
    assert arrived[1] - arrived[0] < 4.0


def test_409_waits_for_the_dependency_without_counting(store: Store, engine: EmbeddedEngine) -> None:
    """The destination knows no person until the org arrived: the person waits (409), the
    attempts limit is not used up, and it is delivered once the org is."""
    arrived = threading.Event()

    def script(sink: Sink, ev: dict[str, Any]) -> Answer:
        if ev["kind"] == "org":
            if not arrived.is_set():
                return Answer(503, b"org service starting")
            return Answer(200)
        with sink.lock:
            known = any(e["kind"] == "org" for e in sink.applied.values())
        return Answer(200) if known else Answer(409, b'{"error": "unknown org o1"}')

    with run_sink(SECRET, script) as sink:
        hook_route(store, sink.url, retries=1, max_backoff=0.1, backoff=0.05)
        school = org("o1")
        store.records.apply(T, [school])
        store.records.apply(T, [person("p1", school)])
        # the org fails with 5xx (counting), the person waits with 409 (not counting)
        for _ in range(6):
            engine.drain()
            time.sleep(0.12)
        p = rows(store)[1]
        assert p["state"] == "pending" and p["attempts"] == 0 and p["last_status"] == 409 and "unknown org" in p["waiting_on"] + p["last_response"]
        arrived.set()
        with store.engine.begin() as c:  # the org's row was dead-lettered meanwhile (retries=1): replay it
            c.execute(update(outbox).where(outbox.c.record_kind == "org").values(state="pending", attempts=0, next_attempt_at=utcnow(), dead_at=None))
        found = settle(engine, store, timeout=10)
    assert [r["state"] for r in found] == ["delivered", "delivered"]
    assert found[1]["attempts"] == 1 and found[1]["waiting_on"] is None


def test_a_dependency_that_never_comes_is_dead_lettered_after_the_max_wait(store: Store, engine: EmbeddedEngine) -> None:
    with run_sink(SECRET, lambda s, e: Answer(409, b"unknown reference")) as sink:
        hook_route(store, sink.url, kinds=("org",), max_wait_for_dependency=0.3)
        store.records.apply(T, [org("o1")])
        found = settle(engine, store, timeout=10)
    assert found[0]["state"] == "dead" and "waited" in found[0]["last_error"] and found[0]["dead_at"] is not None


def test_400_is_dead_lettered_at_once_with_its_evidence_and_no_secret(store: Store, engine: EmbeddedEngine) -> None:
    answer = orjson.dumps({"error": "field x is required", "echo": "x" * 5000})
    with run_sink(SECRET, lambda s, e: Answer(400, answer)) as sink:
        hook_route(store, sink.url, kinds=("org",))
        store.records.apply(T, [org("o1")])
        found = settle(engine, store)
    r = found[0]
    assert r["state"] == "dead" and r["attempts"] == 1 and r["last_status"] == 400 and r["dead_at"] is not None
    assert r["last_request"].startswith(f"POST {sink.url}") and '"kind":"org"' in r["last_request"]
    assert r["last_response"].startswith('{"error":"field x is required"') and len(r["last_response"]) <= 2048
    assert len(sink.received) == 1
    for col in ("last_request", "last_response", "last_error"):
        assert SECRET not in (r[col] or "")


def test_retries_run_out_into_the_dead_letter_queue_then_replay_delivers(store: Store, engine: EmbeddedEngine) -> None:
    up = threading.Event()
    with run_sink(SECRET, lambda s, e: Answer(200) if up.is_set() else Answer(500, b"boom")) as sink:
        hook_route(store, sink.url, kinds=("org",), retries=2)
        store.records.apply(T, [org("o1")])
        found = settle(engine, store)
        assert found[0]["state"] == "dead" and found[0]["attempts"] == 3 and "gave up after 3 attempts" in found[0]["last_error"]
        assert found[0]["last_status"] == 500 and found[0]["last_response"] == "boom"
        up.set()
        # replay (what `tessera deadletters replay` does): pending again, attempts from zero
        with store.engine.begin() as c:
            c.execute(update(outbox).where(outbox.c.id == found[0]["id"]).values(state="pending", attempts=0, next_attempt_at=utcnow(), dead_at=None))
        found = settle(engine, store)
    assert found[0]["state"] == "delivered" and len(sink.applied) == 1


def test_a_secret_in_an_error_is_scrubbed(store: Store, engine: EmbeddedEngine) -> None:
    """A destination that echoes the secret in its answer, or an exception quoting it: the
    stored row never holds it."""
    with run_sink(SECRET, lambda s, e: Answer(422, f"bad token {SECRET}".encode())) as sink:
        hook_route(store, sink.url, kinds=("org",))
        store.records.apply(T, [org("o1")])
        r = settle(engine, store)[0]
    assert r["state"] == "dead" and SECRET not in r["last_response"] and "***" in r["last_response"]


def test_an_unreachable_destination_opens_the_breaker_which_closes_after_a_trial(store: Store, engine: EmbeddedEngine) -> None:
    from tests.conftest import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    cid, _ = hook_route(store, url, kinds=("org",), retries=50, breaker_failures=3, breaker_seconds=1)
    store.records.apply(T, [org(f"o{i}") for i in range(8)])
    engine.drain()
    with store.engine.connect() as c:
        h = c.execute(select(connection_health).where(connection_health.c.connection_id == cid)).mappings().one()
    found = rows(store)
    attempted = [r for r in found if r["attempts"] > 0]
    # three calls failed, the breaker opened, the other rows were postponed, not attempted
    assert len(attempted) == 3 and h["consecutive_failures"] == 3 and h["open_until"] > utcnow()
    assert all(r["next_attempt_at"] == h["open_until"] for r in found if r["attempts"] == 0)
    assert "ConnectError" in h["last_error"]
    with run_sink(SECRET, port=port) as sink:
        found = settle(engine, store, timeout=10)
    assert all(r["state"] == "delivered" for r in found) and len(sink.applied) == 8
    with store.engine.connect() as c:
        h = c.execute(select(connection_health).where(connection_health.c.connection_id == cid)).mappings().one()
    assert h["consecutive_failures"] == 0 and h["open_until"] is None and h["last_success_at"] is not None


def test_the_threads_deliver_in_the_background(store: Store, engine: EmbeddedEngine) -> None:
    with run_sink(SECRET) as sink:
        hook_route(store, sink.url, kinds=("org",))
        engine.start()
        store.records.apply(T, [org(f"o{i}") for i in range(40)])
        deadline = time.monotonic() + 10
        while len(sink.applied) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        engine.stop()
    assert len(sink.applied) == 40 and sink.duplicates == 0
    assert all(r["state"] == "delivered" for r in rows(store))


def test_deliver_one_is_the_single_step_other_engines_call(store: Store) -> None:
    with run_sink(SECRET) as sink:
        hook_route(store, sink.url, kinds=("org",))
        store.records.apply(T, [org("o1")])
        r = rows(store)[0]
        assert deliver_one(store, default_wiring(), r["id"], worker="w").kind == "delivered"
        assert deliver_one(store, default_wiring(), r["id"], worker="w").kind == "skipped"
        assert deliver_one(store, default_wiring(), 999999, worker="w").kind == "skipped"
    assert len(sink.received) == 1


def test_a_crashed_workers_lease_runs_out_and_the_row_comes_back(store: Store) -> None:
    with run_sink(SECRET) as sink:
        hook_route(store, sink.url, kinds=("org",))
        store.records.apply(T, [org("o1")])
        crashed = EmbeddedEngine(store, default_wiring(), lease_seconds=0.3, scheduler=False)
        assert len(crashed.claim(10)) == 1  # claimed, then the process "dies"
        other = EmbeddedEngine(store, default_wiring(), lease_seconds=5, scheduler=False)
        assert other.claim(10) == []  # leased: nobody else takes it
        time.sleep(0.35)
        assert other.drain() == 1
    assert len(sink.applied) == 1


def test_policy_from_options() -> None:
    p = Policy.from_options({"timeout": 5, "retries": 2, "backoff": 0.5, "max_backoff": 10, "breaker_failures": 4,
                             "breaker_seconds": 20, "max_wait_for_dependency": 60, "page_size": 7})
    assert (p.timeout, p.retries, p.backoff, p.max_backoff, p.breaker_failures) == (5.0, 2, 0.5, 10.0, 4)
    assert Policy.from_options(None) == Policy()
    for bad in ({"timeout": 0}, {"retries": -1}, {"retries": 1.5}, {"backoff": "1"}, {"max_backoff": 0.1, "backoff": 1},
                {"breaker_seconds": True}):
        with pytest.raises(ConfigError):
            Policy.from_options(bad)
    # full jitter within the doubling ceiling, capped; Retry-After wins
    assert p.retry_delay(1, random=lambda: 0.999) < 0.5
    assert 7.9 < p.retry_delay(10, random=lambda: 0.8) <= 8.0
    assert p.retry_delay(1, 42.0) == 42.0
    assert not p.exhausted(2) and p.exhausted(3)


# --- pulls ----------------------------------------------------------------------------------------------------


class FakeSource:
    """A Source that applies real records page by page (what an adapter's source does)."""

    pages: list[list[Any]] = []
    fail_after: int | None = None
    cursors_seen: list[str | None] = []

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def pull(self, store: Store, route: Any, cursor: str | None) -> Iterator[PageResult]:
        FakeSource.cursors_seen.append(cursor)
        start = int(cursor or 0)
        for i, page in enumerate(FakeSource.pages[start:], start=start):
            if FakeSource.fail_after is not None and i >= FakeSource.fail_after:
                raise Retry(f"GET {self.connection.base_url}?token={self.connection.secret('token')} answered 503", status=503,
                            response="upstream unavailable")
            result = store.records.apply(route.tenant, page)
            n = sum(c.created + c.updated for c in result.counts.values())
            yield PageResult(cursor=str(i + 1), read=len(page), written=n, unchanged=len(page) - n)


class FakeAdapter:
    name = "fake"

    def routing_roles(self) -> dict[str, Any]:
        return {"fake.source": FakeSource}


@pytest.fixture
def wiring() -> Wiring:
    return Wiring.of(FakeAdapter())  # type: ignore[arg-type]


def pull_route(store: Store, *, schedule: int | None = None) -> uuid.UUID:
    cid = store.routing.create_connection(T, "src", adapter="fake", role="fake.source", system="sis", base_url="http://src.example",
                                          auth={"token": "env:HOOK_SECRET"})
    rid = uuid.uuid4()
    from gateway.store.tables import routes as routes_t

    with store.engine.begin() as c:
        c.execute(routes_t.insert().values(id=rid, tenant=T, name="pull", source_connection_id=cid, destination_connection_id=None,
                                           kinds='["org"]', mode="pull", enabled=True, schedule_seconds=schedule, created_at=utcnow()))
    return rid


def test_a_pull_stores_the_cursor_after_each_page_and_records_the_run(store: Store, wiring: Wiring) -> None:
    FakeSource.pages = [[org("a")], [org("b"), org("c")], [org("a")]]
    FakeSource.fail_after, FakeSource.cursors_seen = None, []
    rid = pull_route(store)
    seen: list[PageResult] = []
    run = run_pull(store, wiring, rid, progress=seen.append)
    assert run.status == "succeeded" and (run.read, run.written, run.unchanged) == (4, 3, 1) and run.cursor_after == "3"
    assert len(seen) == 3
    with store.engine.connect() as c:
        r = c.execute(select(routes).where(routes.c.id == rid)).mappings().one()
        sr = c.execute(select(sync_runs).where(sync_runs.c.id == run.id)).mappings().one()
    assert r["watermark"] == "3" and r["cursor_at"] is not None
    assert sr["status"] == "succeeded" and sr["read"] == 4 and sr["cursor_before"] is None and sr["finished_at"] is not None


def test_a_failing_pull_keeps_the_cursor_of_the_last_committed_page_and_no_secret(store: Store, wiring: Wiring) -> None:
    FakeSource.pages = [[org("a")], [org("b")], [org("c")]]
    FakeSource.fail_after, FakeSource.cursors_seen = 1, []
    rid = pull_route(store)
    run = run_pull(store, wiring, rid)
    assert run.status == "failed" and run.cursor_after == "1" and run.read == 1
    with store.engine.connect() as c:
        r = c.execute(select(routes).where(routes.c.id == rid)).mappings().one()
        sr = c.execute(select(sync_runs).where(sync_runs.c.id == run.id)).mappings().one()
    assert r["watermark"] == "1" and sr["status"] == "failed"
    errors = orjson.loads(sr["errors"])
    assert "503" in errors[0]["message"] and "upstream unavailable" in errors[0]["message"]
    assert SECRET not in sr["errors"] and "***" in sr["errors"]
    # the next run resumes from the stored cursor
    FakeSource.fail_after = None
    run = run_pull(store, wiring, rid)
    assert run.status == "succeeded" and FakeSource.cursors_seen[-1] == "1" and run.read == 2


def test_the_scheduler_starts_due_pull_routes(store: Store, wiring: Wiring) -> None:
    FakeSource.pages = [[org("a")]]
    FakeSource.fail_after, FakeSource.cursors_seen = None, []
    rid = pull_route(store, schedule=3600)
    e = engine_for("embedded", store, wiring, scheduler_poll=0.05, poll=0.05, threads=1)
    e.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with store.engine.connect() as c:
                runs = c.execute(select(sync_runs).where(sync_runs.c.route_id == rid)).mappings().all()
                nxt = c.scalar(select(routes.c.next_run_at).where(routes.c.id == rid))
            if runs and runs[0]["status"] != "running" and nxt and nxt > utcnow() + timedelta(seconds=3000) and nxt < utcnow() + timedelta(seconds=3601):
                break
            time.sleep(0.05)
        time.sleep(0.2)  # a second tick starts nothing: the route is not due again for an hour
    finally:
        e.stop()
    with store.engine.connect() as c:
        runs = c.execute(select(sync_runs).where(sync_runs.c.route_id == rid)).mappings().all()
    assert len(runs) == 1 and runs[0]["trigger"] == "schedule" and runs[0]["status"] == "succeeded"


def test_engine_for_refuses_an_unknown_engine(store: Store) -> None:
    with pytest.raises(ConfigError):
        engine_for("carrier-pigeon", store, default_wiring())


def test_one_dispatcher_per_sqlite_file_and_a_standby_takes_over(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single dispatcher; PostgreSQL shares the outbox between any number of workers")
    first = EmbeddedEngine(store, default_wiring(), threads=1, poll=0.02, scheduler=False)
    second = EmbeddedEngine(store, default_wiring(), threads=1, poll=0.02, scheduler=False)
    first.start()
    try:
        assert first._active.wait(2)
        second.start()
        time.sleep(0.3)
        assert not second._active.is_set()  # stands by
        first.stop()
        assert second._active.wait(5)  # and takes over when the first is gone
    finally:
        first.stop()
        second.stop()


def test_the_wait_for_a_dependency_counts_from_the_first_409_and_a_replay_restarts_it() -> None:
    from gateway.routing.delivery import waiting_since

    at = utcnow()
    assert waiting_since(f"unknown org o1 (waiting since {at.isoformat()})") == at
    assert waiting_since(None) is None and waiting_since("unknown org o1") is None


def test_a_change_committed_in_this_process_wakes_the_engine_before_its_poll(store: Store) -> None:
    e = EmbeddedEngine(store, default_wiring(), threads=1, poll=30, lease_seconds=10, scheduler=False)
    with run_sink(SECRET) as sink:
        hook_route(store, sink.url, kinds=("org",))
        e.start()
        try:
            assert e._active.wait(5)
            time.sleep(0.2)  # the thread is in its 30 s wait now
            store.records.apply(T, [org("o1")])
            deadline = time.monotonic() + 10
            while not sink.applied and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sink.applied and time.monotonic() < deadline
        finally:
            e.stop()
