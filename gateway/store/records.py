"""The record repository: idempotent, atomic batch upserts and keyset-paged reads.

``RecordStore.apply`` is the one door through which canonical records enter the store
(DESIGN section 2). In ONE transaction it

* checks every reference a record makes (an enrollment's person and section, a
  competency's framework...) against the batch and the store,
* upserts each record by ``(tenant, source, native_id)`` (its uuid5 ``id``), writing only
  those whose content really changed,
* refreshes the identifier index of the records it wrote,
* appends one change-log row per real change,
* enqueues an outbox delivery for every enabled push route that wants the record.

Anything that fails rolls all of it back. Writes use SQLAlchemy Core executemany, not
the ORM, because this is the hot path of every bulk import.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, update
from sqlalchemy import insert as core_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..errors import Conflict, ErrorDetail, IntegrityError, NotFound, ValidationError
from ..model import RECORD_CLASSES, RECORD_TYPES, Evidence, Record, utcnow
from . import tables as t
from .db import WRITE, BulkStatement
from .outbox import matching_routes, outbox_rows
from .tenants import ensure_tenant

CHUNK = 500  # ids per IN (...) clause: well under SQLite's and PostgreSQL's parameter limits
KIND_ORDER = {cls.KIND: i for i, cls in enumerate(RECORD_CLASSES)}

# --- what each kind references, and which fields are promoted to columns --------------------


def _refs(*fields: str) -> Callable[[Record], Iterator[tuple[str, uuid.UUID]]]:
    """References held in plain fields (single ids or lists of ids)."""

    def walk(rec: Record) -> Iterator[tuple[str, uuid.UUID]]:
        for f in fields:
            v = getattr(rec, f)
            if isinstance(v, list):
                for i, x in enumerate(v):
                    yield f"{f}[{i}]", x
            elif v is not None:
                yield f, v

    return walk


def _person_refs(rec: Any) -> Iterator[tuple[str, uuid.UUID]]:
    for i, r in enumerate(rec.roles):
        yield f"roles[{i}].org_id", r.org_id


#: kind -> [(target kind, function yielding (field path, id))]
REFERENCES: dict[str, list[tuple[str, Callable[[Any], Iterable[tuple[str, uuid.UUID]]]]]] = {
    "org": [("org", _refs("parent_id"))],
    "academic_session": [("academic_session", _refs("parent_id")), ("org", _refs("org_id"))],
    "course": [("org", _refs("org_id")), ("academic_session", _refs("session_id")), ("competency", _refs("competency_ids"))],
    "section": [("course", _refs("course_id")), ("org", _refs("org_id")), ("academic_session", _refs("session_ids"))],
    "person": [("org", _person_refs), ("person", _refs("agent_ids"))],
    "enrollment": [("person", _refs("person_id")), ("section", _refs("section_id")), ("org", _refs("org_id"))],
    "framework": [],
    "competency": [("framework", _refs("framework_id"))],
    "relation": [("competency", _refs("origin_id", "destination_id")), ("framework", _refs("framework_id"))],
    "proficiency_scale": [("framework", _refs("framework_id")), ("competency", _refs("competency_id"))],
    "alignment": [("competency", _refs("competency_id"))],
    "evidence": [
        ("person", _refs("learner_id")),
        ("competency", _refs("competency_id")),
        ("alignment", _refs("alignment_id")),
        ("evidence", _refs("supersedes")),
    ],
    "mastery_rule": [
        ("framework", _refs("framework_id")),
        ("competency", _refs("competency_id")),
        ("proficiency_scale", _refs("scale_id")),
    ],
    "mastery_state": [("person", _refs("learner_id")), ("competency", _refs("competency_id"))],
}


def _enum(v: Any) -> Any:
    return getattr(v, "value", v)


#: kind -> {column: value getter}; columns beyond the common ones.
PROMOTED: dict[str, dict[str, Callable[[Any], Any]]] = {
    "org": {"type": lambda r: r.type.value, "parent_id": lambda r: r.parent_id},
    "academic_session": {
        "type": lambda r: r.type.value,
        "parent_id": lambda r: r.parent_id,
        "school_year": lambda r: r.school_year,
    },
    "course": {"org_id": lambda r: r.org_id},
    "section": {"course_id": lambda r: r.course_id, "org_id": lambda r: r.org_id},
    "person": {"primary_role": lambda r: _enum(r.primary_role)},
    "enrollment": {"person_id": lambda r: r.person_id, "section_id": lambda r: r.section_id, "role": lambda r: r.role.value},
    "framework": {"guid": lambda r: r.guid},
    "competency": {"framework_id": lambda r: r.framework_id, "guid": lambda r: r.guid, "code": lambda r: r.code},
    "relation": {"type": lambda r: r.type.value, "origin_id": lambda r: r.origin_id, "destination_id": lambda r: r.destination_id},
    "proficiency_scale": {"framework_id": lambda r: r.framework_id},
    "alignment": {"target_system": lambda r: r.target_system, "target_id": lambda r: r.target_id, "competency_id": lambda r: r.competency_id},
    "evidence": {
        "learner_id": lambda r: r.learner_id,
        "competency_id": lambda r: r.competency_id,
        "observed_at": lambda r: r.observed_at,
        "voided": lambda r: r.voided,
    },
    "mastery_rule": {"framework_id": lambda r: r.framework_id, "competency_id": lambda r: r.competency_id},
    "mastery_state": {"learner_id": lambda r: r.learner_id, "competency_id": lambda r: r.competency_id},
}

#: Fields left out of the content hash: timestamps the store itself sets.
UNHASHED = ("updated_at", "recorded_at")
#: The only fields of stored evidence that may change (DESIGN: evidence is append-only).
EVIDENCE_MUTABLE = frozenset(
    {"voided", "superseded_by", "competency_id", "alignment_id", "status", "updated_at", "recorded_at", "identifiers"}
)


def content_hash(doc: dict[str, Any]) -> str:
    """sha256 of the record without the store's own timestamps (taken out and put back, not copied)."""
    saved = [(k, doc.pop(k)) for k in UNHASHED if k in doc]
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    for k, v in saved:
        doc[k] = v
    return digest


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
class Page:
    """One page of raw JSON documents and the cursor of the next page (None at the end)."""

    items: list[str]
    next_cursor: str | None


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def encode_cursor(updated_at: datetime, rid: uuid.UUID) -> str:
    raw = f"{updated_at.isoformat()}|{rid}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, rid = raw.split("|", 1)
        return datetime.fromisoformat(ts), uuid.UUID(rid)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(
            "invalid cursor", errors=[ErrorDetail("not a cursor this API issued", location="query", field="cursor")]
        ) from None


@dataclass
class Prepared:
    """A record made ready for writing before any transaction opens (so a pipelined importer
    can prepare the next batch while the database writes this one)."""

    rec: Record
    doc: dict[str, Any]
    digest: str
    row: dict[str, Any]


@dataclass
class PreparedBatch:
    tenant: str
    by_kind: dict[str, list[Prepared]]
    size: int


class RecordStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        ins = pg_insert if dialect.name == "postgresql" else sqlite_insert
        self._upsert: dict[str, BulkStatement] = {}
        for kind, tbl in t.RECORD_TABLES.items():
            stmt = ins(tbl)
            stmt = stmt.on_conflict_do_update(
                index_elements=[tbl.c.id],
                set_={c.name: stmt.excluded[c.name] for c in tbl.columns if c.name not in ("id", "created_at")},
            )
            self._upsert[kind] = BulkStatement(stmt, dialect, [c.name for c in tbl.columns])
        self._identifiers = BulkStatement(
            core_insert(t.identifiers).inline(), dialect, ["tenant", "record_kind", "record_id", "system", "kind", "value"]
        )
        self._changes = BulkStatement(
            core_insert(t.changes).inline(), dialect, ["tenant", "batch_id", "record_kind", "record_id", "op", "content_hash", "at"]
        )

    # --- writing ---------------------------------------------------------------------------

    def prepare(self, tenant: str, records: Iterable[Record]) -> PreparedBatch:
        """Validate batch-level rules and serialise every record; touches no database."""
        by_kind: dict[str, dict[uuid.UUID, Prepared]] = defaultdict(dict)
        errors: list[ErrorDetail] = []
        size = 0
        for rec in records:
            size += 1
            if rec.tenant != tenant:
                errors.append(ErrorDetail(f"record belongs to tenant {rec.tenant!r}, not {tenant!r}", location=_where(rec), field="tenant"))
                continue
            kind = rec.KIND
            doc = rec.model_dump(mode="json", exclude_none=True)
            digest = content_hash(doc)
            bucket = by_kind[kind]
            prev = bucket.get(rec.id)  # type: ignore[arg-type]
            if prev is not None and prev.digest != digest:
                errors.append(ErrorDetail("the same record appears twice in the batch with different content", location=_where(rec)))
            row = {"id": rec.id, "tenant": tenant, "source": rec.source, "native_id": rec.native_id, "status": rec.status.value, "content_hash": digest}
            for col, get in PROMOTED[kind].items():
                row[col] = get(rec)
            bucket[rec.id] = Prepared(rec, doc, digest, row)  # type: ignore[index]
        if errors:
            raise ValidationError("batch rejected", errors=errors)
        ordered = {k: list(by_kind[k].values()) for k in sorted(by_kind, key=KIND_ORDER.__getitem__)}
        return PreparedBatch(tenant, ordered, size)

    def apply(self, tenant: str, records: Iterable[Record] | PreparedBatch, *, batch_id: uuid.UUID | None = None) -> ApplyResult:
        """Apply a batch atomically. Raises ValidationError/IntegrityError/Conflict and writes nothing on failure."""
        batch = records if isinstance(records, PreparedBatch) else self.prepare(tenant, records)
        if batch.tenant != tenant:
            raise ValidationError(f"prepared batch is for tenant {batch.tenant!r}, not {tenant!r}")
        result = ApplyResult(batch_id=batch_id or uuid.uuid4())
        if not batch.by_kind:
            return result
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            now = utcnow()  # taken under the write lock, so updated_at follows commit order on SQLite
            ensure_tenant(conn, tenant)
            self._check_references(conn, tenant, batch.by_kind)
            routes = matching_routes(conn, tenant)
            for kind, items in batch.by_kind.items():
                counts, written = self._apply_kind(conn, tenant, kind, items, result.batch_id, now)
                result.counts[kind] = counts
                if written and routes:
                    rows = outbox_rows(routes, tenant, kind, written, now)
                    if rows:
                        conn.execute(core_insert(t.outbox), rows)
                        result.outbox += len(rows)
        return result

    def apply_stream(self, tenant: str, batches: Iterable[Iterable[Record]]) -> Iterator[ApplyResult]:
        """Apply many batches, each atomically, preparing batch n+1 in a second thread while
        batch n is written (sqlite3 and psycopg release the GIL while the database works)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-prepare") as pool:
            it = iter(batches)
            first = next(it, None)
            if first is None:
                return
            pending = pool.submit(self.prepare, tenant, first)
            for nxt in it:
                ready = pending.result()
                pending = pool.submit(self.prepare, tenant, nxt)
                yield self.apply(tenant, ready)
            yield self.apply(tenant, pending.result())

    def _check_references(self, conn: Connection, tenant: str, by_kind: dict[str, list[Prepared]]) -> None:
        in_batch: dict[str, set[uuid.UUID]] = {k: {p.rec.id for p in items} for k, items in by_kind.items()}  # type: ignore[misc]
        wanted: dict[str, dict[uuid.UUID, tuple[Record, str]]] = defaultdict(dict)
        for kind, items in by_kind.items():
            for target, walk in REFERENCES[kind]:
                present = in_batch.get(target, set())
                for p in items:
                    for path, ref in walk(p.rec):
                        if ref not in present:
                            wanted[target].setdefault(ref, (p.rec, path))
        errors = []
        for target, refs in wanted.items():
            tbl = t.RECORD_TABLES[target]
            found: set[uuid.UUID] = set()
            for ids in _chunks(list(refs)):
                found.update(conn.scalars(select(tbl.c.id).where(tbl.c.tenant == tenant, tbl.c.id.in_(ids))))
            for ref, (rec, path) in refs.items():
                if ref not in found:
                    errors.append(
                        ErrorDetail(f"references {target} {ref}, which is neither in the batch nor stored", location=_where(rec), field=path)
                    )
        if errors:
            raise IntegrityError("batch references unknown records", errors=errors)

    def _apply_kind(
        self, conn: Connection, tenant: str, kind: str, items: list[Prepared], batch_id: uuid.UUID, now: datetime
    ) -> tuple[KindCounts, list[tuple[uuid.UUID, str, str]]]:
        tbl = t.RECORD_TABLES[kind]
        is_evidence = kind == "evidence"
        existing: dict[uuid.UUID, tuple[str, str | None, datetime]] = {}
        cols = [tbl.c.id, tbl.c.content_hash, tbl.c.created_at] + ([tbl.c.data] if is_evidence else [])
        for ids in _chunks([p.rec.id for p in items]):
            for r in conn.execute(select(*cols).where(tbl.c.id.in_(ids))):
                existing[r.id] = (r.content_hash, r.data if is_evidence else None, r.created_at)

        counts = KindCounts()
        rows: list[dict[str, Any]] = []
        change_rows: list[dict[str, Any]] = []
        ident_rows: list[dict[str, Any]] = []
        written: list[tuple[uuid.UUID, str, str]] = []
        superseding: list[tuple[uuid.UUID, uuid.UUID]] = []
        stamp = now.isoformat()
        for p in items:
            rec, doc, digest = p.rec, p.doc, p.digest
            old = existing.get(rec.id)  # type: ignore[arg-type]
            if is_evidence:
                self._evidence_rules(rec, doc, old, now)
                digest = content_hash(doc)
            if old is not None and old[0] == digest:
                counts.unchanged += 1
                continue
            doc["updated_at"] = stamp
            row = p.row
            row["content_hash"] = digest
            row["created_at"] = old[2] if old else now
            row["updated_at"] = now
            row["data"] = orjson.dumps(doc).decode()
            rows.append(row)
            if old is None:
                counts.created += 1
                op = "created"
            else:
                counts.updated += 1
                op = "deleted" if rec.status.value == "tobedeleted" else "updated"
            change_rows.append(
                {"tenant": tenant, "batch_id": batch_id, "record_kind": kind, "record_id": rec.id, "op": op, "content_hash": digest, "at": now}
            )
            for ident in rec.identifiers:
                ident_rows.append(
                    {"tenant": tenant, "record_kind": kind, "record_id": rec.id, "system": ident.system, "kind": ident.kind, "value": ident.value}
                )
            written.append((rec.id, digest, rec.source))  # type: ignore[arg-type]
            if is_evidence and rec.supersedes is not None and old is None:  # type: ignore[attr-defined]
                superseding.append((rec.supersedes, rec.id))  # type: ignore[attr-defined,arg-type]

        if rows:
            self._upsert[kind].execute(conn, rows)
            updated_ids = [r["id"] for r in rows if r["id"] in existing]
            for ids in _chunks(updated_ids):
                conn.execute(delete(t.identifiers).where(t.identifiers.c.record_id.in_(ids)))
            self._identifiers.execute(conn, ident_rows)
            self._changes.execute(conn, change_rows)
        if superseding:
            more = self._mark_superseded(conn, tenant, superseding, batch_id, now)
            counts.updated += len(more)
            written.extend(more)
        return counts, written

    def _evidence_rules(self, rec: Record, doc: dict[str, Any], old: tuple[str, str | None, datetime] | None, now: datetime) -> None:
        """Enforce append-only evidence: only voiding, superseding and late alignment may change."""
        assert isinstance(rec, Evidence)
        if old is None:
            doc["recorded_at"] = (rec.recorded_at or now).isoformat()
            return
        stored = orjson.loads(old[1] or "{}")
        changed = sorted(k for k in set(doc) | set(stored) if k not in EVIDENCE_MUTABLE and doc.get(k) != stored.get(k))
        if changed:
            raise Conflict(
                "evidence is append-only: submit a correction that supersedes it instead",
                errors=[ErrorDetail(f"would change {', '.join(changed)}", location=_where(rec))],
            )
        doc["recorded_at"] = stored.get("recorded_at")
        # Voiding is one-way, and a stored superseded_by is never lost to a re-delivery.
        doc["voided"] = bool(doc.get("voided") or stored.get("voided"))
        superseded_by = doc.get("superseded_by") or stored.get("superseded_by")
        if superseded_by:
            doc["superseded_by"] = superseded_by

    def _mark_superseded(
        self, conn: Connection, tenant: str, pairs: list[tuple[uuid.UUID, uuid.UUID]], batch_id: uuid.UUID, now: datetime
    ) -> list[tuple[uuid.UUID, str, str]]:
        """Point each superseded evidence item at its correction (``superseded_by``)."""
        tbl = t.evidence
        written = []
        for old_id, new_id in pairs:
            row = conn.execute(select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id == old_id)).first()
            if row is None:  # references are checked first, so only a same-batch original lands here
                continue
            doc = orjson.loads(row.data)
            if doc.get("superseded_by") == str(new_id):
                continue
            doc["superseded_by"] = str(new_id)
            digest = content_hash(doc)
            doc["updated_at"] = now.isoformat()
            conn.execute(
                update(tbl).where(tbl.c.id == old_id).values(data=orjson.dumps(doc).decode(), content_hash=digest, updated_at=now)
            )
            conn.execute(
                core_insert(t.changes).values(
                    tenant=tenant, batch_id=batch_id, record_kind="evidence", record_id=old_id, op="updated", content_hash=digest, at=now
                )
            )
            written.append((old_id, digest, doc["source"]))
        return written

    # --- reading ---------------------------------------------------------------------------

    def get_json(self, tenant: str, kind: str, rid: uuid.UUID) -> str:
        """The stored JSON of one record; NotFound for unknown ids *and* other tenants' ids."""
        tbl = t.RECORD_TABLES[kind]
        with self.engine.connect() as conn:
            data = conn.scalar(select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id == rid))
        if data is None:
            raise NotFound(f"no {kind} with id {rid}")
        return data

    def get(self, tenant: str, kind: str, rid: uuid.UUID) -> Record:
        return RECORD_TYPES[kind].model_validate_json(self.get_json(tenant, kind, rid))

    def page(
        self,
        tenant: str,
        kind: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        updated_since: datetime | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Page:
        """Keyset pagination in (updated_at, id) order: stable while records change, and
        exactly what an incremental consumer needs (``updated_since`` + follow the cursor)."""
        tbl = t.RECORD_TABLES[kind]
        q = select(tbl.c.data, tbl.c.updated_at, tbl.c.id).where(tbl.c.tenant == tenant)
        if updated_since is not None:
            q = q.where(tbl.c.updated_at > updated_since)
        for col, value in (filters or {}).items():
            q = q.where(tbl.c[col] == value)
        if cursor:
            cu, cid = decode_cursor(cursor)
            q = q.where(or_(tbl.c.updated_at > cu, and_(tbl.c.updated_at == cu, tbl.c.id > cid)))
        q = q.order_by(tbl.c.updated_at, tbl.c.id).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].updated_at, rows[-1].id) if more else None
        return Page([r.data for r in rows], nxt)

    def iter_records(self, tenant: str, kinds: Iterable[str] | None = None, *, batch: int = 1000) -> Iterator[Record]:
        """Every record of the tenant, kind by kind in dependency order (so a re-import of the
        output never references a record it has not yet seen)."""
        for kind in sorted(kinds or RECORD_TYPES, key=KIND_ORDER.__getitem__):
            cls = RECORD_TYPES[kind]
            cursor = None
            while True:
                pg = self.page(tenant, kind, limit=batch, cursor=cursor)
                for data in pg.items:
                    yield cls.model_validate_json(data)
                if pg.next_cursor is None:
                    break
                cursor = pg.next_cursor

    def count(self, tenant: str, kind: str) -> int:
        tbl = t.RECORD_TABLES[kind]
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(tbl).where(tbl.c.tenant == tenant)) or 0

    def lookup(self, tenant: str, system: str, kind: str, value: str, *, record_kind: str | None = None) -> list[tuple[str, uuid.UUID]]:
        """Identity resolution: which records carry identifier (system, kind, value)?"""
        q = select(t.identifiers.c.record_kind, t.identifiers.c.record_id).where(
            t.identifiers.c.tenant == tenant,
            t.identifiers.c.system == system,
            t.identifiers.c.kind == kind,
            t.identifiers.c.value == value,
        )
        if record_kind:
            q = q.where(t.identifiers.c.record_kind == record_kind)
        with self.engine.connect() as conn:
            return [(r.record_kind, r.record_id) for r in conn.execute(q.order_by(t.identifiers.c.id))]

    def changes_since(self, tenant: str, seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        q = (
            select(t.changes)
            .where(t.changes.c.tenant == tenant, t.changes.c.seq > seq)
            .order_by(t.changes.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


def _where(rec: Record) -> str:
    return f"{rec.KIND} {rec.source}/{rec.native_id}"


__all__ = ["ApplyResult", "KindCounts", "Page", "RecordStore", "content_hash"]
