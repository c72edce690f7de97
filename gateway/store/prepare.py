"""Records made ready for writing: serialised, hashed, their rows built, their references
collected, before any transaction opens (DESIGN section 2, the first half of ``store.apply``).

Nothing here touches a database, so preparing can run in a second thread while the previous
batch is written (``write.RecordWriter.apply_stream``) or in another process (the OneRoster
importer's enrollments). What a prepared record holds is exactly what ``write`` needs: its
id as the driver stores it, its content hash, its row up to the commit-time columns
(``Prepared.head``), its JSON body, its identifier-index rows.

Also here: which ids each kind references (``REFERENCES``, checked by ``write``), which
fields each kind promotes to columns (``PROMOTED``), and how a record's content is hashed
(``content_hash``, ``record_digest``).
"""

from __future__ import annotations

import hashlib
import time
import types
import typing
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from ..errors import Conflict, ErrorDetail, ValidationError
from ..model import RECORD_CLASSES, RECORD_TYPES, Record
from .db import bind_processor
from .tables import RECORD_TABLES, people

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


def content_hash(doc: dict[str, Any]) -> str:
    """sha256 of a record's JSON document without the store's own timestamps, keys sorted.

    Sorting makes the hash independent of the order in which a sender listed the keys of
    free-form objects (``extensions``). ``Preparer.prepare`` takes a shortcut that
    gives the same digest: see ``record_digest``."""
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
    """``rec -> (promoted column values, as the driver stores them)``: one tuple display of
    the getters' calls, made once per kind (a loop over the getters cost a third more for
    the xAPI consumer's evidence, nine columns a record)."""
    names: dict[str, Any] = {}
    parts = []
    for i, (get, proc) in enumerate(getters):
        names[f"g{i}"] = get
        if proc is None:
            parts.append(f"g{i}(rec)")
        else:
            names[f"p{i}"] = proc
            parts.append(f"p{i}(g{i}(rec))")
    return eval(f"lambda rec: ({''.join(part + ', ' for part in parts)})", names)  # noqa: S307 - our own text


class Preparer:
    """Prepares records for one database dialect (ids and promoted columns as its driver
    stores them); holds no connection."""

    def __init__(self, dialect: Any) -> None:
        self._key = bind_processor(people, "id", dialect)  # UUID -> stored form (None: as is)
        self._specs: dict[str, _KindSpec] = {}
        for kind, tbl in RECORD_TABLES.items():
            getters = [(PROMOTED[kind][c], bind_processor(tbl, c, dialect)) for c in PROMOTED[kind]]
            self._specs[kind] = _KindSpec(
                kind, kind == "evidence", _promoter(getters), tuple(REFERENCES[kind]), _free_form_dicts(RECORD_TYPES[kind]),
                UNHASHED_BY_KIND.get(kind, frozenset()),
            )

    def prepare(self, tenant: str, records: Iterable[Record], *, yield_every: int = 0) -> PreparedBatch:
        """Validate batch-level rules, serialise and hash every record, build its row and
        collect its references; touches no database. ``yield_every``: records between two
        GIL hand-overs, when a writer thread waits (``write._PreparedAhead``)."""
        by_id: dict[str, dict[uuid.UUID, Prepared]] = {}
        refs: dict[str, set[uuid.UUID]] = defaultdict(set)
        errors: list[ErrorDetail] = []
        size = 0
        key_of = self._key
        specs = self._specs
        for rec in records:
            size += 1
            if yield_every and not size % yield_every:
                time.sleep(0)  # let the writer thread back in: see write._PreparedAhead
            if rec.tenant != tenant:
                errors.append(ErrorDetail(f"record belongs to tenant {rec.tenant!r}, not {tenant!r}", location=record_location(rec), field="tenant"))
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
                digest, body = record_digest(rec, spec.free_dicts, spec.unhashed)
            head = (key, tenant, rec.source, rec.native_id, rec.status.value, digest, *spec.promote(rec))
            bucket = by_id.get(spec.kind)
            if bucket is None:
                bucket = by_id[spec.kind] = {}
            prev = bucket.get(rid)  # type: ignore[arg-type]
            if prev is not None and prev.digest != digest:
                errors.append(ErrorDetail("the same record appears twice in the batch with different content", location=record_location(rec)))
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
        content hash, JSON body without its closing brace), exactly as ``record_digest``
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
            bucket[head.id] = Prepared(head, key, digest, row, body, None, ())  # id, status, source: all it reads
        if not bucket:
            return PreparedBatch(tenant, {}, 0)
        return PreparedBatch(tenant, {kind: sorted(bucket.values(), key=_id_order)}, len(bucket), {kind: bucket})


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


def record_digest(rec: Record, free_dicts: tuple[str, ...] | None, unhashed: frozenset[str] = frozenset()) -> tuple[str, str]:
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
        bare = ser.to_json(rec, exclude_none=True, exclude=_UNHASHED | unhashed)  # type: ignore[arg-type]  # any set will do
        rest = ser.to_json(rec, exclude_none=True, include=unhashed)  # type: ignore[arg-type]
        body = bare[:-1] + b"," + rest[1:-1] if len(rest) > 2 else bare[:-1]
        return hashlib.sha256(bare).hexdigest(), body.decode()
    if rec.updated_at is None:
        raw = rec.__pydantic_serializer__.to_json(rec, exclude_none=True)  # the usual case, and twice as fast
    else:
        raw = rec.__pydantic_serializer__.to_json(rec, exclude_none=True, exclude=_UNHASHED)  # type: ignore[arg-type]
    sort = free_dicts is None
    if not sort:
        for f in free_dicts:  # type: ignore[union-attr]
            if getattr(rec, f):
                sort = True
                break
    digest = content_hash(orjson.loads(raw)) if sort else hashlib.sha256(raw).hexdigest()
    return digest, raw[:-1].decode()


def record_location(rec: Record) -> str:
    return f"{rec.KIND} {rec.source}/{rec.native_id}"


__all__ = [
    "KIND_ORDER", "PROMOTED", "REFERENCED_KINDS", "REFERENCES", "UNHASHED", "UNHASHED_BY_KIND", "Prepared", "PreparedBatch",
    "Preparer", "content_hash", "record_digest", "record_location",
]
