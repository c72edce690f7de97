"""Preparing a batch of gradebook / resources objects: validated against each other, the
table and the store, and the canonical records derived from them (results -> Evidence,
line-item objectives -> Alignments; see the package docstring for the spec choices).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from gateway.errors import Deviations, ErrorDetail, NotFound, ValidationError
from gateway.model import (
    ActivityRef,
    Alignment,
    Evidence,
    Identifier,
    Provenance,
    Record,
    Score,
    Status,
    utcnow,
)
from gateway.model.competencies import TargetKind
from gateway.store.native_ids import competency_ids_by_guid

from ..tables import objects
from ..values import parse_datetime
from .normalize import normalize, number
from .storage import ObjectStore, Stored, case_guid, find_roster
from .types import ACTIVITY_SYSTEM, COLLECTIONS, FIELDS, LINE_ITEM_OF, LINE_ITEM_TYPES, RESULT_TYPES, ROSTER_REFS


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
                 now: datetime | None = None, devs: Deviations | None = None) -> None:
        self.store = store
        self.engine: Engine | None = store.engine if store is not None else None
        self.objects = ObjectStore(self.engine) if self.engine is not None else None
        self.tenant, self.source, self.version = tenant, source, version
        self.resolve = resolve or self._resolve_in_store
        self.now = now or utcnow()
        self.errors: list[ErrorDetail] = []
        #: tolerant CSV import (``devs`` not strict): references to unknown objects are held
        #: (``derived["unresolved"]``, one ``unresolved-reference`` warning per target); else errors
        self.devs = devs
        #: (type, sourcedId) -> the references it holds unresolved
        self.held: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._warned: set[tuple[str, str]] = set()

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
                derived = _with_held(derived, self.held.get((ty, sid)))
                plan.rows.append(Row(ty, sid, source, old.data if same else data, derived, old is None, bump=not same,
                                     original=old.derived if old is not None else {}))
                plan.outcome[(ty, sid)] = old is None
        derive.run(plan)
        if self.errors:
            raise ValidationError("invalid OneRoster gradebook data", errors=self.errors)
        plan.rows = [r for r in plan.rows if r.created or r.bump or r.derived != r.original]
        return plan

    def _check_refs(self, batch: dict[str, dict[str, tuple[dict[str, Any], Item]]]) -> None:
        """Every GUIDRef must name an object in the batch, the table or the rostering store."""
        wanted: dict[str, list[tuple[str, str, Item, str]]] = {}
        for ty, bucket in batch.items():
            for data, it in bucket.values():
                if data["status"] == "tobedeleted":
                    continue
                for name, kind, _, _ in FIELDS[ty]:
                    if kind.startswith("ref:") and name in data:
                        wanted.setdefault(kind[4:], []).append((data[name]["sourcedId"], name, it, data["sourcedId"]))
        for target, refs in wanted.items():
            sids = sorted({s for s, _, _, _ in refs})
            if target in ROSTER_REFS:
                known = set(self.resolve(ROSTER_REFS[target], sids))
            else:
                known = set(batch.get(target, {})) | {s for s, o in self.stored(target, sids).items() if o.data.get("status") == "active"}
            for sid, name, it, own in refs:
                if sid not in known:
                    self.unknown(target, sid, name, it, own)

    def unknown(self, target: str, sid: str, name: str, it: Item, own: str) -> None:
        """A reference to an object in neither the batch nor the store. Tolerant CSV import:
        the object is kept and holds it (``derived["unresolved"]``; a result whose student is
        held becomes evidence when a later import stores the student, ``csv_files``), with one
        ``unresolved-reference`` warning per target. Otherwise (REST writes, ``--strict``) the
        error it always was."""
        col = it.column(name)
        if self.devs is None or self.devs.strict:
            self.errors.append(ErrorDetail(f"{name} {sid!r}: no such {target} in this batch or the store", location=it.location, field=col))
            return
        if (target, sid) not in self._warned:
            self._warned.add((target, sid))
            self.devs.tolerate("unresolved-reference", f"{col} {sid!r}: no such {target} in the package or the store; kept as an "
                               "unresolved reference", location=it.location, field=col)
        self.held.setdefault((it.type, own), []).append({"field": name, "type": target, "sourcedId": sid})


def _with_held(derived: dict[str, Any], held: list[dict[str, str]] | None) -> dict[str, Any]:
    """``derived`` listing exactly the references held unresolved now (none: no list)."""
    if held:
        return {**derived, "unresolved": held}
    if "unresolved" in derived:
        return {k: v for k, v in derived.items() if k != "unresolved"}
    return derived


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
            self.guids = competency_ids_by_guid(self.p.engine, self.p.tenant, guids)
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
                if raw is not None and number(v["itemValueRHS"]) == raw:
                    return v["itemValueLHS"]
            except ValueError:
                continue
        return None
