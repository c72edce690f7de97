"""The incremental mastery update's reads: what one evidence transaction's states need, by
exact keys (``incremental.update``).

Every evidence transaction runs them (an xAPI batch is a hundred learners at once), so they
read only what the derivation uses, whatever the volume already stored: the evidence of each
(learner, competency) pair of the targets' and their ancestors' equivalence groups, and the
stored states of those and of the rollups' children, by primary key. Reading each learner's
evidence whole made every batch cost more than the one before as statements accumulated.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, overload

from sqlalchemy import Connection

from gateway.model import Status, record_id
from gateway.model.base import _NAMESPACE_BYTES, _V5_CLEAR, _V5_SET, uuid_from_int
from gateway.store.db import sqlite_in
from gateway.store.pg_arrays import uuid_array_of_ints as pg_uuid_array

SOURCE = "tessera.mastery"

#: an evidence row as the engine reads it
EvidenceRow = tuple[uuid.UUID, uuid.UUID, datetime, float | None, str | None, str | None, bool | None]


def state_names(tenant: str, learner: str, competency: str) -> tuple[uuid.UUID, str]:
    """(id, native id) of a state, from its learner's and competency's ids as text (which
    the recompute formats once per learner and competency, not once per state)."""
    native = f"{learner}:{competency}"
    return record_id(tenant, "mastery_state", SOURCE, native), native


def _state_namer(tenant: str, learner: str) -> Callable[[str], tuple[uuid.UUID, str]]:
    """``state_names`` for one learner's states, from ``state_int_namer``."""
    ints = state_int_namer(tenant, learner)

    def name(competency: str) -> tuple[uuid.UUID, str]:
        return uuid_from_int(ints(competency)), f"{learner}:{competency}"

    return name


def state_int_namer(tenant: str, learner: str) -> Callable[[str], int]:
    """``state_names``'s id of one learner's states, as an int: the name's common prefix is
    hashed once, and each competency's text added to a copy (the incremental update names a
    dozen states per learner per batch, and makes a UUID only for those it writes)."""
    base = hashlib.sha1(_NAMESPACE_BYTES + f"{tenant}\x1fmastery_state\x1f{SOURCE}\x1f{learner}:".encode())

    def name(competency: str) -> int:
        h = base.copy()
        h.update(competency.encode())
        return (int.from_bytes(h.digest()[:16], "big") & _V5_CLEAR) | _V5_SET

    return name


# The incremental path's two reads are written as driver SQL (see ``evidence_pairs``): they
# run in every evidence transaction, where building statements and SQLAlchemy's per-row
# conversions cost more than the database took to answer.
_EVIDENCE_SELECT = ("e.learner_id, e.id, e.competency_id, e.observed_at, e.scaled, e.level, e.evidence_kind, e.success")
_SQLITE_MAX_PAIRS = 4096  # 2 parameters a pair, well under SQLite's 32,766


def _sqlite_uuid(value: bytes) -> uuid.UUID:
    return uuid_from_int(int.from_bytes(value, "big"))  # ``store.db.uuid_from_sqlite`` without its checks: ids read back as 16 bytes


def evidence_pairs(conn: Connection, tenant: str, learners: Sequence[uuid.UUID], wanted: Sequence[tuple[int, ...]],
                   ids: Sequence[uuid.UUID]) -> list[dict[int, list[EvidenceRow]]]:
    """The counted evidence of exactly these (learner, competency) pairs: for each of
    ``learners``, the rows of each competency (a number: ``ids[i]`` is its id) of its
    ``wanted``, one probe of ix_evidence_tenant_learner_id_competency_id a pair.

    ``learner_id IN (...) AND competency_id IN (...)`` made SQLite probe every combination
    (400 learners x 200 competencies for one batch), and the learners' rows whole grew with
    every statement they ever sent; a join with the pairs as a VALUES list reads only the
    rows asked for. PostgreSQL reads the learners' rows (see below)."""
    out: list[dict[int, list[EvidenceRow]]] = [{} for _ in learners]
    if not learners:
        return out
    where = "e.voided = %s AND e.superseded_by IS NULL AND e.status = %s"
    numbers = {i for mine in wanted for i in mine}
    if conn.dialect.name == "postgresql":
        # By learner, the pairs kept here: joined with the pairs (unnest), PostgreSQL's
        # planner took a fresh table's missing statistics for a tiny table and scanned every
        # evidence row of the tenant once per pair (2 s a batch, measured); ``learner_id =
        # ANY`` probes the index's (tenant, learner_id) prefix whatever the statistics say.
        at = {learner: n for n, learner in enumerate(learners)}
        sets = [frozenset(mine) for mine in wanted]
        number_of = {ids[i]: i for i in numbers}
        rows = conn.exec_driver_sql(
            f"SELECT {_EVIDENCE_SELECT} FROM evidence AS e WHERE e.tenant = %s AND e.learner_id = ANY(%s::uuid[]) AND {where}",
            (tenant, pg_uuid_array([learner.int for learner in learners]), False, Status.active.value),
        ).all()
        for learner, eid, comp, observed, scaled, level, kind, success in rows:
            n, i = at[learner], number_of.get(comp)
            if i is None or i not in sets[n]:
                continue
            if observed.tzinfo is not UTC:
                observed = observed.astimezone(UTC)
            mine = out[n].get(i)
            if mine is None:
                mine = out[n][i] = []
            mine.append((eid, ids[i], observed, scaled, level, kind, success))
        return out
    comp_bytes = {i: ids[i].bytes for i in numbers}  # competencies: few, converted once
    number_of_bytes = {b: i for i, b in comp_bytes.items()}
    learner_bytes = [learner.bytes for learner in learners]
    at_bytes = {b: n for n, b in enumerate(learner_bytes)}
    pairs = [(lb, comp_bytes[i]) for lb, mine in zip(learner_bytes, wanted, strict=True) for i in mine]
    for start in range(0, len(pairs), _SQLITE_MAX_PAIRS):
        chunk = pairs[start : start + _SQLITE_MAX_PAIRS]
        # padded to a power of two with a pair no row has, so that few statement texts are compiled
        size = max(16, 1 << (len(chunk) - 1).bit_length())
        params: list[Any] = [v for pair in chunk for v in pair]
        params += (bytes(16), bytes(16)) * (size - len(chunk))
        sql = (f"WITH k(l, c) AS (VALUES {', '.join(['(?, ?)'] * size)}) SELECT {_EVIDENCE_SELECT} FROM k "
               f"JOIN evidence AS e ON e.tenant = ? AND e.learner_id = k.l AND e.competency_id = k.c WHERE {where.replace('%s', '?')}")
        found = conn.exec_driver_sql(sql, (*params, tenant, False, Status.active.value)).all()  # .all(): one fetch, not a call a row
        for learner, eid, comp, observed, scaled, level, kind, success in found:
            n, i = at_bytes[learner], number_of_bytes[comp]
            mine = out[n].get(i)
            if mine is None:
                mine = out[n][i] = []
            mine.append((_sqlite_uuid(eid), ids[i], datetime.fromisoformat(observed).replace(tzinfo=UTC), scaled, level, kind,
                         None if success is None else bool(success)))
    return out


@overload
def state_rows(conn: Connection, sids: Sequence[int], *, with_data: Literal[False] = False) -> dict[int, tuple[str, str]]: ...
@overload
def state_rows(conn: Connection, sids: Sequence[int], *, with_data: Literal[True]) -> list[tuple[int, str, str | None]]: ...


def state_rows(conn: Connection, sids: Sequence[int], *, with_data: bool = False) -> Any:
    """Stored states by primary key (ids as ints; a state's id is a name hash of tenant,
    learner and competency): state id -> (status, content hash), or with ``with_data``
    [(state id, content hash, document)]."""
    columns = "id, content_hash, data" if with_data else "id, status, content_hash"
    rows: list[tuple[int, Any, Any]] = []
    if sids and conn.dialect.name == "postgresql":
        rows = [(r[0].int, r[1], r[2]) for r in conn.exec_driver_sql(
            f"SELECT {columns} FROM mastery_states WHERE id = ANY(%s::uuid[])", (pg_uuid_array(sids),)).all()]
    else:
        for cond, params in sqlite_in("id", [k.to_bytes(16, "big") for k in sids], _SQLITE_MAX_PAIRS * 2):
            rows.extend((int.from_bytes(r[0], "big"), r[1], r[2]) for r in conn.exec_driver_sql(
                f"SELECT {columns} FROM mastery_states WHERE {cond}", params).all())
    if with_data:
        return rows
    return {sid: (status, digest) for sid, status, digest in rows}
