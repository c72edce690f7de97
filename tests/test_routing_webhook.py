"""The built-in webhook destination: JSON change events signed with HMAC-SHA256 over
``timestamp.body``, the receiver's ``verify`` (signature, tolerance, replay by event id,
secret rotation), and the engine started in ``tessera serve``'s lifespan delivering to it."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson
import pytest

from gateway.errors import ConfigError
from gateway.routing.protocol import Connection, Delivery, Route
from gateway.routing.webhook import (
    SIGNATURE,
    TIMESTAMP,
    DuplicateEvent,
    WebhookDestination,
    WebhookVerificationError,
    event,
    sign,
    verify,
)
from gateway.store import Store
from tests.factories import org
from tests.routing_sink import run_sink

SECRET = "whsec-9fK2mQ7xLp"
T = "t1"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def connection(url: str = "http://127.0.0.1:9/hook", **kw: Any) -> Connection:
    return Connection(id=uuid.uuid4(), tenant=T, name="hook", adapter="webhook", role="webhook", system="lms", base_url=url,
                      auth=kw.pop("auth", {"signing_secret": "env:HOOK_SECRET"}), options=kw.pop("options", {"timeout": 5}))


def delivery(conn: Connection, record: Any, *, attempt: int = 1) -> Delivery:
    route = Route(id=uuid.uuid4(), tenant=T, name="to-lms", mode="push", kinds=("org",), source=None, destination=conn)
    digest = "ab" * 32
    return Delivery(route=route, outbox_id=1, record_kind="org", record_id=record.id if record else uuid.uuid4(), content_hash=digest,
                    idempotency_key=f"{route.id}:{record.id if record else 'x'}:{digest}", record=record, attempt=attempt)


def signed(body: bytes, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    return {TIMESTAMP: stamp, SIGNATURE: sign(secret, stamp, body), "Idempotency-Key": orjson.loads(body)["id"]}


def test_a_delivered_event_is_signed_over_timestamp_and_body() -> None:
    with run_sink(SECRET) as sink:
        dest = WebhookDestination(connection(sink.url), clock=lambda: 1_765_000_000.0)
        school = org("o1")
        sink.verify = False  # the clock above is fixed in the past: check by hand here
        dest.deliver(None, delivery(dest.connection, school, attempt=2))  # type: ignore[arg-type]
        dest.close()
    h = {k.lower(): v for k, v in sink.headers[0].items()}
    ev = sink.received[0]
    assert h["x-tessera-timestamp"] == "1765000000" and h["idempotency-key"] == ev["id"]
    assert ev["op"] == "upsert" and ev["kind"] == "org" and ev["record"]["native_id"] == "o1" and ev["attempt"] == 2
    # the signature, recomputed independently: HMAC-SHA256(secret, timestamp + "." + raw body)
    raw = orjson.dumps(ev)
    expected = hmac.new(SECRET.encode(), b"1765000000." + raw, hashlib.sha256).hexdigest()
    assert h["x-tessera-signature"] == f"sha256={expected}"
    assert verify(raw, sink.headers[0], SECRET, now=1_765_000_010)["id"] == ev["id"]


def test_verify_refuses_a_wrong_secret_a_tampered_body_and_missing_headers() -> None:
    body = orjson.dumps(event(delivery(connection(), org("o1"))))
    headers = signed(body)
    assert verify(body, headers, SECRET)["kind"] == "org"
    assert verify(body, {k.lower(): v for k, v in headers.items()}, SECRET)  # any header case
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(body, headers, "another-secret")
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(body.replace(b'"o1"', b'"o2"'), headers, SECRET)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(body, {TIMESTAMP: headers[TIMESTAMP]}, SECRET)
    with pytest.raises(WebhookVerificationError, match="Unix time"):
        verify(body, {**headers, TIMESTAMP: "yesterday"}, SECRET)
    with pytest.raises(WebhookVerificationError, match="differ"):
        verify(body, {**headers, "Idempotency-Key": "other"}, SECRET)
    # the timestamp is signed: moving it breaks the signature
    moved = {**headers, TIMESTAMP: str(int(headers[TIMESTAMP]) + 1)}
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(body, moved, SECRET)


def test_replay_protection_by_timestamp_tolerance_and_event_id() -> None:
    body = orjson.dumps(event(delivery(connection(), org("o1"))))
    old = int(time.time()) - 301
    with pytest.raises(WebhookVerificationError, match="stale or replayed"):
        verify(body, signed(body, old), SECRET)
    with pytest.raises(WebhookVerificationError, match="stale or replayed"):
        verify(body, signed(body, int(time.time()) + 301), SECRET)
    assert verify(body, signed(body, old), SECRET, tolerance=600)
    seen: set[str] = set()
    ev = verify(body, signed(body), SECRET, seen=seen)
    assert seen == {ev["id"]}
    with pytest.raises(DuplicateEvent) as info:
        verify(body, signed(body), SECRET, seen=seen)
    assert info.value.event["id"] == ev["id"]


def test_secret_rotation_accepts_any_current_secret() -> None:
    body = orjson.dumps(event(delivery(connection(), org("o1"))))
    assert verify(body, signed(body, secret="new-secret-1234"), [SECRET, "new-secret-1234"])
    with pytest.raises(WebhookVerificationError):
        verify(body, signed(body, secret="retired-secret"), [SECRET, "new-secret-1234"])


def test_a_tombstone_names_the_record() -> None:
    gone = org("o1", status="tobedeleted")
    ev = event(delivery(connection(), gone))
    assert ev["op"] == "delete" and "record" not in ev
    assert ev["tombstone"] == {"id": str(gone.id), "kind": "org", "source": "sis", "native_id": "o1", "status": "tobedeleted"}
    ev = event(delivery(connection(), None))
    assert ev["op"] == "delete" and ev["tombstone"]["status"] == "tobedeleted"


def test_a_webhook_needs_a_url_and_a_signing_secret_by_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        WebhookDestination(connection(url="ftp://x"))
    with pytest.raises(ConfigError, match="signing_secret"):
        WebhookDestination(connection(auth={}))
    monkeypatch.delenv("HOOK_SECRET")
    dest = WebhookDestination(connection())
    with pytest.raises(ConfigError, match="HOOK_SECRET"):  # named, never valued
        dest.deliver(None, delivery(dest.connection, org("o1")))  # type: ignore[arg-type]


def test_serve_starts_the_embedded_engine_in_its_lifespan(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``tessera serve`` runs: the app with ``dispatch.install``; a change written while
    it runs reaches the webhook, signed."""
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.config import Settings
    from gateway.routing.serve import install

    url = store.engine.url.render_as_string(hide_password=False)
    with run_sink(SECRET) as sink:
        cid = store.routing.create_connection(T, "hook", adapter="webhook", role="webhook", system="lms", base_url=sink.url,
                                              auth={"signing_secret": "env:HOOK_SECRET"}, options={"timeout": 5})
        store.routing.create_route(T, "to-lms", destination=cid, kinds=["org"])
        monkeypatch.setenv("TESSERA_ROUTING__ENGINE", "off")
        app = create_app(Settings(database_url=url), store=store)
        install(app)
        assert not hasattr(app.state, "routing_engine")
        monkeypatch.setenv("TESSERA_ROUTING__ENGINE", "embedded")
        app = create_app(Settings(database_url=url), store=store)
        install(app)
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            store.records.apply(T, [org("o1")])
            deadline = time.monotonic() + 10
            while not sink.applied and time.monotonic() < deadline:
                time.sleep(0.02)
        assert not app.state.routing_engine._running  # stopped with the app
    assert len(sink.applied) == 1 and not sink.refused
    ev = next(iter(sink.applied.values()))
    assert ev["record"]["native_id"] == "o1"
