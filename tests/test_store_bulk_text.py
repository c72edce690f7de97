"""The shared bulk write (``db.BulkStatement``, used by ``RecordWriter`` for every record)
stores every column exactly as given on both backends. On PostgreSQL its uuid columns go as
one binary array each, its short text columns as one array text each and the columns every
row shares once (``pg_arrays``): quotes, backslashes, commas, braces, the text "NULL" next to
a real NULL, spaces at either end, the empty text and non-ASCII text must come back as they
were, in the records' tables, their identifiers and the change log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import select

from gateway.model import Identifier
from gateway.store import Store
from gateway.store import tables as t
from gateway.store.db import BulkStatement
from gateway.store.pg_arrays import text_array

from . import factories as f

T = f.T
ODD = ['a"b', "c\\d", "x,y {z}", "NULL", "null", "é ✓ 😀", "", ' \\" ', "}{", '"', "\\", "a\tb\nc"]


def _changes(store: Store, kind: str) -> dict[uuid.UUID, tuple[str, str, str]]:
    ch = t.changes
    with store.engine.connect() as conn:
        return {r.record_id: (r.tenant, r.op, r.content_hash)
                for r in conn.execute(select(ch).where(ch.c.record_kind == kind).order_by(ch.c.seq))}


def test_records_with_awkward_text_are_stored_as_given(store: Store) -> None:
    school = f.org()
    people = [f.person(f"u{i}:{text}", school, identifiers=[Identifier(system=f"sys {text}", kind="email", value=f"{text}@x"),
                                                            Identifier(system="sis", kind=f"k{text}", value=text or "-")])
              for i, text in enumerate(ODD)]
    fw = f.framework()
    comp = f.competency("C1", fw)
    evidence = [f.evidence(f"e{i}{text}", people[i], comp if i % 2 else None, level=None if i % 3 == 0 else f"L {text}")
                for i, text in enumerate(ODD)]
    result = store.records.apply(T, [school, *people, fw, comp, *evidence])
    assert result.created == len(ODD) * 2 + 3

    pe, ev, ids = t.people, t.evidence, t.identifiers
    with store.engine.connect() as conn:
        stored_people = {r.id: r for r in conn.execute(select(pe))}
        stored_evidence = {r.id: r for r in conn.execute(select(ev))}
        stored_ids = sorted((r.record_id, r.tenant, r.record_kind, r.system, r.kind, r.value) for r in conn.execute(select(ids)))
    for p in people:
        r = stored_people[p.id]
        assert (r.tenant, r.source, r.native_id, r.status, r.primary_role) == (T, "sis", p.native_id, "active", "student")
        assert orjson.loads(r.data)["native_id"] == p.native_id and r.created_at == r.updated_at
    assert stored_ids == sorted((p.id, T, "person", i.system, i.kind, i.value) for p in people for i in p.identifiers)
    for e in evidence:
        r = stored_evidence[e.id]
        assert (r.tenant, r.native_id, r.learner_id, r.competency_id, r.level, r.superseded_by, r.voided) == (
            T, e.native_id, e.learner_id, e.competency_id, e.level, None, False)
    logged = _changes(store, "person")
    assert {k: v[:2] for k, v in logged.items()} == {p.id: (T, "created") for p in people}
    assert all(stored_people[k].content_hash == v[2] for k, v in logged.items())

    # again, changed: every row an update, and the same text still comes back
    store.records.apply(T, [p.model_copy(update={"given_name": p.native_id}) for p in people])
    with store.engine.connect() as conn:
        again = {r.id: r for r in conn.execute(select(pe))}
    for p in people:
        assert orjson.loads(again[p.id].data)["given_name"] == p.native_id
        assert again[p.id].created_at == stored_people[p.id].created_at and again[p.id].updated_at > stored_people[p.id].updated_at
    assert {k: v[1] for k, v in _changes(store, "person").items()} == {p.id: "updated" for p in people}
    with store.engine.connect() as conn:
        assert sorted((r.record_id, r.system, r.kind, r.value) for r in conn.execute(select(ids))) == sorted(
            (p.id, i.system, i.kind, i.value) for p in people for i in p.identifiers)


def test_a_bulk_statement_stores_nulls_and_shared_values_as_given(store: Store) -> None:
    """``BulkStatement`` itself: a nullable text column with NULLs next to the text "NULL", a
    nullable uuid column with NULLs, and the ``same`` columns (sent once on PostgreSQL) on
    every row."""
    store.records.apply(T, [f.org()])  # the tenant
    co = t.competencies
    columns = ["id", "tenant", "source", "native_id", "status", "content_hash", "framework_id", "guid", "code",
               "created_at", "updated_at", "data"]
    bulk = BulkStatement(co, columns, store.engine.dialect, same=["tenant", "created_at", "updated_at"])
    procs = bulk.procs
    now = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)
    fw = uuid.uuid4()
    wanted = []
    for i, text in enumerate([*ODD, None, None]):
        guid = None if i % 3 == 0 else uuid.uuid4()
        wanted.append((uuid.uuid4(), T, f"s{text}", f"n{i}{text}", "active", f"{i:064x}", fw, guid, text, now, now,
                       orjson.dumps({"text": text}).decode()))
    flat = [v if (proc := procs[c]) is None or v is None else proc(v) for row in wanted for c, v in zip(columns, row, strict=True)]
    with store.records.write_transaction() as conn:
        bulk.execute_flat(conn, flat, len(wanted))
    with store.engine.connect() as conn:
        got = {r.id: tuple(getattr(r, c) for c in columns) for r in conn.execute(select(co))}
    assert got == {row[0]: row for row in wanted}


def test_shared_columns_must_be_among_the_columns(store: Store) -> None:
    with pytest.raises(ValueError, match="shared columns"):
        BulkStatement(t.changes, ["tenant", "record_id"], store.engine.dialect, same=["at"])


def test_text_arrays_quote_what_postgresql_would_misread() -> None:
    assert text_array([]) == "{}"
    assert text_array(["a", "b"]) == '{"a","b"}'
    assert text_array([None, "NULL", None]) == '{NULL,"NULL",NULL}'
    assert text_array(['a"b', "c\\d", None]) == '{"a\\"b","c\\\\d",NULL}'
    with pytest.raises(TypeError):
        text_array([b"bytes"])
