"""``tessera`` (Tessera -> Tessera): a district's records delivered to a state instance, a
second Tessera on a real port (``routing_support``), through its NDJSON import with OAuth
2.0 client credentials: references rewritten to the state tenant's ids, a repeated delivery
unchanged, a record whose reference has not arrived yet waiting for it, a tombstone
travelling as status tobedeleted, and a secret never in a failure."""

from __future__ import annotations

import pytest

from adapters.ndjson.routing import TesseraDestination
from gateway.model import Status, record_id
from gateway.routing.protocol import Reject, WaitForDependency
from gateway.store import Store

from .routing_support import (  # noqa: F401 - fixtures
    Peer,
    connection,
    credentials_env,
    make_peer_fixture,
    oneroster_roster,
    peer_fixture,
    pending_deliveries,
    register_push_route,
)

T = "district-7"
STATE = "state"


def state_destination(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> TesseraDestination:
    cid, secret = peer.credentials(STATE, ["records.write"])
    auth = credentials_env(monkeypatch, "STATE", cid, secret)
    return TesseraDestination(connection("state", "ndjson", "tessera", peer.base_url, auth=auth, tenant=T, remote_tenant=STATE))


def test_a_district_forwards_its_roster_to_the_state_instance(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = state_destination(peer, monkeypatch)
    route = register_push_route(store, dest.connection, ["org", "academic_session", "course", "section", "person", "enrollment"])
    recs = oneroster_roster(3, tenant=T)
    store.records.apply(T, recs)
    rows = pending_deliveries(store, route)
    assert len(rows) == len(recs)

    # an enrollment before its person and section: it waits for them
    enrollment = next(d for d in rows if d.record_kind == "enrollment")
    with pytest.raises(WaitForDependency) as caught:
        dest.deliver(store, enrollment)
    assert caught.value.status == 422

    order = ["org", "academic_session", "course", "section", "person", "enrollment"]
    for d in sorted(rows, key=lambda d: order.index(d.record_kind)):
        dest.deliver(store, d)
    dest.deliver(store, enrollment)  # delivered twice: unchanged over there

    held = {(r.kind, r.native_id): r for r in peer.store.records.iter_records(STATE, order)}
    assert len(held) == len(recs)
    enr = held[("enrollment", "s1:u0")]
    assert enr.person_id == record_id(STATE, "person", "sis", "u0") and enr.section_id == record_id(STATE, "section", "sis", "s1")
    assert held[("person", "u1")].roles[0].org_id == record_id(STATE, "org", "sis", "o1")

    # a tombstone: the person leaves the district
    u2 = next(r for r in recs if getattr(r, "native_id", "") == "u2")
    store.records.apply(T, [u2.model_copy(update={"status": Status.tobedeleted})])
    d = [x for x in pending_deliveries(store, route) if x.record_id == u2.id][-1]  # the newest row (nothing here marks rows delivered)
    assert d.record.status == Status.tobedeleted
    dest.deliver(store, d)
    assert peer.store.records.get(STATE, "person", record_id(STATE, "person", "sis", "u2")).status == Status.tobedeleted


def test_refused_credentials_are_a_rejection_that_never_shows_the_secret(peer: Peer, store: Store,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_ID", "nobody")
    monkeypatch.setenv("STATE_SECRET", "the-secret-value-9")
    dest = TesseraDestination(connection("state", "ndjson", "tessera", peer.base_url, tenant=T,
                                         auth={"client_id": "env:STATE_ID", "client_secret": "env:STATE_SECRET"}, remote_tenant=STATE))
    recs = oneroster_roster(1, tenant=T)
    store.records.apply(T, recs)
    from .routing_support import delivery, push_route

    with pytest.raises(Reject) as caught:
        dest.deliver(store, delivery(push_route(dest.connection, ("org",), tenant=T), recs[0]))
    assert "the-secret-value-9" not in f"{caught.value} {caught.value.request} {caught.value.response}"


def test_every_adapter_declares_its_routing_roles_to_the_wiring() -> None:
    from gateway.routing.protocol import Destination, Source
    from gateway.wiring import default

    wiring = default()
    roles = wiring.routing_roles
    assert {name: adapter for name, (adapter, _) in roles.items()}.items() >= {
        "oneroster.rest.client": "oneroster", "oneroster.gradebook": "oneroster", "case.client": "case", "xapi.lrs": "xapi",
        "lti.ags": "lti", "lti.nrps": "lti", "tessera": "ndjson"}.items()
    assert "xapi.statement" in wiring.routing_kinds
    conn = connection("x", "any", "any", "https://peer.example", platform="00000000-0000-0000-0000-000000000001")
    made = {name: factory(conn) for name, (_, factory) in roles.items() if name in (
        "oneroster.rest.client", "oneroster.gradebook", "case.client", "xapi.lrs", "lti.ags", "lti.nrps", "tessera")}
    assert all(isinstance(made[n], Source) for n in ("oneroster.rest.client", "case.client", "xapi.lrs", "lti.nrps"))
    assert all(isinstance(made[n], Destination) for n in ("oneroster.gradebook", "xapi.lrs", "lti.ags", "tessera"))


def test_a_batch_goes_in_one_request_and_a_refused_batch_record_by_record(peer: Peer, store: Store,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dest = state_destination(peer, monkeypatch)
    route = register_push_route(store, dest.connection, ["org", "academic_session", "course", "section", "person", "enrollment"])
    recs = oneroster_roster(2, tenant=T)
    store.records.apply(T, recs)
    rows = pending_deliveries(store, route)
    # in one request the other Tessera resolves references inside the batch, whatever the order
    assert dest.deliver_batch(store, list(reversed(rows))) == [None] * len(rows)
    order = ["org", "academic_session", "course", "section", "person", "enrollment"]
    assert len(list(peer.store.records.iter_records(STATE, order))) == len(recs)
    assert dest.deliver_batch(store, rows) == [None] * len(rows)  # again: unchanged over there

    # a new enrollment of a person not delivered yet, with a new org: the batch is refused,
    # sent again one by one: the org goes, the enrollment waits for its person
    from tests.factories import enrollment, org, person

    school = next(r for r in recs if r.kind == "org")
    section = next(r for r in recs if r.kind == "section")
    newcomer = person("u9", school, tenant=T)
    store.records.apply(T, [newcomer, enrollment(newcomer, section, tenant=T), org("o9", tenant=T)])
    fresh = [d for d in pending_deliveries(store, route) if d.record_kind in ("enrollment", "org") and d.record is not None
             and d.record.native_id in ("o9", "s1:u9", f"{section.native_id}:u9")]
    out = dest.deliver_batch(store, fresh)
    kinds = {d.record_kind: o for d, o in zip(fresh, out, strict=True)}
    assert kinds["org"] is None and isinstance(kinds["enrollment"], WaitForDependency)
    assert peer.store.records.get(STATE, "org", record_id(STATE, "org", "sis", "o9"))
