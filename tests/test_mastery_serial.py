"""The full recompute writes states serialised without pydantic (``gateway.mastery.serial``):
its JSON and content hash must be byte for byte the record path's (``to_record`` then
``RecordStore``), or every recompute would rewrite every state and the change log would
fill with changes that are none. And the recompute reads stored hashes per learner range
instead of per batch: a state whose content did not change still produces no change row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from gateway.mastery.attach import engine_of
from gateway.mastery.derived import Derived
from gateway.mastery.engine import SOURCE, state_id, to_record
from gateway.mastery.methods import Rule
from gateway.mastery.serial import computed_at_suffix, state_json
from gateway.model import EvidenceKind, MasteryMethod, MasteryRule, Status
from gateway.store import Store
from gateway.store import tables as t
from gateway.store.prepare import PROMOTED, record_digest

from . import factories as f

T = f.T
DAY = datetime(2026, 9, 1, tzinfo=UTC)

ids = st.uuids()
# floats the engine produces (0..1, rounded weights) and awkward ones for a float serialiser;
# ints too: the engine may compute one, and pydantic writes a float field's int as 1.0
numbers = st.one_of(st.floats(0, 1), st.floats(1e-12, 1e-4), st.floats(1e15, 1e22), st.integers(0, 3))
times = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])),
)
contribution = st.tuples(st.one_of(st.none(), ids), st.one_of(st.none(), ids), numbers, numbers)
parameter = st.one_of(st.none(), st.integers(-5, 50), st.floats(0, 1), st.text(max_size=12))


@st.composite
def derived(draw: st.DrawFn) -> Derived:
    method = draw(st.sampled_from(list(MasteryMethod)))
    rule = Rule(method=method, name=draw(st.text(min_size=1, max_size=20)), rule_id=draw(st.one_of(st.none(), ids)))
    value = draw(st.one_of(st.none(), numbers))
    return Derived(
        competency=draw(ids), rule=rule, method=method, value=value,
        level=None if value is None else draw(st.text(min_size=1, max_size=6)), mastered=draw(st.booleans()),
        contributions=draw(st.lists(contribution, max_size=6)), evidence_count=draw(st.integers(0, 500)),
        first_at=draw(times), last_at=draw(times),
        parameters=draw(st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k != "rule"), parameter, max_size=4)),
    )


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(d=derived(), learner=ids, now=times.filter(lambda v: v is not None))
def test_the_serialised_state_is_the_records_bytes(d: Derived, learner: uuid.UUID, now: datetime) -> None:
    record = to_record(T, learner, d, now)
    digest, body = record_digest(record, None, frozenset({"computed_at"}))
    head, fast_digest, fast_body = state_json(T, SOURCE, state_id(T, learner, d.competency), f"{learner}:{d.competency}",
                                              learner, d, computed_at_suffix(now))
    assert (fast_body, fast_digest) == (body, digest)
    assert (head.id, head.source, head.native_id, head.status) == (record.id, record.source, record.native_id, record.status)
    assert [get(head) for get in PROMOTED["mastery_state"].values()] == [get(record) for get in PROMOTED["mastery_state"].values()]


def _states(store: Store) -> dict[uuid.UUID, tuple[str, str]]:
    ms = t.mastery_states
    with store.engine.connect() as conn:
        return {r.id: (r.content_hash, r.data) for r in conn.execute(select(ms.c.id, ms.c.content_hash, ms.c.data).where(ms.c.tenant == T))}


def _without_times(data: str) -> str:
    import orjson

    doc = orjson.loads(data)
    del doc["computed_at"], doc["updated_at"]
    return orjson.dumps(doc).decode()


def test_a_recompute_stores_what_the_incremental_path_stored(store: Store) -> None:
    school = f.org()
    kids = [f.person(f"u{i}", school) for i in range(3)]
    fw = f.framework("state")
    comps = [f.competency(c, fw) for c in "ABC"]
    store.records.apply(T, [school, *kids, fw, *comps])
    evidence = [f.evidence(f"e{i}", kids[i % 3], comps[i % 2], raw=i % 11, observed_at=DAY + timedelta(days=i)) for i in range(12)]
    for e in evidence:
        store.records.apply(T, [e])  # incremental: one transaction each
    incremental = _states(store)
    assert len(incremental) == 6

    report = engine_of(store).recompute(T)
    assert (report.states, report.written) == (6, 0)  # same hashes: nothing rewritten, no change row
    assert _states(store) == incremental

    with store.engine.begin() as conn:  # as on a fresh load: the recompute creates every state
        conn.execute(delete(t.mastery_states).where(t.mastery_states.c.tenant == T))
    seq = store.records.changes_since(T)[-1]["seq"]
    assert engine_of(store).recompute(T, workers=2).written == 6
    again = _states(store)
    assert {k: (h, _without_times(d)) for k, (h, d) in again.items()} == {k: (h, _without_times(d)) for k, (h, d) in incremental.items()}
    assert sorted(c["op"] for c in store.records.changes_since(T, seq)) == ["created"] * 6


def test_a_recompute_retires_a_state_once(store: Store) -> None:
    school = f.org()
    kid = f.person("u1", school)
    fw = f.framework("state")
    a = f.competency("A", fw)
    store.records.apply(T, [school, kid, fw, a])
    store.records.apply(T, [f.evidence("e1", kid, a, raw=7, evidence_kind="assessment")])
    sid = state_id(T, kid.id, a.id)
    assert store.records.get(T, "mastery_state", sid).status is Status.active
    # rules apply at the next recompute: then no evidence of A counts any more
    store.records.apply(T, [MasteryRule(tenant=T, source="admin", native_id="r", name="no tests", method=MasteryMethod.mean,
                                        kind_weights={EvidenceKind.assessment: 0.0}, framework_id=fw.id)])
    seq = store.records.changes_since(T)[-1]["seq"]
    first = engine_of(store).recompute(T)
    assert (first.states, first.retired, first.written) == (0, 1, 1)
    assert store.records.get(T, "mastery_state", sid).status is Status.tobedeleted
    assert [(c["record_id"], c["op"]) for c in store.records.changes_since(T, seq)] == [(sid, "deleted")]
    again = engine_of(store).recompute(T)
    assert (again.retired, again.written) == (0, 0)
