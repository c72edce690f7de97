"""The routing API on a real server (SQLite and PostgreSQL): /v1/connections, /v1/routes,
health, sync runs, dead letters, /metrics; scope admin, tenant isolation, no secret ever
returned. Roles come from a small fake adapter (tests/routing_fake.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert

from gateway.config import Settings
from gateway.model import utcnow
from gateway.routing import repository
from gateway.routing.engine import SyncRunSummary
from gateway.store import Store
from gateway.store import tables as t
from tests.conftest import Api, serve
from tests.routing_fake import fake_wiring

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
def routing_api(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from gateway.api.app import create_app

    monkeypatch.setenv("SIS_SECRET", SECRET)
    with ExitStack() as stack:

        def start(**overrides: object) -> Api:
            settings = Settings(database_url=store.engine.url.render_as_string(hide_password=False), **overrides)
            base = stack.enter_context(serve(create_app(settings, store=store, wiring=fake_wiring())))
            return Api(base, store, settings)

        yield start


def admin(api: Api, tenant: str = "t1") -> httpx.Client:
    return api.auth_client(tenant, ["admin"])


SIS = {"name": "sis", "role": "fake.source", "base_url": "https://sis.example.org/ims/oneroster/rostering/v1p2",
       "auth": {"client_id": "env:SIS_ID", "client_secret": "env:SIS_SECRET"}, "options": {"timeout": 10, "retries": 3}}
LMS = {"name": "lms", "role": "fake.sink", "base_url": "https://lms.example.org"}


def setup_routes(c: httpx.Client) -> tuple[dict, dict, dict, dict]:
    sis = c.post("/v1/connections", json=SIS)
    assert sis.status_code == 201, sis.text
    lms = c.post("/v1/connections", json=LMS)
    assert lms.status_code == 201, lms.text
    pull = c.post("/v1/routes", json={"name": "roster-in", "mode": "pull", "source": "sis", "kinds": ["org", "person"], "schedule": "15m"})
    assert pull.status_code == 201, pull.text
    push = c.post("/v1/routes", json={"name": "people-out", "mode": "push", "destination": "lms", "kinds": ["person"]})
    assert push.status_code == 201, push.text
    return sis.json(), lms.json(), pull.json(), push.json()


def test_crud_and_no_secret_is_ever_returned(routing_api) -> None:
    api = routing_api()
    c = admin(api)
    sis, lms, pull, push = setup_routes(c)
    assert sis["auth"] == {"client_id": "env:SIS_ID", "client_secret": "env:SIS_SECRET"}
    assert sis["adapter"] == "fake" and sis["system"] == "sis" and sis["origin"] == "api"
    assert sis["unset_variables"] == ["SIS_ID"]  # said at once, not refused: a worker may have it
    assert pull["source"] == "sis" and pull["destination"] is None and pull["schedule_seconds"] == 900
    assert pull["next_run_at"] is not None  # a new scheduled pull is due at once
    assert push["destination_id"] == lms["id"] and push["kinds"] == ["person"]
    bodies = [c.get(p).text for p in ("/v1/connections", "/v1/routes", f"/v1/connections/{sis['id']}", f"/v1/routes/{pull['id']}")]
    assert all(SECRET not in b for b in bodies)

    # a secret inline is refused, wherever it is put
    bad = c.post("/v1/connections", json={**SIS, "name": "x", "auth": {"client_secret": SECRET}})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["field"] == "auth.client_secret" and SECRET not in bad.text
    bad = c.post("/v1/connections", json={**LMS, "name": "y", "options": {"api_key": "abc"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "options.api_key"

    # change, then disable a route; PATCH checks the whole result
    r = c.patch(f"/v1/routes/{pull['id']}", json={"kinds": ["org", "person", "course"], "schedule": "1h"})
    assert r.status_code == 200, r.text
    assert r.json()["kinds"] == ["course", "org", "person"] and r.json()["schedule_seconds"] == 3600
    r = c.patch(f"/v1/routes/{pull['id']}", json={"enabled": False})
    assert r.json()["enabled"] is False
    r = c.patch(f"/v1/routes/{push['id']}", json={"kinds": ["evidence"]})
    assert r.status_code == 422 and "does not deliver 'evidence'" in r.text
    r = c.patch(f"/v1/connections/{sis['id']}", json={"base_url": "https://sis2.example.org"})
    assert r.status_code == 200 and r.json()["base_url"] == "https://sis2.example.org" and r.json()["auth"] == sis["auth"]
    r = c.patch(f"/v1/connections/{sis['id']}", json={"role": "fake.both", "base_url": None})
    assert r.status_code == 200 and r.json()["role"] == "fake.both" and r.json()["base_url"] is None

    # a duplicate name is a conflict; a used connection cannot go; a route without history can
    assert c.post("/v1/connections", json=LMS).status_code == 409
    r = c.delete(f"/v1/connections/{lms['id']}")
    assert r.status_code == 409 and "people-out" in r.text
    assert c.delete(f"/v1/routes/{push['id']}").status_code == 204
    assert c.delete(f"/v1/connections/{lms['id']}").status_code == 204
    assert c.get(f"/v1/connections/{lms['id']}").status_code == 404


def test_validation_names_each_field(routing_api) -> None:
    c = admin(routing_api())
    c.post("/v1/connections", json=LMS)
    r = c.post("/v1/connections", json={"name": "n", "role": "nobody.knows"})
    assert r.status_code == 422 and "unknown connection role 'nobody.knows'" in r.text and "fake.source" in r.text
    r = c.post("/v1/connections", json={"name": "n", "role": "fake.sink", "tenant": "t2"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tenant"
    r = c.post("/v1/routes", json={"name": "r", "mode": "pull", "source": "lms", "kinds": ["person", "pets"]})
    assert r.status_code == 422
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert "unknown record kind" in errors["kinds.1"] and "cannot be pulled from" in errors["source"]
    r = c.post("/v1/routes", json={"name": "r", "mode": "push", "kinds": ["person"], "schedule": 60})
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"destination", "schedule"}
    r = c.post("/v1/routes", json={"name": "r", "mode": "push", "destination": "lms", "kinds": ["fake.thing"], "mapping": "../x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "mapping"
    r = c.post("/v1/routes", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_scope_and_tenant_isolation(routing_api) -> None:
    api = routing_api()
    sis, _, pull, _ = setup_routes(admin(api, "t1"))
    other = admin(api, "t2")
    assert other.get("/v1/connections").json()["items"] == []
    assert other.get("/v1/routes").json()["items"] == []
    for path in (f"/v1/connections/{sis['id']}", f"/v1/routes/{pull['id']}", f"/v1/routes/{pull['id']}/health"):
        assert other.get(path).status_code == 404
    assert other.patch(f"/v1/routes/{pull['id']}", json={"enabled": False}).status_code == 404
    assert other.delete(f"/v1/connections/{sis['id']}").status_code == 404
    # the same names are free in another tenant
    assert other.post("/v1/connections", json=LMS).status_code == 201
    reader = api.auth_client("t1", ["roster.readonly"])
    r = reader.get("/v1/routes")
    assert r.status_code == 403 and "admin" in r.headers["www-authenticate"]
    assert api.client().get("/v1/connections").status_code == 401


def _dead_row(store: Store, tenant: str, route_id: uuid.UUID, n: int) -> int:
    now = utcnow()
    with store.engine.begin() as conn:
        res = conn.execute(insert(t.outbox).values(
            tenant=tenant, route_id=route_id, record_kind="person", record_id=uuid.uuid4(), content_hash=f"h{n}",
            idempotency_key=f"{route_id}:{n}", state="dead", attempts=6, next_attempt_at=now, created_at=now - timedelta(minutes=5),
            dead_at=now, last_status=422, last_error="the destination answered 422",
            last_request="PUT https://lms.example.org/people/p1\n\n{\"name\": \"Ada\"}", last_response='{"error": "bad grade"}'))
        return int(res.inserted_primary_key[0])


def test_health_runs_and_dead_letters(routing_api, store: Store) -> None:
    api = routing_api()
    c = admin(api)
    sis, lms, pull, push = setup_routes(c)
    pull_id, push_id = uuid.UUID(pull["id"]), uuid.UUID(push["id"])
    route = repository.load_route(store, pull_id)
    assert route.source is not None and route.source.auth["client_secret"] == "env:SIS_SECRET" and route.destination is None
    # three runs: paging newest first
    runs = []
    for i in range(3):
        run_id = repository.start_run(store, route, trigger="schedule", now=utcnow() - timedelta(minutes=10 - i))
        repository.finish_run(store, SyncRunSummary(run_id, pull_id, "succeeded" if i < 2 else "failed", read=10 + i, written=i,
                                                    cursor_after=f"c{i}", errors=[{"message": "row 3 refused"}] if i == 2 else []))
        runs.append(run_id)
    repository.save_cursor(store, pull_id, "c2", now=utcnow() - timedelta(seconds=90))
    page = c.get("/v1/sync-runs", params={"route_id": pull["id"], "limit": 2}).json()
    assert [r["id"] for r in page["items"]] == [str(runs[2]), str(runs[1])]
    assert page["items"][0]["errors"] == [{"message": "row 3 refused"}] and page["items"][0]["read"] == 12
    rest = c.get(page["next"].replace(api.base_url, "")).json()
    assert [r["id"] for r in rest["items"]] == [str(runs[0])] and rest["next_cursor"] is None
    assert c.get("/v1/sync-runs", params={"cursor": "garbage"}).status_code == 422
    assert c.get(f"/v1/sync-runs/{runs[0]}").json()["cursor_after"] == "c0"
    assert admin(api, "t2").get("/v1/sync-runs").json()["items"] == []

    health = c.get(f"/v1/routes/{pull['id']}/health").json()
    assert health["status"] == "failing" and health["last_run"]["id"] == str(runs[2])
    assert 85 <= health["cursor_age_seconds"] < 200 and health["breaker"] is None

    ids = [_dead_row(store, "t1", push_id, n) for n in range(3)]
    with store.engine.begin() as conn:
        conn.execute(insert(t.connection_health).values(connection_id=uuid.UUID(lms["id"]), tenant="t1", consecutive_failures=5,
                                                        open_until=utcnow() + timedelta(minutes=1), last_error="503"))
    health = c.get(f"/v1/routes/{push['id']}/health").json()
    assert health["dead"] == 3 and health["pending"] == 0 and health["breaker"]["state"] == "open"
    assert health["status"] == "breaker-open"

    listed = c.get("/v1/dead-letters", params={"limit": 2}).json()
    assert [d["id"] for d in listed["items"]] == ids[:2] and listed["next_cursor"]
    one = c.get(f"/v1/dead-letters/{ids[0]}").json()
    assert one["attempts"] == 6 and one["last_status"] == 422 and one["response"] == '{"error": "bad grade"}'
    assert one["request"].startswith("PUT https://lms.example.org/people/p1")
    assert admin(api, "t2").get(f"/v1/dead-letters/{ids[0]}").status_code == 404
    assert c.get(f"/v1/dead-letters/{2**64}").status_code == 422 and c.post("/v1/dead-letters/0/replay").status_code == 422
    assert admin(api, "t2").post(f"/v1/dead-letters/{ids[0]}/replay").status_code == 404

    assert c.post(f"/v1/dead-letters/{ids[0]}/replay").json() == {"replayed": 1}
    assert c.post(f"/v1/dead-letters/{ids[0]}/replay").status_code == 404  # pending now: no dead letter
    assert c.delete(f"/v1/dead-letters/{ids[1]}").json() == {"discarded": 1}
    assert [d["id"] for d in c.get("/v1/dead-letters", params={"state": "discarded"}).json()["items"]] == [ids[1]]
    health = c.get(f"/v1/routes/{push['id']}/health").json()
    assert health["dead"] == 1 and health["pending"] == 1 and health["oldest_pending_seconds"] >= 290
    assert c.post("/v1/dead-letters/replay", json={"route_id": push["id"]}).json() == {"replayed": 1}
    assert c.post("/v1/dead-letters/replay", json={"ids": "all"}).status_code == 422
    # what a remote echoed back is shown with the tenant's secret values masked
    leaky = _dead_row(store, "t1", push_id, 9)
    from sqlalchemy import update

    with store.engine.begin() as conn:
        conn.execute(update(t.outbox).where(t.outbox.c.id == leaky).values(
            last_response=f'{{"error": "bad token {SECRET}"}}', last_error=f"refused {SECRET}"))
    run_id = repository.start_run(store, route)
    repository.finish_run(store, SyncRunSummary(run_id, pull_id, "failed", errors=[{"message": f"401 for {SECRET}"}]))
    for path in (f"/v1/dead-letters/{leaky}", "/v1/dead-letters", f"/v1/sync-runs/{run_id}", "/v1/sync-runs",
                 f"/v1/routes/{pull['id']}/health"):
        body = c.get(path).text
        assert SECRET not in body and "[redacted]" in body, path
    # a route with history is disabled, never deleted
    r = c.delete(f"/v1/routes/{push['id']}")
    assert r.status_code == 409 and "disable" in r.text


def test_metrics_need_their_scope_unless_public(routing_api, store: Store) -> None:
    api = routing_api()
    c = admin(api)
    _, _, _, push = setup_routes(c)
    _dead_row(store, "t1", uuid.UUID(push["id"]), 1)
    _, lms2, _, push2 = setup_routes(admin(api, "t2"))  # the same names in another tenant add up
    _dead_row(store, "t2", uuid.UUID(push2["id"]), 2)
    with store.engine.begin() as conn:
        conn.execute(insert(t.connection_health).values(connection_id=uuid.UUID(lms2["id"]), tenant="t2", consecutive_failures=9,
                                                        open_until=utcnow() + timedelta(minutes=1)))
    assert api.client().get("/metrics").status_code == 401
    assert c.get("/metrics").status_code == 403  # admin is not metrics
    r = api.auth_client("t1", ["metrics"]).get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'tessera_dead_letters{route="people-out"} 2.0' in r.text
    assert 'tessera_connection_breaker_open{connection="lms"} 1.0' in r.text
    assert 'tessera_outbox_pending{route="people-out"} 0.0' in r.text
    public = routing_api(metrics_public=True)
    assert public.client().get("/metrics").status_code == 200
