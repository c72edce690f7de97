"""The mastery engine: evidence -> one MasteryState per (learner, competency).

Two paths, one computation:

- **incremental**: ``on_evidence`` is a listener of ``RecordStore``: inside the
  transaction that writes evidence it recomputes exactly the states that evidence touches
  (the competency, its crosswalk equivalents, and their ancestors' rollups) and writes them
  in the same transaction. Nothing is acknowledged with a stale state.
- **full**: ``recompute`` streams a tenant's evidence learner by learner and derives every
  state from scratch (``tessera mastery recompute``); rule, scale or structure changes are
  applied this way.

The full path calls ``derivation.derive``; the incremental one (``incremental.update``) the
same ``derivation.leaf_of`` and a rollup with the same sums in the same order, on the
structure compiled to competency numbers. A hypothesis property test checks that any
sequence of incremental writes ends where a full recompute does, and ``bench/xapi_derive.py
--recompute-check`` that 20,000 statements' states do.

Which evidence counts: active, not voided, not superseded, aligned to a competency, with a
value (a scaled score; else a level on the competency's scale; else success as 1 / 0) and
a kind the rule does not weight 0.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from gateway.gc_pause import paused_gc
from gateway.model import Contribution, MasteryState, Status, utcnow
from gateway.store import Store
from gateway.store import tables as t

from . import incremental
from .derivation import derive
from .derived import Derived
from .incremental import retired as _retired
from .reads import SOURCE, EvidenceRow
from .reads import state_names as _state_names
from .serial import StateHead, computed_at_suffix, state_json
from .structure import TenantModel, load, stamp

_EVIDENCE_COLUMNS = (
    t.evidence.c.id, t.evidence.c.competency_id, t.evidence.c.observed_at, t.evidence.c.scaled,
    t.evidence.c.level, t.evidence.c.evidence_kind, t.evidence.c.success,
)


def _counted(tenant: Any, *, aligned: bool = True) -> Any:
    """Evidence that counts. ``aligned=False`` leaves out ``competency_id IS NOT NULL`` for a
    query that names its competencies anyway: SQLite's planner takes that range for the better
    constraint and walks ix_evidence_tenant_competency_id over every aligned item of the tenant
    instead of probing (tenant, learner_id, competency_id), which made each incremental update
    read all the tenant's evidence (measured: 0.4 ms per AGS score after 10,000 scores, growing)."""
    ev = t.evidence
    return and_(
        ev.c.tenant == tenant, ev.c.voided.is_(False), ev.c.superseded_by.is_(None),
        ev.c.status == Status.active.value, *((ev.c.competency_id.is_not(None),) if aligned else ()),
    )


def state_id(tenant: str, learner: uuid.UUID, competency: uuid.UUID) -> uuid.UUID:
    return _state_names(tenant, str(learner), str(competency))[0]



def to_record(tenant: str, learner: uuid.UUID, d: Derived, now: datetime) -> MasteryState:
    """The record of a derived state (the incremental path's). Built without validation
    (``trusted``): every value comes from the engine itself. The full recompute writes
    the same JSON without the record: ``serial.state_json`` mirrors this field order."""
    return MasteryState.trusted(
        kind="mastery_state", status=Status.active, updated_at=None, source_updated_at=None,
        id=state_id(tenant, learner, d.competency), tenant=tenant, source=SOURCE, native_id=f"{learner}:{d.competency}",
        learner_id=learner, competency_id=d.competency, level=d.level, value=d.value, mastered=d.mastered,
        method=d.method, rule_id=d.rule.rule_id, parameters={"rule": d.rule.name, **d.parameters},
        contributions=[Contribution.trusted(evidence_id=e, competency_id=c, value=v, weight=w) for e, c, v, w in d.contributions],
        evidence_count=d.evidence_count, first_at=d.first_at, last_at=d.last_at,
        computed_at=now, identifiers=[], extensions={},
    )


def _id_ranges(n: int) -> list[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """``n`` contiguous ranges of the uuid space (ids are uniform: uuid5 hashes)."""
    cuts = [uuid.UUID(int=(i << 128) // n) for i in range(1, n)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def _in_range(q: Any, column: Any, lo: uuid.UUID | None, hi: uuid.UUID | None) -> Any:
    # uuid order is byte order on both backends (16-byte blobs on SQLite, uuid on PostgreSQL)
    if lo is not None:
        q = q.where(column >= lo)
    if hi is not None:
        q = q.where(column < hi)
    return q


def paused_collection() -> paused_gc:
    """The cyclic garbage collector off while a batch of evidence is derived, back on after
    it as it was (nested uses leave it to the outermost).

    A batch keeps what it builds (rows, states, their documents) alive until it is written,
    so the automatic collections its allocations set off found it all alive and promoted it
    to the oldest generation, whose full collections then cost a fifth of the xAPI
    consumer's CPU (measured, ``bench/xapi_derive.py``). Reference counting frees the
    batch's objects when it ends; the first allocation after it runs any collection that is
    due, cycles included. Other threads of the process allocate without collections
    meanwhile, for as long as a batch takes."""
    return paused_gc()


@contextmanager
def _collected_per_batch() -> Iterator[Callable[[], object]]:
    """Switch the cyclic garbage collector's automatic runs off; the caller runs the
    collection it yields (of the youngest generation) after each batch it writes.

    A recompute allocates millions of objects (states, contributions, rows) of which a
    batch's worth stays alive until it is written. The automatic runs kept promoting
    those to the older generations and then traversing them there again and again; with
    every long-lived module object in the oldest generation, that was a third of a
    recompute's Python time (measured with py-spy, 2026-11). What the hot loop builds is
    freed by reference counting; the collection per batch reclaims any cycle made
    meanwhile, so memory stays bounded by a batch as before."""
    with paused_gc():
        yield lambda: gc.collect(0)


def _partitions(conn: Connection, q: Any) -> Iterator[Sequence[Any]]:
    """The rows of ``q`` (learner, then ``_EVIDENCE_COLUMNS``), streamed, a list per fetch.

    On PostgreSQL as the driver gives them: SQLAlchemy's result processing (UTCDateTime's,
    per row) cost as much as the rest of reading the evidence. Ids come as ``uuid.UUID``
    either way, but ``observed_at`` in the session's time zone, which this transaction
    sets to UTC (psycopg then gives ``datetime.UTC``; a server's ``Etc/UTC`` would be a
    ZoneInfo, which the stored JSON must not see); the caller still moves any other zone
    to UTC, as ``UTCDateTime`` does."""
    stream = {"stream_results": True, "yield_per": 5000}
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'", execution_options={"stream_results": False})
        sql = q.compile(dialect=conn.dialect)
        return conn.exec_driver_sql(sql.string, sql.params, execution_options=stream).partitions()
    return conn.execute(q, execution_options=stream).partitions()


_process_engines: dict[str, MasteryEngine] = {}


def _recompute_in_process(url: str, tenant: str, framework_id: uuid.UUID | None, lo: uuid.UUID | None,
                          hi: uuid.UUID | None, batch: int) -> RecomputeReport:
    """One range of a parallel recompute, in a worker process (its own engine, its own cache)."""
    engine = _process_engines.get(url)
    if engine is None:  # it only writes states: no evidence listener to register
        engine = _process_engines[url] = MasteryEngine(Store.from_url(url))
    return engine._recompute_range(tenant, framework_id, lo, hi, batch, None)


@dataclass
class RecomputeReport:
    learners: int = 0
    evidence: int = 0
    states: int = 0
    written: int = 0
    retired: int = 0
    seconds: float = 0.0


class MasteryEngine:
    """One per Store (``gateway.mastery.attach.engine_of``); keeps each tenant's structure cached."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._models: dict[str, TenantModel] = {}
        self._summaries = incremental.Summaries()

    def model(self, conn: Connection, tenant: str) -> TenantModel:
        at = stamp(conn, tenant)
        m = self._models.get(tenant)
        if m is None or m.stamp != at:
            m = self._models[tenant] = load(conn, tenant, at)
        return m

    # --- incremental ---------------------------------------------------------------------------

    def on_evidence(self, conn: Connection, tenant: str, pairs: set[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> None:
        """RecordStore listener: recompute the states these (learner, competency) pairs touch.

        One query for the evidence and one for the stored states of the whole batch, however
        many learners it holds (an xAPI batch is a hundred learners at once). The cyclic
        collector waits meanwhile (``paused_collection``)."""
        with paused_collection():
            self._on_evidence(conn, tenant, pairs, now)

    def _on_evidence(self, conn: Connection, tenant: str, pairs: set[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> None:
        """Only what these learners' states need is read, by exact (learner, competency) keys
        (``incremental``): the evidence of every target's group and every ancestor's (a
        parent's own evidence counts), and the stored states of those and of a rollup's
        children. Reading the learners' rows whole made each batch's cost grow with the
        volume of earlier evidence. Derived states are serialised as the full recompute does
        (``serial.state_json``), and those whose content hash is the stored one are not written."""
        done = incremental.update(self.model(conn, tenant), self._summaries, conn, tenant, pairs, now)
        if done is None:
            return
        if done.states:  # the lean path of their own (``gateway.store.state_write``): most of the rows written
            self.store.records.write_states(conn, tenant, done.states, done.hashes, now=now)
        if done.retired:
            self.store.records.apply_in(conn, tenant, done.retired, now=now, derived=True)

    # --- full recompute --------------------------------------------------------------------------

    def _evidence_by_learner(self, conn: Connection, tenant: str, *, as_of: datetime | None = None, lo: uuid.UUID | None = None,
                             hi: uuid.UUID | None = None) -> Iterator[tuple[uuid.UUID, list[EvidenceRow]]]:
        ev = t.evidence
        q = _in_range(select(ev.c.learner_id, *_EVIDENCE_COLUMNS).where(_counted(tenant)), ev.c.learner_id, lo, hi)
        if as_of is not None:
            q = q.where(ev.c.observed_at <= as_of)
        q = q.order_by(ev.c.learner_id)
        current: uuid.UUID | None = None
        at = -1  # current.int: comparing ints skips UUID.__eq__, a Python call per row
        rows: list[EvidenceRow] = []
        for part in _partitions(conn, q):
            for row in part:
                learner = row[0]
                if learner.int != at:
                    if current is not None:
                        yield current, rows
                    current, at, rows = learner, learner.int, []
                r = row[1:]
                if r[2].tzinfo is not UTC:  # see _partitions
                    r = (r[0], r[1], r[2].astimezone(UTC), *r[3:])
                rows.append(r)
        if current is not None:
            yield current, rows

    def _derive_learner(self, model: TenantModel, rows: list[EvidenceRow], scope: set[uuid.UUID] | None) -> dict[uuid.UUID, Derived | None]:
        rows_by: dict[uuid.UUID, list[EvidenceRow]] = defaultdict(list)
        for r in rows:
            rows_by[r[1]].append(r)
        targets = {e for c in rows_by if c in model.framework_of for e in model.group(c)}
        if scope is not None:
            targets &= scope
        derived = derive(model, rows_by, targets, lambda c: None)
        if scope is not None:
            derived = {c: d for c, d in derived.items() if c in scope}
        return derived

    def recompute(self, tenant: str, *, framework_id: uuid.UUID | None = None, batch: int = 5000, workers: int = 1,
                  progress: Callable[[int], None] | None = None) -> RecomputeReport:
        """Derive every state of ``tenant`` (or of one framework) from its evidence, write the
        ones that changed and retire the ones no evidence supports any more.

        Reads with one connection (a server-side cursor on PostgreSQL) and writes in batches
        of ``batch`` states, each its own transaction: a recompute of millions of states does
        not hold one lock for minutes. ``workers`` > 1 splits the learners into ranges of
        their ids and derives them in that many processes (the work is Python, so threads
        would take turns). ``progress(n)`` is called with learners done.

        Evidence written while a recompute runs updates its states itself (incrementally);
        a range derived before that write may then overwrite them with the older result,
        so run recomputes when rules change, not as routine."""
        began = time.perf_counter()
        if workers <= 1:
            report = self._recompute_range(tenant, framework_id, None, None, batch, progress)
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from multiprocessing import get_context

            report = RecomputeReport()
            url = self.store.engine.url.render_as_string(hide_password=False)
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_recompute_in_process, url, tenant, framework_id, lo, hi, batch)
                           for lo, hi in _id_ranges(workers * 8)]
                for fut in as_completed(futures):
                    part = fut.result()
                    for name in ("learners", "evidence", "states", "written", "retired"):
                        setattr(report, name, getattr(report, name) + getattr(part, name))
                    if progress is not None:
                        progress(part.learners)
        report.seconds = time.perf_counter() - began
        return report

    def _recompute_range(self, tenant: str, framework_id: uuid.UUID | None, lo: uuid.UUID | None, hi: uuid.UUID | None,
                         batch: int, progress: Callable[[int], None] | None) -> RecomputeReport:
        report = RecomputeReport()
        with self.store.engine.connect() as read, _collected_per_batch() as collect:
            model = self.model(read, tenant)
            scope = None if framework_id is None else {c for c, f in model.framework_of.items() if f == framework_id}
            existing, stored = self._existing_by_learner(read, tenant, scope, lo, hi)
            pending: list[tuple[StateHead, str, str]] = []
            retired: list[MasteryState] = []
            now = utcnow()
            suffix = computed_at_suffix(now)
            names = {c: str(c) for c in model.framework_of}
            for learner, rows in self._evidence_by_learner(read, tenant, lo=lo, hi=hi):
                report.learners += 1
                report.evidence += len(rows)
                have = existing.pop(learner, set())
                who = str(learner)
                for c, d in self._derive_learner(model, rows, scope).items():
                    if d is not None:
                        pending.append(state_json(tenant, SOURCE, *_state_names(tenant, who, names.get(c) or str(c)), learner, d, suffix))
                        report.states += 1
                        have.discard(c)
                retired.extend(_retired(tenant, learner, c, model, now) for c in have)
                if len(pending) + len(retired) >= batch:
                    report.written += self._flush(tenant, pending, retired, stored)
                    report.retired += len(retired)
                    pending, retired = [], []
                    collect()
                if progress is not None:
                    progress(1)
            for learner, comps in existing.items():  # learners with states but no evidence left
                retired.extend(_retired(tenant, learner, c, model, now) for c in comps)
            report.written += self._flush(tenant, pending, retired, stored)
            report.retired += len(retired)
        return report

    def _existing_by_learner(self, conn: Connection, tenant: str, scope: set[uuid.UUID] | None, lo: uuid.UUID | None = None,
                             hi: uuid.UUID | None = None) -> tuple[dict[uuid.UUID, set[uuid.UUID]], dict[uuid.UUID, str]]:
        """The stored states of a learner range: (learner -> the competencies in ``scope`` with
        an active state, state id -> content hash of every state). One read per range
        instead of one lookup per written batch (which cost more than deriving a batch).

        Evidence written while the range is derived may create or change states after this
        read; writing the range then counts such a state as created where it was updated (or
        writes it again unchanged): the recompute's docstring says why that is tolerated."""
        ms = t.mastery_states
        active = Status.active.value
        out: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        stored: dict[uuid.UUID, str] = {}
        q = _in_range(select(ms.c.learner_id, ms.c.competency_id, ms.c.status, ms.c.id, ms.c.content_hash).where(ms.c.tenant == tenant),
                      ms.c.learner_id, lo, hi)
        for learner, comp, status, sid, digest in conn.execute(q, execution_options={"stream_results": True, "yield_per": 10000}):
            stored[sid] = digest
            if status == active and (scope is None or comp in scope):
                out[learner].add(comp)
        return out, stored

    def _flush(self, tenant: str, states: list[tuple[StateHead, str, str]], retired: list[MasteryState],
               stored: dict[uuid.UUID, str]) -> int:
        """Write a batch: derived states as serialised (``serial``), retired ones (rare) as
        records; only those whose content changed (``stored``: the range's hashes)."""
        written = 0
        for batch in (self.store.records.prepare_serialised(tenant, "mastery_state", states), self.store.records.prepare(tenant, retired)):
            if batch.size:
                batch.stored["mastery_state"] = stored
                written += self.store.records.apply(tenant, batch).changed_ids
        return written

    # --- as of a past date --------------------------------------------------------------------

    def states_as_of(self, tenant: str, as_of: datetime, competency_ids: Iterable[uuid.UUID] | None = None,
                     ) -> Iterator[tuple[uuid.UUID, uuid.UUID, str | None, float | None, bool]]:
        """(learner, competency, level, value, mastered) from the evidence observed on or before
        ``as_of``, derived now: "as known today" (corrections and voids made since apply)."""
        with self.store.engine.connect() as conn:
            model = self.model(conn, tenant)
            scope = set(competency_ids) if competency_ids is not None else None
            for learner, rows in self._evidence_by_learner(conn, tenant, as_of=as_of):
                for c, d in self._derive_learner(model, rows, scope).items():
                    if d is not None:
                        yield learner, c, d.level, d.value, d.mastered


__all__ = ["SOURCE", "MasteryEngine", "RecomputeReport", "derive", "paused_collection", "state_id"]
