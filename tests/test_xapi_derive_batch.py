"""The xAPI consumer derives a batch of statements as it derives them one at a time.

``Deriver`` writes a round's evidence in one transaction and the mastery engine recomputes
each (learner, competency) the round touches once, from all of its evidence (``on_evidence``
reads the learner's counted evidence by exact keys and sorts it by observation time), not
once per statement. The same statements derived one per round (``batch=1``) must end in the
same states, for every calculation method, whatever order the statements' timestamps come
in, with voiding inside the batch (a voided statement earlier in it, a voiding statement
before its target) and across rounds; and both must equal a full recompute.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from adapters.xapi.derive import Deriver
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.mastery.attach import engine_of
from gateway.model import Identifier, MasteryMethod, MasteryRule, Relation, RelationType
from gateway.store import Store
from gateway.store import tables as t
from tests import factories as f

ADL = "http://adlnet.gov/expapi/verbs/"
HOME = "https://sis.example.edu"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "test"}}
METHODS = [m for m in MasteryMethod if m is not MasteryMethod.rollup]


def _world(store: Store, tenant: str, method: MasteryMethod) -> None:
    """Two learners; P with children A and B (rollup), D the district's copy of A (crosswalk);
    one rule of ``method`` for every competency."""
    school = f.org(tenant=tenant)
    people = [f.person(f"u{i}", school, tenant=tenant,
                       identifiers=[Identifier(system="lms", kind="xapi.account", value=f"{HOME}|u{i}")]) for i in (1, 2)]
    fw, fw2 = f.framework("state", tenant=tenant), f.framework("district", tenant=tenant)
    comps = {c: f.competency(c, fw if c != "D" else fw2, tenant=tenant,
                             identifiers=[Identifier(system="case", kind="case.uri", value=f"https://case.example/{c}")])
             for c in ("P", "A", "B", "D")}
    rels = [
        Relation(tenant=tenant, source="case", native_id="A-P", type=RelationType.is_child_of, origin_id=comps["A"].id,
                 destination_id=comps["P"].id),
        Relation(tenant=tenant, source="case", native_id="B-P", type=RelationType.is_child_of, origin_id=comps["B"].id,
                 destination_id=comps["P"].id),
        Relation(tenant=tenant, source="case", native_id="D=A", type=RelationType.exact_match_of, origin_id=comps["D"].id,
                 destination_id=comps["A"].id),
    ]
    extra: dict[str, Any] = {"n": 2, "m": 3, "at_level": "3"} if method is MasteryMethod.n_of_m else {}
    if method in (MasteryMethod.decaying_average, MasteryMethod.weighted_average):
        extra = {"decay_weight": 0.6}
    rule = MasteryRule(tenant=tenant, source="admin", native_id="r", name="r", method=method, rollup_share=0.5, **extra)
    store.records.apply(tenant, [school, *people, fw, fw2, *comps.values(), *rels, rule])


def _statements() -> list[dict[str, Any]]:
    """Scored statements of two learners on A, B, D and P whose timestamps are not in the
    order they are sent (so a method that reads the order, latest or decaying average, sees
    observation order, not arrival order), with voiding statements among them: of a statement
    sent just before, of one sent long before, and one that comes before its target."""
    out: list[dict[str, Any]] = []
    late_target = str(uuid.uuid4())
    scores = [0.9, 0.2, 0.75, 0.4, 1.0, 0.55, 0.3, 0.85, 0.6, 0.1, 0.95, 0.5, 0.7, 0.05, 0.8, 0.65]
    comps = ["A", "B", "D", "A", "P", "B", "A", "D", "B", "A", "P", "D", "A", "B", "A", "D"]
    days = [5, 2, 9, 1, 7, 3, 12, 4, 8, 6, 11, 10, 14, 13, 15, 0]  # not the sending order
    for i, (score, comp, day) in enumerate(zip(scores, comps, days, strict=True)):
        learner = f"u{1 + i % 2}"
        sid = late_target if i == 13 else str(uuid.uuid4())
        out.append({
            "id": sid,
            "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": learner}},
            "verb": {"id": ADL + ("passed" if score >= 0.7 else "failed"), "display": {"en-US": "done"}},
            "object": {"objectType": "Activity", "id": f"https://content.example/q{i}"},
            "result": {"score": {"scaled": score}, "success": score >= 0.7},
            "context": {"contextActivities": {"category": [{"id": f"https://case.example/{comp}"}]}},
            "timestamp": f"2026-11-{1 + day:02d}T10:00:00Z",
        })
        if i == 4:  # voids the statement sent just before it
            out.append(_void(out[-2]["id"]))
        if i == 9:  # voids the first statement
            out.append(_void(out[0]["id"]))
        if i == 11:  # comes before its target (statement 13)
            out.append(_void(late_target))
    return out


def _void(target: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.com"},
            "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}}, "object": {"objectType": "StatementRef", "id": target}}


def _derive(store: Store, tenant: str, statements: list[dict[str, Any]], *, batch: int, sends: int) -> int:
    """Store ``statements`` deferred in ``sends`` requests, then derive them all with rounds of
    ``batch`` (fixed: ``max_batch`` too, so that it does not grow while behind); the rounds it took."""
    mapper = EvidenceMapper(store)
    deriver = Deriver(store, mapper, batch=batch, max_batch=batch)
    deriver.notify = lambda: None  # type: ignore[method-assign]  # derived below, in this thread
    lrs = StatementStore(store, mapper, deriver=deriver)
    size = -(-len(statements) // sends)
    for i in range(0, len(statements), size):
        part = [dict(s) for s in statements[i : i + size]]
        lrs.save(tenant, part, stored=complete(part, AUTHORITY, "1.0.3"), authority="test")
    rounds = 0
    while deriver.derive_once():
        rounds += 1
    return rounds


def _states(store: Store, tenant: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(learner, competency) by native ids -> what the state says, its contributions named by
    the statements' ids (evidence) and the competencies' native ids (rollups)."""
    with store.engine.connect() as conn:
        people = dict(conn.execute(select(t.people.c.id, t.people.c.native_id).where(t.people.c.tenant == tenant)).all())
        comps = dict(conn.execute(select(t.competencies.c.id, t.competencies.c.native_id).where(t.competencies.c.tenant == tenant)).all())
        evidence = dict(conn.execute(select(t.evidence.c.id, t.evidence.c.native_id).where(t.evidence.c.tenant == tenant)).all())
    out: dict[tuple[str, str], tuple[Any, ...]] = {}
    for rec in store.records.iter_records(tenant, ["mastery_state"]):
        contributions = sorted((evidence.get(c.evidence_id), comps.get(c.competency_id), round(c.value, 12), round(c.weight, 12))
                               for c in rec.contributions)  # type: ignore[attr-defined]
        out[(people[rec.learner_id], comps[rec.competency_id])] = (  # type: ignore[attr-defined]
            rec.status.value, rec.level, rec.value, rec.mastered, rec.evidence_count, rec.first_at, rec.last_at,  # type: ignore[attr-defined]
            rec.method.value, contributions)  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("method", METHODS, ids=[m.value for m in METHODS])
def test_a_batch_ends_where_one_statement_at_a_time_does(store: Store, method: MasteryMethod) -> None:
    statements = _statements()
    one, many = f"one-{method.value}".replace("_", "-"), f"many-{method.value}".replace("_", "-")
    for tenant in (one, many):
        _world(store, tenant, method)
    assert _derive(store, one, statements, batch=1, sends=len(statements)) == len(statements)
    assert _derive(store, many, statements, batch=1000, sends=3) == 1  # three requests, one round
    by_one, by_batch = _states(store, one), _states(store, many)
    assert by_batch == by_one
    # every learner has states on A, B, P (and D through the crosswalk), some from voided evidence only (retired)
    assert {k[1] for k in by_one} == {"A", "B", "D", "P"} and len(by_one) == 8
    for tenant in (one, many):
        assert engine_of(store).recompute(tenant).written == 0, "a full recompute changed the consumer's states"
    evidence = {rec.native_id: rec.voided for rec in store.records.iter_records(many, ["evidence"])}  # type: ignore[attr-defined]
    voided = {statements[i]["id"] for i in (0, 3, 16)}  # the first, the one before the 1st void, the late target
    assert {sid for sid, v in evidence.items() if v} == voided


def test_the_batch_grows_while_the_consumer_is_behind_and_falls_back_once_it_has_caught_up(store: Store, monkeypatch) -> None:
    import adapters.xapi.derive as derive

    monkeypatch.setattr(derive, "ROUND_SECONDS", 3600.0)  # growth by the backlog alone, however loaded the machine
    one, grown = "t-one", "t-grown"
    for tenant in (one, grown):
        _world(store, tenant, MasteryMethod.latest)
    statements = _statements()
    assert _derive(store, one, statements, batch=1, sends=len(statements)) == len(statements)
    mapper = EvidenceMapper(store)
    deriver = Deriver(store, mapper, batch=1, max_batch=4)
    deriver.notify = lambda: None  # type: ignore[method-assign]
    lrs = StatementStore(store, mapper, deriver=deriver)
    part = [dict(s) for s in statements]
    lrs.save(grown, part, stored=complete(part, AUTHORITY, "1.0.3"), authority="test")
    sizes = []
    while n := deriver.derive_once():
        sizes.append(n)
    assert sizes == [1, 2, 4, 4, 4, 4]  # doubling while statements wait, at most max_batch
    assert deriver._size == 1  # caught up: one statement a round again
    assert _states(store, grown) == _states(store, one)
    assert engine_of(store).recompute(grown).written == 0
    # a round that took too long halves the next (never below ``batch``); a quick one doubles it
    assert deriver._next_size(4, behind=True, took=2 * derive.ROUND_SECONDS + 1) == 2
    assert deriver._next_size(1, behind=True, took=2 * derive.ROUND_SECONDS + 1) == 1
    assert deriver._next_size(2, behind=True, took=0.0) == 4
    assert deriver._next_size(4, behind=False, took=0.0) == 1
