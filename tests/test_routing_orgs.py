"""A route's ``orgs`` filter (``gateway.routing.orgs``), on SQLite and PostgreSQL: a push
route sends only the records of those orgs and what hangs off them (the rest is marked
delivered, never sent); a OneRoster pull stores only those orgs' classes, people and
enrollments (with the orgs above and their courses, so references resolve), from a second
Tessera's provider on a real port."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from adapters.oneroster.routing import RosterSource
from gateway.model import AcademicSession, Enrollment, OrgRole, Section
from gateway.routing.delivery import OUTSIDE_ORGS
from gateway.routing.dispatch import EmbeddedEngine
from gateway.routing.protocol import Route
from gateway.store import Store
from gateway.store.tables import outbox
from gateway.wiring import default as default_wiring
from tests import factories as f
from tests.routing_sink import run_sink

from .routing_support import (  # noqa: F401 - fixtures
    Peer,
    connection,
    credentials_env,
    make_peer_fixture,
    peer_fixture,
    pull_all,
)

SECRET = "whsec-0rgsF1lt3r"
T = "t1"


def district(tenant: str = T) -> list[Any]:
    """A district d1 with schools o1 and o2, and a school o3 of no district: a class in o1
    (of a district course) and one in o2, people at each, u3 at both o1 and o2."""
    d1 = f.org("d1", tenant, type="district", name="District 1")
    o1, o2, o3 = f.org("o1", tenant, parent_id=d1.id), f.org("o2", tenant, parent_id=d1.id), f.org("o3", tenant)
    term = AcademicSession(tenant=tenant, source="sis", native_id="y1", title="2026-2027", type="school_year", org_id=d1.id,
                           start_date=date(2026, 8, 1), end_date=date(2027, 6, 30), school_year=2027)
    c1, c2 = f.course("c1", d1, tenant), f.course("c2", o2, tenant)
    s1 = Section(tenant=tenant, source="sis", native_id="s1", title="Class 1", course_id=c1.id, org_id=o1.id, session_ids=[term.id])
    s2 = Section(tenant=tenant, source="sis", native_id="s2", title="Class 2", course_id=c2.id, org_id=o2.id, session_ids=[term.id])
    u0, u1, u2 = f.person("u0", o1, tenant, username="u0"), f.person("u1", o1, tenant, username="u1"), f.person("u2", o2, tenant, username="u2")
    u3 = f.person("u3", o2, tenant, role="teacher", username="u3")
    u3 = u3.model_copy(update={"roles": [*u3.roles, OrgRole(role="teacher", org_id=o1.id, primary=False)]})
    enr = [Enrollment(tenant=tenant, source="sis", native_id=f"{s.native_id}:{p.native_id}", person_id=p.id, section_id=s.id,
                      org_id=s.org_id, role=role) for s, p, role in
           ((s1, u0, "student"), (s1, u1, "student"), (s1, u3, "teacher"), (s2, u2, "student"), (s2, u3, "teacher"))]
    return [d1, o1, o2, o3, term, c1, c2, s1, s2, u0, u1, u2, u3, *enr]


def names(recs: list[Any]) -> set[str]:
    return {r.native_id for r in recs}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def test_a_push_route_sends_only_the_records_of_its_orgs(store: Store) -> None:
    engine = EmbeddedEngine(store, default_wiring(), threads=1, batch=64, poll=0.02, lease_seconds=10, scheduler=False)
    with run_sink(SECRET) as school_sink, run_sink(SECRET) as district_sink:
        kinds = ["org", "academic_session", "course", "section", "person", "enrollment", "evidence"]
        for name, sink, orgs in (("school", school_sink, ["o1"]), ("district", district_sink, ["d1"])):
            cid = store.routing.create_connection(T, name, adapter="webhook", role="webhook", system=name, base_url=sink.url,
                                                  auth={"signing_secret": "env:HOOK_SECRET"}, options={"timeout": 5})
            store.routing.create_route(T, f"to-{name}", destination=cid, kinds=kinds, orgs=orgs)
        recs = district()
        by = {r.native_id: r for r in recs}
        store.records.apply(T, recs)
        store.records.apply(T, [f.evidence("e0", by["u0"]), f.evidence("e2", by["u2"])])
        engine.drain(timeout=20)
        engine.stop()
    sent = {e["record"]["native_id"] for e in school_sink.applied.values()}
    # o1 and what hangs off it; u3 teaches at o1 too; the session has the district's org: not o1's
    assert sent == {"o1", "s1", "u0", "u1", "u3", "s1:u0", "s1:u1", "s1:u3", "e0"}
    everything = {r.native_id for r in recs} | {"e0", "e2"}
    assert {e["record"]["native_id"] for e in district_sink.applied.values()} == everything - {"o3"}
    with store.engine.connect() as c:
        states = c.execute(select(outbox.c.state, outbox.c.last_error)).all()
    assert all(s == "delivered" for s, _ in states)
    assert sum(1 for _, e in states if e == OUTSIDE_ORGS) == (len(everything) - len(sent)) + 1  # + o3 at the district route


def test_a_oneroster_pull_keeps_only_its_orgs_and_what_hangs_off_them(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.store.records.apply(T, district())
    cid, secret = peer.credentials(T, ["roster.readonly", "roster-core.readonly"])
    auth = credentials_env(monkeypatch, "OR_T1", cid, secret)
    src = RosterSource(connection("sis", "oneroster", "oneroster.rest.client", peer.base_url, auth=auth,
                                  token_url=f"{peer.base_url}/oauth/token"))
    route = Route(id=uuid.uuid4(), tenant=T, name="pull-o1", mode="pull", kinds=(), source=src.connection, destination=None,
                  orgs=("o1",))
    pages, _ = pull_all(src, store, route, None)
    held = {k: names(list(store.records.iter_records(T, [k]))) for k in ("org", "academic_session", "course", "section", "person",
                                                                        "enrollment")}
    assert held == {"org": {"d1", "o1"}, "academic_session": {"y1"}, "course": {"c1"}, "section": {"s1"},
                    "person": {"u0", "u1", "u3"}, "enrollment": {"s1:u0", "s1:u1", "s1:u3"}}
    u3 = next(p for p in store.records.iter_records(T, ["person"]) if p.native_id == "u3")
    assert len(u3.roles) == 1  # the role at o2 is not carried
    assert not any(p.errors for p in pages)
