"""The gradebook and resources files of the OneRoster CSV binding: their columns, reading
them into ``Item``s (``CsvGradebook``, called by the CSV importer after the rostering
files) and their rows for a bulk export (``csv_rows``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Deviations, ErrorDetail, ValidationError

from ..tables import objects as objects_table
from .prepare import Item, Plan, Preparer, RosterResolver
from .storage import ObjectStore
from .types import COLLECTIONS, FIELDS, RESULT_TYPES

_B = [("sourcedId", "sourcedId", "s", True), ("status", "status", "s", False), ("dateLastModified", "dateLastModified", "s", False)]
_FLAGS = [("inProgress", "inProgress", "s", False), ("incomplete", "incomplete", "s", False), ("late", "late", "s", False),
          ("missing", "missing", "s", False)]

#: OneRoster CSV files of the gradebook and resources services: (CSV column, REST field,
#: conversion, required), as ``csv.columns.COLUMNS``. 1.1 CSV Tables section 2.x; 1.2 CSV
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

    ``rows(name)`` yields (location, REST-shaped dict) per data row (``csv.importer``'s reader,
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
    #: the import's deviations (tolerant: references to unknown objects held, see ``Preparer.unknown``)
    devs: Deviations | None = None
    #: sourcedIds of the users the import stores: stored results holding them unresolved get their evidence
    people: list[str] = field(default_factory=list)
    #: results whose held student this import stores (their evidence is derived now)
    late_results: int = 0

    def read(self) -> Plan | None:
        """Every present file -> one validated Plan (None when the package has none of them
        and stores no student a stored result holds). Problems are left in ``errors`` (with
        file, row and column)."""
        present = [n for n in CSV_COLUMNS[self.version] if self.mode(n) != "absent"]
        objects = ObjectStore(self.store.engine) if self.store is not None else None
        waiting = self._held_results(objects) if objects is not None and self.people else []
        if not present and not waiting:
            return None
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
        for s in waiting:
            if (s.type, s.sourced_id) not in items:
                items[(s.type, s.sourced_id)] = Item(s.type, dict(s.data), f"stored {s.type} {s.sourced_id}")
                self.late_results += 1
        try:
            return Preparer(self.store, self.tenant, self.source, version=self.version, resolve=self.resolve,
                            devs=self.devs).prepare(list(items.values()))
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
                    what = f"row deletes {ty} {sid!r}, which is not stored"
                    # strict (or no report to warn in): the error it always was, and only that
                    # (``tolerate`` would also record its own wording as an error)
                    if self.devs is not None and not self.devs.strict:
                        self.devs.tolerate("nothing-to-delete", f"{what}: nothing to delete, row skipped", location=loc, field="status")
                    else:
                        self.errors.append(ErrorDetail(what, location=loc, field="status"))
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
                    msg = f"{col} {sid!r}: no such {owner} in {COLLECTIONS[owner]}.csv or the store"
                    # a row that is part of an object neither sent nor stored: nothing to keep it on
                    if self.devs is not None and not self.devs.strict:
                        self.devs.tolerate("orphan-row", f"{msg}: row not kept (send it again with its {owner})", location=loc, field=col)
                    else:
                        self.errors.append(ErrorDetail(msg, location=loc, field=col))
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

    def _held_results(self, objects: ObjectStore) -> list[Any]:
        """Stored results and assessment results holding, unresolved, a student this import
        stores (one indexed query per 500 users: ``ix_oneroster_objects_tenant_user_sid``)."""
        out = []
        for i in range(0, len(self.people), 500):
            chunk = self.people[i:i + 500]
            for s in objects.where(self.tenant, RESULT_TYPES[0], objects_table.c.user_sid.in_(chunk)) + \
                    objects.where(self.tenant, RESULT_TYPES[1], objects_table.c.user_sid.in_(chunk)):
                if any(h.get("field") == "student" for h in s.derived.get("unresolved") or []):
                    out.append(s)
        return out

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
