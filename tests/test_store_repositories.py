"""The store's read repositories that adapters use instead of its tables: identity
resolution (``Store.identities``), alignments by target (``Store.alignments``), and the
batch reads of ``RecordStore`` (``get_json_many``, ``last_updated``)."""

from __future__ import annotations

import uuid

import orjson

from gateway.model import CASE_IDENTIFIER_KINDS, Alignment, Identifier
from gateway.store import Store

from . import factories as f

T = f.T


def _people(store: Store):
    school = f.org()
    ada = f.person("ada", school, identifiers=[Identifier(system="lrs", kind="xapi.mbox", value="mailto:ada@example.org"),
                                               Identifier(system="sis", kind="email", value="ada@example.org")])
    twin = f.person("twin", school, identifiers=[Identifier(system="lms", kind="xapi.mbox", value="mailto:ada@example.org")])
    store.records.apply(T, [school, ada])
    store.records.apply(T, [twin])  # indexed later: ada has carried the identifier longer
    return ada, twin


def test_identifier_systems_of_a_tenant_are_listed_once_each_in_order(store: Store) -> None:
    _people(store)
    assert store.identities.systems(T) == ["lms", "lrs", "sis"]
    assert store.identities.systems("nobody") == []


def test_resolve_finds_the_longest_standing_carrier_of_each_identifier_per_record_kind(store: Store) -> None:
    ada, _ = _people(store)
    fw = f.framework()
    comp = f.competency("c1", fw, identifiers=[Identifier(system="case", kind="case.uri", value="https://case.example/c1")])
    store.records.apply(T, [fw, comp])
    wanted = {
        "person": {("xapi.mbox", "mailto:ada@example.org"), ("email", "ada@example.org"), ("xapi.mbox", "mailto:none@example.org")},
        "competency": {("case.uri", "https://case.example/c1"), ("email", "ada@example.org")},
    }
    hits = store.identities.resolve(T, wanted)
    assert hits == {
        "person": {("xapi.mbox", "mailto:ada@example.org"): ada.id, ("email", "ada@example.org"): ada.id},
        "competency": {("case.uri", "https://case.example/c1"): comp.id},
    }
    # only the systems named; and nothing of another tenant
    assert store.identities.resolve(T, wanted, systems=["sis"])["person"] == {("email", "ada@example.org"): ada.id}
    assert store.identities.resolve("t2", wanted) == {"person": {}, "competency": {}}


def test_lookup_lists_every_carrier_the_longest_standing_first(store: Store) -> None:
    ada, twin = _people(store)
    assert store.identities.lookup(T, "lrs", "xapi.mbox", "mailto:ada@example.org") == [("person", ada.id)]
    assert store.identities.lookup(T, "lms", "xapi.mbox", "mailto:ada@example.org", record_kind="person") == [("person", twin.id)]
    assert store.identities.lookup(T, "lms", "xapi.mbox", "mailto:ada@example.org", record_kind="org") == []
    assert store.records.lookup(T, "lrs", "xapi.mbox", "mailto:ada@example.org") == [("person", ada.id)]


def test_first_carrying_finds_the_competency_a_case_uri_or_identifier_names(store: Store) -> None:
    fw = f.framework()
    guid = str(uuid.uuid4())
    comp = f.competency("c1", fw, identifiers=[Identifier(system="case", kind="case.uri", value="https://case.example/c1"),
                                               Identifier(system="case", kind="case.identifier", value=guid)])
    ada, _ = _people(store)
    store.records.apply(T, [fw, comp])
    named = store.identities.first_carrying
    assert named(T, "competency", CASE_IDENTIFIER_KINDS, ["https://case.example/c1"]) == comp.id
    assert named(T, "competency", CASE_IDENTIFIER_KINDS, ["no such uri", guid]) == comp.id
    assert named(T, "competency", CASE_IDENTIFIER_KINDS, ["mailto:ada@example.org"]) is None  # a person's, other kind
    assert named(T, "person", ("xapi.mbox",), ["mailto:ada@example.org"]) == ada.id  # the longest-standing carrier
    assert named("t2", "competency", CASE_IDENTIFIER_KINDS, [guid]) is None


def _alignment(native: str, target: str, comp, *, system: str = "xapi", weight: float | None = None, **kw) -> Alignment:
    return Alignment(tenant=T, source="admin", native_id=native, target_system=system, target_kind="activity", target_id=target,
                     competency_id=comp.id, **({"weight": weight} if weight is not None else {}), **kw)


def test_alignments_by_target_the_heaviest_active_one_wins(store: Store) -> None:
    fw = f.framework()
    c1, c2, c3 = (f.competency(n, fw) for n in ("c1", "c2", "c3"))
    light = _alignment("light", "act-1", c1, weight=0.5)
    heavy = _alignment("heavy", "act-1", c2, weight=0.8)
    retired = _alignment("retired", "act-1", c3, weight=1.0, status="tobedeleted")
    elsewhere = _alignment("elsewhere", "act-2", c3, system="lms")
    store.records.apply(T, [fw, c1, c2, c3, light, heavy, retired, elsewhere])
    got = store.alignments.by_target(T, ["xapi"], ["act-1", "act-2", "act-3"])
    assert got == {"act-1": (heavy.id, c2.id)}
    assert store.alignments.by_target(T, ["xapi", "lms"], {"act-2"}) == {"act-2": (elsewhere.id, c3.id)}
    assert store.alignments.by_target("t2", ["xapi"], ["act-1"]) == {}


def test_equal_weights_fall_back_to_the_first_alignment_by_id(store: Store) -> None:
    fw = f.framework()
    c1, c2 = f.competency("c1", fw), f.competency("c2", fw)
    a, b = _alignment("a", "act", c1), _alignment("b", "act", c2)
    store.records.apply(T, [fw, c1, c2, a, b])
    first = min((a, b), key=lambda al: al.id.bytes)  # type: ignore[union-attr]
    assert store.alignments.by_target(T, ["xapi"], ["act"]) == {"act": (first.id, first.competency_id)}


def test_get_json_many_and_last_updated_read_in_the_callers_connection(store: Store) -> None:
    school = f.org()
    people = [f.person(f"p{i}", school) for i in range(3)]
    assert store.records.last_updated(T, ("person", "alignment")) == (None, None)
    store.records.apply(T, [school, *people])
    with store.engine.connect() as conn:
        got = store.records.get_json_many(T, "person", [p.id for p in people[:2]] + [uuid.uuid4()], conn=conn)
        assert {k: orjson.loads(v)["native_id"] for k, v in got.items()} == {people[0].id: "p0", people[1].id: "p1"}
        person_at, alignment_at = store.records.last_updated(T, ("person", "alignment"), conn=conn)
        assert conn.in_transaction() and not conn.closed  # the caller's connection, left open
    assert person_at == store.records.get(T, "person", people[0].id).updated_at and alignment_at is None
    assert store.records.get_json_many("t2", "person", [people[0].id]) == {}


def test_evidence_listeners_added_or_handed_in_later_are_called_in_the_writing_transaction(store: Store) -> None:
    heard: list[tuple[str, int]] = []
    store.records.evidence_listeners.append(lambda conn, tenant, pairs, now: heard.append(("added", len(pairs))))
    school = f.org()
    kid = f.person("kid", school)
    fw = f.framework()
    comp = f.competency("c1", fw)
    store.records.apply(T, [school, kid, fw, comp, f.evidence("e1", kid, comp)])
    assert heard == [("added", 1)]
    store.records.evidence_listeners = [lambda conn, tenant, pairs, now: heard.append(("handed in", len(pairs)))]
    store.records.apply(T, [f.evidence("e2", kid, comp)])
    assert heard == [("added", 1), ("handed in", 1)]
