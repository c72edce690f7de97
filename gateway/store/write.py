"""The apply transaction: how prepared records are written (DESIGN section 2).

``RecordWriter.apply`` is the one door through which canonical records enter the store. In
ONE transaction it

* checks every reference a record makes (an enrollment's person and section, a
  competency's framework...) against the batch and the store,
* upserts each record by ``(tenant, source, native_id)`` (its uuid5 ``id``), writing only
  those whose content really changed,
* refreshes the identifier index of the records it wrote,
* appends one change-log row per real change,
* enqueues an outbox delivery for every enabled push route that wants the record,
* keeps evidence append-only (``evidence.evidence_rules``: only voiding, superseding and late
  alignment may change a stored item) and points superseded evidence at its correction,
* tells the evidence listeners (``RecordStore.evidence_listeners``: the mastery engine, as
  the composition root wires it) which (learner, competency) pairs changed, inside the
  same transaction.

Anything that fails rolls all of it back.

This is the hot path of every bulk import, so the work is split to suit it: ``prepare``
(``gateway.store.prepare``) does everything that needs no database and can run in a second
thread while the previous batch is written (``apply_stream``, ``apply_batches``); ``apply``
then only compares hashes, fills in the commit-time values and hands the rows to multi-row
INSERT statements (``db.BulkStatement``), not to the ORM nor to a per-row executemany.
"""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy import insert as core_insert

from ..errors import ErrorDetail, IntegrityError, ValidationError
from ..model import Record, Status, utcnow
from . import changefeed
from .db import WRITE, BulkStatement, bind_processor, max_params, placeholder, sqlite_in
from .evidence import evidence_rules, mark_superseded
from .outbox import matching_routes, outbox_rows
from .pg_arrays import uuid_array
from .prepare import PROMOTED, REFERENCED_KINDS, REFERENCES, Prepared, PreparedBatch, Preparer, content_hash, record_location
from .tables import RECORD_TABLES, evidence, identifiers, outbox, people
from .tables import changes as change_log
from .tenants import ensure_tenant
from .unresolved import held


@dataclass
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ApplyResult:
    batch_id: uuid.UUID
    counts: dict[str, KindCounts] = field(default_factory=dict)
    outbox: int = 0

    @property
    def created(self) -> int:
        return sum(c.created for c in self.counts.values())

    @property
    def updated(self) -> int:
        return sum(c.updated for c in self.counts.values())

    @property
    def unchanged(self) -> int:
        return sum(c.unchanged for c in self.counts.values())

    @property
    def changed_ids(self) -> int:
        return self.created + self.updated

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": str(self.batch_id),
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "outbox": self.outbox,
            "kinds": {k: vars(c) for k, c in sorted(self.counts.items())},
        }


@dataclass
class _KindWrite:
    """What ``apply`` will write for one kind: rows as flat value lists, and the counts."""

    kind: str
    collect: bool  # keep (id, hash, source) of what is written, for the outbox
    counts: KindCounts = field(default_factory=KindCounts)
    rows: list[Any] = field(default_factory=list)
    changes: list[Any] = field(default_factory=list)
    idents: list[Any] = field(default_factory=list)
    updated_keys: list[Any] = field(default_factory=list)
    written: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)
    superseding: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    #: evidence: the (learner, competency) pairs whose evidence changed (old and new competency)
    touched: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)


#: Called inside the writing transaction once evidence has changed, with the (learner,
#: competency) pairs it touched: how the mastery engine keeps states exact (DESIGN 2).
EvidenceListener = Callable[[Connection, str, set[tuple[uuid.UUID, uuid.UUID]], datetime], None]


_COMMON_HEAD = ["id", "tenant", "source", "native_id", "status", "content_hash"]
_COMMIT_TIME = ["created_at", "updated_at", "data"]


class _PreparedAhead:
    """The batches of ``batches``, prepared (``Preparer.prepare``) in one worker thread up
    to ``depth`` ahead of the one being written (``apply_stream``, ``apply_batches``).

    That thread alone iterates ``batches``, in order, each batch whole before the next is
    taken. ``refill`` starts the next preparation; the writer calls it once its rows are
    built and its bulk writes begin (``writing``), when sqlite3 and psycopg release the GIL,
    so the two overlap, whereas two threads running Python only take turns. The preparing
    thread gives the GIL up every ``PIPELINE_YIELD_EVERY`` records: otherwise the writer,
    back from each statement, would wait for it the whole switch interval (5 ms)."""

    def __init__(self, writer: RecordWriter, tenant: str, batches: Iterable[Iterable[Record] | PreparedBatch], *, depth: int) -> None:
        from concurrent.futures import Future, ThreadPoolExecutor

        self._writer, self._tenant, self._it, self._depth = writer, tenant, iter(batches), depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-prepare")
        self._ahead: deque[Future[PreparedBatch | None]] = deque()
        for _ in range(depth):
            self.refill()

    def _take(self) -> PreparedBatch | None:
        nxt = next(self._it, None)
        if nxt is None or isinstance(nxt, PreparedBatch):  # after the last; or prepared by its producer
            return nxt
        return self._writer.preparer.prepare(self._tenant, nxt, yield_every=self._writer.PIPELINE_YIELD_EVERY)

    def refill(self) -> None:
        """Start preparing one more batch, unless ``depth`` are already under way."""
        if len(self._ahead) < self._depth:
            self._ahead.append(self._pool.submit(self._take))

    def next(self) -> PreparedBatch | None:
        """The next prepared batch (None after the last); raises what its preparation raised."""
        return self._ahead.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _conflict_key(kind: str, dialect: str) -> list[str]:
    """The upsert's conflict target: the id, and on PostgreSQL, where evidence is partitioned
    by month, the partition key too (``partitions.py``; ``observed_at`` never changes)."""
    return ["id", "observed_at"] if kind == "evidence" and dialect == "postgresql" else ["id"]


class RecordWriter:
    """Writes prepared batches to one database; ``RecordStore`` is its facade."""

    #: records between two GIL hand-overs of the pipelined preparation (~1 ms of work)
    PIPELINE_YIELD_EVERY = 128
    #: batches ``apply_batches`` prepares ahead of the one it writes (two smooth out batches
    #: that prepare slower or faster than they write)
    PIPELINE_DEPTH = 2
    #: fewest expected records of a kind for which ``apply_batches`` rebuilds its indexes
    REBUILD_MIN = 100_000

    def __init__(self, engine: Engine, preparer: Preparer, listeners: list[EvidenceListener]) -> None:
        self.engine = engine
        self.preparer = preparer
        #: called in the writing transaction with the evidence pairs it touched
        self.evidence_listeners = listeners
        dialect = engine.dialect
        self._postgres = dialect.name == "postgresql"
        self._ph = placeholder(dialect)
        self._max_params = max_params(dialect)
        self._in_rows = 1 << (min(4096, self._max_params - 1).bit_length() - 1)  # ids per IN (...) on SQLite
        self._key = bind_processor(people, "id", dialect)  # UUID -> stored form (None: as is)
        self._stamp = bind_processor(change_log, "at", dialect)
        self._upsert = {
            kind: BulkStatement(tbl, [*_COMMON_HEAD, *PROMOTED[kind], *_COMMIT_TIME], dialect, conflict=_conflict_key(kind, dialect.name),
                                keep=["created_at"], same=["tenant", "created_at", "updated_at"])
            for kind, tbl in RECORD_TABLES.items()
        }
        # ``same``: one value in every row a plan writes (its tenant, kind, batch and commit time)
        self._identifiers = BulkStatement(identifiers, ["tenant", "record_kind", "record_id", "system", "kind", "value"], dialect,
                                          same=["tenant", "record_kind"])
        self._changes = BulkStatement(change_log, ["tenant", "batch_id", "record_kind", "record_id", "op", "content_hash", "at"], dialect,
                                      same=["tenant", "batch_id", "record_kind", "at"])
        quote = self._quote = dialect.identifier_preparer.quote
        self._tables = {kind: dialect.identifier_preparer.format_table(tbl) for kind, tbl in RECORD_TABLES.items()}
        self._delete_identifiers = f"DELETE FROM {dialect.identifier_preparer.format_table(identifiers)} WHERE "
        self._record_id = quote("record_id")
        self._voided = bind_processor(evidence, "voided", dialect)

    def _prepared(self, tenant: str, records: Iterable[Record] | PreparedBatch) -> PreparedBatch:
        return records if isinstance(records, PreparedBatch) else self.preparer.prepare(tenant, records)

    def apply(
        self,
        tenant: str,
        records: Iterable[Record] | PreparedBatch,
        *,
        batch_id: uuid.UUID | None = None,
        writing: Callable[[], None] | None = None,
        within: Callable[[Connection], None] | None = None,
        conn: Connection | None = None,
    ) -> ApplyResult:
        """Apply a batch atomically. Raises ValidationError/IntegrityError/Conflict and writes nothing on failure.

        ``within(conn)``, when given, runs inside the same transaction after the records
        are written: an adapter's own rows (an LRS's statements) commit or roll back with
        the canonical records made from them. Whatever it raises rolls everything back.
        With ``conn`` (from ``write_transaction``) the batch is written in that transaction,
        which the caller commits. ``writing`` is called once every row is built and the bulk
        writes (long calls without the GIL) are about to start."""
        batch = self._prepared(tenant, records)
        if batch.tenant != tenant:
            raise ValidationError(f"prepared batch is for tenant {batch.tenant!r}, not {tenant!r}")
        result = ApplyResult(batch_id=batch_id or uuid.uuid4())
        if not batch.by_kind and within is None:
            return result
        if conn is not None:
            self._apply_in(conn, tenant, batch, result, writing, within)
            return result
        with self.write_transaction() as conn:
            self._apply_in(conn, tenant, batch, result, writing, within)
        return result

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A connection in a write transaction (on SQLite it holds the write lock from BEGIN);
        commits on leaving, rolls back on an exception."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            yield conn

    def _apply_in(self, conn: Connection, tenant: str, batch: PreparedBatch, result: ApplyResult,
                  writing: Callable[[], None] | None, within: Callable[[Connection], None] | None) -> None:
        now = utcnow()  # taken under the write lock, so updated_at follows commit order on SQLite
        ensure_tenant(conn, tenant)
        self._notify_pairs(conn, tenant, self._write(conn, tenant, batch, result, now, writing=writing), now)
        if within is not None:
            within(conn)

    def apply_stream(self, tenant: str, batches: Iterable[Iterable[Record]]) -> Iterator[ApplyResult]:
        """Apply many batches, each atomically, preparing batch n+1 in a second thread while
        batch n is written (``_PreparedAhead``; measured, without the GIL hand-overs it
        describes the writer was idle a third of the time)."""
        ahead = _PreparedAhead(self, tenant, batches, depth=1)
        try:
            while (ready := ahead.next()) is not None:
                result = self.apply(tenant, ready, writing=ahead.refill)
                ahead.refill()  # when nothing was written
                yield result
        finally:
            ahead.close()

    def apply_batches(self, tenant: str, batches: Iterable[Iterable[Record] | PreparedBatch], *, batch_id: uuid.UUID | None = None,
                      expect: dict[str, int] | None = None, within: Callable[[Connection], None] | None = None) -> ApplyResult:
        """Apply many batches in ONE transaction: memory is bounded by a couple of batches
        (each is prepared, checked and written in turn), and any error rolls every batch back.

        For imports too large for one ``apply`` that must stay all-or-nothing (a OneRoster
        bulk package with a million enrollments). A batch may reference records of earlier
        batches: they are visible to the reference check, in the same transaction. Holds the
        write lock for the whole import on SQLite.

        Pipelined like ``apply_stream``: the next ``PIPELINE_DEPTH`` batches are taken from
        ``batches`` and prepared in a second thread while batch n's rows are written
        (``_PreparedAhead``), so an importer that converts its rows lazily overlaps the
        database. A batch may also come prepared (a ``PreparedBatch``: the OneRoster
        importer prepares its enrollments in a child process); it is written as it is.
        Ids known to exist (written by an earlier batch, or found stored) are remembered
        for the whole transaction, so each is looked up once, not once per batch.

        ``expect``: kind -> about how many records of it the batches hold. On SQLite, a
        kind expected to at least double its table gets its secondary indexes rebuilt
        (``_deferred_indexes``) instead of updated row by row.

        ``within(conn)``: as in ``apply``, after every batch, in the same transaction."""
        result = ApplyResult(batch_id=batch_id or uuid.uuid4())
        known: dict[str, set[uuid.UUID]] = defaultdict(set)
        ahead = _PreparedAhead(self, tenant, batches, depth=self.PIPELINE_DEPTH)
        try:
            with self.write_transaction() as conn:
                now = utcnow()
                ensure_tenant(conn, tenant)
                rebuild = self._deferred_indexes(conn, expect or {})
                touched: set[tuple[uuid.UUID, uuid.UUID]] = set()
                while (ready := ahead.next()) is not None:
                    touched |= self._write(conn, tenant, ready, result, now, known=known, writing=ahead.refill)
                    ahead.refill()  # when nothing was written
                for ddl in rebuild:
                    conn.exec_driver_sql(ddl)
                self._notify_pairs(conn, tenant, touched, now)
                if within is not None:
                    within(conn)
        finally:
            ahead.close()
        return result


    def _deferred_indexes(self, conn: Connection, expect: dict[str, int]) -> list[str]:
        """SQLite: drop the secondary indexes of each table about to (at least) double by
        ``REBUILD_MIN`` or more rows, and return the statements that create them again.

        Keys such as an enrollment's person_id come in random order, so each row's insert
        into those indexes lands on a random page: for a million enrollments that was half
        of the time spent writing them. ``CREATE INDEX`` sorts all entries once instead,
        four times faster. All inside the import's transaction: a rollback restores the
        indexes, other connections keep reading their snapshot (WAL), and what is created
        is the stored definition itself (``sqlite_master.sql``), so the schema ends up
        exactly as it was. Not on PostgreSQL, where DROP INDEX would lock every reader out
        of the table until the commit. The primary key stays: upserts need it."""
        if self._postgres:
            return []
        ddl: list[str] = []
        for kind, n in expect.items():
            if n < self.REBUILD_MIN or kind not in RECORD_TABLES:
                continue
            table = RECORD_TABLES[kind].name
            if (conn.exec_driver_sql(f"SELECT count(*) FROM {self._tables[kind]}").scalar() or 0) > n:
                continue
            rows = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
            ).all()
            for name, sql in rows:
                conn.exec_driver_sql(f"DROP INDEX {self._quote(name)}")
                ddl.append(sql)
        return ddl

    def apply_in(self, conn: Connection, tenant: str, records: Iterable[Record] | PreparedBatch, *, now: datetime,
                 batch_id: uuid.UUID | None = None, derived: bool = False) -> ApplyResult:
        """Write records inside a transaction the caller holds (the mastery engine writes
        the states it derived in the transaction of the evidence they come from).

        ``derived``: the records were computed from records of this transaction whose
        references were checked (a state's learner and competency are its evidence's), so
        the reference check is skipped."""
        result = ApplyResult(batch_id=batch_id or uuid.uuid4())
        self._notify_pairs(conn, tenant, self._write(conn, tenant, records, result, now, check=not derived), now)
        return result

    def _write(self, conn: Connection, tenant: str, records: Iterable[Record] | PreparedBatch, result: ApplyResult,
               now: datetime, *, check: bool = True, known: dict[str, set[uuid.UUID]] | None = None,
               writing: Callable[[], None] | None = None) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Check, plan and write one batch on ``conn``, adding to ``result``; returns the
        evidence pairs it touched. ``known``: ids known to exist in this transaction (see
        ``apply_batches``), extended with this batch's; ``writing``: as in ``apply``."""
        batch = self._prepared(tenant, records)
        touched: set[tuple[uuid.UUID, uuid.UUID]] = set()
        if not batch.by_kind:
            return touched
        if check:
            self._check_references(conn, tenant, batch, known)
        routes = matching_routes(conn, tenant)
        # First read and decide (small queries, Python work), then write (few, long calls).
        plans = [
            self._plan_kind(conn, tenant, kind, items, result.batch_id, now, collect=any(kind in r.kinds for r in routes),
                            stored=batch.stored.get(kind))
            for kind, items in batch.by_kind.items()
        ]
        if writing is not None:
            writing()
        for plan in plans:
            kind = plan.kind
            self._apply_kind(conn, tenant, kind, plan, result.batch_id, now)
            touched |= plan.touched
            acc = result.counts.setdefault(kind, KindCounts())
            acc.created += plan.counts.created
            acc.updated += plan.counts.updated
            acc.unchanged += plan.counts.unchanged
            if plan.written and plan.collect:
                rows = outbox_rows(routes, tenant, kind, plan.written, now)
                if rows:
                    conn.execute(core_insert(outbox), rows)
                    result.outbox += len(rows)
            if known is not None and kind in REFERENCED_KINDS:
                known[kind].update(batch.by_id[kind])
        return touched

    def _notify_pairs(self, conn: Connection, tenant: str, touched: set[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> None:
        if touched:
            for listener in self.evidence_listeners:
                listener(conn, tenant, touched, now)

    def _check_references(self, conn: Connection, tenant: str, batch: PreparedBatch,
                          known: dict[str, set[uuid.UUID]] | None = None) -> None:
        """Every id the batch references is in the batch or stored (or in ``known``: ids this
        transaction already found or wrote; those found are added to it)."""
        unresolved: dict[str, set[uuid.UUID]] = {}
        for target, ids in batch.refs.items():
            present = batch.by_id.get(target)
            missing = ids.difference(present) if present else set(ids)
            if known is not None and missing:
                missing.difference_update(known[target])
            if not missing:
                continue
            found = self._stored_ids(conn, tenant, target, missing)
            missing.difference_update(found)
            if known is not None:
                known[target].update(found)
            if missing:
                unresolved[target] = missing
        if not unresolved:
            return
        # Word the errors: each unknown id once, at the first record (in batch order) naming it
        # without holding it unresolved (``unresolved``: a record may keep such a reference).
        wanted: dict[str, dict[uuid.UUID, tuple[Record, str]]] = defaultdict(dict)
        for kind, bucket in batch.by_id.items():
            for target, r in REFERENCES[kind]:
                bad = unresolved.get(target)
                if not bad:
                    continue
                for p in bucket.values():
                    holds: dict[uuid.UUID, tuple[str, str]] | None = None
                    for path, ref in r.walk(p.rec):
                        if ref in bad:
                            if holds is None:
                                holds = held(p.rec)
                            if holds.get(ref, ("",))[0] == target:
                                continue
                            wanted[target].setdefault(ref, (p.rec, path))
        if not wanted:
            return
        errors = [
            ErrorDetail(f"references {target} {ref}, which is neither in the batch nor stored", location=record_location(rec), field=path)
            for target, refs in wanted.items()
            for ref, (rec, path) in refs.items()
        ]
        raise IntegrityError("batch references unknown records", errors=errors)

    def _stored_ids(self, conn: Connection, tenant: str, kind: str, ids: set[uuid.UUID]) -> list[uuid.UUID]:
        """Those of ``ids`` stored as records of ``kind`` of ``tenant``: on the driver's own
        statements (``_in``), as the other lookups of a write are, not through SQLAlchemy's
        expanding IN, which compiled the statement and bound every UUID one by one (most of
        the check's time in a profile of the xAPI consumer)."""
        if self._key is None:
            by_key: dict[Any, uuid.UUID] = {i: i for i in ids}
        else:
            by_key = {self._key(i): i for i in ids}
        out: list[uuid.UUID] = []
        head = f"SELECT id FROM {self._tables[kind]} WHERE tenant = {self._ph} AND "
        for cond, params in self._in("id", list(by_key)):
            out.extend(by_key[k] for (k,) in conn.exec_driver_sql(head + cond, (tenant, *params)))
        return out

    def _in(self, column: str, keys: Sequence[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """``column IN (...)`` over stored-form keys, in as few statements as the engine allows.

        On SQLite each list is padded with repeats of its first key to a power of two
        (repeats change nothing in IN), so few distinct statement texts get compiled."""
        if not keys:
            return
        if self._postgres:
            yield f"{column} = ANY(%b::uuid[])", (uuid_array(keys),)  # one binary uuid[] (``pg_arrays``)
            return
        yield from sqlite_in(column, keys, self._in_rows)

    def _existing(self, conn: Connection, kind: str, keys: list[Any], *, with_data: bool) -> dict[Any, Any]:
        """Stored id -> content hash (for evidence: (hash, data)) of the records in ``keys``."""
        cols = "content_hash, data" if with_data else "content_hash"
        rows: Iterable[Any]
        if self._postgres:
            # Positions, not ids, come back: no new UUID object per stored row.
            rows = conn.exec_driver_sql(
                f"SELECT k.i, {', '.join('t.' + c for c in cols.split(', '))} FROM unnest(%b::uuid[]) WITH ORDINALITY AS k(id, i) "
                f"JOIN {self._tables[kind]} AS t ON t.id = k.id",
                (uuid_array(keys),),
            ).all()
            if with_data:
                return {keys[r[0] - 1]: (r[1], r[2]) for r in rows}
            return {keys[i - 1]: h for i, h in rows}
        out: dict[Any, Any] = {}
        for cond, params in self._in("id", keys):
            rows = conn.exec_driver_sql(f"SELECT id, {cols} FROM {self._tables[kind]} WHERE {cond}", params).all()
            if with_data:
                out.update((r[0], (r[1], r[2])) for r in rows)
            else:
                out.update(rows)
        return out

    def _plan_kind(
        self, conn: Connection, tenant: str, kind: str, items: list[Prepared], batch_id: uuid.UUID, now: datetime, *, collect: bool,
        stored: dict[uuid.UUID, str] | None = None,
    ) -> _KindWrite:
        """Compare the batch with what is stored (``stored``: see ``PreparedBatch.stored``)
        and build the rows to write, as flat lists."""
        is_evidence = kind == "evidence"
        if stored is None or is_evidence:
            existing = self._existing(conn, kind, [p.key for p in items], with_data=is_evidence)
        else:
            existing = {p.key: h for p in items if (h := stored.get(p.rec.id)) is not None}  # type: ignore[arg-type]
        now_b = self._stamp(now) if self._stamp is not None else now
        batch_b = self._key(batch_id) if self._key is not None else batch_id
        plan = _KindWrite(kind, collect)
        rows, changes, idents, updated_keys, written = plan.rows, plan.changes, plan.idents, plan.updated_keys, plan.written
        created = updated = unchanged = 0
        stamp = now.isoformat()
        if not is_evidence:
            suffix = ',"updated_at":"' + stamp + '"}'
            get = existing.get
            add_row, add_value, add_change, add_idents = rows.extend, rows.append, changes.extend, idents.extend
            for p in items:
                old = get(p.key)
                if old == p.digest:
                    unchanged += 1
                    continue
                add_row(p.head)
                add_value(now_b)  # created_at (an update keeps the stored one)
                add_value(now_b)  # updated_at
                add_value(p.body + suffix)  # type: ignore[operator]
                if old is None:
                    created += 1
                    op = "created"
                else:
                    updated += 1
                    op = "deleted" if p.rec.status is Status.tobedeleted else "updated"
                    updated_keys.append(p.key)
                add_change((tenant, batch_b, kind, p.key, op, p.digest, now_b))
                if p.idents:
                    add_idents(p.idents)
                if collect:
                    written.append((p.rec.id, p.digest, p.rec.source))  # type: ignore[arg-type]
        else:
            for p in items:
                rec, doc = p.rec, p.doc
                assert doc is not None
                old = existing.get(p.key)
                was = evidence_rules(rec, doc, old, now)
                # a new item's rules only set recorded_at, which is not hashed: prepare's digest holds
                digest = p.digest if old is None else content_hash(doc)
                if old is not None and old[0] == digest:
                    unchanged += 1
                    continue
                doc["updated_at"] = stamp
                # head: id..status, content_hash, learner_id, competency_id, observed_at, voided,
                # scaled, level, evidence_kind, success, superseded_by; the rules may have kept a stored
                # void or superseded_by, so those columns follow the document.
                voided = doc["voided"] if self._voided is None else self._voided(doc["voided"])
                sup = doc.get("superseded_by")
                sup_b = None if sup is None else (self._key(uuid.UUID(sup)) if self._key is not None else uuid.UUID(sup))
                rows.extend(p.head[:5] + (digest,) + p.head[6:9] + (voided,) + p.head[10:14] + (sup_b, now_b, now_b, orjson.dumps(doc).decode()))
                learner = rec.learner_id  # type: ignore[attr-defined]
                if rec.competency_id is not None:  # type: ignore[attr-defined]
                    plan.touched.add((learner, rec.competency_id))  # type: ignore[attr-defined]
                if was is not None and was != rec.competency_id:  # type: ignore[attr-defined]
                    plan.touched.add((learner, was))  # re-aligned: the old competency loses it
                if old is None:
                    created += 1
                    op = "created"
                else:
                    updated += 1
                    op = "deleted" if rec.status is Status.tobedeleted else "updated"
                    updated_keys.append(p.key)
                changes.extend((tenant, batch_b, kind, p.key, op, digest, now_b))
                idents.extend(p.idents)
                written.append((rec.id, digest, rec.source))  # type: ignore[arg-type]
                if rec.supersedes is not None and old is None:  # type: ignore[attr-defined]
                    plan.superseding.append((rec.supersedes, rec.id))  # type: ignore[attr-defined,arg-type]
        plan.counts = KindCounts(created, updated, unchanged)
        return plan

    def _apply_kind(self, conn: Connection, tenant: str, kind: str, plan: _KindWrite, batch_id: uuid.UUID, now: datetime) -> None:
        """Write what ``_plan_kind`` decided for ``kind``."""
        n = plan.counts.created + plan.counts.updated
        if n:
            self._upsert[kind].execute_flat(conn, plan.rows, n)
            for cond, params in self._in(self._record_id, plan.updated_keys):
                conn.exec_driver_sql(self._delete_identifiers + cond, params)
            self._identifiers.execute_flat(conn, plan.idents, len(plan.idents) // self._identifiers.width)
            changefeed.guard(conn)  # before the change rows: the feed's safe version (changefeed.py)
            self._changes.execute_flat(conn, plan.changes, n)
        if plan.superseding:
            more = mark_superseded(conn, tenant, plan.superseding, batch_id, now, plan.touched)
            plan.counts.updated += len(more)
            plan.written.extend(more)

__all__ = ["ApplyResult", "EvidenceListener", "KindCounts", "RecordWriter"]
