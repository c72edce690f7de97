"""The incremental update (``MasteryEngine.on_evidence``): the states one evidence transaction
touches, recomputed in that transaction, on the tenant's structure compiled to small ints
(``derivation.Compiled``): every evidence transaction runs it (the xAPI consumer's batches of
250 statements, a hundred learners at once). One read of the evidence of exactly the
(learner, competency) pairs the plans name, one of the stored states' status and content hash
(those recomputed, and the rollups' children that are not), and the computation of
``derivation.derive`` (``leaf_of``, ``rollup``, ``members_of``) in the same order.

A rollup's child that the transaction does not recompute is read from its stored state: its
status and content hash always (by primary key), its document only when ``Summaries`` does not
know that hash yet. ``Summaries`` maps a content hash to what a rollup reads of the state
(value, mastery, count, dates); the hash covers all of those, so an entry can never be stale,
whichever process or transaction wrote the state, and whether or not that transaction
committed. Parsing the children's documents was a fifth of the update's CPU. A state whose
new content hash is the stored one is not written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import orjson
from sqlalchemy import Connection

from gateway.model import MasteryState, Status, ensure_aware
from gateway.model.base import uuid_from_int

from .derivation import Compiled, Plan, Summary, compiled, leaf_of, members_of, rollup, summary
from .derived import Derived
from .reads import SOURCE, EvidenceRow, evidence_pairs, state_names, state_rows
from .serial import StateHead, computed_at_suffix, state_json
from .structure import TenantModel

_ACTIVE = Status.active.value


class Summaries:
    """content hash -> ``Summary`` of the state with that content (module docstring)."""

    KEPT = 100_000  # about 300 bytes an entry (30 MB); emptied when full (a refill reads documents again)

    def __init__(self) -> None:
        self._by_hash: dict[str, Summary] = {}

    def get(self, digest: str) -> Summary | None:
        return self._by_hash.get(digest)

    def room(self, n: int) -> dict[str, Summary]:
        """The dict itself, with room for ``n`` more entries (the update's loop adds them)."""
        if len(self._by_hash) + n > self.KEPT:
            self._by_hash.clear()
        return self._by_hash

    def put(self, digest: str, summary: Summary) -> Summary:
        if len(self._by_hash) >= self.KEPT:
            self._by_hash.clear()
        self._by_hash[digest] = summary
        return summary


def _summary_of(data: str) -> Summary:
    """A stored state's summary from its document, read without validating the whole state
    (its contributions list every evidence item)."""
    doc = orjson.loads(data)
    first, last = doc.get("first_at"), doc.get("last_at")
    return (doc.get("value"), bool(doc.get("mastered")), doc.get("evidence_count", 0),
            ensure_aware(datetime.fromisoformat(first)) if first else None,
            ensure_aware(datetime.fromisoformat(last)) if last else None)


def retired(tenant: str, learner: uuid.UUID, competency: uuid.UUID, model: TenantModel, now: datetime) -> MasteryState:
    """A state whose evidence is all gone (voided, superseded, re-aligned): kept, marked deleted."""
    rule = model.rule(competency)
    return MasteryState(
        id=state_names(tenant, str(learner), str(competency))[0], tenant=tenant, source=SOURCE,
        native_id=f"{learner}:{competency}", status=Status.tobedeleted, learner_id=learner, competency_id=competency,
        method=rule.method, rule_id=rule.rule_id, evidence_count=0, computed_at=now,
    )


def lock_learners(conn: Connection, tenant: str, learners: Iterable[uuid.UUID]) -> None:
    """PostgreSQL: hold a transaction advisory lock per learner until this transaction ends,
    taken in one order (no deadlock between two batches), before the learners' evidence is
    read. Transactions write concurrently there (``tessera serve --workers N``): without
    it, two that add evidence for the same learner at once would each derive the states
    from a snapshot without the other's evidence, and the last to commit would win with a
    state missing an item. With it, the second waits, then reads the first's committed
    evidence (READ COMMITTED: each statement sees what committed before it began). A lock
    key shared by two learners (a 64-bit hash) only makes them wait for each other."""
    keys = sorted({int.from_bytes(hashlib.blake2b(f"{tenant}/{learner}".encode(), digest_size=8).digest(), "big", signed=True)
                   for learner in learners})
    conn.exec_driver_sql(
        "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM unnest(%(keys)s::bigint[]) AS k ORDER BY k) AS ordered",
        {"keys": "{" + ",".join(map(str, keys)) + "}"},  # the array's text: psycopg dumps a list element by element
    )


class Update(NamedTuple):
    """What one transaction's update writes: states serialised (``prepare_serialised``'s
    items) with the stored hashes of those that exist, and retired states as records."""

    states: list[tuple[StateHead, str, str]]
    hashes: dict[uuid.UUID, str]
    retired: list[MasteryState]


def update(model: TenantModel, summaries: Summaries, conn: Connection, tenant: str,
           pairs: Iterable[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> Update | None:
    """The states these (learner, competency) pairs touch, derived from what ``conn`` reads
    (the caller writes them in the same transaction); None when none of them is aligned to a
    competency of the model."""
    cm = compiled(model)
    index, groups = cm.index, cm.groups
    targets: dict[uuid.UUID, set[int]] = {}
    for learner, comp in pairs:
        i = index.get(comp)
        if i is not None:
            have = targets.get(learner)
            if have is None:
                have = targets[learner] = set()
            have.update(groups[i])
    if not targets:
        return None
    if conn.dialect.name == "postgresql":
        lock_learners(conn, tenant, targets)
    learners = list(targets)
    texts = [str(learner) for learner in learners]
    plans = [cm.plan(frozenset(targets[learner])) for learner in learners]
    rows_by = evidence_pairs(conn, tenant, learners, [p.evidence for p in plans], cm.ids)
    # every state read: the wanted ones (status and hash) and the rollups' untouched children
    sids = [cm.state_ints(tenant, learner, text, p.wanted + p.kids) for learner, text, p in zip(learners, texts, plans, strict=True)]
    heads = state_rows(conn, [s for mine in sids for s in mine])  # sid -> (status, hash)
    # the children's summaries, kept here for the batch (``summaries`` may be emptied meanwhile)
    held: dict[int, Summary] = {}
    missing: dict[int, str] = {}
    for p, mine in zip(plans, sids, strict=True):
        for sid in mine[len(p.wanted):]:
            head = heads.get(sid)
            if head is not None and head[0] == _ACTIVE:
                hit = summaries.get(head[1])
                if hit is None:
                    missing[sid] = head[1]
                else:
                    held[sid] = hit
    if missing:
        for sid, digest, data in state_rows(conn, list(missing), with_data=True):
            if data is not None and digest == missing[sid]:
                held[sid] = summaries.put(digest, _summary_of(data))
    suffix = computed_at_suffix(now)
    out = Update([], {}, [])
    add = out.states.append
    remember = summaries.room(sum(len(p.wanted) for p in plans))
    ids, rule_scale, rollups, texts_of, single = cm.ids, cm.rule_scale, cm.rollups, cm.texts, cm.single
    for learner, text, p, mine, rows_of in zip(learners, texts, plans, sids, rows_by, strict=True):
        wanted = len(p.wanted)
        known: dict[int, Summary | None] = {c: held.get(sid) for c, sid in zip(p.kids, mine[wanted:], strict=True)}
        derived: list[Derived | None] = []
        for c in p.leaves:
            rows = rows_of.get(c) if single[c] else _rows(rows_of, groups[c])
            d = leaf_of(ids[c], *rule_scale[c], rows) if rows else None
            known[c] = summary(d)
            derived.append(d)
        for c in p.parents:
            rows = rows_of.get(c) if single[c] else _rows(rows_of, groups[c])
            r = rollups[c]
            assert r is not None  # a parent has children
            d = rollup(ids[c], r, members_of(r, [known.get(k) for k in r.kids], leaf_of(ids[c], *rule_scale[c], rows) if rows else None))
            known[c] = summary(d)
            derived.append(d)
        for c, sid, d in zip(p.wanted, mine[:wanted], derived, strict=True):
            head = heads.get(sid)
            if d is None:
                if head is not None and head[0] == _ACTIVE:
                    out.retired.append(retired(tenant, learner, ids[c], model, now))
                continue
            sid_u = uuid_from_int(sid)
            state = state_json(tenant, SOURCE, sid_u, f"{text}:{texts_of[c]}", learner, d, suffix)
            if head is not None:
                if head[1] == state[1] and head[0] == _ACTIVE:
                    continue  # unchanged: nothing to write
                out.hashes[sid_u] = head[1]
            remember[state[1]] = known[c]  # type: ignore[assignment]  # d is not None
            add(state)
    return out


def _rows(rows_of: dict[int, list[EvidenceRow]], group: tuple[int, ...]) -> list[EvidenceRow]:
    """A competency's evidence and its equivalents'."""
    return [r for e in group for r in rows_of.get(e, ())]


__all__ = ["Compiled", "Plan", "Summaries", "Update", "compiled", "lock_learners", "retired", "update"]
