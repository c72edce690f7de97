"""OneRoster gradebook and resources objects: validation, storage, and gradebook-as-evidence.

The OneRoster 1.1 / 1.2 Gradebook service (categories, lineItems, results; 1.2 adds
scoreScales, assessmentLineItems, assessmentResults) and the Resources service (resources
and their class / course / user links) have no canonical kind: the objects are validated
here and kept, normalised, in the adapter's own table (``tables.objects``) so the REST
provider serves them back and the CSV export writes them out unchanged. What they MEAN
goes into the canonical model (DESIGN section 3), in the same transaction:

* a result / assessmentResult becomes ``Evidence``: learner = the student's Person;
  activity = the line item (system ``oneroster``, id ``lineItems/<sourcedId>``); score raw
  with the line item's ``resultValueMin``/``resultValueMax`` (scaled 0..1 by the model);
  ``textScore`` (or the score scale value whose right-hand side equals the score) -> level;
  ``scoreDate`` -> observed_at; status ``tobedeleted`` -> voided.
* objectives: a 1.2 result's ``learningObjectiveSet[].learningObjectiveResults`` give one
  Evidence per objective with that objective's own score; otherwise the line item's
  ``learningObjectiveSet[].learningObjectiveIds`` give one Evidence per objective with the
  result's score. An objective whose set has source ``case`` and whose id is the CASE
  identifier (GUID) of a stored Competency resolves to it; anything else keeps
  ``competency_id`` null and the objective in ``extensions`` - never dropped.
* a line item's objectives that resolve become ``Alignment`` records (target the line
  item), so evidence about the line item counts for the competency.
* evidence is append-only (``gateway.store.records``): a result whose score, date or level
  changes gives NEW evidence (its native id carries a digest of that content) that
  supersedes the previous one; an objective that disappears voids its evidence. The row's
  ``derived`` column remembers the current evidence per objective and the alignments.

Both bindings go through ``prepare`` + ``apply``: the CSV importer and the REST ``PUT``/
``POST``/``DELETE`` handlers build ``Item``s, and ``apply`` writes the objects and the
canonical records in ONE transaction (``store.records.apply(..., within=...)``).

Spec choices, written down:

* ``score`` is required by 1.1 results and optional in 1.2; a result with neither score nor
  textScore (``not submitted``, ``exempt``) is stored but is no evidence.
* dates keep the text the sender gave (a round trip is exact); they must parse as ISO 8601.
* a score outside the line item's [resultValueMin, resultValueMax] is invalid data.
* a ``textScore`` on a result with a score scale must be one of the scale's
  ``itemValueLHS`` values.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from gateway.errors import ErrorDetail, NotFound, ValidationError
from gateway.model import (
    ActivityRef,
    Alignment,
    Evidence,
    Identifier,
    Provenance,
    Record,
    Score,
    Status,
    record_id,
    utcnow,
)
from gateway.model.competencies import TargetKind
from gateway.store import tables as t

from .mapping import format_datetime, parse_datetime, ref_id
from .tables import objects

# --------------------------------------------------------------------------- the types

#: field kinds: s string, num number, dt date/datetime, bool "true"/"false", list string list,
#: ref:<type> GUIDRef, los line-item objectives, lor result objectives, ssv score scale values,
#: enum:<name> a vocabulary below
Field = tuple[str, str, bool, bool]  # (name, kind, required in 1.1, required in 1.2)

SCORE_STATUS = ("exempt", "fully graded", "not submitted", "partially graded", "submitted")
#: the REST binding's OpenAPI spells them camelCase; both are accepted and kept as given
SCORE_STATUS_ALT = ("fullyGraded", "notSubmitted", "partiallyGraded")
IMPORTANCE = ("primary", "secondary")
#: enum name -> (accepted tokens, tokens named in an error)
ENUMS = {"scoreStatus": (SCORE_STATUS + SCORE_STATUS_ALT, SCORE_STATUS), "importance": (IMPORTANCE, IMPORTANCE)}

_RESULT_FLAGS: list[Field] = [("inProgress", "bool", False, False), ("incomplete", "bool", False, False),
                              ("late", "bool", False, False), ("missing", "bool", False, False)]

FIELDS: dict[str, list[Field]] = {
    "category": [("title", "s", True, True), ("weight", "num", False, False)],
    "lineItem": [
        ("title", "s", True, True), ("description", "s", False, False), ("assignDate", "dt", True, True),
        ("dueDate", "dt", True, True), ("class", "ref:class", True, True), ("school", "ref:school", False, False),
        ("category", "ref:category", True, True), ("gradingPeriod", "ref:academicSession", True, False),
        ("academicSession", "ref:academicSession", False, False), ("scoreScale", "ref:scoreScale", False, False),
        ("resultValueMin", "num", False, False), ("resultValueMax", "num", False, False),
        ("learningObjectiveSet", "los", False, False),
    ],
    "result": [
        ("lineItem", "ref:lineItem", True, True), ("student", "ref:user", True, True), ("class", "ref:class", False, False),
        ("scoreScale", "ref:scoreScale", False, False), ("scoreStatus", "enum:scoreStatus", True, True),
        ("score", "num", True, False), ("textScore", "s", False, False), ("scoreDate", "dt", True, True),
        ("comment", "s", False, False), ("learningObjectiveSet", "lor", False, False), *_RESULT_FLAGS,
    ],
    "scoreScale": [
        ("title", "s", True, True), ("type", "s", True, True), ("course", "ref:course", False, False),
        ("class", "ref:class", True, True), ("scoreScaleValue", "ssv", True, True),
    ],
    "assessmentLineItem": [
        ("title", "s", True, True), ("description", "s", False, False), ("class", "ref:class", False, False),
        ("parentAssessmentLineItem", "ref:assessmentLineItem", False, False), ("scoreScale", "ref:scoreScale", False, False),
        ("resultValueMin", "num", False, False), ("resultValueMax", "num", False, False),
        ("learningObjectiveSet", "los", False, False),
    ],
    "assessmentResult": [
        ("assessmentLineItem", "ref:assessmentLineItem", True, True), ("student", "ref:user", True, True),
        ("score", "num", False, False), ("textScore", "s", False, False), ("scoreDate", "dt", True, True),
        ("scoreScale", "ref:scoreScale", False, False), ("scorePercentile", "num", False, False),
        ("scoreStatus", "enum:scoreStatus", True, True), ("comment", "s", False, False),
        ("learningObjectiveSet", "lor", False, False), *_RESULT_FLAGS,
    ],
    "resource": [
        ("title", "s", False, False), ("roles", "list", False, False), ("importance", "enum:importance", False, False),
        ("vendorResourceId", "s", True, True), ("vendorId", "s", False, False), ("applicationId", "s", False, False),
    ],
    "classResource": [("title", "s", False, False), ("class", "ref:class", True, True), ("resource", "ref:resource", True, True)],
    "courseResource": [("title", "s", False, False), ("course", "ref:course", True, True), ("resource", "ref:resource", True, True)],
    "userResource": [("title", "s", False, False), ("user", "ref:user", True, True), ("resource", "ref:resource", True, True)],
}
#: types OneRoster 1.1 does not define
ONLY_V12 = frozenset({"scoreScale", "assessmentLineItem", "assessmentResult", "userResource"})
#: fields of 1.2 types that 1.1 does not have (left out of 1.1 answers)
V12_FIELDS: dict[str, frozenset[str]] = {
    "category": frozenset({"weight"}),
    "lineItem": frozenset({"school", "academicSession", "scoreScale", "learningObjectiveSet"}),
    "result": frozenset({"class", "scoreScale", "textScore", "learningObjectiveSet", "inProgress", "incomplete", "late", "missing"}),
}
#: type -> REST collection (path segment and list envelope)
COLLECTIONS = {
    "category": "categories", "lineItem": "lineItems", "result": "results", "scoreScale": "scoreScales",
    "assessmentLineItem": "assessmentLineItems", "assessmentResult": "assessmentResults", "resource": "resources",
    "classResource": "classResources", "courseResource": "courseResources", "userResource": "userResources",
}
TYPE_OF_COLLECTION = {v: k for k, v in COLLECTIONS.items()}
#: GUIDRef target -> canonical kind (rostering objects live in the record tables)
ROSTER_REFS = {"class": "section", "user": "person", "course": "course", "school": "org", "academicSession": "academic_session"}
#: GUIDRef ``type`` written out
GUID_TYPE = {"school": "org", "user": "user"}
#: the promoted columns of each type: column -> field whose sourcedId it holds
PROMOTED: dict[str, dict[str, str]] = {
    "lineItem": {"class_sid": "class", "school_sid": "school"},
    "result": {"line_item_sid": "lineItem", "user_sid": "student", "class_sid": "class"},
    "scoreScale": {"class_sid": "class", "course_sid": "course"},
    "assessmentLineItem": {"class_sid": "class"},
    "assessmentResult": {"line_item_sid": "assessmentLineItem", "user_sid": "student"},
    "classResource": {"class_sid": "class", "resource_sid": "resource"},
    "courseResource": {"course_sid": "course", "resource_sid": "resource"},
    "userResource": {"user_sid": "user", "resource_sid": "resource"},
}
LINE_ITEM_OF = {"result": "lineItem", "assessmentResult": "assessmentLineItem"}
RESULT_TYPES = tuple(LINE_ITEM_OF)
LINE_ITEM_TYPES = tuple(LINE_ITEM_OF.values())
#: activity / alignment target system of line items: sourcedIds are unique per tenant here
ACTIVITY_SYSTEM = "oneroster"


def fields_of(obj_type: str) -> frozenset[str]:
    """Every field name of a type, for the query grammar (filter / sort / fields)."""
    return frozenset(("sourcedId", "status", "dateLastModified", "metadata", *(f[0] for f in FIELDS[obj_type])))


# --------------------------------------------------------------------------- normalising


def _number(v: Any) -> int | float:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")  # noqa: TRY004 - invalid data, reported by _field
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{v!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{v!r} is not a finite number")
    return int(x) if x.is_integer() else x


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    return orjson.dumps(v).decode() if isinstance(v, (dict, list)) else str(v)


class _Checker:
    """Collects every problem of one object, each with its location and OneRoster field."""

    def __init__(self, location: str, column: Callable[[str], str]) -> None:
        self.location = location
        self.column = column
        self.errors: list[ErrorDetail] = []

    def error(self, name: str, message: str) -> None:
        self.errors.append(ErrorDetail(message, location=self.location, field=self.column(name)))


def normalize(obj_type: str, obj: dict[str, Any], *, version: str, location: str,
              column: Callable[[str], str] = lambda f: f) -> tuple[dict[str, Any], list[ErrorDetail]]:
    """One gradebook / resources object (REST JSON, or a CSV row as REST-shaped strings) ->
    its normalised 1.2 JSON (GUIDRefs as ``{"sourcedId", "type"}``, numbers as numbers, the
    sender's dates as given) and every problem found (OneRoster field names; ``column``
    renames them, e.g. to CSV columns)."""
    c = _Checker(location, column)
    if obj_type in ONLY_V12 and version == "1.1":
        c.error("sourcedId", f"OneRoster 1.1 has no {obj_type}")
    out: dict[str, Any] = {}
    sid = ref_id(obj.get("sourcedId"))
    if not sid:
        c.error("sourcedId", "sourcedId is required")
    out["sourcedId"] = sid or "?"
    status = obj.get("status") or "active"
    if status not in ("active", "tobedeleted"):
        c.error("status", f"{status!r} is not a OneRoster status; expected active or tobedeleted")
    out["status"] = status
    if obj.get("dateLastModified"):
        try:
            parse_datetime(obj["dateLastModified"])
            out["dateLastModified"] = str(obj["dateLastModified"])
        except ValueError as exc:
            c.error("dateLastModified", str(exc))
    if obj.get("metadata"):
        if isinstance(obj["metadata"], dict):
            out["metadata"] = obj["metadata"]
        else:
            c.error("metadata", "metadata must be an object")
    deleting = status == "tobedeleted"
    for name, kind, req11, req12 in FIELDS[obj_type]:
        v = obj.get(name)
        if v is None or v == "" or v == []:
            if (req11 if version == "1.1" else req12) and not deleting:
                c.error(name, f"{name} is required")
            continue
        got = _field(c, name, kind, v)
        if got is not None:
            out[name] = got
    known = {f[0] for f in FIELDS[obj_type]} | {"sourcedId", "status", "dateLastModified", "metadata"}
    for k, v in obj.items():
        if k not in known and v not in (None, "", [], {}):
            out[k] = v  # a field this version does not name: kept, as rostering keeps extensions
    return out, c.errors


def _field(c: _Checker, name: str, kind: str, v: Any) -> Any:
    try:
        if kind == "s":
            return _text(v)
        if kind == "num":
            return _number(v)
        if kind == "dt":
            parse_datetime(v)
            return str(v)
        if kind == "bool":
            s = str(v).strip().lower() if not isinstance(v, bool) else ("true" if v else "false")
            if s not in ("true", "false"):
                raise ValueError(f"{v!r} is not true or false")
            return s
        if kind == "list":
            return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else [str(x) for x in v]
        if kind.startswith("ref:"):
            sid = ref_id(v)
            if not sid:
                raise ValueError("a GUIDRef needs a sourcedId")
            target = kind[4:]
            return {"sourcedId": sid, "type": GUID_TYPE.get(target, target)}
        if kind.startswith("enum:"):
            accepted, shown = ENUMS[kind[5:]]
            if v not in accepted:
                raise ValueError(f"{v!r} is not a OneRoster {name}; expected one of {list(shown)}")
            return v
        if kind == "los":
            return _objective_sets(v, "learningObjectiveIds")
        if kind == "lor":
            return _objective_sets(v, "learningObjectiveResults")
        if kind == "ssv":
            return _scale_values(v)
    except ValueError as exc:
        c.error(name, str(exc))
        return None
    raise AssertionError(kind)


def _objective_sets(v: Any, member: str) -> list[dict[str, Any]]:
    """OneRoster 1.2 LearningObjectiveSet: ``[{"source": ..., member: [...]}]``."""
    if not isinstance(v, list):
        raise ValueError("learningObjectiveSet must be a list of {source, " + member + "}")  # noqa: TRY004 - as above
    out = []
    for i, s in enumerate(v):
        if not isinstance(s, dict) or not s.get("source") or not isinstance(s.get(member), list) or not s[member]:
            raise ValueError(f"learningObjectiveSet[{i}] needs source and a non-empty {member}")
        items: list[Any] = []
        for j, item in enumerate(s[member]):
            if member == "learningObjectiveIds":
                if not isinstance(item, str) or not item:
                    raise ValueError(f"learningObjectiveSet[{i}].learningObjectiveIds[{j}] must be a string")
                items.append(item)
                continue
            if not isinstance(item, dict) or not item.get("learningObjectiveId"):
                raise ValueError(f"learningObjectiveSet[{i}].learningObjectiveResults[{j}] needs learningObjectiveId")
            r: dict[str, Any] = {"learningObjectiveId": str(item["learningObjectiveId"])}
            if item.get("score") not in (None, ""):
                r["score"] = _number(item["score"])
            if item.get("textScore") not in (None, ""):
                r["textScore"] = str(item["textScore"])
            items.append(r)
        out.append({"source": str(s["source"]), member: items})
    return out


def _scale_values(v: Any) -> list[dict[str, Any]]:
    """1.2 ScoreScaleValue list: ``[{"itemValueLHS": "A", "itemValueRHS": "90"}]``."""
    if not isinstance(v, list) or not v:
        raise ValueError("scoreScaleValue must be a non-empty list of {itemValueLHS, itemValueRHS}")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, dict) or item.get("itemValueLHS") in (None, "") or item.get("itemValueRHS") in (None, ""):
            raise ValueError(f"scoreScaleValue[{i}] needs itemValueLHS and itemValueRHS")
        out.append({k: str(x) for k, x in item.items() if x not in (None, "")})
    return out


# --------------------------------------------------------------------------- storage


def object_id(tenant: str, obj_type: str, sourced_id: str) -> uuid.UUID:
    """Row id: one object of a type per sourcedId in a tenant."""
    return record_id(tenant, f"oneroster.{obj_type}", "-", sourced_id)


@dataclass
class Stored:
    type: str
    sourced_id: str
    source: str
    data: dict[str, Any]
    derived: dict[str, Any]
    updated_at: datetime | None = None


class ObjectStore:
    """Reads of ``oneroster_objects`` (the writes happen in ``apply``'s transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _stored(r: Any) -> Stored:
        return Stored(r.type, r.sourced_id, r.source, orjson.loads(r.data), orjson.loads(r.derived), r.updated_at)

    def get(self, tenant: str, obj_type: str, sids: Iterable[str]) -> dict[str, Stored]:
        want = list(dict.fromkeys(sids))
        out: dict[str, Stored] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(want), 500):
                q = select(objects).where(objects.c.tenant == tenant, objects.c.type == obj_type,
                                          objects.c.sourced_id.in_(want[i:i + 500]))
                out.update({r.sourced_id: self._stored(r) for r in conn.execute(q)})
        return out

    def where(self, tenant: str, obj_type: str, *conds: Any) -> list[Stored]:
        q = select(objects).where(objects.c.tenant == tenant, objects.c.type == obj_type, *conds).order_by(objects.c.updated_at, objects.c.id)
        with self.engine.connect() as conn:
            return [self._stored(r) for r in conn.execute(q)]

    def sourced_ids(self, tenant: str, obj_type: str, source: str | None = None) -> list[str]:
        q = select(objects.c.sourced_id).where(objects.c.tenant == tenant, objects.c.type == obj_type, objects.c.status == "active")
        if source is not None:
            q = q.where(objects.c.source == source)
        with self.engine.connect() as conn:
            return list(conn.scalars(q))


def find_roster(engine: Engine, tenant: str, kind: str, sids: Iterable[str], prefer: str | None = None) -> dict[str, uuid.UUID]:
    """sourcedId -> canonical id of rostering records of ``kind`` (any source; ``prefer``'s first)."""
    tbl = t.RECORD_TABLES[kind]
    want = list(dict.fromkeys(sids))
    found: dict[str, tuple[bool, uuid.UUID]] = {}
    with engine.connect() as conn:
        for i in range(0, len(want), 500):
            q = select(tbl.c.native_id, tbl.c.id, tbl.c.source).where(tbl.c.tenant == tenant, tbl.c.native_id.in_(want[i:i + 500]))
            for sid, rid, src in conn.execute(q):
                rank = src == prefer
                if sid not in found or (rank and not found[sid][0]):
                    found[sid] = (rank, rid)
    return {sid: rid for sid, (_, rid) in found.items()}


def competencies_by_guid(engine: Engine, tenant: str, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """CASE identifier -> canonical competency id, for the tenant's stored competencies."""
    want = list(dict.fromkeys(guids))
    out: dict[uuid.UUID, uuid.UUID] = {}
    tbl = t.competencies
    with engine.connect() as conn:
        for i in range(0, len(want), 500):
            q = select(tbl.c.guid, tbl.c.id).where(tbl.c.tenant == tenant, tbl.c.guid.in_(want[i:i + 500])).order_by(tbl.c.source)
            for g, rid in conn.execute(q):
                out.setdefault(g, rid)
    return out


def case_guid(source: str, objective: str) -> uuid.UUID | None:
    """The CASE identifier an objective names, when its set's source is CASE."""
    if source.strip().lower() != "case":
        return None
    try:
        return uuid.UUID(objective.strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------- preparing a batch


@dataclass
class Item:
    """One object to write: its type, its wire JSON, where it came from (for errors), and
    how to name its fields in errors (CSV columns, or REST field names)."""

    type: str
    obj: dict[str, Any]
    location: str
    column: Callable[[str], str] = field(default=lambda f: f)


@dataclass
class Row:
    type: str
    sourced_id: str
    source: str
    data: dict[str, Any]
    derived: dict[str, Any]
    created: bool
    #: the object itself changed (not only what it derives): dateLastModified moves on
    bump: bool = True
    original: dict[str, Any] = field(default_factory=dict)
    #: promoted columns the object does not spell out (a result's class is its line item's)
    cols: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What ``apply`` writes: the table's rows and the canonical records, in one transaction."""

    tenant: str
    rows: list[Row] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    #: (type, sourcedId) -> created? for the REST answers
    outcome: dict[tuple[str, str], bool] = field(default_factory=dict)


#: (canonical kind, sourcedIds) -> {sourcedId: canonical id}: how references to rostering
#: objects resolve (the CSV importer also knows the package's own records)
RosterResolver = Callable[[str, list[str]], dict[str, uuid.UUID]]


class Preparer:
    """Validates a batch of gradebook / resources objects against each other, the table and
    the store, and derives the canonical records. Raises ValidationError with EVERY problem."""

    def __init__(self, store: Any, tenant: str, source: str, *, version: str, resolve: RosterResolver | None = None,
                 now: datetime | None = None) -> None:
        self.store = store
        self.engine: Engine | None = store.engine if store is not None else None
        self.objects = ObjectStore(self.engine) if self.engine is not None else None
        self.tenant, self.source, self.version = tenant, source, version
        self.resolve = resolve or self._resolve_in_store
        self.now = now or utcnow()
        self.errors: list[ErrorDetail] = []

    def _resolve_in_store(self, kind: str, sids: list[str]) -> dict[str, uuid.UUID]:
        return find_roster(self.engine, self.tenant, kind, sids, prefer=self.source) if self.engine is not None else {}

    def stored(self, obj_type: str, sids: Iterable[str]) -> dict[str, Stored]:
        return self.objects.get(self.tenant, obj_type, sids) if self.objects is not None else {}

    def prepare(self, items: list[Item]) -> Plan:
        batch: dict[str, dict[str, tuple[dict[str, Any], Item]]] = {}
        for it in items:
            data, errs = normalize(it.type, it.obj, version=self.version, location=it.location, column=it.column)
            self.errors.extend(errs)  # the object still takes part in the reference check: every error at once
            bucket = batch.setdefault(it.type, {})
            if data["sourcedId"] in bucket:
                self.errors.append(ErrorDetail(f"duplicate sourcedId {data['sourcedId']!r}", location=it.location, field=it.column("sourcedId")))
                continue
            bucket[data["sourcedId"]] = (data, it)
        stored = {ty: self.stored(ty, list(b)) for ty, b in batch.items()}
        self._check_refs(batch)
        if self.errors:
            raise ValidationError("invalid OneRoster gradebook data", errors=self.errors)
        plan = Plan(self.tenant)
        derive = _Deriver(self, batch)
        for ty, bucket in batch.items():
            for sid, (data, _) in bucket.items():
                old = stored[ty].get(sid)
                source = old.source if old is not None else self.source
                derived = old.derived if old is not None else {}
                same = old is not None and _same(old.data, data)
                plan.rows.append(Row(ty, sid, source, old.data if same else data, derived, old is None, bump=not same, original=derived))
                plan.outcome[(ty, sid)] = old is None
        derive.run(plan)
        if self.errors:
            raise ValidationError("invalid OneRoster gradebook data", errors=self.errors)
        plan.rows = [r for r in plan.rows if r.created or r.bump or r.derived != r.original]
        return plan

    def _check_refs(self, batch: dict[str, dict[str, tuple[dict[str, Any], Item]]]) -> None:
        """Every GUIDRef must name an object in the batch, the table or the rostering store."""
        wanted: dict[str, list[tuple[str, str, Item]]] = {}
        for ty, bucket in batch.items():
            for data, it in bucket.values():
                if data["status"] == "tobedeleted":
                    continue
                for name, kind, _, _ in FIELDS[ty]:
                    if kind.startswith("ref:") and name in data:
                        wanted.setdefault(kind[4:], []).append((data[name]["sourcedId"], name, it))
        for target, refs in wanted.items():
            sids = sorted({s for s, _, _ in refs})
            if target in ROSTER_REFS:
                known = set(self.resolve(ROSTER_REFS[target], sids))
            else:
                known = set(batch.get(target, {})) | {s for s, o in self.stored(target, sids).items() if o.data.get("status") == "active"}
            for sid, name, it in refs:
                if sid not in known:
                    self.errors.append(ErrorDetail(f"{name} {sid!r}: no such {target} in this batch or the store",
                                                   location=it.location, field=it.column(name)))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "dateLastModified"} == {k: v for k, v in b.items() if k != "dateLastModified"}


class _Deriver:
    """Turns the batch's line items and results into Alignments and Evidence."""

    def __init__(self, p: Preparer, batch: dict[str, dict[str, tuple[dict[str, Any], Item]]]) -> None:
        self.p, self.batch = p, batch
        self.guids: dict[uuid.UUID, uuid.UUID] = {}
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}
        #: (line item type, sourcedId) -> its alignment ids, for the line items of this batch
        self.li_alignments: dict[tuple[str, str], list[str]] = {}
        #: alignment id -> native id (objective GUID at its end), for every alignment seen
        self._alignment_native: dict[str, str] = {}

    def line_item(self, ty: str, sid: str) -> dict[str, Any] | None:
        return self._object(ty, sid)

    def scale(self, sid: str | None) -> dict[str, Any] | None:
        return self._object("scoreScale", sid) if sid is not None else None

    def _object(self, ty: str, sid: str) -> dict[str, Any] | None:
        """An object of the batch, else the stored one (each looked up once)."""
        got = self.batch.get(ty, {}).get(sid)
        if got is not None:
            return got[0]
        key = (ty, sid)
        if key not in self._cache:
            s = self.p.stored(ty, [sid]).get(sid)
            self._cache[key] = s.data if s is not None else None
        return self._cache[key]

    def run(self, plan: Plan) -> None:
        rows = {(r.type, r.sourced_id): r for r in plan.rows}
        # results of changed line items not in the batch are derived again (objectives, bounds)
        for lt in LINE_ITEM_TYPES:
            changed = [r.sourced_id for r in plan.rows if r.type == lt]
            rt = next(k for k, v in LINE_ITEM_OF.items() if v == lt)
            if changed and self.p.objects is not None:
                for s in self.p.objects.where(self.p.tenant, rt, objects.c.line_item_sid.in_(changed)):
                    if (rt, s.sourced_id) not in rows:
                        row = Row(rt, s.sourced_id, s.source, s.data, s.derived, False, bump=False, original=s.derived)
                        rows[(rt, s.sourced_id)] = row
                        plan.rows.append(row)
        guids = set()
        for r in rows.values():
            for g in self._objective_guids(r):
                guids.add(g)
        if guids and self.p.engine is not None:
            self.guids = competencies_by_guid(self.p.engine, self.p.tenant, guids)
        learners = self.p.resolve("person", sorted({r.data["student"]["sourcedId"] for r in rows.values()
                                                    if r.type in RESULT_TYPES and "student" in r.data}))
        for r in rows.values():
            if r.type in LINE_ITEM_TYPES:
                plan.records.extend(self._alignments(r))
        for r in rows.values():
            if r.type in RESULT_TYPES:
                plan.records.extend(self._evidence(r, learners))

    def _objective_guids(self, r: Row) -> Iterator[uuid.UUID]:
        sets = r.data.get("learningObjectiveSet") or []
        if r.type in RESULT_TYPES:
            li = self.line_item(LINE_ITEM_OF[r.type], r.data.get(LINE_ITEM_OF[r.type], {}).get("sourcedId", ""))
            sets = sets or (li or {}).get("learningObjectiveSet") or []
        for s in sets:
            for o in s.get("learningObjectiveIds") or [x["learningObjectiveId"] for x in s.get("learningObjectiveResults") or []]:
                g = case_guid(s["source"], o)
                if g is not None:
                    yield g

    # ---- line items -> alignments

    def _alignment_for(self, ty: str, sid: str, source: str, guid: uuid.UUID) -> Alignment | None:
        comp = self.guids.get(guid)
        if comp is None:
            return None
        return Alignment(tenant=self.p.tenant, source=source, native_id=f"{COLLECTIONS[ty]}/{sid}/{guid}",
                         target_system=ACTIVITY_SYSTEM, target_kind=TargetKind.line_item,
                         target_id=f"{COLLECTIONS[ty]}/{sid}", competency_id=comp,
                         identifiers=[Identifier(system=source, kind=f"oneroster.{ty}", value=sid)])

    def _alignments(self, r: Row) -> list[Record]:
        out: list[Record] = []
        keep: list[str] = []
        if r.data["status"] == "active":
            for s in r.data.get("learningObjectiveSet") or []:
                for o in s["learningObjectiveIds"]:
                    g = case_guid(s["source"], o)
                    a = self._alignment_for(r.type, r.sourced_id, r.source, g) if g else None
                    if a is not None and str(a.id) not in keep:
                        keep.append(str(a.id))
                        self._alignment_native[str(a.id)] = a.native_id
                        out.append(a)
        out.extend(self._retire("alignment", [x for x in r.derived.get("alignments", []) if x not in keep],
                                {"status": Status.tobedeleted}))
        r.derived = {**r.derived, "alignments": keep}
        self.li_alignments[(r.type, r.sourced_id)] = keep
        return out

    def _retire(self, kind: str, ids: list[str], update: dict[str, Any]) -> list[Record]:
        out: list[Record] = []
        for i in ids:
            try:
                rec = self.p.store.records.get(self.p.tenant, kind, uuid.UUID(i))
            except NotFound:
                continue
            if all(getattr(rec, k) == v for k, v in update.items()):
                continue
            out.append(rec.model_copy(update={**update, "updated_at": None}))
        return out

    # ---- results -> evidence

    def _evidence(self, r: Row, learners: dict[str, uuid.UUID]) -> list[Record]:
        heads: dict[str, str] = dict(r.derived.get("evidence") or {})
        lt = LINE_ITEM_OF[r.type]
        li_sid = (r.data.get(lt) or {}).get("sourcedId", "")  # a deletion may name nothing but itself
        li = (self.line_item(lt, li_sid) if li_sid else None) or {}
        if li.get("class"):
            r.cols["class_sid"] = li["class"]["sourcedId"]
        if r.data["status"] == "tobedeleted":
            return self._retire("evidence", list(heads.values()), {"voided": True, "status": Status.tobedeleted})
        learner = learners.get(r.data["student"]["sourcedId"])
        if learner is None:  # the reference check passed, so only a vanished student lands here
            return []
        items = self._objectives(r.data, li)
        out: list[Record] = []
        new_heads: dict[str, str] = {}
        for key, source, objective, score, text in items:
            ev = self._one(r, li, lt, li_sid, learner, key, source, objective, score, text)
            if ev is None:
                continue
            new_heads[key] = str(ev.id)
            old = heads.get(key)
            if old == str(ev.id):
                out.extend(self._realign(ev))
                continue
            if old is not None:
                ev = ev.model_copy(update={"supersedes": uuid.UUID(old)})
            out.append(ev)
        gone = [v for k, v in heads.items() if k not in new_heads]
        out.extend(self._retire("evidence", gone, {"voided": True}))
        r.derived = {**r.derived, "evidence": new_heads}
        return out

    def _realign(self, ev: Evidence) -> list[Record]:
        """Late alignment: unchanged evidence whose objective now resolves (the framework was
        imported after the gradebook) gets its competency; the store lets exactly these change."""
        if ev.competency_id is None:
            return []
        try:
            stored = self.p.store.records.get(self.p.tenant, "evidence", ev.id)
        except NotFound:
            return []
        if (stored.competency_id, stored.alignment_id) == (ev.competency_id, ev.alignment_id):
            return []
        return [stored.model_copy(update={"competency_id": ev.competency_id, "alignment_id": ev.alignment_id, "updated_at": None})]

    @staticmethod
    def _objectives(res: dict[str, Any], li: dict[str, Any]) -> list[tuple[str, str | None, str | None, Any, Any]]:
        """(key, objective source, objective id, score, textScore) per piece of evidence."""
        out: list[tuple[str, str | None, str | None, Any, Any]] = []
        for s in res.get("learningObjectiveSet") or []:
            for o in s["learningObjectiveResults"]:
                out.append((f"{s['source']}:{o['learningObjectiveId']}", s["source"], o["learningObjectiveId"],
                            o.get("score"), o.get("textScore")))
        if out:
            return out
        for s in li.get("learningObjectiveSet") or []:
            for o in s["learningObjectiveIds"]:
                out.append((f"{s['source']}:{o}", s["source"], o, res.get("score"), res.get("textScore")))
        return out or [("-", None, None, res.get("score"), res.get("textScore"))]

    def _one(self, r: Row, li: dict[str, Any], lt: str, li_sid: str, learner: uuid.UUID, key: str,
             source: str | None, objective: str | None, raw: Any, text: Any) -> Evidence | None:
        if raw is None and text is None:
            return None
        where = f"{COLLECTIONS[r.type]} {r.sourced_id}"
        lo, hi = li.get("resultValueMin"), li.get("resultValueMax")
        try:
            score = Score(raw=raw, min=lo, max=hi) if raw is not None else None
        except ValueError:  # the model's own bounds check: raw within [min, max]
            self.p.errors.append(ErrorDetail(f"score {raw} is outside the {lt}'s resultValueMin..resultValueMax ({lo}..{hi})",
                                             location=where, field="score"))
            return None
        level = self._level(r, li, raw, text, where)
        guid = case_guid(source, objective) if source and objective else None
        comp = self.guids.get(guid) if guid else None
        alignment = None
        if comp is not None and not r.data.get("learningObjectiveSet"):
            # the line item's own alignment to this competency, when it has one
            suffix = f"/{guid}"
            alignment = next((uuid.UUID(a) for a in self._line_item_alignments(lt, li_sid)
                              if self._alignment_native.get(a, "").endswith(suffix)), None)
        observed = parse_datetime(r.data["scoreDate"])
        content = orjson.dumps([str(learner), lt, li_sid, key, raw, lo, hi, level, observed.isoformat()]).decode()
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        native = f"{COLLECTIONS[r.type]}/{r.sourced_id}#{key}@{digest}"
        if len(native) > 255:
            native = f"{COLLECTIONS[r.type]}/{hashlib.sha256(native.encode()).hexdigest()}"
        ext: dict[str, Any] = {"scoreStatus": r.data.get("scoreStatus")}
        if objective is not None:
            ext["learningObjective"] = {"source": source, "id": objective}
        payload = orjson.dumps(r.data, option=orjson.OPT_SORT_KEYS)
        return Evidence(
            tenant=self.p.tenant, source=r.source, native_id=native, learner_id=learner, competency_id=comp,
            alignment_id=alignment,
            activity=ActivityRef(system=ACTIVITY_SYSTEM, id=f"{COLLECTIONS[lt]}/{li_sid}", title=li.get("title")),
            score=score, level=level, observed_at=observed,
            provenance=Provenance(standard="oneroster", version=self.p.version, system=r.source, native_id=r.sourced_id,
                                  payload_sha256=hashlib.sha256(payload).hexdigest(), received_at=self.p.now),
            identifiers=[Identifier(system=r.source, kind=f"oneroster.{r.type}", value=r.sourced_id)],
            extensions={"oneroster": {k: v for k, v in ext.items() if v is not None}},
        )

    def _line_item_alignments(self, lt: str, sid: str) -> list[str]:
        """The alignment ids a line item currently has (this batch's, else the stored ones)."""
        got = self.li_alignments.get((lt, sid))
        if got is None:
            s = self.p.stored(lt, [sid]).get(sid)
            got = self.li_alignments[(lt, sid)] = list((s.derived if s is not None else {}).get("alignments") or [])
            for a in got:  # their native ids end with the competency's CASE identifier
                if a not in self._alignment_native:
                    try:
                        self._alignment_native[a] = self.p.store.records.get(self.p.tenant, "alignment", uuid.UUID(a)).native_id
                    except NotFound:
                        self._alignment_native[a] = ""
        return got

    def _level(self, r: Row, li: dict[str, Any], raw: Any, text: Any, where: str) -> str | None:
        scale = self.scale((r.data.get("scoreScale") or li.get("scoreScale") or {}).get("sourcedId"))
        if scale is None:
            return str(text) if text is not None else None
        values = scale.get("scoreScaleValue") or []
        if text is not None:
            if str(text) not in {v["itemValueLHS"] for v in values}:
                self.p.errors.append(ErrorDetail(f"textScore {text!r} is not a value of scoreScale {scale['sourcedId']!r}",
                                                 location=where, field="textScore"))
            return str(text)
        for v in values:
            try:
                if raw is not None and _number(v["itemValueRHS"]) == raw:
                    return v["itemValueLHS"]
            except ValueError:
                continue
        return None


# --------------------------------------------------------------------------- applying


def write_rows(conn: Connection, tenant: str, rows: list[Row], now: datetime) -> None:
    """Upsert the plan's rows (inside ``store.records.apply``'s transaction)."""
    for r in rows:
        rid = object_id(tenant, r.type, r.sourced_id)
        cols = {k: (r.data.get(f) or {}).get("sourcedId") for k, f in PROMOTED.get(r.type, {}).items()}
        cols.update({k: v for k, v in r.cols.items() if not cols.get(k)})
        values = dict(tenant=tenant, type=r.type, sourced_id=r.sourced_id, source=r.source, status=r.data["status"],
                      data=orjson.dumps(r.data).decode(), derived=orjson.dumps(r.derived).decode(), **cols)
        if r.bump or r.created:
            values["updated_at"] = now
        done = conn.execute(update(objects).where(objects.c.id == rid).values(**values)).rowcount
        if not done:
            conn.execute(insert(objects).values(id=rid, **{"updated_at": now, **values}))


def writer(plan: Plan) -> Callable[[Connection], None]:
    """The ``within`` callback of ``store.records.apply`` that writes the plan's objects."""
    now = utcnow()
    # owners before what references them: the order a reader of the change stream expects
    order = {ty: i for i, ty in enumerate(["category", "scoreScale", "lineItem", "assessmentLineItem", "result", "assessmentResult"])}
    rows = sorted(plan.rows, key=lambda r: order.get(r.type, 9))
    return lambda conn: write_rows(conn, plan.tenant, rows, now)


def apply(store: Any, plan: Plan, records: list[Record] | None = None) -> Any:
    """Write the plan: objects and canonical records (``records`` before the plan's own, e.g.
    the rostering records of the same CSV package) in ONE transaction."""
    return store.records.apply(plan.tenant, [*(records or []), *plan.records], within=writer(plan))


def put_objects(store: Any, tenant: str, source: str, items: list[Item], *, version: str) -> Plan:
    """Validate and write a batch (REST PUT / POST / DELETE, and small CSV imports)."""
    plan = Preparer(store, tenant, source, version=version).prepare(items)
    apply(store, plan)
    return plan


# --------------------------------------------------------------------------- the CSV binding

_B = [("sourcedId", "sourcedId", "s", True), ("status", "status", "s", False), ("dateLastModified", "dateLastModified", "s", False)]
_FLAGS = [("inProgress", "inProgress", "s", False), ("incomplete", "incomplete", "s", False), ("late", "late", "s", False),
          ("missing", "missing", "s", False)]

#: OneRoster CSV files of the gradebook and resources services: (CSV column, REST field,
#: conversion, required), as ``csv_bulk.COLUMNS``. 1.1 CSV Tables section 2.x; 1.2 CSV
#: binding: the line-item / result objectives and score scales are files of their own
#: (``*LearningObjectiveIds.csv``, ``*ScoreScales.csv``) joined to their owner by sourcedId.
CSV_COLUMNS: dict[str, dict[str, list[tuple[str, str, str, bool]]]] = {
    "1.1": {
        "categories": _B + [("title", "title", "s", True)],
        "lineItems": _B + [
            ("title", "title", "s", True), ("description", "description", "s", False), ("assignDate", "assignDate", "s", True),
            ("dueDate", "dueDate", "s", True), ("classSourcedId", "class", "ref", True), ("categorySourcedId", "category", "ref", True),
            ("gradingPeriodSourcedId", "gradingPeriod", "ref", True), ("resultValueMin", "resultValueMin", "s", False),
            ("resultValueMax", "resultValueMax", "s", False),
        ],
        "results": _B + [
            ("lineItemSourcedId", "lineItem", "ref", True), ("studentSourcedId", "student", "ref", True),
            ("scoreStatus", "scoreStatus", "s", True), ("score", "score", "s", True), ("scoreDate", "scoreDate", "s", True),
            ("comment", "comment", "s", False),
        ],
        "resources": _B + [
            ("vendorResourceId", "vendorResourceId", "s", True), ("title", "title", "s", False), ("roles", "roles", "list", False),
            ("importance", "importance", "s", False), ("vendorId", "vendorId", "s", False), ("applicationId", "applicationId", "s", False),
        ],
        "classResources": _B + [("title", "title", "s", False), ("classSourcedId", "class", "ref", True),
                                ("resourceSourcedId", "resource", "ref", True)],
        "courseResources": _B + [("title", "title", "s", False), ("courseSourcedId", "course", "ref", True),
                                 ("resourceSourcedId", "resource", "ref", True)],
    },
}
_g12 = {k: list(v) for k, v in CSV_COLUMNS["1.1"].items()}
_g12["categories"] = _g12["categories"] + [("weight", "weight", "s", False)]
_g12["lineItems"] = [c if c[0] != "gradingPeriodSourcedId" else (*c[:3], False) for c in _g12["lineItems"]] + [
    ("academicSessionSourcedId", "academicSession", "ref", False), ("schoolSourcedId", "school", "ref", False)]
_g12["results"] = [c if c[0] != "score" else (*c[:3], False) for c in _g12["results"]] + [
    ("classSourcedId", "class", "ref", False), ("textScore", "textScore", "s", False), *_FLAGS]
_g12["scoreScales"] = _B + [
    ("title", "title", "s", True), ("type", "type", "s", True), ("courseSourcedId", "course", "ref", False),
    ("classSourcedId", "class", "ref", True), ("scoreScaleValue", "scoreScaleValue", "s", True),
]
_g12["assessmentLineItems"] = _B + [
    ("title", "title", "s", True), ("description", "description", "s", False), ("classSourcedId", "class", "ref", False),
    ("parentAssessmentLineItemSourcedId", "parentAssessmentLineItem", "ref", False),
    ("scoreScaleSourcedId", "scoreScale", "ref", False), ("resultValueMin", "resultValueMin", "s", False),
    ("resultValueMax", "resultValueMax", "s", False),
]
_g12["assessmentResults"] = _B + [
    ("assessmentLineItemSourcedId", "assessmentLineItem", "ref", True), ("studentSourcedId", "student", "ref", True),
    ("score", "score", "s", False), ("textScore", "textScore", "s", False), ("scoreDate", "scoreDate", "s", True),
    ("scoreScaleSourcedId", "scoreScale", "ref", False), ("scorePercentile", "scorePercentile", "s", False),
    ("scoreStatus", "scoreStatus", "s", True), ("comment", "comment", "s", False), *_FLAGS,
]
_g12["userResources"] = _B + [("title", "title", "s", False), ("userSourcedId", "user", "ref", True),
                              ("resourceSourcedId", "resource", "ref", True)]
#: join files: file -> (owner type, owner column, what the rows set on the owner)
JOIN_FILES: dict[str, tuple[str, str, str]] = {
    "lineItemLearningObjectiveIds": ("lineItem", "lineItemSourcedId", "objectives"),
    "resultLearningObjectiveIds": ("result", "resultSourcedId", "objective results"),
    "assessmentLineItemLearningObjectiveIds": ("assessmentLineItem", "assessmentLineItemSourcedId", "objectives"),
    "assessmentResultLearningObjectiveIds": ("assessmentResult", "assessmentResultSourcedId", "objective results"),
    "lineItemScoreScales": ("lineItem", "lineItemSourcedId", "score scale"),
    "resultScoreScales": ("result", "resultSourcedId", "score scale"),
}
# The 1.2 CSV binding gives every file, the join files too, sourcedId, status and
# dateLastModified as its first columns, and major implementations read and write them there
# (and an optional title on the score scale joins); packages that leave them out exist as
# well (Tessera wrote such packages before). So they are optional here: read when present (a
# "tobedeleted" row drops that link), always written on export.
_JOIN_BASE = [("sourcedId", "sourcedId", "s", False), ("status", "status", "s", False),
              ("dateLastModified", "dateLastModified", "s", False)]
for _name, (_owner, _col, _what) in JOIN_FILES.items():
    if _what == "score scale":
        _g12[_name] = [*_JOIN_BASE, ("title", "title", "s", False), (_col, "owner", "s", True),
                       ("scoreScaleSourcedId", "scoreScale", "s", True)]
    else:
        _g12[_name] = [*_JOIN_BASE, (_col, "owner", "s", True), ("source", "source", "s", True),
                       ("learningObjectiveId", "learningObjectiveId", "s", True)]
        if _what == "objective results":
            _g12[_name] += [("score", "score", "s", False), ("textScore", "textScore", "s", False)]
CSV_COLUMNS["1.2"] = _g12
#: CSV file -> object type (the join files have none)
FILE_TYPES = {COLLECTIONS[ty]: ty for ty in FIELDS}
#: reading order: owners before what references them
CSV_ORDER = ["categories", "scoreScales", "lineItems", "assessmentLineItems", "results", "assessmentResults", "resources",
             "classResources", "courseResources", "userResources"]


def parse_scale_values(text: str) -> list[dict[str, str]]:
    """The CSV form of scoreScaleValue: ``{itemValueLHS:itemValueRHS}`` pairs, comma separated."""
    out = []
    for part in text.split("},"):
        p = part.strip().strip("{}").strip()
        lhs, sep, rhs = p.partition(":")
        if not sep or not lhs.strip() or not rhs.strip():
            raise ValueError(f"{part!r} is not an {{itemValueLHS:itemValueRHS}} pair")
        out.append({"itemValueLHS": lhs.strip(), "itemValueRHS": rhs.strip()})
    return out


def format_scale_values(values: list[dict[str, str]]) -> str:
    return ",".join(f"{{{v['itemValueLHS']}:{v['itemValueRHS']}}}" for v in values)


def csv_column(version: str, name: str) -> Callable[[str], str]:
    """REST field -> CSV column of ``name``.csv, for error details."""
    by_field = {f: c for c, f, _, _ in CSV_COLUMNS[version].get(name, [])}
    by_field.setdefault("learningObjectiveSet", f"{COLLECTIONS[FILE_TYPES[name]][:-1]}LearningObjectiveIds.csv" if name in FILE_TYPES else "")
    return lambda f: by_field.get(f.split("[", 1)[0], f) or f


@dataclass
class CsvGradebook:
    """The gradebook and resources part of one CSV package, read after its rostering files.

    ``rows(name)`` yields (location, REST-shaped dict) per data row (``csv_bulk``'s reader,
    with its header checks); ``resolve`` names the package's and the store's rostering
    records; ``mode(name)`` is the manifest's bulk / delta / absent."""

    store: Any
    tenant: str
    source: str
    version: str
    rows: Callable[[str], Iterator[tuple[str, dict[str, Any], int]]]
    mode: Callable[[str], str]
    resolve: RosterResolver
    errors: list[ErrorDetail] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)

    def read(self) -> Plan | None:
        """Every present file -> one validated Plan (None when the package has none of them).
        Problems are left in ``errors`` (with file, row and column)."""
        present = [n for n in CSV_COLUMNS[self.version] if self.mode(n) != "absent"]
        if not present:
            return None
        objects = ObjectStore(self.store.engine) if self.store is not None else None
        items: dict[tuple[str, str], Item] = {}
        for name in CSV_ORDER:
            if name in present:
                self._read_file(name, items, objects)
        for name, (owner, _, what) in JOIN_FILES.items():
            if name in present:
                self._join(name, items, objects)
            elif objects is not None and name in CSV_COLUMNS[self.version]:
                self._keep(owner, "scoreScale" if what == "score scale" else "learningObjectiveSet", items, objects)
        for name in CSV_ORDER:
            if name in present and self.mode(name) == "bulk" and objects is not None:
                self._absent(name, items, objects)
        try:
            return Preparer(self.store, self.tenant, self.source, version=self.version, resolve=self.resolve).prepare(list(items.values()))
        except ValidationError as exc:
            self.errors.extend(exc.errors)
            return None

    def _read_file(self, name: str, items: dict[tuple[str, str], Item], objects: ObjectStore | None) -> None:
        ty = FILE_TYPES[name]
        column = csv_column(self.version, name)
        first: dict[str, str] = {}
        n = 0
        for loc, obj, _ in self.rows(name):
            n += 1
            sid = obj.get("sourcedId", "")
            if sid in first:
                self.errors.append(ErrorDetail(f"duplicate sourcedId {sid!r} (first at {first[sid]})", location=loc, field="sourcedId"))
                continue
            first[sid] = loc
            if "scoreScaleValue" in obj:
                try:
                    obj["scoreScaleValue"] = parse_scale_values(obj["scoreScaleValue"])
                except ValueError as exc:
                    self.errors.append(ErrorDetail(str(exc), location=loc, field="scoreScaleValue"))
                    continue
            if obj.get("status") == "tobedeleted" and self.mode(name) == "delta":
                old = objects.get(self.tenant, ty, [sid]).get(sid) if objects is not None else None
                if old is None:
                    self.errors.append(ErrorDetail(f"row deletes {ty} {sid!r}, which is not stored", location=loc, field="status"))
                    continue
                obj = {**old.data, **obj}
            items[(ty, sid)] = Item(ty, obj, loc, column)
        self.counts[name] = n

    def _join(self, name: str, items: dict[tuple[str, str], Item], objects: ObjectStore | None) -> None:
        """Objectives / score scales of line items and results, onto their owners."""
        owner, col, what = JOIN_FILES[name]
        sets: dict[str, dict[str, list[Any]]] = {}
        n = 0
        for loc, row, _ in self.rows(name):
            n += 1
            sid = row.get("owner", "")
            status = row.get("status", "active")
            if status not in ("active", "tobedeleted"):
                self.errors.append(ErrorDetail(f"status {status!r} is not active or tobedeleted", location=loc, field="status"))
                continue
            it = items.get((owner, sid))
            if it is None:
                old = objects.get(self.tenant, owner, [sid]).get(sid) if objects is not None else None
                if old is None:
                    self.errors.append(ErrorDetail(f"{col} {sid!r}: no such {owner} in {COLLECTIONS[owner]}.csv or the store",
                                                   location=loc, field=col))
                    continue
                it = items[(owner, sid)] = Item(owner, dict(old.data), loc, csv_column(self.version, COLLECTIONS[owner]))
            if what == "score scale":
                if status == "tobedeleted":
                    it.obj.pop("scoreScale", None)
                else:
                    it.obj["scoreScale"] = {"sourcedId": row["scoreScale"]}
                continue
            if status == "tobedeleted":
                sets.setdefault(sid, {})  # the owner's set is what its active rows say, possibly nothing
                continue
            if what == "objectives":
                sets.setdefault(sid, {}).setdefault(row["source"], []).append(row["learningObjectiveId"])
            else:
                r = {k: row[k] for k in ("learningObjectiveId", "score", "textScore") if row.get(k)}
                sets.setdefault(sid, {}).setdefault(row["source"], []).append(r)
        member = "learningObjectiveIds" if what == "objectives" else "learningObjectiveResults"
        for sid, by_source in sets.items():
            obj = items[(owner, sid)].obj
            if by_source:
                obj["learningObjectiveSet"] = [{"source": src, member: v} for src, v in by_source.items()]
            else:
                obj.pop("learningObjectiveSet", None)
        self.counts[name] = n

    def _keep(self, owner: str, key: str, items: dict[tuple[str, str], Item], objects: ObjectStore) -> None:
        """A join file the manifest leaves absent changes nothing: owners re-read from their
        own file keep the stored objectives / score scale."""
        sids = [sid for (ty, sid) in items if ty == owner]
        for sid, old in objects.get(self.tenant, owner, sids).items():
            if key in old.data and key not in items[(owner, sid)].obj:
                items[(owner, sid)].obj[key] = old.data[key]

    def _absent(self, name: str, items: dict[tuple[str, str], Item], objects: ObjectStore) -> None:
        """Bulk: this source's stored objects of the type that the file does not list become tobedeleted."""
        ty = FILE_TYPES[name]
        gone = [sid for sid in objects.sourced_ids(self.tenant, ty, self.source) if (ty, sid) not in items]
        for sid, old in objects.get(self.tenant, ty, gone).items():
            items[(ty, sid)] = Item(ty, {**old.data, "status": "tobedeleted"}, f"{name}.csv (absent: {sid})")
        if gone:
            self.deleted[ty] = len(gone)


def join_row(owner: str, key: str, stamp: str | None, **fields: Any) -> dict[str, Any]:
    """One row of a join file as written: the sourcedId the binding asks for is derived from
    the owner and what the row links (stable across exports), status active."""
    return {"sourcedId": f"{owner}:{key}", "status": "active", "dateLastModified": stamp, "owner": owner, **fields}


def csv_rows(store: Any, tenant: str, name: str, version: str, source: str | None) -> list[dict[str, Any]]:
    """Rows of ``name``.csv for a bulk export (REST-shaped, keyed by REST field), so that the
    package re-imports to the same objects."""
    objs = ObjectStore(store.engine)
    if name in JOIN_FILES:
        owner, _, what = JOIN_FILES[name]
        out: list[dict[str, Any]] = []
        for s in objs.where(tenant, owner):
            if source is not None and s.source != source:
                continue
            stamp = s.data.get("dateLastModified")
            if what == "score scale":
                if s.data.get("scoreScale"):
                    out.append(join_row(s.sourced_id, "scoreScale", stamp, scoreScale=s.data["scoreScale"]["sourcedId"]))
                continue
            for st in s.data.get("learningObjectiveSet") or []:
                for o in st.get("learningObjectiveIds") or st.get("learningObjectiveResults") or []:
                    fields = {"learningObjectiveId": o} if isinstance(o, str) else o
                    out.append(join_row(s.sourced_id, f"{st['source']}:{fields['learningObjectiveId']}", stamp, source=st["source"], **fields))
        return out
    rows = []
    for s in objs.where(tenant, FILE_TYPES[name]):
        if source is not None and s.source != source:
            continue
        row = dict(s.data)
        if "scoreScaleValue" in row:
            row["scoreScaleValue"] = format_scale_values(row["scoreScaleValue"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- mastery write-back


MASTERY_PREFIX = "tessera-mastery"


def mastery_objects(store: Any, tenant: str, states: Iterable[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Canonical MasteryState records -> OneRoster 1.2 (assessmentLineItems, assessmentResults,
    skipped): the reverse of gradebook-as-evidence.

    One assessment line item per competency (``tessera-mastery-<CASE GUID>``, tagged with
    its CASE identifier, results 0..1), one assessment result per (learner, competency)
    (``tessera-mastery-<student sourcedId>-<GUID>``): score = the mastery value, textScore =
    the level, and ``learningObjectiveResults`` naming the CASE GUID with the same score and
    level. The student is named by its OneRoster sourcedId (its ``oneroster.sourcedId``
    identifier, else its native id). A state whose competency has no CASE identifier is
    skipped (counted): OneRoster would have nothing to name it by."""
    from gateway.model import Competency, Person

    line_items: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    skipped = 0
    people: dict[uuid.UUID, str] = {}
    comps: dict[uuid.UUID, Any] = {}
    for st in states:
        if st.competency_id not in comps:
            try:
                comps[st.competency_id] = store.records.get(tenant, "competency", st.competency_id)
            except NotFound:
                comps[st.competency_id] = None
        comp = comps[st.competency_id]
        if not isinstance(comp, Competency) or comp.guid is None:
            skipped += 1
            continue
        if st.learner_id not in people:
            person = store.records.get(tenant, "person", st.learner_id)
            assert isinstance(person, Person)
            people[st.learner_id] = next((i.value for i in person.identifiers if i.kind == "oneroster.sourcedId"), person.native_id)
        guid, student = str(comp.guid), people[st.learner_id]
        li_sid = f"{MASTERY_PREFIX}-{guid}"
        line_items.setdefault(li_sid, {
            "sourcedId": li_sid, "status": "active", "title": (comp.code or comp.statement)[:255],
            "description": comp.statement, "resultValueMin": 0, "resultValueMax": 1,
            "learningObjectiveSet": [{"source": "case", "learningObjectiveIds": [guid]}],
        })
        objective: dict[str, Any] = {"learningObjectiveId": guid}
        res: dict[str, Any] = {
            "sourcedId": f"{MASTERY_PREFIX}-{student}-{guid}", "status": "active",
            "dateLastModified": format_datetime(st.computed_at),
            "assessmentLineItem": {"sourcedId": li_sid, "type": "assessmentLineItem"},
            "student": {"sourcedId": student, "type": "user"},
            "scoreDate": (st.last_at or st.computed_at).date().isoformat(), "scoreStatus": "fully graded",
        }
        if st.value is not None:
            res["score"] = objective["score"] = round(st.value, 6)
        if st.level is not None:
            res["textScore"] = objective["textScore"] = st.level
        res["learningObjectiveSet"] = [{"source": "case", "learningObjectiveResults": [objective]}]
        results.append(res)
    return list(line_items.values()), results, skipped


def export_mastery_package(store: Any, out: Any, *, tenant: str) -> dict[str, int]:
    """A OneRoster 1.2 CSV package of the tenant's mastery: assessmentLineItems.csv,
    assessmentResults.csv and their learning-objective files (the other files absent)."""
    import csv
    import io
    import zipfile

    from .csv_bulk import KNOWN_FILES, _cell

    line_items, results, skipped = mastery_objects(store, tenant, store.records.iter_records(tenant, ["mastery_state"]))
    files: dict[str, list[dict[str, Any]]] = {
        "assessmentLineItems": line_items,
        "assessmentResults": results,
        "assessmentLineItemLearningObjectiveIds": [
            join_row(li["sourcedId"], f"case:{g}", li.get("dateLastModified"), source="case", learningObjectiveId=g)
            for li in line_items for g in li["learningObjectiveSet"][0]["learningObjectiveIds"]],
        "assessmentResultLearningObjectiveIds": [
            join_row(r["sourcedId"], f"case:{o['learningObjectiveId']}", r.get("dateLastModified"), source="case", **o)
            for r in results for o in r["learningObjectiveSet"][0]["learningObjectiveResults"]],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, rows in files.items():
            spec = CSV_COLUMNS["1.2"][name]
            with zf.open(f"{name}.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\r\n")
                w.writerow([c for c, _, _, _ in spec])
                for r in rows:
                    w.writerow([_cell(r.get(f), t) for _, f, t, _ in spec])
        with zf.open("manifest.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerows([["propertyName", "value"], ["manifest.version", "1.0"], ["oneroster.version", "1.2"]])
            w.writerows([[f"file.{n}", "bulk" if n in files else "absent"] for n in KNOWN_FILES["1.2"]])
            w.writerows([["source.systemName", "Tessera (mastery)"], ["source.systemCode", tenant]])
    return {**{n: len(r) for n, r in files.items()}, "skipped": skipped}


# --------------------------------------------------------------------------- wire out


def to_wire(s: Stored, *, version: str = "1.2", use_source_date: bool = False) -> dict[str, Any]:
    """A stored object as the REST binding shows it: GUIDRefs with ``href``; dateLastModified
    Tessera's (watermarks follow the gateway's clock) unless ``use_source_date``."""
    out: dict[str, Any] = {}
    v12 = V12_FIELDS.get(s.type, frozenset())
    for k, v in s.data.items():
        if version == "1.1" and k in v12:
            continue
        if isinstance(v, dict) and set(v) == {"sourcedId", "type"}:
            coll = COLLECTIONS.get(v["type"]) or {"org": "orgs", "user": "users", "class": "classes", "course": "courses",
                                                   "academicSession": "academicSessions"}.get(v["type"], v["type"])
            v = {"href": f"/{coll}/{v['sourcedId']}", "sourcedId": v["sourcedId"], "type": v["type"]}
        out[k] = v
    if not use_source_date and s.updated_at is not None:
        out["dateLastModified"] = format_datetime(s.updated_at)
    return out


__all__ = [
    "COLLECTIONS",
    "CSV_COLUMNS",
    "FIELDS",
    "JOIN_FILES",
    "CsvGradebook",
    "Item",
    "ObjectStore",
    "Plan",
    "Preparer",
    "Stored",
    "apply",
    "case_guid",
    "csv_rows",
    "export_mastery_package",
    "fields_of",
    "mastery_objects",
    "normalize",
    "object_id",
    "put_objects",
    "to_wire",
    "writer",
]
