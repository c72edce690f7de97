"""Statements in and out of the database (tables in ``tables``): the one storage seam of the
Statement, Activities and Agents resources. Routers never touch SQL. This module is the
write side (the ingest path); the reads are in ``statement_query``, whose ``StatementReads``
``StatementStore`` inherits.

Writing a batch is one transaction with the canonical evidence made from it
(``RecordStore.apply(..., within=...)``): statements, their index rows, voiding, activity
definitions, attachment content and evidence commit together or not at all, and the LRS
answers only after the commit (Communication 2.1.2; DESIGN 2).

With a ``deriver`` (``TESSERA_XAPI__DERIVE=async``, ``derive``) the evidence is left out of
that transaction: the statements are marked ``deferred`` and the deriver, a consumer of the
statement log, makes their evidence and mastery states just behind the acknowledgement.
Everything the xAPI resources answer from is still committed before the LRS answers.

On PostgreSQL a batch is written in two round trips (``statement_pg``: psycopg's pipeline, one
INSERT for statements, ids and index rows, columns sent as JSON arrays); on SQLite as rows,
grouped with the other batches of the process into one transaction (``GroupCommit``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from gateway.errors import Conflict
from gateway.model import utcnow
from gateway.store import Store
from gateway.store.db import BulkStatement
from gateway.store.group_commit import GroupCommit

from . import statement_pg
from .http import XapiError
from .index_tiers import MERGE_EVERY, TierMerge
from .memory import TRIM
from .outbox import enqueue
from .partitions import where_ids
from .statement_compare import same_statement
from .statement_query import RECENT, StatementReads
from .statement_seqs import allocate_seqs, merged_ids, voided_by_earlier
from .tables import (
    GEN_BITS,
    xapi_activities,
    xapi_attachments,
    xapi_recent_ids,
    xapi_statements,
)
from .validation import VOIDED, agent_key

#: how far a chain of StatementRefs is followed for the filter rule of Communication 2.1.3.s3
_REF_DEPTH = 8
_STATEMENT_COLUMNS = ["seq", "tenant", "id", "stored", "verb_id", "registration", "voiding", "voided", "authority",
                      "attachments", "deferred", "body"]
#: activity definitions remembered per process (see ``_merge_definitions``)
_DEFINITIONS_CACHED = 50_000
@dataclass
class _Plan:
    """A batch's rows, built outside the write transaction (see ``StatementStore._plan``):
    flat value lists, row after row, as ``BulkStatement.execute_flat`` takes them, with a
    slot for each row's ``seq``, which is known only under the write lock; ``_write`` fills
    the slots (one slice assignment per table) and sends the lists as they are."""

    ids: list[str]
    definitions: dict[str, dict[str, Any]]
    statements: list[Any] = field(default_factory=list)  # _STATEMENT_COLUMNS, seq first
    bodies: list[str] = field(default_factory=list)  # each statement's body (for the outbox)
    agents: list[Any] = field(default_factory=list)  # (tenant, agent, verb, seq, role) rows
    agent_of: list[int] = field(default_factory=list)  # the batch position of each agent row's statement
    activities: list[Any] = field(default_factory=list)  # (tenant, activity, seq, role) rows
    activity_of: list[int] = field(default_factory=list)
    keys: list[uuid.UUID] = field(default_factory=list)  # the statements' ids, for the voided lookup
    id_rows: list[Any] = field(default_factory=list)  # SQLite: (tenant, id, seq) rows of the recent tier of the ids


@dataclass
class _Rows:
    """The index rows of statements, by statement id, and the activity definitions they carry."""

    agents: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # id -> [(agent, verb, role)]
    activities: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # id -> [(activity, role)]
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)


class StatementStore(StatementReads):
    """Reads and writes statements of one database; one per app."""

    def __init__(self, store: Store, evidence: Any = None, *, merge_every: int = MERGE_EVERY, deriver: Any = None,
                 max_lag: int = 0, lag_wait: float = 30.0, gen_bits: int = GEN_BITS) -> None:
        self.store = store
        self.engine = store.engine
        self.evidence = evidence
        #: ``derive.Deriver``: evidence is derived behind the acknowledgement (None: in the statements' transaction)
        self.deriver = deriver
        #: backpressure: a batch waits (at most ``lag_wait`` s) while more statements than this wait for the deriver (0: never)
        self.max_lag, self.lag_wait = max_lag, lag_wait
        dialect = self.engine.dialect
        self._statements = BulkStatement(xapi_statements, _STATEMENT_COLUMNS, dialect)
        #: a validated UUID's text -> the id as the driver stores it (SQLite: its 16 bytes,
        #: without building a ``uuid.UUID``; PostgreSQL: the uuid type's own bind processor)
        uid = self._statements.procs["id"] or _same
        self._key = _uuid_bytes if dialect.name == "sqlite" else (lambda value: uid(uuid.UUID(value)))
        # SQLite: new index rows go to the recent tier, merged every ``merge_every`` statements
        self._tiered = dialect.name == "sqlite"
        self.tiers = TierMerge(merge_every, gen_bits)  # (gen_bits: tests only; ``tables.GEN_BITS``)
        self.merge_every, self.merge_slice = self.tiers.every, self.tiers.slice
        # (PostgreSQL writes through ``statement_pg``: statements partitioned by month, index rows
        # with their statement's stored, ids in the id table, ``partitions``)
        self._agents = BulkStatement(RECENT.agents, ["tenant", "agent", "verb_id", "seq", "role"], dialect)
        self._activities = BulkStatement(RECENT.activities, ["tenant", "activity", "seq", "role"], dialect)
        self._ids = BulkStatement(xapi_recent_ids, ["tenant", "id", "seq"], dialect)
        self._upsert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        #: PostgreSQL: a batch written in two round trips (``statement_pg``)
        self._pipelined = dialect.name == "postgresql"
        self._definitions: dict[tuple[str, str], dict[str, Any]] = {}
        # SQLite has one writer at a time: the batches of this process's requests are
        # committed together (``GroupCommit``: one transaction, one commit, for all the
        # batches that arrived while the last one was written; measured in process, 100
        # statements per transaction 2,400/s, 200 2,900/s, 400 3,900/s). On PostgreSQL,
        # which writes concurrently, each batch commits on its own.
        self._group = GroupCommit(store.records, max_records=1000) if dialect.name == "sqlite" else None

    # ------------------------------------------------------------------ write

    def save(self, tenant: str, statements: list[dict[str, Any]], *, stored: datetime, authority: str,
             attachments: dict[str, tuple[str, bytes]] | None = None, define: bool = True) -> None:
        """Store complete statements (id, stored, authority, version, timestamp set).

        A statement whose id is already stored is compared (Data 2.3.1.s9): identical ->
        nothing changes; different -> 409 and nothing of the batch is stored. Without
        ``define`` (the scope, Communication 4.2) activity definitions are not learned.

        The first attempt takes every id for new, as nearly all are, and lets the unique
        index on (tenant, id) say otherwise: reading each batch's ids back first cost a query
        per request, 8 % of an ingest worker's time. An attempt that meets a stored id fails
        whole (the unique index, or the append-only evidence the statement would change), and
        the batch goes again the careful way: stored ids read and compared."""
        try:
            self._save(tenant, statements, stored, authority, attachments or {}, define)
        except (DbIntegrityError, Conflict):
            fresh = self._drop_known(tenant, statements)
            if not fresh:
                return
            try:
                self._save(tenant, fresh, stored, authority, attachments or {}, define)
            except DbIntegrityError:
                # another request stored one of these ids between our check and our insert
                raise XapiError(409, "a statement with one of these ids was stored concurrently; retry to compare") from None

    def _save(self, tenant: str, statements: list[dict[str, Any]], stored: datetime, authority: str,
              attachments: dict[str, tuple[str, bytes]], define: bool) -> None:
        targets = self._void_targets(tenant, statements)
        # Everything that needs no lock is built before the write transaction opens (on
        # SQLite it holds the database's one write lock): rows, index rows, evidence records.
        deferred = self.deriver is not None
        if deferred:
            self.deriver.admit(self.max_lag, self.lag_wait)
        plan: _Plan | statement_pg.Batch = (self._plan_pg if self._pipelined else self._plan)(
            tenant, statements, targets, stored, authority, deferred=deferred)
        plan.definitions = self._pending_definitions(tenant, plan.definitions) if define else {}
        mapped = self.evidence.map(tenant, statements) if self.evidence is not None and not deferred else None

        learned: dict[tuple[str, str], dict[str, Any]] = {}

        def within(conn: Connection) -> None:
            learned.clear()  # a group that failed is retried job by job: keep only what commits
            if isinstance(plan, statement_pg.Batch):
                learned.update(self._write_pg(conn, plan, targets, attachments, commit=False))
            else:
                learned.update(self._write(conn, tenant, plan, targets, attachments))
            if mapped is not None:
                mapped.write(conn)

        if self._group is not None:
            self._group.submit(tenant, mapped.records if mapped is not None else [], within)
        elif mapped is not None:
            with self.store.records.write_transaction() as conn:
                # PostgreSQL: the tenant lock before the records' learner locks, as in every statement transaction
                # (taken after them, a voiding statement and a learner's next statement waited for each other)
                self._tenant_lock(conn, tenant, targets)
                self.store.records.apply(tenant, mapped.records, within=within, conn=conn)
        elif isinstance(plan, statement_pg.Batch):
            with self.engine.connect() as conn:  # PostgreSQL, async: two round trips (``statement_pg``)
                conn.begin()  # rolled back on an exception by the connection's close
                learned.update(self._write_pg(conn, plan, targets, attachments, commit=True))
        else:
            with self.store.records.write_transaction() as conn:
                within(conn)
        if len(self._definitions) > _DEFINITIONS_CACHED:
            self._definitions.clear()
        self._definitions.update(learned)  # only what committed
        TRIM.count(len(statements))
        if deferred:
            self.deriver.notify()  # committed: derive at once

    def _drop_known(self, tenant: str, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [s["id"] for s in statements]
        known = self._bodies(tenant, ids)
        if not known:
            return statements
        fresh = []
        for s in statements:
            body = known.get(s["id"])
            if body is None:
                fresh.append(s)
            elif not same_statement(orjson.loads(body), s):
                raise XapiError(409, f"statement {s['id']} is already stored with different content; statements are immutable")
        return fresh

    def _bodies(self, tenant: str, ids: list[str]) -> dict[str, str]:
        s = xapi_statements
        with self.engine.connect() as conn:
            found = conn.execute(select(s.c.id, s.c.body).where(where_ids(conn, tenant, [_uuid(i) for i in ids])))
            return {str(r.id): r.body for r in found}

    def _void_targets(self, tenant: str, statements: list[dict[str, Any]]) -> dict[str, str]:
        """voiding statement id -> target id; a target that is itself a voiding statement
        cannot be voided (Data 2.3.2)."""
        targets = {s["id"]: s["object"]["id"].lower() for s in statements if s["verb"]["id"] == VOIDED}
        if not targets:
            return targets
        voiding_in_batch = set(targets)
        s = xapi_statements
        with self.engine.connect() as conn:
            stored_voiding = {
                str(r.id) for r in conn.execute(
                    select(s.c.id).where(where_ids(conn, tenant, [_uuid(v) for v in targets.values()]),
                                         s.c.voiding.is_not(None))
                )
            }
        for sid, target in targets.items():
            if target in voiding_in_batch or target in stored_voiding:
                raise XapiError(400, f"statement {sid} voids {target}, which is itself a voiding statement; "
                                     "a voiding statement cannot be voided (Data 2.3.2)")
        return targets

    def _plan(self, tenant: str, statements: list[dict[str, Any]], targets: dict[str, str], stored: datetime,
              authority: str, *, deferred: bool = False) -> _Plan:
        """The rows of a batch, but for ``seq`` (allocated under the write lock): statement
        rows with their values as the driver stores them, and index rows that name their
        statement by its position in the batch."""
        procs = self._statements.procs
        when = procs["stored"] or _same
        key = self._key
        stored_value = when(stored)
        rows = _index_rows(statements)
        copied = self._referenced_rows(tenant, statements)
        plan = _Plan(ids=[st["id"] for st in statements], definitions=rows.definitions)
        flat, bodies = plan.statements, plan.bodies
        agents, agent_of, acts_flat, activity_of = plan.agents, plan.agent_of, plan.activities, plan.activity_of
        mark = True if deferred else None
        id_rows = plan.id_rows
        for i, st in enumerate(statements):
            sid = st["id"]
            registration = st.get("context", {}).get("registration")
            body = orjson.dumps(st).decode()
            bodies.append(body)
            target = targets.get(sid)
            id_key = key(sid)
            id_rows += (tenant, id_key, 0)
            flat += (0, tenant, id_key, stored_value, st["verb"]["id"], key(registration) if registration else None,
                     key(target) if target else None, False, authority, "attachments" in st, mark, body)
            agent_rows, activity_rows = _statement_rows(rows, copied.get(sid), sid)
            for a, v, role in agent_rows:
                agents += (tenant, a, v, 0, role)
                agent_of.append(i)
            for a, role in activity_rows:
                acts_flat += (tenant, a, 0, role)
                activity_of.append(i)
        plan.keys = [_uuid(i) for i in plan.ids]
        return plan

    def _plan_pg(self, tenant: str, statements: list[dict[str, Any]], targets: dict[str, str], stored: datetime,
                 authority: str, *, deferred: bool = False) -> statement_pg.Batch:
        """PostgreSQL: the rows of a batch as columns (``statement_pg``), but for ``seq``."""
        rows = _index_rows(statements)
        copied = self._referenced_rows(tenant, statements)
        b = statement_pg.Batch(tenant, (self._statements.procs["stored"] or _same)(stored), authority, deferred)
        b.definitions = rows.definitions
        for i, st in enumerate(statements):
            sid = st["id"]
            b.ids.append(sid)
            b.verbs.append(st["verb"]["id"])
            b.registrations.append(st.get("context", {}).get("registration"))
            b.voiding.append(targets.get(sid))
            b.attachments.append("attachments" in st)
            b.bodies.append(orjson.dumps(st).decode())
            agent_rows, activity_rows = _statement_rows(rows, copied.get(sid), sid)
            for a, v, role in agent_rows:
                b.agents.append(a)
                b.agent_verbs.append(v)
                b.agent_roles.append(role)
                b.agent_of.append(i)
            for a, role in activity_rows:
                b.activities.append(a)
                b.activity_roles.append(role)
                b.activity_of.append(i)
        return b

    def _write_pg(self, conn: Connection, batch: statement_pg.Batch, targets: dict[str, str],
                  attachments: dict[str, tuple[str, bytes]], *, commit: bool) -> dict[tuple[str, str], dict[str, Any]]:
        """PostgreSQL: ``_write`` in two round trips (``statement_pg``); what is rare (voiding,
        attachments, push routes, new activity definitions) follows through SQLAlchemy in the same
        transaction. ``commit``: commit it too (else the caller does)."""
        tenant = batch.tenant
        extra = bool(targets or attachments or batch.definitions)
        written = statement_pg.write(conn, batch, guard=self.deriver is not None, exclusive=bool(targets), commit=commit,
                                     rest=lambda w: extra or bool(w.voided_earlier or w.routes))
        if not (extra or written.voided_earlier or written.routes):
            return {}
        voided = {_uuid(v) for v in targets.values()} | set(written.voided_earlier)
        if voided:
            s = xapi_statements
            conn.execute(update(s).where(where_ids(conn, tenant, sorted(voided)), s.c.voiding.is_(None)).values(voided=True))
            if self.evidence is not None and self.deriver is None:  # inline: their evidence too, as this transaction sees it
                self.store.records.apply_in(conn, tenant, self.evidence.void(tenant, [str(v) for v in voided], conn=conn), now=utcnow())
        self._store_attachments(conn, tenant, attachments)
        enqueue(conn, tenant, batch.ids, batch.bodies, getattr(self.evidence, "source", "xapi"), routes=written.routes)
        learned = self._merge_definitions(conn, tenant, batch.definitions)
        if commit:
            conn.commit()
        return learned

    def _write(self, conn: Connection, tenant: str, plan: _Plan, targets: dict[str, str],
               attachments: dict[str, tuple[str, bytes]]) -> dict[tuple[str, str], dict[str, Any]]:
        """SQLite (PostgreSQL: ``_write_pg``): write a planned batch; returns the activity
        definitions it stored (for the cache). Runs under the write lock: only the seqs are
        filled in here, everything else was built by ``_plan``."""
        s = xapi_statements
        n = len(plan.ids)
        # an id is unique per tenant across both tiers of the ids (``tables``): the recent tier's
        # primary key refuses an id stored there (or twice in the batch), this look-up one merged
        if merged_ids(conn, tenant, plan.id_rows[1::3]):
            raise DbIntegrityError("statement id already stored (xapi_statement_ids)", None,
                                   sqlite3.IntegrityError("UNIQUE constraint failed: xapi_statement_ids.tenant, xapi_statement_ids.id"))
        seqs = allocate_seqs(conn, n)
        width = len(_STATEMENT_COLUMNS)
        plan.statements[0::width] = seqs
        plan.id_rows[2::3] = seqs
        self._ids.execute_flat(conn, plan.id_rows, n)
        agent_width, activity_width = 5, 4
        if plan.agents:
            plan.agents[3::agent_width] = [seqs[i] for i in plan.agent_of]
        if plan.activities:
            plan.activities[2::activity_width] = [seqs[i] for i in plan.activity_of]
        self._statements.execute_flat(conn, plan.statements, n)
        self._agents.execute_flat(conn, plan.agents, len(plan.agent_of))
        self._activities.execute_flat(conn, plan.activities, len(plan.activity_of))
        # voided: targets of this batch's voiding statements, and statements of this batch
        # that an earlier voiding statement already targets (Data 2.3.2.s2.b3). (PostgreSQL, where
        # transactions overlap, takes the tenant lock first: ``statement_pg``)
        earlier = voided_by_earlier(conn, tenant, plan.keys)
        voided = {_uuid(v) for v in targets.values()} | set(earlier)
        if voided:
            conn.execute(update(s).where(where_ids(conn, tenant, sorted(voided)), s.c.voiding.is_(None))
                         .values(voided=True))
            if self.evidence is not None and self.deriver is None:  # inline: their evidence too, as this transaction sees it
                self.store.records.apply_in(conn, tenant, self.evidence.void(tenant, [str(v) for v in voided], conn=conn), now=utcnow())
        self._store_attachments(conn, tenant, attachments)
        # routing (issue 16): outbox rows of kind xapi.statement, in this transaction
        enqueue(conn, tenant, plan.ids, plan.bodies, getattr(self.evidence, "source", "xapi"))
        if self._tiered:
            below = self.tiers.due(conn, seqs[-1], n)
            if below is not None:
                self.merge(conn, below)
        return self._merge_definitions(conn, tenant, plan.definitions)

    @staticmethod
    def _tenant_lock(conn: Connection, tenant: str, targets: dict[str, str]) -> None:
        """PostgreSQL: the tenant's lock of ``_write``, exclusive for a batch with voiding statements,
        shared for the others (a second time in one transaction: already held, nothing waits)."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock{'' if targets else '_shared'}(hashtextextended(%(t)s, 1))", {"t": tenant})

    def merge(self, conn: Connection, below: int | None = None) -> None:
        """SQLite: move the index rows of the statements below seq ``below`` (all: None) into the
        merged tables (``index_tiers.TierMerge.merge``), in the caller's write transaction."""
        self.tiers.merge(conn, below)

    def _referenced_rows(self, tenant: str,
                         statements: list[dict[str, Any]]) -> dict[str, tuple[list[tuple[str, str, str]], list[tuple[str, str]]]]:
        """Communication 2.1.3.s3: a statement whose object is a StatementRef matches the
        filters its target matches, recursively (a targets b targets c): it gets the index
        rows of every statement down the chain (targets found by id; at most ``_REF_DEPTH``)."""
        refs = {st["id"]: st["object"]["id"].lower() for st in statements if st["object"].get("objectType") == "StatementRef"}
        if not refs:
            return {}
        s = xapi_statements
        bodies: dict[str, dict[str, Any]] = {st["id"]: st for st in statements}
        wanted = set(refs.values())
        with self.engine.connect() as conn:
            for _ in range(_REF_DEPTH):
                wanted -= set(bodies)
                if not wanted:
                    break
                found = {str(r.id): orjson.loads(r.body) for r in conn.execute(
                    select(s.c.id, s.c.body).where(where_ids(conn, tenant, [_uuid(v) for v in wanted])))}
                bodies.update(found)
                wanted = {b["object"]["id"].lower() for b in found.values() if b["object"].get("objectType") == "StatementRef"}
        rows = _index_rows(list(bodies.values()))
        out = {}
        for sid, target in refs.items():
            agents: list[tuple[str, str, str]] = []
            acts: list[tuple[str, str]] = []
            seen = {sid}
            while target in bodies and target not in seen:
                seen.add(target)
                agents += rows.agents[target]
                acts += rows.activities[target]
                obj = bodies[target]["object"]
                target = obj["id"].lower() if obj.get("objectType") == "StatementRef" else ""
            if agents or acts:
                out[sid] = (agents, acts)
        return out

    def _pending_definitions(self, tenant: str, definitions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The definitions of a batch that may change what the LRS holds, found before the
        write lock. Most statements repeat a definition the LRS already holds: a definition
        this process last read or wrote, that the new one would not change, costs no query.
        (Another process may have merged more into the row since: then the row stays as
        that process left it, which already holds at least as much.) The same definition again,
        the usual case, is told by one comparison, without building the merge."""
        cache = self._definitions
        return {aid: d for aid, d in definitions.items()
                if (known := cache.get((tenant, aid))) is None or d != known and merge_definition(known, d) != known}

    def _merge_definitions(self, conn: Connection, tenant: str,
                           pending: dict[str, dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Keep the LRS's canonical definition of each activity: the latest statement's
        definition, its language maps merged with what was known (Communication 2.5).
        ``pending``: those of the batch's definitions ``_pending_definitions`` kept. PostgreSQL: batches merging
        one activity take turns (a lock per activity, in id order as the upsert's), the second reading what the first merged."""
        if not pending:
            return {}
        if conn.dialect.name == "postgresql":  # tests/test_xapi_concurrent_writes.py
            conn.exec_driver_sql("SELECT count(pg_advisory_xact_lock(hashtextextended(%(t)s || ' ' || k, 0))) "
                                 "FROM (SELECT k FROM unnest(%(ids)s::text[]) AS k ORDER BY k) AS ordered", {"t": tenant, "ids": sorted(pending)})
        a = xapi_activities
        stored = {r.id: orjson.loads(r.definition) for r in conn.execute(
            select(a.c.id, a.c.definition).where(a.c.tenant == tenant, a.c.id.in_(list(pending)))
        )}
        now = utcnow()
        changed = []
        learned = {}
        for aid, new in sorted(pending.items()):  # one lock order for concurrent upserts (PostgreSQL)
            old = stored.get(aid)
            merged = merge_definition(old, new) if old else new
            learned[(tenant, aid)] = merged
            if merged != old:
                changed.append({"tenant": tenant, "id": aid, "definition": orjson.dumps(merged).decode(), "updated": now})
        if changed:
            stmt = self._upsert(a)
            conn.execute(stmt.on_conflict_do_update(index_elements=["tenant", "id"],
                                                    set_={"definition": stmt.excluded.definition, "updated": stmt.excluded.updated}),
                         changed)
        return learned

    def _store_attachments(self, conn: Connection, tenant: str, attachments: dict[str, tuple[str, bytes]]) -> None:
        if not attachments:
            return
        a = xapi_attachments
        conn.execute(self._upsert(a).on_conflict_do_nothing(index_elements=["tenant", "sha2"]), [
            {"tenant": tenant, "sha2": sha2, "content_type": ctype, "length": len(data), "content": data}
            for sha2, (ctype, data) in sorted(attachments.items())  # one lock order (PostgreSQL)
        ])

# --------------------------------------------------------------------------- helpers

def _same(value: Any) -> Any:
    return value


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def _uuid_bytes(value: str) -> bytes:
    """The 16 bytes of a UUID in its 8-4-4-4-12 text (validated: ``validation.uuid_``, or made
    by ``uuid.uuid4``), as ``uuid.UUID(value).bytes`` but five times faster."""
    return bytes.fromhex(value.replace("-", ""))


def _statement_rows(rows: _Rows, extra: tuple[list[tuple[str, str, str]], list[tuple[str, str]]] | None,
                    sid: str) -> tuple[Iterator[tuple[str, str, str]], Iterator[tuple[str, str]]]:
    """A statement's agent and activity index rows, with those of the statements its
    StatementRef chain names (``extra``, ``_referenced_rows``)."""
    agents = dict.fromkeys(rows.agents[sid])
    acts = dict.fromkeys(rows.activities[sid])
    if extra:
        agents.update(dict.fromkeys(extra[0]))
        acts.update(dict.fromkeys(extra[1]))
    return _strongest(agents), _strongest_acts(acts)


def _strongest(rows: dict[tuple[str, str, str], None]) -> Iterator[tuple[str, str, str]]:
    """One row per (agent, verb): "p" (actor or object) wins over "r" (related)."""
    best: dict[tuple[str, str], str] = {}
    for agent, verb, role in rows:
        if best.get((agent, verb)) != "p":
            best[(agent, verb)] = role
    return ((a, v, r) for (a, v), r in best.items())


def _strongest_acts(rows: dict[tuple[str, str], None]) -> Iterator[tuple[str, str]]:
    best: dict[str, str] = {}
    for act, role in rows:
        if best.get(act) != "p":
            best[act] = role
    return iter(best.items())


def _index_rows(statements: list[dict[str, Any]]) -> _Rows:
    rows = _Rows()
    for st in statements:
        verb = st["verb"]["id"]
        agents: list[tuple[str, str, str]] = [("", verb, "p")]  # "" indexes the verb alone
        acts: list[tuple[str, str]] = []
        _collect(st, verb, agents, acts, rows.definitions, primary=True)
        if "authority" in st:
            _collect_actor(st["authority"], verb, agents, "r")
        rows.agents[st["id"]] = agents
        rows.activities[st["id"]] = acts
    return rows


def _collect(st: dict[str, Any], verb: str, agents: list[tuple[str, str, str]], acts: list[tuple[str, str]],
             definitions: dict[str, dict[str, Any]], *, primary: bool) -> None:
    """Index rows of a statement or SubStatement (Communication 2.1.3: related_agents /
    related_activities look into SubStatements too)."""
    role = "p" if primary else "r"
    _collect_actor(st["actor"], verb, agents, role)
    obj = st["object"]
    ot = obj.get("objectType", "Activity")
    if ot == "Activity":
        acts.append((obj["id"], role))
        _learn(definitions, obj)
    elif ot in ("Agent", "Group"):
        _collect_actor(obj, verb, agents, role)
    elif ot == "SubStatement":
        _collect(obj, verb, agents, acts, definitions, primary=False)
    ctx = st.get("context")
    if ctx:
        for k in ("instructor", "team"):
            if k in ctx:
                _collect_actor(ctx[k], verb, agents, "r")
        for m in ctx.get("contextAgents", ()):
            _collect_actor(m["agent"], verb, agents, "r")
        for m in ctx.get("contextGroups", ()):
            _collect_actor(m["group"], verb, agents, "r")
        for group in (ctx.get("contextActivities") or {}).values():
            for a in group:
                acts.append((a["id"], "r"))
                _learn(definitions, a)


def _learn(definitions: dict[str, dict[str, Any]], activity: dict[str, Any]) -> None:
    """Communication 2.5.s1: the Activity the LRS returns holds all it knows from every
    statement about it, so two statements of one batch that define the same activity (in
    two languages, say) merge like two batches would."""
    if "definition" in activity:
        aid = activity["id"]
        known = definitions.get(aid)
        definitions[aid] = merge_definition(known, activity["definition"]) if known else activity["definition"]


def _collect_actor(a: dict[str, Any], verb: str, agents: list[tuple[str, str, str]], role: str) -> None:
    """Index rows of an Agent or Group. A Group's members share its role: for the agent
    filter, "Groups that have members which match the specified Agent ... are considered a
    match" (Communication 2.1.3.s1.table1.row3)."""
    if "account" in a or "mbox" in a or "mbox_sha1sum" in a or "openid" in a:
        agents.append((agent_key(a), verb, role))
    for m in a.get("member", ()):
        agents.append((agent_key(m), verb, role))


def merge_definition(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The new definition wins property by property; language maps merge entry by entry."""
    merged = dict(old)
    for k, v in new.items():
        if k in ("name", "description") and isinstance(v, dict) and isinstance(old.get(k), dict) or k == "extensions" and isinstance(old.get(k), dict):
            merged[k] = {**old[k], **v}
        else:
            merged[k] = v
    return merged


__all__ = ["MERGE_EVERY", "StatementStore", "merge_definition", "same_statement"]
