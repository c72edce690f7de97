"""Several outbox rows in one request (``deliver_batch``, connection option ``batch_size``),
on SQLite and PostgreSQL, against a real HTTP sink: a signed batch of webhook events; a
refused batch sent again event by event so that only the refused record is dead-lettered or
waits; a 5xx batch retried whole; each row keeps its own outcome and attempt count."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from gateway.routing.dispatch import EmbeddedEngine
from gateway.routing.protocol import Reject, Retry, WaitForDependency, each_on_refusal
from gateway.routing.webhook import BATCH_TYPE, WebhookVerificationError, events_of, verify
from gateway.store import Store
from gateway.store.tables import outbox
from gateway.wiring import default as default_wiring
from tests.factories import org
from tests.routing_sink import Answer, Sink, run_sink

SECRET = "whsec-B4tch9pLq2Xz"
T = "t1"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


@pytest.fixture
def engine(store: Store) -> Iterator[EmbeddedEngine]:
    e = EmbeddedEngine(store, default_wiring(), threads=1, batch=64, poll=0.02, lease_seconds=10, scheduler=False,
                       random=lambda: 0.0)
    yield e
    e.stop()


def hook(store: Store, url: str, **options: Any) -> None:
    opts = {"timeout": 5, "backoff": 0.05, "max_backoff": 0.2, "retries": 3, "breaker_failures": 0, "batch_size": 10, **options}
    cid = store.routing.create_connection(T, "hook", adapter="webhook", role="webhook", system="lake", base_url=url,
                                          auth={"signing_secret": "env:HOOK_SECRET"}, options=opts)
    store.routing.create_route(T, "to-lake", destination=cid, kinds=["org"])


def rows(store: Store) -> dict[str, dict[str, Any]]:
    """native id of the org -> its outbox row."""
    with store.engine.connect() as c:
        found = [dict(r) for r in c.execute(select(outbox).order_by(outbox.c.id)).mappings()]
    ids = {org(f"o{i}").id: f"o{i}" for i in range(100)}
    return {ids[r["record_id"]]: r for r in found}


def native(ev: dict[str, Any]) -> str:
    return str(ev["record"]["native_id"])


def test_a_batch_of_events_is_one_signed_request_and_each_row_is_delivered_once(store: Store, engine: EmbeddedEngine) -> None:
    with run_sink(SECRET) as sink:
        hook(store, sink.url)
        store.records.apply(T, [org(f"o{i}") for i in range(25)])
        engine.drain(timeout=10)
    assert len(sink.received) == 3  # 10 + 10 + 5 events
    assert all(b["type"] == BATCH_TYPE for b in sink.received)
    assert [len(b["events"]) for b in sink.received] == [10, 10, 5]
    found = rows(store)
    assert all(r["state"] == "delivered" and r["attempts"] == 1 for r in found.values())
    # every row's own idempotency key arrived once, in commit order
    assert sorted(sink.applied) == sorted(r["idempotency_key"] for r in found.values()) and sink.duplicates == 0
    assert [e["id"] for b in sink.received for e in events_of(b)] == [r["idempotency_key"] for r in sorted(found.values(), key=lambda r: r["id"])]
    # the whole body is signed, and the request's Idempotency-Key is the batch's id
    first = sink.received[0]
    assert sink.headers[0]["Idempotency-Key"] == first["id"] and first["id"].startswith("batch:")
    body = orjson.dumps(first)  # the sender's bytes (orjson both ways)
    assert verify(body, sink.headers[0], SECRET)["id"] == first["id"]
    tampered = body.replace(first["events"][0]["content_hash"].encode(), b"0" * 64)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(tampered, sink.headers[0], SECRET)


def test_a_refused_batch_is_sent_event_by_event_and_only_the_refused_record_fails(store: Store, engine: EmbeddedEngine) -> None:
    def script(sink: Sink, ev: dict[str, Any]) -> Answer:
        names = [native(e) for e in events_of(ev)]
        if "o3" in names:
            return Answer(400, b'{"error": "o3 has no name we accept"}')
        if "o5" in names:
            return Answer(409, b'{"error": "unknown district"}')
        return Answer(200)

    with run_sink(SECRET, script) as sink:
        hook(store, sink.url, backoff=5, max_backoff=5)  # o5 is asked again in 2.5 s, after this test
        store.records.apply(T, [org(f"o{i}") for i in range(8)])
        engine.drain(timeout=10)
    found = rows(store)
    assert found["o3"]["state"] == "dead" and found["o3"]["last_status"] == 400 and found["o3"]["attempts"] == 1
    assert "o3 has no name" in found["o3"]["last_response"] and '"o3"' in found["o3"]["last_request"]
    assert found["o5"]["state"] == "pending" and found["o5"]["waiting_on"] and found["o5"]["attempts"] == 0
    others = [k for k in found if k not in ("o3", "o5")]
    assert all(found[k]["state"] == "delivered" and found[k]["attempts"] == 1 for k in others)
    assert sorted(native(e) for e in sink.applied.values()) == sorted(others) and sink.duplicates == 0
    # one batch request (refused), then one request per event
    assert sink.received[0]["type"] == BATCH_TYPE and all("events" not in e for e in sink.received[1:])
    assert len(sink.received) == 1 + 8


def test_a_5xx_batch_is_retried_whole_then_delivered_once(store: Store) -> None:
    engine = EmbeddedEngine(store, default_wiring(), threads=1, batch=64, poll=0.02, lease_seconds=10, scheduler=False,
                            random=lambda: 1.0)  # the whole backoff: 2 s
    calls: list[int] = []

    def script(sink: Sink, ev: dict[str, Any]) -> Answer:
        calls.append(len(events_of(ev)))
        return Answer(503, b"busy") if len(calls) == 1 else Answer(200)

    with run_sink(SECRET, script) as sink:
        # a backoff longer than the first drain takes on a loaded machine (0.5 s was not:
        # the retry came due inside it, and the rows were read back delivered already)
        hook(store, sink.url, backoff=2.0, max_backoff=2.0)
        store.records.apply(T, [org(f"o{i}") for i in range(6)])
        engine.drain(timeout=10)
        after_failure = rows(store)
        deadline = time.monotonic() + 10
        while any(r["state"] == "pending" for r in rows(store).values()) and time.monotonic() < deadline:
            engine.drain(timeout=5)
            time.sleep(0.05)
        engine.stop()
    assert calls[:2] == [6, 6]  # the same six again, in one request, never one by one
    assert all(r["state"] == "pending" and r["attempts"] == 1 and r["last_status"] == 503 for r in after_failure.values())
    found = rows(store)
    assert all(r["state"] == "delivered" and r["attempts"] == 2 for r in found.values())
    assert len(sink.applied) == 6 and sink.duplicates == 0


def test_each_on_refusal_keeps_a_retry_whole_and_splits_a_refusal() -> None:
    ds: list[Any] = [uuid.uuid4() for _ in range(3)]

    def refuse(_: Any) -> None:
        raise Reject("400")

    def busy(_: Any) -> None:
        raise Retry("503")

    def one(d: Any) -> None:
        if d == ds[1]:
            raise WaitForDependency("409")

    out = each_on_refusal(ds, refuse, one)
    assert out[0] is None and isinstance(out[1], WaitForDependency) and out[2] is None
    with pytest.raises(Retry):
        each_on_refusal(ds, busy, one)
    assert each_on_refusal(ds, lambda _: None, one) == [None, None, None]


def test_a_failed_batch_is_one_failed_call_for_the_circuit_breaker(store: Store) -> None:
    from gateway.store.tables import connection_health

    engine = EmbeddedEngine(store, default_wiring(), threads=1, batch=64, poll=0.02, lease_seconds=10, scheduler=False,
                            random=lambda: 1.0)  # the whole backoff: 5 s, after this test
    with run_sink(SECRET, lambda sink, ev: Answer(503, b"busy")) as sink:
        hook(store, sink.url, breaker_failures=3, breaker_seconds=60, backoff=5, max_backoff=5)
        store.records.apply(T, [org(f"o{i}") for i in range(6)])
        engine.drain(timeout=10)
        engine.stop()
    assert len(sink.received) == 1  # one request for the six
    with store.engine.connect() as c:
        health = c.execute(select(connection_health.c.consecutive_failures, connection_health.c.open_until)).one()
    assert health.consecutive_failures == 1 and health.open_until is None  # not six failures: the breaker stays closed
