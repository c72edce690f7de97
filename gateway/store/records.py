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

Anything that fails rolls all of it back.

This is the hot path of every bulk import, so the work is split to suit it:
``prepare`` does everything that needs no database (serialise each record once, hash
it, build its row, collect the ids it references) and can run in a second thread while
the previous batch is written (``apply_stream``); ``apply`` then only compares hashes,
fills in the commit-time values and hands the rows to multi-row INSERT statements
(``db.BulkStatement``), not to the ORM nor to a per-row executemany.
"""

from __future__ import annotations

import base64
import hashlib
import time
import types
import typing
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Integer, bindparam, func, select, tuple_, type_coerce, update
from sqlalchemy import insert as core_insert
from sqlalchemy.types import NullType

from ..errors import Conflict, ErrorDetail, IntegrityError, NotFound, ValidationError
from ..model import RECORD_CLASSES, RECORD_TYPES, Evidence, Record, Status, utcnow
from . import tables as t
from .db import WRITE, BulkStatement, bind_processor, max_params, placeholder
from .outbox import matching_routes, outbox_rows
from .tenants import ensure_tenant

CHUNK = 500  # ids per IN (...) clause of the small lookups: well under every parameter limit
KIND_ORDER = {cls.KIND: i for i, cls in enumerate(RECORD_CLASSES)}

# --- what each kind references, and which fields are promoted to columns --------------------


class _Refs:
    """References held in plain fields (single ids or lists of ids).

    ``ids`` is the fast path every record takes; ``walk`` (also the call) names each
    reference's field path, and is only needed to word an error."""

    __slots__ = ("fields",)

    def __init__(self, *fields: str) -> None:
        self.fields = fields

    def ids(self, rec: Any) -> list[uuid.UUID]:
        out: list[uuid.UUID] = []
        for f in self.fields:
            v = getattr(rec, f)
            if v is None:
                continue
            if isinstance(v, list):
                out.extend(v)
            else:
                out.append(v)
        return out

    def walk(self, rec: Any) -> Iterator[tuple[str, uuid.UUID]]:
        for f in self.fields:
            v = getattr(rec, f)
            if isinstance(v, list):
                for i, x in enumerate(v):
                    yield f"{f}[{i}]", x
            elif v is not None:
                yield f, v

    __call__ = walk


class _ItemRefs:
    """References held by each item of a list field: ``roles[i].org_id``."""

    __slots__ = ("items", "attr")

    def __init__(self, items: str, attr: str) -> None:
        self.items, self.attr = items, attr

    def ids(self, rec: Any) -> list[uuid.UUID]:
        return [getattr(x, self.attr) for x in getattr(rec, self.items)]

    def walk(self, rec: Any) -> Iterator[tuple[str, uuid.UUID]]:
        for i, x in enumerate(getattr(rec, self.items)):
            yield f"{self.items}[{i}].{self.attr}", getattr(x, self.attr)

    __call__ = walk


def _refs(*fields: str) -> _Refs:
    return _Refs(*fields)


#: kind -> [(target kind, references: ``.ids(rec)`` and ``.walk(rec)`` -> (field path, id))]
REFERENCES: dict[str, list[tuple[str, Any]]] = {
    "org": [("org", _refs("parent_id"))],
    "academic_session": [("academic_session", _refs("parent_id")), ("org", _refs("org_id"))],
    "course": [("org", _refs("org_id")), ("academic_session", _refs("session_id")), ("competency", _refs("competency_ids"))],
    "section": [("course", _refs("course_id")), ("org", _refs("org_id")), ("academic_session", _refs("session_ids"))],
    "person": [("org", _ItemRefs("roles", "org_id")), ("person", _refs("agent_ids"))],
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
    "learning_plan": [
        ("person", _refs("learner_id")),
        ("competency", _refs("pathway")),
        ("competency", _ItemRefs("targets", "competency_id")),
    ],
}


#: kinds some record references (whose ids ``apply_batches`` remembers across batches)
REFERENCED_KINDS = frozenset(target for refs in REFERENCES.values() for target, _ in refs)


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
        "scaled": lambda r: r.score.scaled if r.score is not None else None,
        "level": lambda r: r.level,
        "evidence_kind": lambda r: r.evidence_kind.value,
        "success": lambda r: r.success,
        "superseded_by": lambda r: r.superseded_by,
    },
    "mastery_rule": {"framework_id": lambda r: r.framework_id, "competency_id": lambda r: r.competency_id},
    "mastery_state": {
        "learner_id": lambda r: r.learner_id,
        "competency_id": lambda r: r.competency_id,
        "level": lambda r: r.level,
        "value": lambda r: r.value,
        "mastered": lambda r: r.mastered,
    },
    "learning_plan": {"learner_id": lambda r: r.learner_id},
}

#: Fields left out of the content hash: timestamps the store itself sets.
UNHASHED = ("updated_at", "recorded_at")
_UNHASHED = frozenset(UNHASHED)
#: Kinds with a timestamp of their own that is not content: a recomputed mastery state whose
#: result did not change is not rewritten, so its ``computed_at`` says when it last changed.
UNHASHED_BY_KIND: dict[str, frozenset[str]] = {"mastery_state": frozenset({"computed_at"})}
#: The only fields of stored evidence that may change (DESIGN: evidence is append-only).
EVIDENCE_MUTABLE = frozenset(
    {"voided", "superseded_by", "competency_id", "alignment_id", "status", "updated_at", "recorded_at", "identifiers"}
)


def content_hash(doc: dict[str, Any]) -> str:
    """sha256 of a record's JSON document without the store's own timestamps, keys sorted.

    Sorting makes the hash independent of the order in which a sender listed the keys of
    free-form objects (``extensions``). ``RecordStore.prepare`` takes a shortcut that
    gives the same digest: see ``_record_digest``."""
    return hashlib.sha256(
        orjson.dumps({k: v for k, v in doc.items() if k not in _UNHASHED}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def _free_form_dicts(cls: type[BaseModel]) -> tuple[str, ...] | None:
    """The fields of ``cls`` that are free-form dicts (whose key order is the sender's).

    None when a dict hides deeper (in a list, in a nested model): then every record of
    ``cls`` is hashed the sorted way."""
    names = []
    for name, info in cls.model_fields.items():
        if _is_dict(info.annotation):
            names.append(name)
        elif _contains_dict(info.annotation, frozenset()):
            return None
    return tuple(names)


def _is_dict(ann: Any) -> bool:
    """``dict[...]`` itself, or ``dict[...] | None``."""
    origin = typing.get_origin(ann)
    if ann is dict or origin is dict:
        return True
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return len(args) == 1 and _is_dict(args[0])
    return False


def _contains_dict(ann: Any, seen: frozenset[type]) -> bool:
    if ann is dict or typing.get_origin(ann) is dict:
        return True
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        if ann in seen:
            return False
        return any(_contains_dict(f.annotation, seen | {ann}) for f in ann.model_fields.values())
    return any(_contains_dict(a, seen) for a in typing.get_args(ann))


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


class Prepared:
    """A record made ready for writing before any transaction opens (so a pipelined importer
    can prepare the next batch while the database writes this one)."""

    __slots__ = ("rec", "key", "digest", "head", "body", "doc", "idents")

    def __init__(
        self, rec: Record, key: Any, digest: str, head: tuple[Any, ...], body: str | None, doc: dict[str, Any] | None, idents: tuple[Any, ...]
    ) -> None:
        self.rec = rec
        #: the id as the driver stores it (bytes on SQLite, a UUID on PostgreSQL)
        self.key = key
        self.digest = digest
        #: the row up to its commit-time columns: id, tenant, source, native_id, status,
        #: content_hash, then the kind's promoted columns, all as the driver stores them
        self.head = head
        #: the record's JSON without the store's timestamps and without its closing brace
        #: (``apply`` appends ``updated_at``); None for evidence, which keeps ``doc``
        self.body = body
        self.doc = doc
        #: its identifier-index rows, flat: (tenant, kind, key, system, kind, value) each
        self.idents = idents


@dataclass
class PreparedBatch:
    tenant: str
    #: kind -> its records, kinds in dependency order, records in id order
    by_kind: dict[str, list[Prepared]]
    size: int
    #: kind -> {id: record}, in batch order (duplicates folded)
    by_id: dict[str, dict[uuid.UUID, Prepared]] = field(default_factory=dict)
    #: target kind -> every id the batch references in it
    refs: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    #: kind -> {id: stored content hash}, holding every stored record of the batch's ids in
    #: that kind, when the caller has read them already (the mastery recompute reads a whole
    #: learner range at once); the kinds not in it, and evidence (whose stored documents the
    #: append-only check needs), are looked up
    stored: dict[str, dict[uuid.UUID, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _KindSpec:
    kind: str
    evidence: bool
    promote: Callable[[Any], tuple[Any, ...]]
    refs: tuple[tuple[str, Any], ...]
    #: fields whose non-empty value sends the hash down the sorted path; None: always
    free_dicts: tuple[str, ...] | None
    #: fields kept in the record but left out of its hash (``UNHASHED_BY_KIND``)
    unhashed: frozenset[str] = frozenset()


def _promoter(getters: list[tuple[Callable[[Any], Any], Callable[[Any], Any] | None]]) -> Callable[[Any], tuple[Any, ...]]:
    if not getters:
        return lambda rec: ()
    if len(getters) == 1:
        (get, proc), = getters
        if proc is None:
            return lambda rec: (get(rec),)
        return lambda rec: (proc(get(rec)),)
    return lambda rec: tuple([get(rec) if proc is None else proc(get(rec)) for get, proc in getters])


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


#: page() filter suffixes: ``{"competency_id__null": True}`` lists unaligned evidence
NULL_FILTER, NOT_NULL_FILTER = "__null", "__notnull"

#: Called inside the writing transaction once evidence has changed, with the (learner,
#: competency) pairs it touched: how the mastery engine keeps states exact (DESIGN 2).
EvidenceListener = Callable[[Connection, str, set[tuple[uuid.UUID, uuid.UUID]], datetime], None]


_COMMON_HEAD = ["id", "tenant", "source", "native_id", "status", "content_hash"]
_COMMIT_TIME = ["created_at", "updated_at", "data"]


class _PreparedAhead:
    """The batches of ``batches``, prepared (``RecordStore._prepare``) in one worker thread up
    to ``depth`` ahead of the one being written (``apply_stream``, ``apply_batches``).

    That thread alone iterates ``batches``, in order, each batch whole before the next is
    taken. ``refill`` starts the next preparation; the writer calls it once its rows are
    built and its bulk writes begin (``writing``), when sqlite3 and psycopg release the GIL,
    so the two overlap, whereas two threads running Python only take turns. The preparing
    thread gives the GIL up every ``PIPELINE_YIELD_EVERY`` records: otherwise the writer,
    back from each statement, would wait for it the whole switch interval (5 ms)."""

    def __init__(self, store: RecordStore, tenant: str, batches: Iterable[Iterable[Record] | PreparedBatch], *, depth: int) -> None:
        from concurrent.futures import Future, ThreadPoolExecutor

        self._store, self._tenant, self._it, self._depth = store, tenant, iter(batches), depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-prepare")
        self._ahead: deque[Future[PreparedBatch | None]] = deque()
        for _ in range(depth):
            self.refill()

    def _take(self) -> PreparedBatch | None:
        nxt = next(self._it, None)
        if nxt is None or isinstance(nxt, PreparedBatch):  # after the last; or prepared by its producer
            return nxt
        return self._store._prepare(self._tenant, nxt, yield_every=self._store.PIPELINE_YIELD_EVERY)

    def refill(self) -> None:
        """Start preparing one more batch, unless ``depth`` are already under way."""
        if len(self._ahead) < self._depth:
            self._ahead.append(self._pool.submit(self._take))

    def next(self) -> PreparedBatch | None:
        """The next prepared batch (None after the last); raises what its preparation raised."""
        return self._ahead.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class RecordStore:
    #: records between two GIL hand-overs of the pipelined preparation (~1 ms of work)
    PIPELINE_YIELD_EVERY = 128
    #: batches ``apply_batches`` prepares ahead of the one it writes (two smooth out batches
    #: that prepare slower or faster than they write)
    PIPELINE_DEPTH = 2

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        self._postgres = dialect.name == "postgresql"
        self._ph = placeholder(dialect)
        self._max_params = max_params(dialect)
        self._in_rows = 1 << (min(4096, self._max_params - 1).bit_length() - 1)  # ids per IN (...) on SQLite
        self._key = bind_processor(t.people, "id", dialect)  # UUID -> stored form (None: as is)
        self._stamp = bind_processor(t.changes, "at", dialect)
        self._upsert: dict[str, BulkStatement] = {}
        self._specs: dict[str, _KindSpec] = {}
        for kind, tbl in t.RECORD_TABLES.items():
            promoted = list(PROMOTED[kind])
            self._upsert[kind] = BulkStatement(
                tbl, [*_COMMON_HEAD, *promoted, *_COMMIT_TIME], dialect, conflict=["id"], keep=["created_at"]
            )
            getters = [(PROMOTED[kind][c], bind_processor(tbl, c, dialect)) for c in promoted]
            cls = RECORD_TYPES[kind]
            self._specs[kind] = _KindSpec(
                kind, kind == "evidence", _promoter(getters), tuple(REFERENCES[kind]), _free_form_dicts(cls),
                UNHASHED_BY_KIND.get(kind, frozenset()),
            )
        self._identifiers = BulkStatement(t.identifiers, ["tenant", "record_kind", "record_id", "system", "kind", "value"], dialect)
        self._changes = BulkStatement(t.changes, ["tenant", "batch_id", "record_kind", "record_id", "op", "content_hash", "at"], dialect)
        quote = self._quote = dialect.identifier_preparer.quote
        self._tables = {kind: dialect.identifier_preparer.format_table(tbl) for kind, tbl in t.RECORD_TABLES.items()}
        self._delete_identifiers = f"DELETE FROM {dialect.identifier_preparer.format_table(t.identifiers)} WHERE "
        self._record_id = quote("record_id")
        self._voided = bind_processor(t.evidence, "voided", dialect)
        self.evidence_listeners: list[EvidenceListener] = []
        # reading: the result processors that decode a page's last (updated_at, id)
        self._cursor_procs = {
            kind: (
                tbl.c.updated_at.type.dialect_impl(dialect).result_processor(dialect, None),
                tbl.c.id.type.dialect_impl(dialect).result_processor(dialect, None),
            )
            for kind, tbl in t.RECORD_TABLES.items()
        }
        self._page_queries: dict[tuple[Any, ...], Any] = {}

    # --- writing ---------------------------------------------------------------------------

    def prepare(self, tenant: str, records: Iterable[Record]) -> PreparedBatch:
        """Validate batch-level rules, serialise and hash every record, build its row and
        collect its references; touches no database."""
        return self._prepare(tenant, records)

    def _prepare(self, tenant: str, records: Iterable[Record], *, yield_every: int = 0) -> PreparedBatch:
        by_id: dict[str, dict[uuid.UUID, Prepared]] = {}
        refs: dict[str, set[uuid.UUID]] = defaultdict(set)
        errors: list[ErrorDetail] = []
        size = 0
        key_of = self._key
        specs = self._specs
        for rec in records:
            size += 1
            if yield_every and not size % yield_every:
                time.sleep(0)  # let the writer thread back in: see apply_stream
            if rec.tenant != tenant:
                errors.append(ErrorDetail(f"record belongs to tenant {rec.tenant!r}, not {tenant!r}", location=_where(rec), field="tenant"))
                continue
            spec = specs[rec.KIND]
            rid = rec.id
            key = key_of(rid) if key_of is not None else rid
            if spec.evidence:
                doc: dict[str, Any] | None = rec.model_dump(mode="json", exclude_none=True)
                digest = content_hash(doc)  # type: ignore[arg-type]
                body = None
            else:
                doc = None
                digest, body = _record_digest(rec, spec.free_dicts, spec.unhashed)
            head = (key, tenant, rec.source, rec.native_id, rec.status.value, digest, *spec.promote(rec))
            bucket = by_id.get(spec.kind)
            if bucket is None:
                bucket = by_id[spec.kind] = {}
            prev = bucket.get(rid)  # type: ignore[arg-type]
            if prev is not None and prev.digest != digest:
                errors.append(ErrorDetail("the same record appears twice in the batch with different content", location=_where(rec)))
            names = rec.identifiers
            if not names:
                idents: tuple[Any, ...] = ()
            elif len(names) == 1:
                idents = (tenant, spec.kind, key, names[0].system, names[0].kind, names[0].value)
            else:
                idents = tuple(v for n in names for v in (tenant, spec.kind, key, n.system, n.kind, n.value))
            bucket[rid] = Prepared(rec, key, digest, head, body, doc, idents)  # type: ignore[index]
            for target, r in spec.refs:
                ids = r.ids(rec)
                if ids:
                    refs[target].update(ids)
        if errors:
            raise ValidationError("batch rejected", errors=errors)
        return _batch(tenant, by_id, size, refs)

    @staticmethod
    def combine(batches: Sequence[PreparedBatch]) -> PreparedBatch:
        """One batch of several prepared ones of the same tenant (``GroupCommit``); a record
        in two of them raises ``Conflict``: whether the second is a re-delivery or a change
        is for the store's rules to say, one batch at a time."""
        if len(batches) == 1:
            return batches[0]
        by_id: dict[str, dict[uuid.UUID, Prepared]] = {}
        refs: dict[str, set[uuid.UUID]] = defaultdict(set)
        for b in batches:
            for kind, bucket in b.by_id.items():
                into = by_id.setdefault(kind, {})
                for rid, p in bucket.items():
                    if rid in into:
                        raise Conflict("the same record in two batches of one group")
                    into[rid] = p
            for kind, ids in b.refs.items():
                refs[kind] |= ids
        return _batch(batches[0].tenant, by_id, sum(b.size for b in batches), refs)

    def prepare_serialised(self, tenant: str, kind: str, items: Iterable[tuple[Any, str, str]]) -> PreparedBatch:
        """``prepare`` for records their producer serialised itself: each item is (head,
        content hash, JSON body without its closing brace), exactly as ``_record_digest``
        gives them for the record, and ``head`` has the record's ``id``, ``source``,
        ``native_id``, ``status`` and the kind's promoted fields (``PROMOTED``).

        For derived records only (the mastery recompute's states, where building and
        serialising millions of pydantic models cost a third of the time): no references
        are collected, so none are checked; their sources' were when those were written."""
        spec = self._specs[kind]
        key_of = self._key
        bucket: dict[uuid.UUID, Prepared] = {}
        for head, digest, body in items:
            key = key_of(head.id) if key_of is not None else head.id
            row = (key, tenant, head.source, head.native_id, head.status.value, digest, *spec.promote(head))
            bucket[head.id] = Prepared(head, key, digest, row, body, None, ())  # type: ignore[arg-type]  # id, status, source: all it reads
        if not bucket:
            return PreparedBatch(tenant, {}, 0)
        return PreparedBatch(tenant, {kind: sorted(bucket.values(), key=_id_order)}, len(bucket), {kind: bucket})

    def apply(
        self,
        tenant: str,
        records: Iterable[Record] | PreparedBatch,
        *,
        batch_id: uuid.UUID | None = None,
        within: Callable[[Connection], None] | None = None,
        conn: Connection | None = None,
    ) -> ApplyResult:
        """Apply a batch atomically. Raises ValidationError/IntegrityError/Conflict and writes nothing on failure.

        ``within(conn)``, when given, runs inside the same transaction after the records
        are written: an adapter's own rows (an LRS's statements) commit or roll back with
        the canonical records made from them. Whatever it raises rolls everything back.
        With ``conn`` (from ``write_transaction``) the batch is written in that transaction,
        which the caller commits."""
        return self._apply(tenant, records, batch_id=batch_id, within=within, conn=conn)

    def _apply(
        self,
        tenant: str,
        records: Iterable[Record] | PreparedBatch,
        *,
        batch_id: uuid.UUID | None = None,
        writing: Callable[[], None] | None = None,
        within: Callable[[Connection], None] | None = None,
        conn: Connection | None = None,
    ) -> ApplyResult:
        """``apply``; ``writing`` is called once every row is built and the bulk writes
        (long calls without the GIL) are about to start; with ``conn``, in its transaction
        (``write_transaction``) instead of one of its own."""
        batch = records if isinstance(records, PreparedBatch) else self.prepare(tenant, records)
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
                result = self._apply(tenant, ready, writing=ahead.refill)
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

    #: fewest expected records of a kind for which ``apply_batches`` rebuilds its indexes
    REBUILD_MIN = 100_000

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
            if n < self.REBUILD_MIN or kind not in t.RECORD_TABLES:
                continue
            table = t.RECORD_TABLES[kind].name
            if (conn.exec_driver_sql(f"SELECT count(*) FROM {self._tables[kind]}").scalar() or 0) > n:
                continue
            rows = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
            ).all()
            for name, sql in rows:
                conn.exec_driver_sql(f"DROP INDEX {self._quote(name)}")
                ddl.append(sql)
        return ddl

    def apply_in(self, conn: Connection, tenant: str, records: Iterable[Record], *, now: datetime,
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
        ``apply_batches``), extended with this batch's; ``writing``: as in ``_apply``."""
        batch = records if isinstance(records, PreparedBatch) else self.prepare(tenant, records)
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
                    conn.execute(core_insert(t.outbox), rows)
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
            tbl = t.RECORD_TABLES[target]
            for chunk in _chunks(list(missing)):
                found = conn.scalars(select(tbl.c.id).where(tbl.c.tenant == tenant, tbl.c.id.in_(chunk))).all()
                missing.difference_update(found)
                if known is not None:
                    known[target].update(found)
            if missing:
                unresolved[target] = missing
        if not unresolved:
            return
        # Word the errors: each unknown id once, at the first record (in batch order) naming it.
        wanted: dict[str, dict[uuid.UUID, tuple[Record, str]]] = defaultdict(dict)
        for kind, bucket in batch.by_id.items():
            for target, r in REFERENCES[kind]:
                bad = unresolved.get(target)
                if not bad:
                    continue
                for p in bucket.values():
                    for path, ref in r.walk(p.rec):
                        if ref in bad:
                            wanted[target].setdefault(ref, (p.rec, path))
        errors = [
            ErrorDetail(f"references {target} {ref}, which is neither in the batch nor stored", location=_where(rec), field=path)
            for target, refs in wanted.items()
            for ref, (rec, path) in refs.items()
        ]
        raise IntegrityError("batch references unknown records", errors=errors)

    def _in(self, column: str, keys: Sequence[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """``column IN (...)`` over stored-form keys, in as few statements as the engine allows.

        On SQLite each list is padded with repeats of its first key to a power of two
        (repeats change nothing in IN), so few distinct statement texts get compiled."""
        if not keys:
            return
        if self._postgres:
            yield f"{column} = ANY(%b)", (list(keys),)  # %b: the ids go over in binary
            return
        for i in range(0, len(keys), self._in_rows):
            chunk = list(keys[i : i + self._in_rows])
            size = max(16, 1 << (len(chunk) - 1).bit_length())
            chunk.extend([chunk[0]] * (size - len(chunk)))
            yield f"{column} IN ({', '.join([self._ph] * size)})", tuple(chunk)

    def _existing(self, conn: Connection, kind: str, keys: list[Any], *, with_data: bool) -> dict[Any, Any]:
        """Stored id -> content hash (for evidence: (hash, data)) of the records in ``keys``."""
        cols = "content_hash, data" if with_data else "content_hash"
        rows: Iterable[Any]
        if self._postgres:
            # Positions, not ids, come back: no new UUID object per stored row.
            rows = conn.exec_driver_sql(
                f"SELECT k.i, {', '.join('t.' + c for c in cols.split(', '))} FROM unnest(%b::uuid[]) WITH ORDINALITY AS k(id, i) "
                f"JOIN {self._tables[kind]} AS t ON t.id = k.id",
                (keys,),
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
                out.update(rows)  # type: ignore[arg-type]
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
                was = self._evidence_rules(rec, doc, old, now)
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
            self._changes.execute_flat(conn, plan.changes, n)
        if plan.superseding:
            more = self._mark_superseded(conn, tenant, plan.superseding, batch_id, now, plan.touched)
            plan.counts.updated += len(more)
            plan.written.extend(more)

    def _evidence_rules(self, rec: Record, doc: dict[str, Any], old: tuple[str, str] | None, now: datetime) -> uuid.UUID | None:
        """Enforce append-only evidence: only voiding, superseding and late alignment may
        change. Returns the competency the stored item was aligned to."""
        assert isinstance(rec, Evidence)
        if old is None:
            doc["recorded_at"] = (rec.recorded_at or now).isoformat()
            return None
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
        was = stored.get("competency_id")
        return uuid.UUID(was) if was else None

    def _mark_superseded(
        self,
        conn: Connection,
        tenant: str,
        pairs: list[tuple[uuid.UUID, uuid.UUID]],
        batch_id: uuid.UUID,
        now: datetime,
        touched: set[tuple[uuid.UUID, uuid.UUID]],
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
                update(tbl)
                .where(tbl.c.id == old_id)
                .values(data=orjson.dumps(doc).decode(), content_hash=digest, updated_at=now, superseded_by=new_id)
            )
            if doc.get("competency_id"):
                touched.add((uuid.UUID(doc["learner_id"]), uuid.UUID(doc["competency_id"])))
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
        exactly what an incremental consumer needs (``updated_since`` + follow the cursor).

        The cursor condition is a row-value comparison, ``(updated_at, id) > (?, ?)``,
        which both engines answer with one range scan of the (tenant, updated_at, id)
        index, however deep the page (an OR of the two cases makes SQLite scan every row
        of the cursor's ``updated_at``, and one bulk commit gives thousands the same)."""
        params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
        if updated_since is not None:
            params["since"] = updated_since
        shape = []
        for col, value in (filters or {}).items():
            if col.endswith(NULL_FILTER):  # "<column>__null": True -> IS NULL, False -> IS NOT NULL
                shape.append(f"{col[: -len(NULL_FILTER)]}{NULL_FILTER if value else NOT_NULL_FILTER}")
                continue
            shape.append(col)
            params[f"f_{col}"] = value
        if cursor:
            params["cu"], params["cid"] = decode_cursor(cursor)
        q = self._page_query(kind, tuple(shape), since=updated_since is not None, after=bool(cursor))
        with self.engine.connect() as conn:
            rows = conn.execute(q, params).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = None
        if more:
            to_time, to_id = self._cursor_procs[kind]
            last = rows[-1]
            nxt = encode_cursor(to_time(last[1]) if to_time else last[1], to_id(last[2]) if to_id else last[2])
        return Page([r[0] for r in rows], nxt)

    def _page_query(self, kind: str, filters: tuple[str, ...], *, since: bool, after: bool) -> Any:
        """The page statement for one shape of query, built once: values go in as parameters,
        and ``updated_at``/``id`` come back as the driver gives them (only the last row's
        are ever decoded, for the next cursor)."""
        key = (kind, filters, since, after)
        q = self._page_queries.get(key)
        if q is not None:
            return q
        tbl = t.RECORD_TABLES[kind]
        ts, rid = tbl.c.updated_at, tbl.c.id
        q = select(tbl.c.data, type_coerce(ts, NullType()), type_coerce(rid, NullType())).where(tbl.c.tenant == bindparam("tenant"))
        if since:
            q = q.where(ts > bindparam("since", type_=ts.type))
        for col in filters:
            if col.endswith(NULL_FILTER):
                q = q.where(tbl.c[col[: -len(NULL_FILTER)]].is_(None))
            elif col.endswith(NOT_NULL_FILTER):
                q = q.where(tbl.c[col[: -len(NOT_NULL_FILTER)]].is_not(None))
            else:
                q = q.where(tbl.c[col] == bindparam(f"f_{col}", type_=tbl.c[col].type))
        if after:
            q = q.where(tuple_(ts, rid) > tuple_(bindparam("cu", type_=ts.type), bindparam("cid", type_=rid.type)))
        q = q.order_by(ts, rid).limit(bindparam("limit", type_=Integer()))
        if len(self._page_queries) < 512:  # shapes are few (kinds x filter sets); bound it anyway
            self._page_queries[key] = q
        return q

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


def _batch(tenant: str, by_id: dict[str, dict[uuid.UUID, Prepared]], size: int,
           refs: dict[str, set[uuid.UUID]]) -> PreparedBatch:
    """A ``PreparedBatch`` of ``by_id``: kinds in dependency order, each kind's records in id
    order. Rows go in in id order: that is the order of the keyset pages within one commit
    (same updated_at), so a page reads neighbouring rows, and index inserts are sorted."""
    kinds = sorted(by_id, key=KIND_ORDER.__getitem__)
    ordered = {k: sorted(by_id[k].values(), key=_id_order) for k in kinds}
    return PreparedBatch(tenant, ordered, size, {k: by_id[k] for k in kinds}, dict(refs))


def _id_order(p: Prepared) -> int:
    return p.rec.id.int  # type: ignore[union-attr]


def _record_digest(rec: Record, free_dicts: tuple[str, ...] | None, unhashed: frozenset[str] = frozenset()) -> tuple[str, str]:
    """(content hash, JSON body without its closing brace) of a record, from ONE serialisation.

    The JSON is pydantic's, without ``None`` fields and without the store's timestamps;
    the hash is sha256 of exactly those bytes when the record holds no free-form dict
    (the field order is then the class's own, so equal content gives equal bytes), and
    ``content_hash`` (keys sorted) when it does. Only called for kinds without
    ``recorded_at`` (evidence goes through ``content_hash`` of its document). Fields in
    ``unhashed`` stay in the body but not in the hash."""
    if unhashed:
        # Kinds with unhashed fields are the gateway's own derived records, whose free-form
        # dicts it builds in a fixed order: the class-order bytes are a stable hash.
        # One serialisation of the hashed fields; the unhashed ones (a state's computed_at)
        # are serialised alone and appended, so the body ends with them.
        ser = rec.__pydantic_serializer__
        bare = ser.to_json(rec, exclude_none=True, exclude=_UNHASHED | unhashed)
        rest = ser.to_json(rec, exclude_none=True, include=unhashed)
        body = bare[:-1] + b"," + rest[1:-1] if len(rest) > 2 else bare[:-1]
        return hashlib.sha256(bare).hexdigest(), body.decode()
    if rec.updated_at is None:
        raw = rec.__pydantic_serializer__.to_json(rec, exclude_none=True)  # the usual case, and twice as fast
    else:
        raw = rec.__pydantic_serializer__.to_json(rec, exclude_none=True, exclude=_UNHASHED)
    sort = free_dicts is None
    if not sort:
        for f in free_dicts:  # type: ignore[union-attr]
            if getattr(rec, f):
                sort = True
                break
    digest = content_hash(orjson.loads(raw)) if sort else hashlib.sha256(raw).hexdigest()
    return digest, raw[:-1].decode()


def _where(rec: Record) -> str:
    return f"{rec.KIND} {rec.source}/{rec.native_id}"


__all__ = ["REFERENCES", "ApplyResult", "KindCounts", "Page", "RecordStore", "content_hash"]
