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


def test_the_lean_writer_stores_every_column_as_given_whatever_its_text(store: Store) -> None:
    """On PostgreSQL the lean path sends most columns as array text (``state_write``): quotes,
    backslashes, commas, braces, a quoted "NULL", non-ASCII text and missing values come back
    as they were, in the table and in the change log."""
    import uuid
    from datetime import UTC, datetime

    from gateway.mastery.serial import StateHead
    from gateway.model import Status, record_id

    store.records.apply(T, [f.org()])  # the tenant
    odd = ['a"b', "c\\d", "x,y {z}", "NULL", "é ✓", "", ' \\" ']
    heads = []
    for i, text in enumerate(odd):
        native = f"n{i}:{text}"
        source = "tessera.mastery" if i % 2 else f"src {text}"
        heads.append(StateHead(record_id(T, "mastery_state", source, native), source, native,
                               Status.tobedeleted if i == 3 else Status.active, uuid.uuid5(uuid.NAMESPACE_URL, f"l{i}"), uuid.uuid5(uuid.NAMESPACE_URL, f"c{i}"),
                               None if i == 2 else f"level {text}", None if i == 4 else 0.1 + i / 7, None if i == 5 else i % 2 == 0))
    items = [(h, f"{i:064x}", '{"text":' + orjson.dumps(odd[i]).decode()) for i, h in enumerate(heads)]
    now = datetime(2026, 12, 7, 11, 30, 0, 123000, tzinfo=UTC)
    with store.records.write_transaction() as conn:
        assert store.records.write_states(conn, T, items, {}, now=now) == len(items)
    ms = t.mastery_states
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(ms).where(ms.c.id.in_([h.id for h in heads])))}
    for (h, digest, body) in items:
        r = rows[h.id]
        assert (r.tenant, r.source, r.native_id, r.status, r.content_hash, r.learner_id, r.competency_id, r.level, r.value, r.mastered) == (
            T, h.source, h.native_id, h.status.value, digest, h.learner_id, h.competency_id, h.level, h.value, h.mastered)
        assert r.data == body + ',"updated_at":"' + now.isoformat() + '"}' and r.created_at == now == r.updated_at
        assert _log(store, h.id) == [("created", digest)]
