"""The incremental mastery update's reads: what one evidence transaction's states need, by
exact keys (``engine.MasteryEngine.on_evidence``).

Every evidence transaction runs them (an xAPI batch is a hundred learners at once), so they
read only what the derivation uses, whatever the volume already stored: the evidence of each
(learner, competency) pair of the targets' and their ancestors' equivalence groups, and the
stored states of those and of the rollups' children, by primary key. Reading each learner's
evidence whole made every batch cost more than the one before as statements accumulated.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from gateway.model import Status, record_id
from gateway.model.base import _NAMESPACE_BYTES, _V5_CLEAR, _V5_SET, uuid_from_int

SOURCE = "tessera.mastery"

#: an evidence row as the engine reads it
EvidenceRow = tuple[uuid.UUID, uuid.UUID, datetime, float | None, str | None, str | None, bool | None]


def state_names(tenant: str, learner: str, competency: str) -> tuple[uuid.UUID, str]:
    """(id, native id) of a state, from its learner's and competency's ids as text (which
    the recompute formats once per learner and competency, not once per state)."""
    native = f"{learner}:{competency}"
    return record_id(tenant, "mastery_state", SOURCE, native), native


def _state_namer(tenant: str, learner: str) -> Callable[[str], tuple[uuid.UUID, str]]:
    """``state_names`` for one learner's states: the name's common prefix is hashed once,
    and each competency's text added to a copy (the incremental path names a dozen states
    per learner per batch, read and written)."""
    base = hashlib.sha1(_NAMESPACE_BYTES + f"{tenant}\x1fmastery_state\x1f{SOURCE}\x1f{learner}:".encode())

    def name(competency: str) -> tuple[uuid.UUID, str]:
        h = base.copy()
        h.update(competency.encode())
        return uuid_from_int((int.from_bytes(h.digest()[:16], "big") & _V5_CLEAR) | _V5_SET), f"{learner}:{competency}"

    return name


_texts: dict[uuid.UUID, str] = {}


def _text(competency: uuid.UUID) -> str:
    """A competency id's text, formatted once per process (competencies are few)."""
    s = _texts.get(competency)
    if s is None:
        if len(_texts) > 200_000:
            _texts.clear()
        s = _texts[competency] = str(competency)
    return s


# The incremental path's two reads are written as driver SQL (see ``_pair_evidence``): they
# run in every evidence transaction, where building statements and SQLAlchemy's per-row
# conversions cost more than the database took to answer.
_EVIDENCE_SELECT = ("e.learner_id, e.id, e.competency_id, e.observed_at, e.scaled, e.level, e.evidence_kind, e.success")
_SQLITE_MAX_PAIRS = 4096  # 2 parameters a pair, well under SQLite's 32,766


def _sqlite_uuid(value: bytes) -> uuid.UUID:
    return uuid_from_int(int.from_bytes(value, "big"))


def _pair_evidence(conn: Connection, tenant: str, keys: set[tuple[uuid.UUID, uuid.UUID]]) -> dict[uuid.UUID, dict[uuid.UUID, list[EvidenceRow]]]:
    """The counted evidence of exactly these (learner, competency) pairs: learner ->
    competency -> rows, one probe of ix_evidence_tenant_learner_id_competency_id a pair.

    ``learner_id IN (...) AND competency_id IN (...)`` made SQLite probe every combination
    (400 learners x 200 competencies for one batch), and the learners' rows whole grew with
    every statement they ever sent; a join with the pairs as a VALUES list reads only the
    rows asked for. PostgreSQL reads the learners' rows (see below)."""
    out: dict[uuid.UUID, dict[uuid.UUID, list[EvidenceRow]]] = defaultdict(lambda: defaultdict(list))
    if not keys:
        return out
    pairs = list(keys)
    where = "e.voided = %s AND e.superseded_by IS NULL AND e.status = %s"
    if conn.dialect.name == "postgresql":
        # By learner, the pairs kept here: joined with the pairs (unnest), PostgreSQL's
        # planner took a fresh table's missing statistics for a tiny table and scanned every
        # evidence row of the tenant once per pair (2 s a batch, measured); ``learner_id =
        # ANY`` probes the index's (tenant, learner_id) prefix whatever the statistics say.
        wanted = keys
        rows = conn.exec_driver_sql(
            f"SELECT {_EVIDENCE_SELECT} FROM evidence AS e WHERE e.tenant = %s AND e.learner_id = ANY(%s::uuid[]) AND {where}",
            (tenant, list({p[0] for p in pairs}), False, Status.active.value),
        ).all()
        for learner, eid, comp, observed, scaled, level, kind, success in rows:
            if (learner, comp) not in wanted:
                continue
            if observed.tzinfo is not UTC:
                observed = observed.astimezone(UTC)
            out[learner][comp].append((eid, comp, observed, scaled, level, kind, success))
        return out
    by_bytes = {p[1].bytes: p[1] for p in pairs}  # competencies: few, converted once
    learners = {p[0].bytes: p[0] for p in pairs}
    for i in range(0, len(pairs), _SQLITE_MAX_PAIRS):
        chunk = pairs[i : i + _SQLITE_MAX_PAIRS]
        # padded to a power of two with a pair no row has, so that few statement texts are compiled
        size = max(16, 1 << (len(chunk) - 1).bit_length())
        params: list[Any] = []
        for learner, comp in chunk:
            params += (learner.bytes, comp.bytes)
        params += (bytes(16), bytes(16)) * (size - len(chunk))
        sql = (f"WITH k(l, c) AS (VALUES {', '.join(['(?, ?)'] * size)}) SELECT {_EVIDENCE_SELECT} FROM k "
               f"JOIN evidence AS e ON e.tenant = ? AND e.learner_id = k.l AND e.competency_id = k.c WHERE {where.replace('%s', '?')}")
        for learner, eid, comp, observed, scaled, level, kind, success in conn.exec_driver_sql(sql, (*params, tenant, False, Status.active.value)):
            c = by_bytes[comp]
            out[learners[learner]][c].append((_sqlite_uuid(eid), c, datetime.fromisoformat(observed).replace(tzinfo=UTC), scaled, level, kind,
                                              None if success is None else bool(success)))
    return out


#: state id (its int) by (tenant, learner int, competency int): an incremental update names a
#: dozen states a learner (its targets, their ancestors, the rollups' children), mostly the same
#: ones batch after batch, and a name (a sha1 and a UUID) cost more than reading the state.
#: About 200 bytes an entry; emptied when full (a refill is a batch's naming).
_NAMES: dict[tuple[str, int, int], int] = {}
NAMES_CACHED = 250_000


class StateNames:
    """(state id, native id) of the states of one batch, by (learner, competency): the id from
    ``_NAMES`` (or named and remembered), the UUID and native id made only for a state that
    is written."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._learners: dict[uuid.UUID, str] = {}

    def ints_of(self, learner: uuid.UUID, competencies: Iterable[uuid.UUID]) -> list[tuple[int, uuid.UUID]]:
        """(state id as an int, competency) of each of one learner's ``competencies``."""
        tenant, li, out = self.tenant, learner.int, []
        namer = None
        for c in competencies:
            key = (tenant, li, c.int)
            sid = _NAMES.get(key)
            if sid is None:
                if namer is None:
                    namer = _state_namer(tenant, self._text(learner))
                sid = namer(_text(c))[0].int
                if len(_NAMES) >= NAMES_CACHED:
                    _NAMES.clear()
                _NAMES[key] = sid
            out.append((sid, c))
        return out

    def _text(self, learner: uuid.UUID) -> str:
        s = self._learners.get(learner)
        if s is None:
            s = self._learners[learner] = str(learner)
        return s

    def __getitem__(self, key: tuple[uuid.UUID, uuid.UUID]) -> tuple[uuid.UUID, str]:
        learner, competency = key
        ((sid, _),) = self.ints_of(learner, (competency,))
        return uuid_from_int(sid), f"{self._text(learner)}:{_text(competency)}"


def _stored_states(conn: Connection, tenant: str, wanted: dict[uuid.UUID, set[uuid.UUID]],
                   bodies: dict[uuid.UUID, set[uuid.UUID]] | None = None,
                   ) -> tuple[dict[tuple[uuid.UUID, uuid.UUID], tuple[str, str | None]], dict[uuid.UUID, str], StateNames]:
    """The stored states of exactly these learners' competencies, read by primary key (a
    state's id is a name hash of tenant, learner and competency): ((learner, competency)
    -> (status, data), state id -> content hash, the names (``StateNames``) of the states.

    ``bodies``: the states whose document is read too (a rollup's children the batch does not
    recompute); of the ``wanted`` ones only status and hash are (the states it recomputes,
    whose documents it makes anew: a rollup's lists a contribution per child). None: every
    document."""
    names = StateNames(tenant)
    postgres = conn.dialect.name == "postgresql"
    stored: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, str | None]] = {}
    hashes: dict[uuid.UUID, str] = {}
    for part, with_data in ((wanted, bodies is None), (bodies or {}, True)):
        ids: dict[int, tuple[uuid.UUID, uuid.UUID]] = {}
        for learner, cs in part.items():
            for sid, c in names.ints_of(learner, cs):
                ids[sid] = (learner, c)
        if not ids:
            continue
        columns = "id, status, content_hash, data" if with_data else "id, status, content_hash, NULL"
        keys = list(ids)
        if postgres:
            rows: Iterable[Any] = [(r[0].int, *r[1:]) for r in conn.exec_driver_sql(
                f"SELECT {columns} FROM mastery_states WHERE id = ANY(%s::uuid[])", ([uuid_from_int(k) for k in keys],))]
        else:
            rows = []
            for i in range(0, len(keys), _SQLITE_MAX_PAIRS * 2):
                chunk = [k.to_bytes(16, "big") for k in keys[i : i + _SQLITE_MAX_PAIRS * 2]]
                size = max(16, 1 << (len(chunk) - 1).bit_length())
                chunk.extend([chunk[0]] * (size - len(chunk)))  # repeats change nothing in IN
                rows.extend((int.from_bytes(r[0], "big"), *r[1:]) for r in conn.exec_driver_sql(
                    f"SELECT {columns} FROM mastery_states WHERE id IN ({', '.join(['?'] * size)})", tuple(chunk)))
        for key, status, digest, data in rows:
            stored[ids[key]] = (status, data)
            if not with_data or bodies is None:  # a state the batch may write: its hash says whether it changed
                hashes[uuid_from_int(key)] = digest
    return stored, hashes, names
