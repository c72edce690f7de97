"""OneRoster routing roles against a second Tessera on a real port (``routing_support``):
``oneroster.rest.client`` pulls its OneRoster 1.2 provider into the store under test
(incremental with the overlap window, tobedeleted and full-pull tombstones, a repeated page
and a truncated page fail the run without moving the cursor), and ``oneroster.gradebook``
PUTs mastery as assessmentResults into its gradebook service (idempotent on retry; an
unknown student waits for its dependency)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from adapters.oneroster.routing import GradebookDestination, RosterSource, read_cursor
from gateway.model import MasteryMethod, MasteryState, Status, record_id
from gateway.routing.protocol import Reject, Retry, WaitForDependency
from gateway.store import Store

from . import factories as f
from .routing_support import (  # noqa: F401 - fixtures
    Peer,
    connection,
    credentials_env,
    delivery,
    fault_proxy,
    make_peer_fixture,
    oneroster_roster,
    peer_fixture,
    pending_deliveries,
    pull_all,
    pull_route,
    push_route,
    register_push_route,
    total,
)

T = "t1"
SCOPES = ["roster.readonly", "roster-core.readonly"]


def provider_source(peer: Peer, monkeypatch: pytest.MonkeyPatch, base: str | None = None, tenant: str = T, **options) -> RosterSource:
    cid, secret = peer.credentials(tenant, SCOPES)
    auth = credentials_env(monkeypatch, f"OR_{tenant.upper().replace('-', '_')}", cid, secret)
    conn = connection("sis", "oneroster", "oneroster.rest.client", base or peer.base_url, auth=auth,
                      token_url=f"{peer.base_url}/oauth/token", **options)
    return RosterSource(conn)


def people(store: Store, source: str = "sis") -> dict[str, str]:
    return {p.native_id: p.status.value for p in store.records.iter_records(T, ["person"]) if p.source == source}


def test_a_full_then_incremental_pull_with_the_overlap_and_a_tobedeleted_tombstone(peer: Peer, store: Store,
                                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    recs = oneroster_roster(4)
    peer.store.records.apply(T, recs)
    src = provider_source(peer, monkeypatch)
    route = pull_route(src.connection)
    # This test's changes all fall within a second or two of its pulls: the cap of the cursor
    # at the provider's Date when a download begins (whole seconds, and uvicorn's may be a
    # second old) would re-read them all, which is what it is for (tested in
    # tests/test_oneroster_client.py). Here the cursor is the newest dateLastModified.
    monkeypatch.setattr("adapters.oneroster.client._http_date", lambda value: None)

    pages, cursor = pull_all(src, store, route, None)
    # a page a committed batch (orgs, sessions, courses, classes, users, enrollments), then the end
    assert len(pages) == 7 and total(pages, "read") == 1 + 1 + 1 + 1 + 4 + 4 and total(pages, "written") == total(pages, "read")
    assert [orjson.loads(p.cursor)["partial"]["done"][-1] for p in pages[:-1]] == [
        "orgs", "academicSessions", "courses", "classes", "users", "enrollments"]
    assert "partial" not in orjson.loads(pages[-1].cursor)
    assert people(store) == {f"u{i}": "active" for i in range(4)}
    doc = orjson.loads(cursor)
    assert doc["version"] == "1.2" and doc["since"].endswith("Z") and "." in doc["since"]  # milliseconds, never a day

    # the provider changes one user and deletes another (OneRoster soft delete: tobedeleted)
    time.sleep(0.05)
    u0 = next(r for r in recs if r.native_id == "u0")
    u1 = next(r for r in recs if r.native_id == "u1")
    peer.store.records.apply(T, [u0.model_copy(update={"given_name": "Grace"}), u1.model_copy(update={"status": Status.tobedeleted})])

    pages, cursor2 = pull_all(src, store, route, cursor)
    # the overlap (5 s) re-reads everything written in the seconds before the cursor:
    # counted as unchanged, only the two changes are written
    assert total(pages, "written") == 2 and total(pages, "unchanged") == total(pages, "read") - 2 and total(pages, "read") >= 2
    assert people(store) == {"u0": "active", "u1": "tobedeleted", "u2": "active", "u3": "active"}
    assert store.records.get(T, "person", record_id(T, "person", "sis", "u0")).given_name == "Grace"
    assert read_cursor(cursor2, "1.2") > read_cursor(cursor, "1.2")

    # without an overlap only what changed after the cursor is read; nothing new: the cursor stays
    src0 = provider_source(peer, monkeypatch, overlap_seconds=0)
    pages, cursor3 = pull_all(src0, store, route, cursor2)
    assert total(pages, "read") == 0 and cursor3 == cursor2


def test_the_filter_sent_is_the_cursor_minus_the_overlap_in_milliseconds(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, oneroster_roster(1))
    with fault_proxy(peer.base_url) as (base, proxy):
        src = provider_source(peer, monkeypatch, base=base, overlap_seconds=2.5)
        cursor = orjson.dumps({"since": "2026-12-06T20:00:00.000Z", "version": "1.2"}).decode()
        pull_all(src, store, pull_route(src.connection), cursor)
    filters = {parse_qs(urlsplit(u).query).get("filter", [""])[0] for u in proxy.seen if "/rostering/" in u}
    assert filters == {"dateLastModified>'2026-12-06T19:59:57.500Z'"}


def test_a_full_pull_retires_what_the_provider_no_longer_lists(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, oneroster_roster(3))
    src = provider_source(peer, monkeypatch)
    route = pull_route(src.connection)
    pull_all(src, store, route, None)
    assert people(store) == {"u0": "active", "u1": "active", "u2": "active"}

    # the same system now lists one student fewer (another tenant of the provider holds the smaller roster)
    smaller = [r for r in oneroster_roster(3, tenant="t2") if getattr(r, "native_id", "") not in ("u2", "s1:u2")]
    peer.store.records.apply("t2", smaller)
    src2 = provider_source(peer, monkeypatch, tenant="t2")
    pages, _ = pull_all(src2, store, route, None)
    assert total(pages, "deleted") == 2  # the person and the enrollment
    assert people(store) == {"u0": "active", "u1": "active", "u2": "tobedeleted"}


def test_a_truncated_page_is_a_retry_and_stores_nothing(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, oneroster_roster(3))
    with fault_proxy(peer.base_url) as (base, proxy):
        proxy.fault = lambda req, r: (200, dict(r.headers), r.content[: len(r.content) // 2]) if "/users" in req.url.path else None
        src = provider_source(peer, monkeypatch, base=base)
        with pytest.raises(Retry) as caught:
            pull_all(src, store, pull_route(src.connection), None)
    assert "users" in caught.value.message
    assert list(store.records.iter_records(T, ["org", "person"])) == []  # the orgs read before it were not applied either


def test_a_repeated_page_is_a_retry_and_the_cursor_stays(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, oneroster_roster(5))
    first: dict[str, bytes] = {}

    def repeat(req, r):
        if "/users" not in req.url.path:
            return None
        first.setdefault("page", r.content)
        return 200, {k: v for k, v in r.headers.items() if k.lower() != "link"}, first["page"]

    with fault_proxy(peer.base_url) as (base, proxy):
        proxy.fault = repeat
        src = provider_source(peer, monkeypatch, base=base, page_size=2)
        seen: list = []
        with pytest.raises(Retry):
            for page in src.pull(store, pull_route(src.connection), None):
                seen.append(page)
    assert seen == [] and people(store) == {}


def test_refused_credentials_are_a_rejection_without_the_secret(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, oneroster_roster(1))
    monkeypatch.setenv("BAD_ID", "nobody")
    monkeypatch.setenv("BAD_SECRET", "very-secret-value-42")
    conn = connection("sis", "oneroster", "oneroster.rest.client", peer.base_url,
                      auth={"client_id": "env:BAD_ID", "client_secret": "env:BAD_SECRET"}, token_url=f"{peer.base_url}/oauth/token")
    with pytest.raises(Reject) as caught:
        pull_all(RosterSource(conn), store, pull_route(conn), None)
    text = f"{caught.value.message} {caught.value.request} {caught.value.response}"
    assert "very-secret-value-42" not in text


# --- oneroster.gradebook --------------------------------------------------------------------------


def mastery(learner, comp, value: float, level: str = "proficient") -> MasteryState:
    return MasteryState(tenant=T, source="tessera", native_id=f"{learner.id}:{comp.id}", learner_id=learner.id, competency_id=comp.id,
                        value=value, level=level, mastered=value >= 0.8, method=MasteryMethod.latest, evidence_count=1, computed_at=f.evidence("x", learner).observed_at)


def test_mastery_is_put_as_an_assessment_result_idempotently(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = oneroster_roster(2)
    peer.store.records.apply(T, recs)  # the gradebook's roster: the same SIS sourcedIds
    store.records.apply(T, recs)
    fw = f.framework()
    comp = f.competency("C1", fw, guid="11111111-2222-3333-4444-555555555555")
    store.records.apply(T, [fw, comp])
    learner = next(r for r in recs if getattr(r, "native_id", "") == "u0")
    state = mastery(learner, comp, 0.75)

    cid, secret = peer.credentials(T, ["gradebook.readonly", "gradebook.createput"])
    auth = credentials_env(monkeypatch, "GB", cid, secret)
    dest = GradebookDestination(connection("gradebook", "oneroster", "oneroster.gradebook", peer.base_url, auth=auth))
    route = push_route(dest.connection, ("mastery_state",))
    d = delivery(route, state)
    dest.deliver(store, d)
    dest.deliver(store, delivery(route, state, attempt=2))  # a retry: the same PUT

    gb = peer.auth_client(T, ["gradebook.readonly"])
    results = gb.get("/ims/oneroster/gradebook/v1p2/assessmentResults").json()["assessmentResults"]
    assert len(results) == 1
    res = results[0]
    assert res["sourcedId"] == f"tessera-mastery-{state.id}" and res["score"] == 75 and res["textScore"] == "proficient"
    assert res["student"]["sourcedId"] == "u0" and res["status"] == "active"
    items = gb.get("/ims/oneroster/gradebook/v1p2/assessmentLineItems").json()["assessmentLineItems"]
    assert [i["sourcedId"] for i in items] == [f"tessera-competency-{comp.id}"]
    assert items[0]["learningObjectiveSet"][0]["learningObjectiveIds"] == ["11111111-2222-3333-4444-555555555555"]

    # a new value replaces the same result; a fresh destination (another worker) finds the line item
    dest2 = GradebookDestination(dest.connection)
    dest2.deliver(store, delivery(route, state.model_copy(update={"value": 0.9})))
    results = gb.get("/ims/oneroster/gradebook/v1p2/assessmentResults").json()["assessmentResults"]
    assert len(results) == 1 and results[0]["score"] == 90
    assert len(gb.get("/ims/oneroster/gradebook/v1p2/assessmentLineItems").json()["assessmentLineItems"]) == 1


def test_a_student_unknown_to_the_gradebook_waits_for_its_dependency(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = oneroster_roster(1)
    store.records.apply(T, recs)  # the gradebook has no roster yet
    fw = f.framework()
    comp = f.competency("C1", fw)
    store.records.apply(T, [fw, comp])
    learner = next(r for r in recs if getattr(r, "native_id", "") == "u0")
    cid, secret = peer.credentials(T, ["gradebook.readonly", "gradebook.createput"])
    dest = GradebookDestination(connection("gradebook", "oneroster", "oneroster.gradebook", peer.base_url,
                                           auth=credentials_env(monkeypatch, "GB", cid, secret)))
    route = push_route(dest.connection, ("mastery_state",))
    with pytest.raises(WaitForDependency) as caught:
        dest.deliver(store, delivery(route, mastery(learner, comp, 0.5)))
    assert caught.value.status == 400 and "u0" in (caught.value.response or "")
    peer.store.records.apply(T, recs)  # the roster arrives: the retry goes through
    dest.deliver(store, delivery(route, mastery(learner, comp, 0.5), attempt=2))


def test_the_gradebook_down_is_a_retry(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import free_port

    recs = oneroster_roster(1)
    fw = f.framework()
    comp = f.competency("C1", fw)
    store.records.apply(T, [*recs, fw, comp])
    learner = next(r for r in recs if getattr(r, "native_id", "") == "u0")
    monkeypatch.setenv("GB_ID", "x")
    monkeypatch.setenv("GB_SECRET", "y")
    base = f"http://127.0.0.1:{free_port()}"
    dest = GradebookDestination(connection("gradebook", "oneroster", "oneroster.gradebook", base,
                                           auth={"client_id": "env:GB_ID", "client_secret": "env:GB_SECRET"}, timeout=2))
    with pytest.raises(Retry):
        dest.deliver(store, delivery(push_route(dest.connection, ("mastery_state",)), mastery(learner, comp, 0.5)))


def test_evidence_is_put_as_a_result_and_voided_evidence_as_a_tombstone(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = oneroster_roster(1)
    peer.store.records.apply(T, recs)
    store.records.apply(T, recs)
    fw = f.framework()
    comp = f.competency("C1", fw)
    learner = next(r for r in recs if getattr(r, "native_id", "") == "u0")
    ev = f.evidence("e1", learner, comp, raw=8)  # 8 of 0..10
    store.records.apply(T, [fw, comp, ev])
    cid, secret = peer.credentials(T, ["gradebook.readonly", "gradebook.createput"])
    dest = GradebookDestination(connection("gradebook", "oneroster", "oneroster.gradebook", peer.base_url,
                                           auth=credentials_env(monkeypatch, "GB", cid, secret)))
    route = push_route(dest.connection, ("evidence",))
    dest.deliver(store, delivery(route, ev))
    gb = peer.auth_client(T, ["gradebook.readonly"])
    (res,) = gb.get("/ims/oneroster/gradebook/v1p2/assessmentResults").json()["assessmentResults"]
    assert res["sourcedId"] == f"tessera-evidence-{ev.id}" and res["score"] == 80 and res["status"] == "active"
    dest.deliver(store, delivery(route, ev.model_copy(update={"voided": True})))
    (res,) = gb.get("/ims/oneroster/gradebook/v1p2/assessmentResults").json()["assessmentResults"]
    assert res["status"] == "tobedeleted"
    dest.close()


def test_a_oneroster_1_1_provider_is_pulled_with_oauth1_signatures(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    from adapters.oneroster.oauth1_auth import ConsumerStore
    from gateway.auth.sealed import ENV_KEY

    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())
    peer.store.records.apply(T, oneroster_roster(2))
    consumer, secret = ConsumerStore(peer.store.engine).create(T, ["roster-core.readonly"], "District SIS")
    auth = credentials_env(monkeypatch, "OR11", consumer.consumer_key, secret)
    src = RosterSource(connection("sis", "oneroster", "oneroster.rest.client", peer.base_url, auth=auth, version="1.1", oauth1=True))
    pages, cursor = pull_all(src, store, pull_route(src.connection), None)
    assert pages[0].written == pages[0].read > 0 and orjson.loads(cursor)["version"] == "1.1"
    assert people(store) == {"u0": "active", "u1": "active"}


def test_a_gradebook_refusal_is_dead_lettered_and_a_5xx_retried(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = oneroster_roster(1)
    peer.store.records.apply(T, recs)
    fw = f.framework()
    comp = f.competency("C1", fw)
    store.records.apply(T, [*recs, fw, comp])
    learner = next(r for r in recs if getattr(r, "native_id", "") == "u0")
    cid, secret = peer.credentials(T, ["gradebook.readonly", "gradebook.createput"])
    auth = credentials_env(monkeypatch, "GB", cid, secret)
    refusal = orjson.dumps({"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "scoreDate: not a date"})
    with fault_proxy(peer.base_url) as (base, proxy):
        dest = GradebookDestination(connection("gradebook", "oneroster", "oneroster.gradebook", base, auth=auth,
                                               token_url=f"{peer.base_url}/oauth/token"))
        route = push_route(dest.connection, ("mastery_state",))
        proxy.fault = lambda req, r: (400, {"Content-Type": "application/json"}, refusal) if "assessmentResults" in req.url.path else None
        with pytest.raises(Reject) as refused:
            dest.deliver(store, delivery(route, mastery(learner, comp, 0.5)))
        assert refused.value.status == 400 and "scoreDate" in (refused.value.response or "")
        proxy.fault = lambda req, r: (503, {"Retry-After": "7"}, b"") if "assessmentResults" in req.url.path else None
        with pytest.raises(Retry) as later:
            dest.deliver(store, delivery(route, mastery(learner, comp, 0.5), attempt=2))
        assert later.value.retry_after == 7


def test_a_route_of_some_kinds_reads_and_retires_only_their_collections(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, oneroster_roster(2))
    with fault_proxy(peer.base_url) as (base, proxy):
        src = provider_source(peer, monkeypatch, base=base)
        pages, _ = pull_all(src, store, pull_route(src.connection, kinds=("org", "person")), None)
    assert {u.split("?")[0].rsplit("/", 1)[-1] for u in proxy.seen if "/rostering/" in u} == {"orgs", "users"}
    assert total(pages, "read") == 3 and people(store) == {"u0": "active", "u1": "active"}
    assert list(store.records.iter_records(T, ["enrollment", "section"])) == []
    with pytest.raises(Reject):
        pull_all(src, store, pull_route(src.connection, kinds=("evidence",)), None)


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
def test_a_pull_that_crashes_in_the_middle_resumes_with_no_loss_and_no_duplicate(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch,
                                                                                 incremental: bool) -> None:
    """Each batch is committed on its own and the cursor covers only what is committed; a run
    that dies after three commits leaves that cursor, and the next run applies the rest once:
    every record arrives, none is written twice (one outbox row per record at a push route)."""
    recs = oneroster_roster(4)
    src = provider_source(peer, monkeypatch)
    route = pull_route(src.connection)
    cursor = None
    if incremental:  # a first pull of an older roster, then the provider's changes arrive incrementally
        peer.store.records.apply(T, [r for r in recs if r.kind in ("org", "academic_session", "course")])
        _, cursor = pull_all(src, store, route, None)
        time.sleep(0.05)
    peer.store.records.apply(T, recs)
    hook = register_push_route(store, connection("lake", "webhook", "webhook", "http://127.0.0.1:9/h",
                                                 auth={"signing_secret": "env:NOPE"}), ["section", "person", "enrollment"])
    real = store.records.apply
    calls: list[int] = []

    def crash_at_the_second_commit(tenant: str, records: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the worker died here")
        return real(tenant, records, **kw)

    monkeypatch.setattr(store.records, "apply", crash_at_the_second_commit)
    kept = []
    with pytest.raises(Retry):
        for page in src.pull(store, route, cursor):
            kept.append(page)
    monkeypatch.setattr(store.records, "apply", real)
    assert len(kept) == 1  # one batch committed before the crash, its cursor stored by the engine
    assert orjson.loads(kept[0].cursor)["partial"]["done"] == ["orgs"]
    assert people(store) == {}  # the users were not reached

    pages, final = pull_all(src, store, route, kept[0].cursor)
    assert "partial" not in orjson.loads(final)
    held = {(r.kind, r.native_id) for k in ("org", "academic_session", "course", "section", "person", "enrollment")
            for r in store.records.iter_records(T, [k])}
    assert held == {(r.kind, r.native_id) for r in recs}  # no loss
    # no duplicate: each record written once (a repeated write would be counted unchanged and enqueue nothing)
    rows = pending_deliveries(store, hook)
    assert sorted(d.record_id for d in rows) == sorted({d.record_id for d in rows})
    assert {d.record_id for d in rows} == {r.id for r in recs if r.kind in ("section", "person", "enrollment")}
    assert people(store) == {f"u{i}": "active" for i in range(4)}
    if incremental:
        assert read_cursor(final, "1.2") is not None and read_cursor(final, "1.2") >= read_cursor(cursor, "1.2")
