"""Evidence derived behind the acknowledgement (``TESSERA_XAPI__DERIVE=async``,
``adapters/xapi/derive.py``): the LRS answers once statements are durable, a consumer of the
statement log derives their evidence and mastery states in order and exactly once, voiding
works in either order, and the evidence API says how far it has come and waits for it.

Every read of evidence after a POST goes through ``consistent_through=`` (or drains the
deriver in the test's thread): never a sleep."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from adapters.xapi import XapiAdapter
from adapters.xapi.derive import Deriver, derivers_of
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.tables import xapi_derive_cursor, xapi_statements
from gateway.config import Settings
from gateway.errors import NotFound
from gateway.model import Identifier, record_id
from gateway.store import tables as t
from tests import factories as f
from tests.conftest import Api, serve

ADL = "http://adlnet.gov/expapi/verbs/"
ACTOR = {"objectType": "Agent", "account": {"homePage": "http://www.example.com", "name": "1625378"}}
CASE_URI = "https://case.example/uri/rl31"


def stmt(verb: str = "passed", **extra: object) -> dict:
    return {"id": str(uuid.uuid4()), "actor": ACTOR, "verb": {"id": ADL + verb, "display": {"en-US": verb}},
            "object": {"id": "http://www.example.com/quiz/1", "objectType": "Activity"},
            "result": {"score": {"scaled": 0.9}}, "context": {"contextActivities": {"grouping": [{"id": CASE_URI}]}}, **extra}


def void(target: str) -> dict:
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.com"},
            "verb": {"id": ADL + "voided"}, "object": {"objectType": "StatementRef", "id": target}}


def _aligned_lrs(store) -> tuple[Settings, Any]:
    """A learner whose xAPI account the statements name and a competency they align to, and
    an LRS app (not yet serving) on the store."""
    from gateway.api.app import create_app

    school = f.org()
    kid = f.person("u1", school, identifiers=[Identifier(system="lms", kind="xapi.account", value="http://www.example.com|1625378")])
    fw = f.framework()
    comp = f.competency("RL.3.1", fw, identifiers=[Identifier(system="case", kind="case.uri", value=CASE_URI)])
    store.records.apply(f.T, [school, kid, fw, comp])
    settings = Settings(database_url=store.engine.url.render_as_string(hide_password=False), metrics_public=True)
    return settings, create_app(settings, store=store, registry=[XapiAdapter()])


@pytest.fixture
def site(store, monkeypatch: pytest.MonkeyPatch):
    """An LRS in async mode on a real port, with a learner and a competency statements align to;
    yields (api, lrs client, evidence reader, the app's deriver)."""

    monkeypatch.setenv("TESSERA_XAPI__DERIVE", "async")
    monkeypatch.setenv("TESSERA_XAPI__DERIVE_WAIT_SECONDS", "10")
    settings, app = _aligned_lrs(store)
    (deriver,) = derivers_of(store)
    with serve(app) as base:
        api = Api(base, store, settings)
        cid, secret = api.credentials(f.T, ["xapi/all"])
        lrs = httpx.Client(base_url=base + "/xapi", auth=httpx.BasicAuth(cid, secret), timeout=30,
                           headers={"X-Experience-API-Version": "1.0.3"})
        reader = api.auth_client(f.T, ["evidence.readonly", "mastery.readonly"])
        try:
            yield api, lrs, reader, deriver
        finally:
            deriver.stop()
            lrs.close()
            reader.close()


def evidence_of(store, statement_id: str):
    try:
        return store.records.get(f.T, "evidence", record_id(f.T, "evidence", "xapi", statement_id))
    except NotFound:
        return None


def test_statements_are_acknowledged_durable_and_their_evidence_and_mastery_follow(site):
    api, lrs, reader, _ = site
    batch = [stmt(), stmt(), stmt()]
    r = lrs.post("/statements", json=batch)
    assert r.status_code == 200
    with api.store.engine.connect() as conn:  # durable and marked for the deriver before the answer
        marks = conn.execute(select(xapi_statements.c.deferred).where(xapi_statements.c.tenant == f.T)).scalars().all()
    assert marks == [True, True, True]
    page = reader.get("/v1/evidence", params={"consistent_through": batch[-1]["id"]})
    assert page.status_code == 200
    assert page.headers["X-Tessera-Consistent"] == "true"
    assert {e["native_id"] for e in page.json()["items"]} == {s["id"] for s in batch}
    assert all(e["competency_id"] for e in page.json()["items"])
    states = reader.get("/v1/mastery-states", params={"consistent_through": batch[-1]["id"]})
    assert states.headers["X-Tessera-Consistent"] == "true"
    assert len(states.json()["items"]) == 1 and states.json()["items"][0]["level"]
    # the statement resource answers at once, whatever the deriver does
    got = lrs.get("/statements", params={"statementId": batch[0]["id"]})
    assert got.status_code == 200 and got.json()["id"] == batch[0]["id"]
    through = datetime.fromisoformat(page.headers["X-Tessera-Consistent-Through"].replace("Z", "+00:00"))
    stored = datetime.fromisoformat(got.json()["stored"].replace("Z", "+00:00"))
    assert through >= stored


def test_voiding_works_in_either_order(site):
    api, lrs, reader, _ = site
    first = stmt()
    lrs.post("/statements", json=[first])
    voiding = void(first["id"])
    lrs.post("/statements", json=[voiding])
    # the voiding statement comes before the statement it voids (allowed: Data 2.3.2)
    second = stmt()
    early = void(second["id"])
    lrs.post("/statements", json=[early])
    lrs.post("/statements", json=[second])
    r = reader.get("/v1/evidence", params={"consistent_through": second["id"]})
    assert r.headers["X-Tessera-Consistent"] == "true"
    assert evidence_of(api.store, first["id"]).voided is True
    assert evidence_of(api.store, second["id"]).voided is True
    assert evidence_of(api.store, voiding["id"]) is None  # a voiding statement is no evidence


def test_a_wait_is_bounded_and_says_when_the_evidence_is_not_there_yet(site, monkeypatch: pytest.MonkeyPatch):
    api, lrs, reader, deriver = site
    deriver.stop()
    monkeypatch.setattr(deriver, "notify", lambda: None)  # nothing derives until the test drains
    consistency = next(iter(_consistencies(api.store)))
    monkeypatch.setattr(consistency, "wait_seconds", 0.3)
    s = stmt()
    lrs.post("/statements", json=[s])
    r = reader.get("/v1/evidence", params={"consistent_through": s["id"]})
    assert r.status_code == 200
    assert r.headers["X-Tessera-Consistent"] == "false"
    assert r.json()["items"] == []
    stored = datetime.fromisoformat(lrs.get("/statements", params={"statementId": s["id"]}).json()["stored"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(r.headers["X-Tessera-Consistent-Through"].replace("Z", "+00:00")) < stored
    # a time target: every statement stored at or before it
    at = stored.isoformat()
    assert reader.get("/v1/evidence", params={"consistent_through": at}).headers["X-Tessera-Consistent"] == "false"
    metrics = reader.get("/metrics").text
    assert "tessera_xapi_derive_lag_statements 1.0" in metrics
    assert deriver.drain() == 1
    assert reader.get("/v1/evidence", params={"consistent_through": at}).headers["X-Tessera-Consistent"] == "true"
    assert [e["native_id"] for e in reader.get("/v1/evidence").json()["items"]] == [s["id"]]
    assert "tessera_xapi_derive_lag_statements 0.0" in reader.get("/metrics").text


def test_unreadable_targets_are_refused(site):
    _, _, reader, _ = site
    for target in ("yesterday", str(uuid.uuid4())):
        r = reader.get("/v1/evidence", params={"consistent_through": target})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "consistent_through"


def test_two_consumers_derive_each_statement_exactly_once_and_a_new_one_resumes_at_the_cursor(site, monkeypatch):
    api, lrs, _, deriver = site
    deriver.stop()
    monkeypatch.setattr(deriver, "notify", lambda: None)
    ids = []
    for _ in range(6):
        batch = [stmt() for _ in range(50)]
        ids += [s["id"] for s in batch]
        assert lrs.post("/statements", json=batch).status_code == 200
    deriver.batch = 40  # several rounds, so the two consumers interleave
    other = Deriver(api.store, EvidenceMapper(api.store), batch=40)
    written: list[uuid.UUID] = []  # evidence ids of every batch a consumer wrote (apply runs after the cursor moved)
    apply = api.store.records.apply

    def counting(tenant, batch, **kw):
        written.extend(batch.by_id.get("evidence", ()))
        return apply(tenant, batch, **kw)

    monkeypatch.setattr(api.store.records, "apply", counting)
    threads = [threading.Thread(target=d.drain) for d in (deriver, other)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ev = t.evidence
    with api.store.engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(ev).where(ev.c.tenant == f.T))
        created = conn.scalar(select(func.count()).select_from(t.changes).where(
            t.changes.c.tenant == f.T, t.changes.c.record_kind == "evidence", t.changes.c.op == "created"))
        cursor = conn.scalar(select(xapi_derive_cursor.c.seq))
        top = conn.scalar(select(func.max(xapi_statements.c.seq)))
    assert count == created == len(ids)
    assert len(written) == len(set(written)) == len(ids)  # each statement derived once, by one of the two
    assert cursor == top
    # a consumer started later (a restart) finds nothing left to do, then takes what comes
    late = stmt()
    lrs.post("/statements", json=[late])
    fresh = Deriver(api.store, EvidenceMapper(api.store))
    assert fresh.drain() == 1
    assert evidence_of(api.store, late["id"]) is not None
    assert fresh.drain() == 0


def test_a_refused_statement_is_passed_over_and_counted_and_a_database_failure_moves_nothing(site, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from adapters.xapi.derive import FAILURES

    api, lrs, _, deriver = site
    deriver.stop()
    monkeypatch.setattr(deriver, "notify", lambda: None)
    batch = [stmt(), stmt(), stmt()]
    lrs.post("/statements", json=batch)
    real = deriver.mapper.map

    def down(tenant, statements, **kw):
        raise OperationalError("SELECT 1", {}, Exception("the database went away"))

    monkeypatch.setattr(deriver.mapper, "map", down)
    with pytest.raises(OperationalError):
        deriver.drain()
    with api.store.engine.connect() as conn:
        assert conn.scalar(select(xapi_derive_cursor.c.seq)) < conn.scalar(select(func.max(xapi_statements.c.seq)))

    def refuse_one(tenant, statements, **kw):
        if any(s["id"] == batch[1]["id"] for s in statements):
            raise ValueError("refused")
        return real(tenant, statements, **kw)

    monkeypatch.setattr(deriver.mapper, "map", refuse_one)
    before = FAILURES._value.get()
    deriver.drain()
    assert FAILURES._value.get() == before + 1
    assert [evidence_of(api.store, s["id"]) is not None for s in batch] == [True, False, True]
    assert deriver.lag()[0] == 0


def test_backpressure_holds_a_batch_while_too_many_statements_wait(site, monkeypatch):
    import gc
    import time

    from adapters.xapi.statements import StatementStore

    _, lrs, _, deriver = site
    deriver.stop()
    monkeypatch.setattr(deriver, "notify", lambda: None)
    (store,) = [o for o in gc.get_objects() if isinstance(o, StatementStore) and o.deriver is deriver]
    monkeypatch.setattr(store, "max_lag", 2)
    monkeypatch.setattr(store, "lag_wait", 0.5)
    held: list[float] = []  # seconds each batch waited in admit
    admit = deriver.admit

    def timed(max_lag, timeout):
        t0 = time.monotonic()
        admit(max_lag, timeout)
        held.append(time.monotonic() - t0)

    monkeypatch.setattr(deriver, "admit", timed)
    assert lrs.post("/statements", json=[stmt(), stmt(), stmt()]).status_code == 200  # none waiting: admitted
    deriver._waiting_at = -1.0  # the lag is read at most every 50 ms: read it again now
    assert lrs.post("/statements", json=[stmt()]).status_code == 200  # 3 waiting > 2: held, then let through
    deriver.drain()
    deriver._waiting_at = -1.0  # forget the lag read before the drain
    assert lrs.post("/statements", json=[stmt()]).status_code == 200  # caught up: admitted
    assert held[0] < 0.5 and held[1] >= 0.5 and held[2] < 0.5


def test_inline_mode_says_it_is_consistent_at_once(api, lrs):
    """The default (inline): evidence commits with the statements; the header is there and a
    wait returns at once."""
    client = lrs()
    s = stmt()
    assert client.post("/statements", json=[s]).status_code == 200
    with api.auth_client("t1", ["evidence.readonly"]) as reader:
        r = reader.get("/v1/evidence", params={"consistent_through": s["id"]})
    assert r.headers["X-Tessera-Consistent"] == "true"
    assert "X-Tessera-Consistent-Through" in r.headers
    assert [e["native_id"] for e in r.json()["items"]] == [s["id"]]


def _consistencies(store):
    from gateway.store.evidence import _CONSISTENCY

    return _CONSISTENCY[store].values()


pytest_plugins = ["tests.xapi_fixtures"]


def test_tessera_worker_runs_the_consumer_beside_its_own_work(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tessera worker`` derives the evidence of statements acknowledged while no server
    consumes (the issue: the consumer runs in the server and worker processes)."""
    import os
    import signal
    import time

    from adapters.xapi.statement_store import StatementStore
    from adapters.xapi.statements import complete
    from gateway import wiring

    monkeypatch.setenv("TESSERA_XAPI__DERIVE", "async")
    monkeypatch.delenv("TESSERA_CONFIG", raising=False)
    previous = wiring.install(None)  # the adapters' settings read afresh, from this environment
    store = wiring.open_store(cli.url)
    try:
        store.migrate()
        school = f.org()
        kid = f.person("u1", school, identifiers=[Identifier(system="lms", kind="xapi.account", value="http://www.example.com|1625378")])
        fw = f.framework()
        comp = f.competency("RL.3.1", fw, identifiers=[Identifier(system="case", kind="case.uri", value=CASE_URI)])
        store.records.apply(f.T, [school, kid, fw, comp])
        mapper = EvidenceMapper(store)
        acknowledged = Deriver(store, mapper)
        acknowledged.notify = lambda: None  # type: ignore[method-assign]  # no consumer in this process
        batch = [stmt(), stmt(), stmt()]
        StatementStore(store, mapper, deriver=acknowledged).save(
            f.T, batch, stored=complete(batch, {"objectType": "Agent", "mbox": "mailto:lrs@example.com"}, "1.0.3"), authority="t")
        assert all(evidence_of(store, s["id"]) is None for s in batch)

        def stop_when_derived() -> None:  # the worker runs until SIGTERM: sent once the evidence is there (or after 30 s)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(evidence_of(store, s["id"]) is None for s in batch):
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        watcher = threading.Thread(target=stop_when_derived)
        watcher.start()
        result = cli("worker")
        watcher.join()
        assert "Deriver) started" in result.stderr and "stopped" in result.stderr
        assert all(evidence_of(store, s["id"]) is not None for s in batch)
        with store.engine.connect() as conn:
            assert conn.scalar(select(xapi_derive_cursor.c.seq)) == conn.scalar(select(func.max(xapi_statements.c.seq)))
    finally:
        store.dispose()
        wiring.install(previous)


def test_a_server_told_not_to_derive_leaves_the_consumer_to_the_worker(store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TESSERA_XAPI__DERIVE_IN_SERVER=false``: the server acknowledges and never derives,
    even when a read waits for the evidence; ``tessera worker``'s consumer derives it."""
    import time

    from adapters.xapi.settings import XapiSettings
    from gateway.config import load_adapter_settings

    monkeypatch.setenv("TESSERA_XAPI__DERIVE", "async")
    monkeypatch.setenv("TESSERA_XAPI__DERIVE_IN_SERVER", "false")
    monkeypatch.setenv("TESSERA_XAPI__DERIVE_WAIT_SECONDS", "0.3")
    settings, app = _aligned_lrs(store)
    (server_deriver,) = derivers_of(store)
    batch = [stmt(), stmt(), stmt()]
    with serve(app) as base:
        api = Api(base, store, settings)
        cid, secret = api.credentials(f.T, ["xapi/all"])
        with httpx.Client(base_url=base + "/xapi", auth=httpx.BasicAuth(cid, secret), timeout=30,
                          headers={"X-Experience-API-Version": "1.0.3"}) as lrs:
            assert lrs.post("/statements", json=batch).status_code == 200
            reader = api.auth_client(f.T, ["evidence.readonly"])
            page = reader.get("/v1/evidence", params={"consistent_through": batch[-1]["id"]})
            reader.close()
            assert page.status_code == 200 and page.headers["X-Tessera-Consistent"] == "false"
            time.sleep(0.3)
            assert server_deriver._thread is None
            assert all(evidence_of(store, s["id"]) is None for s in batch)
            # the worker's consumer (XapiAdapter.consumers, what `tessera worker` starts) derives
            (worker,) = XapiAdapter().consumers(store, load_adapter_settings(XapiSettings))
            try:
                assert worker.consume
                worker.drain()
            finally:
                worker.stop()
            assert all(evidence_of(store, s["id"]) is not None for s in batch)
