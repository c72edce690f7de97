"""The incremental update's states go through a lean path of their own
(``gateway/store/state_write.py``): the table, the change log and the outbox must get what the
generic record path gives them. A state pushed by a route reaches the outbox with the stored
content hash; a change is logged once per real change (created, then updated), none for an
unchanged state; and a full recompute, which writes through the generic path, finds nothing
to change."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from gateway.mastery.attach import engine_of
from gateway.mastery.engine import state_id
from gateway.store import Store
from gateway.store import tables as t

from . import factories as f

T = f.T


def _log(store: Store, sid) -> list[tuple[str, str]]:
    ch = t.changes
    with store.engine.connect() as conn:
        return [(r.op, r.content_hash) for r in conn.execute(
            select(ch.c.op, ch.c.content_hash).where(ch.c.tenant == T, ch.c.record_kind == "mastery_state", ch.c.record_id == sid)
            .order_by(ch.c.seq))]


def _stored(store: Store, sid) -> tuple[str, str]:
    ms = t.mastery_states
    with store.engine.connect() as conn:
        row = conn.execute(select(ms.c.content_hash, ms.c.data, ms.c.created_at, ms.c.updated_at).where(ms.c.id == sid)).one()
    return row.content_hash, row


def test_states_of_the_incremental_path_are_logged_and_pushed_as_records_are(store: Store) -> None:
    school = f.org()
    kid = f.person("u1", school)
    fw = f.framework()
    comp = f.competency("C1", fw)
    store.records.apply(T, [school, kid, fw, comp])
    sink = store.routing.create_connection(T, "sink", adapter="webhook", role="webhook", system="sink")
    route = store.routing.create_route(T, "states", destination=sink, kinds=["mastery_state"])
    sid = state_id(T, kid.id, comp.id)

    store.records.apply(T, [f.evidence("e1", kid, comp, raw=6)])
    first, row1 = _stored(store, sid)
    assert _log(store, sid) == [("created", first)]
    assert [(p["record_id"], p["content_hash"]) for p in store.routing.pending(T, route)] == [(sid, first)]

    store.records.apply(T, [f.evidence("e1", kid, comp, raw=6)])  # the same evidence again: nothing changes
    assert _log(store, sid) == [("created", first)]

    store.records.apply(T, [f.evidence("e2", kid, comp, raw=9)])
    second, row2 = _stored(store, sid)
    assert second != first
    assert _log(store, sid) == [("created", first), ("updated", second)]
    assert row2.created_at == row1.created_at and row2.updated_at >= row1.updated_at  # an update keeps created_at
    assert orjson.loads(row2.data)["evidence_count"] == 2 and "updated_at" in orjson.loads(row2.data)
    assert [(p["record_id"], p["content_hash"]) for p in store.routing.pending(T, route)] == [(sid, first), (sid, second)]
    rec = store.records.get(T, "mastery_state", sid)
    assert rec.evidence_count == 2 and rec.learner_id == kid.id and rec.competency_id == comp.id  # type: ignore[attr-defined]
    assert engine_of(store).recompute(T).written == 0
