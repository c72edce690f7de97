"""CASE 1.0 CFPackage <-> canonical records.

1EdTech *Competencies and Academic Standards Exchange (CASE) Service 1.0*: a CFPackage is one
CFDocument (a framework), its CFItems (competencies), CFAssociations (typed edges),
CFDefinitions (CFConcepts, CFSubjects, CFLicenses, CFItemTypes, CFAssociationGroupings) and
CFRubrics (criteria with levels).

Parsing (``parse_package``) validates, in this order, and reports *every* problem with its
JSON path (``$.CFItems[12].identifier``) before anything is stored:

1. JSON syntax (``MalformedInput``).
2. The published CFPackage JSON Schema, ``schemas/case/case-v1p0-cfpackage.schema.json``,
   with the tightenings described in ``schemas/case/README.md`` (anchored UUID pattern;
   ``uri``, ``date`` and ``date-time`` formats asserted): ``schema.validator()``, compiled
   predicates first and ``jsonschema`` only to phrase the errors of the objects they reject.
3. The rules no schema expresses: identifiers unique across the package; an item's or
   association's ``CFDocumentURI`` names the package's CFDocument; an association has at
   least one end (origin or destination) in the package (an end outside it is an external
   reference, which CASE allows, and is kept as such; an ``isChildOf`` end outside it is
   collected in ``CasePackage.outside`` for ``trees.check_tree`` to look up in the store); a
   rubric criterion's ``rubricId`` and a level's ``rubricCriterionId`` name their parents.
4. The canonical model's own constraints (e.g. a competency code is at most 255 characters),
   reported against the CASE member that carries the value.

Tolerant by default (issue 15; ``gateway.errors.Deviations``): a deviation with one reading is
normalised and reported with its kind and JSON path in ``CasePackage.deviations``; with
``strict`` it is an error instead. The kinds: ``null-member`` and ``number-as-string`` (the
schema validator's repairs), ``duplicate-object`` (an object listed again, identical in every
member, read once: items, associations, definitions, rubrics, criteria and levels; two
different objects under one identifier stay an error in both modes) and ``member-alias``
(OpenSALT's ``educationalLevel``; a singular CFDefinitions member such as ``CFSubject``).
A ``precedes`` cycle is legal CASE and nothing is normalised: ``CasePackage.notes`` lists it
(kind ``precedes-cycle``) in both modes.

Mapping (DESIGN section 3; member by member in ``fields``, back to CASE in ``emit``). A
record's native id is its CASE ``identifier`` (lower-case UUID), its source the connection
name, so a re-import lands on the same rows. Every CASE member with a canonical field maps onto
it; a member that has none, or whose value the canonical field cannot reproduce exactly
(``lastChangeDateTime`` without a zone, a ``licenseURI`` link object, an ``educationLevel``
written as a string...), is also kept in ``extensions["case"]``, so ``emit.Emitter`` rebuilds
the original field for field. A kept value is only used while it still maps to the canonical
value: edit the canonical field and the emitted CASE follows it.

- CFDocument -> Framework. ``extensions["case"]`` = ``{"document": members kept,
  "definitions": CFDefinitions as given, "rubrics": rubric skeletons, "members": the
  package's top-level members}``. CFDefinitions have no canonical record kind; they are
  few per framework and only ever read with it.
- CFItem -> Competency (``deprecated`` when the item is the origin of a ``replacedBy``).
- CFAssociation -> Relation. An end in the package gets its record id; every end keeps its
  CASE identifier (``*_guid``) and URI, so crosswalks to frameworks imported later resolve.
- CFRubricCriterion (with levels) -> ProficiencyScale. Levels are ranked by ``score`` when
  every level has a distinct one (``min_scaled`` = the score normalised over the rubric's
  range, so a scaled evidence score maps to the level it reached), else by ``position``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError as PydanticValidationError

from gateway.errors import Deviation, Deviations, ErrorDetail, MalformedInput, ValidationError
from gateway.model import (
    Competency,
    Framework,
    Identifier,
    ProficiencyLevel,
    ProficiencyScale,
    Record,
    Relation,
    RelationType,
    record_id,
)

from .fields import (
    ASSOCIATION_FIELDS,
    ASSOCIATION_TYPES,
    CANONICAL_TO_CASE,
    DEFINITION_KINDS,
    DOCUMENT_FIELDS,
    ID_SYSTEM,
    ITEM_ALIASES,
    ITEM_FIELDS,
    is_lossy,
    split_members,
    to_canonical,
)
from .formats import is_uuid
from .schema import json_type, validator


@dataclass(frozen=True)
class OutsideEnd:
    """One end of an isChildOf association that is not in its package: the child
    (``origin``) or the parent (``destination``), with the JSON path of the association."""

    path: str
    end: str
    identifier: str
    uri: str


@dataclass
class CasePackage:
    """A validated CFPackage as canonical records, ready for ``store.records.apply``."""

    framework: Framework
    competencies: list[Competency]
    relations: list[Relation]
    scales: list[ProficiencyScale]
    #: what the tolerant mode normalised (kinds, places, counts); in strict mode a
    #: deviation is an error instead
    deviations: Deviations = field(default_factory=Deviations)
    #: warnings about legal CASE that no mode refuses and nothing normalised (a precedes cycle)
    notes: list[Deviation] = field(default_factory=list)
    #: isChildOf ends outside the package, to look up in the store (``trees.check_tree``)
    outside: list[OutsideEnd] = field(default_factory=list)
    #: the store ``outside`` was checked against, once (``CaseAdapter.check_package``)
    trees_checked: bool = False

    @property
    def warnings(self) -> list[Deviation]:
        """The deviations with their place (``deviations.items``), then the notes."""
        return [*self.deviations.items, *self.notes]

    @property
    def records(self) -> list[Record]:
        return [self.framework, *self.competencies, *self.relations, *self.scales]

    @property
    def identifier(self) -> str:
        return self.framework.native_id

    @property
    def title(self) -> str:
        return self.framework.title


def load_json(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """Bytes/str -> the package object; MalformedInput when it is not JSON or not an object."""
    if isinstance(data, dict):
        return data
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput("the CFPackage is not valid JSON", errors=[ErrorDetail(str(exc), location="$")]) from None
    if not isinstance(obj, dict):
        raise ValidationError("the CFPackage was rejected", errors=[ErrorDetail(f"a CFPackage is a JSON object, not {json_type(obj)}", location="$")])
    return obj


def parse_package(data: bytes | str | dict[str, Any], *, tenant: str, source: str = "case", strict: bool = False,
                  devs: Deviations | None = None) -> CasePackage:
    """CFPackage JSON -> canonical records. Raises MalformedInput / ValidationError carrying
    every problem (JSON path, member, message); returns nothing partial. ``data`` given as a
    dict may be modified (normalised) in place. Deviations with one reading (a null member,
    a number written as a string, an object listed twice identically) are normalised and
    reported in ``devs`` (``CasePackage.deviations``); with ``strict`` they are errors."""
    devs = devs if devs is not None else Deviations(strict=strict)
    pkg = load_json(data)
    _definition_aliases(pkg, devs)
    errors, repaired, failed = validator().validate(pkg, strict=devs.strict)
    for w in repaired:  # the validator repairs only in tolerant mode: each repair is reported
        devs.tolerate(w.kind, w.message, location=w.location, field=w.field)
    if ("$", 0) in failed and not isinstance(pkg.get("CFDocument"), dict):
        raise ValidationError("the CFPackage was rejected; nothing was stored", errors=errors)
    mapper = _Mapper(pkg, tenant, source, failed, errors, devs)
    result = mapper.run()
    errors.extend(devs.errors.errors)
    if errors:
        raise ValidationError("the CFPackage was rejected; nothing was stored", errors=errors[:1000])
    assert result is not None
    result.deviations = devs
    return result


def _definition_aliases(pkg: dict[str, Any], devs: Deviations) -> None:
    """A CFDefinitions member written in the singular (``CFSubject`` for ``CFSubjects``, as
    CASS served it) is that member, when the plural is absent: renamed with a ``member-alias``
    deviation (strict: an error, and the schema reports the unknown member)."""
    defs = pkg.get("CFDefinitions")
    if not isinstance(defs, dict):
        return
    for plural in DEFINITION_KINDS:
        singular = plural[:-1]
        if singular in defs and plural not in defs and devs.tolerate(
                "member-alias", f"{singular!r} is not a CASE 1.0 member; read as {plural!r}",
                location=f"$.CFDefinitions.{singular}", field=singular):
            defs[plural] = defs.pop(singular)


def _norm_id(v: str) -> str:
    """A UUID's canonical spelling (8-4-4-4-12, lower case); ``v`` is known to be one."""
    return v.lower()


class _Mapper:
    def __init__(self, pkg: dict[str, Any], tenant: str, source: str, failed: set[tuple[str, int]], errors: list[ErrorDetail],
                 devs: Deviations) -> None:
        self.pkg, self.tenant, self.source, self.failed, self.errors, self.devs = pkg, tenant, source, failed, errors, devs
        self.seen: dict[str, tuple[str, Any]] = {}  # identifier -> (JSON path of its first use, the object)
        self.dups: set[int] = set()  # id() of the objects that repeat an earlier one exactly (collapsed)
        self.outside: list[OutsideEnd] = []
        self.notes: list[Deviation] = []

    def err(self, message: str, location: str, fld: str | None = None) -> None:
        self.errors.append(ErrorDetail(message, location=location, field=fld))

    def claim(self, ident: Any, path: str, obj: Any = None) -> bool:
        """Identifiers are unique across the package (CASE 1.0: each object's GUID). An object
        listed again identically in every member is one object listed twice: collapsed with a
        ``duplicate-object`` deviation (strict: an error). Two different objects under one
        identifier are an error in both modes. False when ``obj`` is such a repeat."""
        if not is_uuid(ident):
            return True  # the schema check already reported it
        key = ident.lower()
        first, first_obj = self.seen.setdefault(key, (path, obj))
        if first == path:
            return True
        if obj is not None and obj == first_obj and first_obj is not obj:
            if self.devs.tolerate("duplicate-object", f"{ident} is listed twice, identical in every member, at {first} and {path}; "
                                  "read once", location=path, field="identifier"):
                self.dups.add(id(obj))
            return False
        self.err(f"duplicate identifier {ident}: also used by {first}", f"{path}.identifier", "identifier")
        return True

    def _ok(self, member: str, i: int, obj: Any = None) -> bool:
        return (member, i) not in self.failed and id(obj) not in self.dups

    def kept(self, objs: list[Any]) -> list[Any]:
        """``objs`` without the collapsed repeats."""
        return [o for o in objs if id(o) not in self.dups] if self.dups else objs

    def run(self) -> CasePackage | None:
        pkg = self.pkg
        doc = pkg["CFDocument"]
        items = pkg.get("CFItems") if isinstance(pkg.get("CFItems"), list) else []
        assocs = pkg.get("CFAssociations") if isinstance(pkg.get("CFAssociations"), list) else []
        rubrics = pkg.get("CFRubrics") if isinstance(pkg.get("CFRubrics"), list) else []
        defs = pkg.get("CFDefinitions")
        if not is_uuid(doc.get("identifier")):
            return None
        self.claim(doc.get("identifier"), "$.CFDocument")
        doc_id = _norm_id(doc["identifier"])
        if isinstance(defs, dict):
            for kind in DEFINITION_KINDS:
                for i, d in enumerate(defs.get(kind) or []):
                    if isinstance(d, dict):
                        self.claim(d.get("identifier"), f"$.CFDefinitions.{kind}[{i}]", d)

        # -- items -----------------------------------------------------------------------------
        fw_rid = record_id(self.tenant, "framework", self.source, doc_id)
        in_items: set[str] = set()  # normalised identifiers of the package's items
        for i, it in enumerate(items):
            if not self._ok("CFItems", i) or not isinstance(it, dict) or not self.claim(it["identifier"], f"$.CFItems[{i}]", it):
                continue
            self._check_document_ref(it, doc_id, f"$.CFItems[{i}]")
            in_items.add(_norm_id(it["identifier"]))

        # -- associations: the ends, replacedBy, precedes -------------------------------------
        replaced: set[str] = set()
        in_pkg = in_items | {doc_id}
        for i, a in enumerate(assocs):
            if not self._ok("CFAssociations", i) or not isinstance(a, dict):
                continue
            path = f"$.CFAssociations[{i}]"
            if not self.claim(a["identifier"], path, a):
                continue
            self._check_document_ref(a, doc_id, path)
            o, d = a["originNodeURI"]["identifier"], a["destinationNodeURI"]["identifier"]
            on, dn = _maybe_norm(o), _maybe_norm(d)
            if on not in in_pkg and dn not in in_pkg:
                self.err(
                    f"neither end of this {a['associationType']} association is in the package: origin {o!r} and destination {d!r} "
                    "are neither a CFItem of it nor its CFDocument",
                    path,
                )
            elif a["associationType"] == "isChildOf":  # a tree edge with one end elsewhere: the store must hold it
                for end, ident, n in (("originNodeURI", o, on), ("destinationNodeURI", d, dn)):
                    if n not in in_pkg:
                        self.outside.append(OutsideEnd(path, end, ident, a[end]["uri"]))
            if a["associationType"] == "replacedBy" and on in in_items:
                replaced.add(on)

        # -- rubrics ----------------------------------------------------------------------------
        for i, r in enumerate(rubrics):
            if not self._ok("CFRubrics", i) or not isinstance(r, dict) or not self.claim(r["identifier"], f"$.CFRubrics[{i}]", r):
                continue
            for j, c in enumerate(r.get("CFRubricCriteria") or []):
                cp = f"$.CFRubrics[{i}].CFRubricCriteria[{j}]"
                if not self.claim(c["identifier"], cp, c):
                    continue
                if "rubricId" in c and _maybe_norm(c["rubricId"]) != _norm_id(r["identifier"]):
                    self.err(f"rubricId {c['rubricId']} does not name the rubric this criterion is in ({r['identifier']})", f"{cp}.rubricId", "rubricId")
                for k, lv in enumerate(c.get("CFRubricCriterionLevels") or []):
                    lp = f"{cp}.CFRubricCriterionLevels[{k}]"
                    if not self.claim(lv["identifier"], lp, lv):
                        continue
                    if "rubricCriterionId" in lv and _maybe_norm(lv["rubricCriterionId"]) != _norm_id(c["identifier"]):
                        self.err(f"rubricCriterionId {lv['rubricCriterionId']} does not name the criterion this level is in ({c['identifier']})",
                                 f"{lp}.rubricCriterionId", "rubricCriterionId")

        if self.errors:
            return None

        # -- records ----------------------------------------------------------------------------
        framework = self._framework(doc, doc_id, defs, rubrics)
        comps = [c for i, it in enumerate(items) if (c := self._competency(it, i, fw_rid, replaced)) is not None]
        item_ids = {c.native_id: c.id for c in comps}  # the models derived the ids: no second uuid5
        rels = [r for i, a in enumerate(assocs) if (r := self._relation(a, i, fw_rid, item_ids)) is not None]
        scales = [s for i, r in enumerate(rubrics) for s in self._scales(r, i, fw_rid, item_ids)]
        if framework is None or self.errors:
            return None
        self._precedes_cycles(rels, comps)
        return CasePackage(framework, comps, rels, scales, outside=self.outside, notes=self.notes)

    def _check_document_ref(self, obj: dict[str, Any], doc_id: str, path: str) -> None:
        ref = obj.get("CFDocumentURI")
        if isinstance(ref, dict) and is_uuid(ref.get("identifier")) and _norm_id(ref["identifier"]) != doc_id:
            self.err(f"CFDocumentURI names document {ref['identifier']}, but this package's CFDocument is {doc_id}",
                     f"{path}.CFDocumentURI", "CFDocumentURI")

    def _model(self, cls: type[Record], kwargs: dict[str, Any], path: str, kind: str) -> Any:
        try:
            return cls(**kwargs)
        except PydanticValidationError as exc:
            names = CANONICAL_TO_CASE.get(kind, {})
            for e in exc.errors(include_url=False, include_input=False):
                canon = str(e["loc"][0]) if e["loc"] else None
                member = names.get(canon or "", canon)
                self.err(e["msg"], f"{path}.{member}" if member else path, member)
            return None

    def _framework(self, doc: dict[str, Any], doc_id: str, defs: Any, rubrics: list[Any]) -> Framework | None:
        canon: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        split_members(doc, DOCUMENT_FIELDS, canon, kept)
        ext: dict[str, Any] = {"document": kept, "members": list(self.pkg)}
        if "CFDefinitions" in self.pkg:
            ext["definitions"] = {k: self.kept(v) if isinstance(v, list) else v for k, v in defs.items()} \
                if self.dups and isinstance(defs, dict) else defs
        if rubrics:
            ext["rubrics"] = [self._rubric_skeleton(r) for r in self.kept(rubrics)]
        idents = [Identifier(system=ID_SYSTEM, kind="case.identifier", value=doc_id)]
        if doc.get("uri"):
            idents.append(Identifier(system=ID_SYSTEM, kind="case.uri", value=doc["uri"]))
        return self._model(Framework, {
            "tenant": self.tenant, "source": self.source, "native_id": doc_id, "identifiers": idents,
            "source_updated_at": canon.get("published_at"), "extensions": {"case": ext}, **canon,
        }, "$.CFDocument", "framework")

    def _competency(self, it: Any, i: int, fw_rid: uuid.UUID, replaced: set[str]) -> Competency | None:
        if not self._ok("CFItems", i, it) or not isinstance(it, dict):
            return None
        canon: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        split_members(it, ITEM_FIELDS, canon, kept)
        if "educationLevel" not in it:
            for alias, member in ITEM_ALIASES.items():
                if alias in it and self.devs.tolerate("member-alias", f"{alias!r} is not a CASE 1.0 member; read as {member!r} "
                                                      "(an early OpenSALT spelling)", location=f"$.CFItems[{i}].{alias}", field=alias):
                    canon["education_levels"] = to_canonical("list", it[alias])
                    kept.pop(alias, None)  # normalised: exported as the CASE member
        nid = str(canon["guid"])
        idents = [{"system": ID_SYSTEM, "kind": "case.identifier", "value": nid}, {"system": ID_SYSTEM, "kind": "case.uri", "value": it["uri"]}]
        return self._model(Competency, {
            "tenant": self.tenant, "source": self.source, "native_id": nid, "framework_id": fw_rid, "identifiers": idents,
            "deprecated": nid in replaced, "source_updated_at": canon.get("published_at"), "extensions": {"case": kept}, **canon,
        }, f"$.CFItems[{i}]", "competency")

    def _relation(self, a: Any, i: int, fw_rid: uuid.UUID, item_ids: dict[str, uuid.UUID]) -> Relation | None:
        if not self._ok("CFAssociations", i, a) or not isinstance(a, dict):
            return None
        nid = _norm_id(a["identifier"])
        canon: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        ends: dict[str, Any] = {}
        for k, v in a.items():
            if k in ASSOCIATION_FIELDS:
                name, kind = ASSOCIATION_FIELDS[k]
                cv = to_canonical(kind, v)
                canon[name] = cv
                if is_lossy(kind, v, cv):
                    kept[k] = v
            elif k == "identifier":
                if v != nid:
                    kept[k] = v
            elif k == "associationType":
                canon["type"] = ASSOCIATION_TYPES[v]
            elif k in ("originNodeURI", "destinationNodeURI"):
                end = "origin" if k[0] == "o" else "destination"
                ident = v["identifier"]
                n = _maybe_norm(ident)
                ends[f"{end}_guid"] = n  # a UUID string (pydantic parses it) or None
                ends[f"{end}_uri"] = v["uri"]
                if n in item_ids:
                    ends[f"{end}_id"] = item_ids[n]
                link = {"title": v["title"]}
                if n != ident:
                    link["identifier"] = ident
                kept[k] = link
            elif k == "CFAssociationGroupingURI" and isinstance(v, dict):
                canon["grouping"] = _maybe_norm(v["identifier"]) or v["identifier"]
                kept[k] = {m: x for m, x in v.items() if m != "identifier" or x != canon["grouping"]}
            else:
                kept[k] = v
        return self._model(Relation, {
            "tenant": self.tenant, "source": self.source, "native_id": nid, "framework_id": fw_rid,
            "source_updated_at": canon.get("published_at"), "extensions": {"case": kept}, **ends, **canon,
        }, f"$.CFAssociations[{i}]", "relation")

    def _scales(self, r: Any, i: int, fw_rid: uuid.UUID, item_ids: dict[str, uuid.UUID]) -> list[ProficiencyScale]:
        if not self._ok("CFRubrics", i, r) or not isinstance(r, dict):
            return []
        out = []
        for j, c in enumerate(r.get("CFRubricCriteria") or []):
            if id(c) in self.dups:
                continue
            levels_raw = self.kept(c.get("CFRubricCriterionLevels") or [])
            if not levels_raw:
                continue
            path = f"$.CFRubrics[{i}].CFRubricCriteria[{j}]"
            levels = _levels(levels_raw)
            item = c.get("CFItemURI")
            comp = item_ids.get(_maybe_norm(item["identifier"]) or "") if isinstance(item, dict) else None
            title = r.get("title") or "Rubric"
            if c.get("category"):
                title = f"{title}: {c['category']}"
            criterion = {k: v for k, v in c.items() if k != "CFRubricCriterionLevels"}
            scale = self._model(ProficiencyScale, {
                "tenant": self.tenant, "source": self.source, "native_id": _norm_id(c["identifier"]),
                "title": title[:512], "framework_id": fw_rid, "competency_id": comp, "description": c.get("description"),
                "levels": levels, "source_updated_at": to_canonical("datetime", c.get("lastChangeDateTime")),
                "extensions": {"case": {"criterion": criterion, "levels": levels_raw, "hasLevels": "CFRubricCriterionLevels" in c}},
            }, path, "proficiency_scale")
            if scale is not None:
                out.append(scale)
        return out

    def _rubric_skeleton(self, r: dict[str, Any]) -> dict[str, Any]:
        """A rubric's own members, and its criteria as references to their ProficiencyScale (or
        in full, when a criterion has no level and so no scale)."""
        sk = {k: v for k, v in r.items() if k != "CFRubricCriteria"}
        if "CFRubricCriteria" in r:
            sk["CFRubricCriteria"] = [
                {"scale": _norm_id(c["identifier"])} if c.get("CFRubricCriterionLevels") else {"raw": c}
                for c in self.kept(r["CFRubricCriteria"])
            ]
        return sk

    def _precedes_cycles(self, rels: list[Relation], comps: list[Competency]) -> None:
        """A precedes cycle is legal CASE but no learning path: warn, naming the items."""
        graph: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for r in rels:
            if r.type is RelationType.precedes and r.origin_id and r.destination_id:
                graph[r.origin_id].append(r.destination_id)
        if not graph:
            return
        names = {c.id: c.code or c.native_id for c in comps}
        for cycle in find_cycles(graph, limit=5):
            chain = " -> ".join(str(names.get(x, x)) for x in cycle)
            self.notes.append(Deviation(f"precedes associations form a cycle: {chain}", "$.CFAssociations", "associationType", "precedes-cycle"))


def find_cycles(graph: dict[Any, list[Any]], *, limit: int = 5) -> list[list[Any]]:
    """Up to ``limit`` cycles of a directed graph, each as [a, b, ..., a] (iterative DFS)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color: dict[Any, int] = defaultdict(int)
    cycles: list[list[Any]] = []
    for start in list(graph):
        if color[start] != WHITE:
            continue
        stack: list[tuple[Any, Iterable[Any]]] = [(start, iter(graph.get(start, ())))]
        on_path = [start]
        color[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_path.pop()
                color[node] = BLACK
                continue
            if color[nxt] == GREY:
                cycles.append(on_path[on_path.index(nxt):] + [nxt])
                if len(cycles) >= limit:
                    return cycles
            elif color[nxt] == WHITE:
                color[nxt] = GREY
                on_path.append(nxt)
                stack.append((nxt, iter(graph.get(nxt, ()))))
    return cycles


def _maybe_norm(v: Any) -> str | None:
    return v.lower() if is_uuid(v) else None


def _levels(raw: list[dict[str, Any]]) -> list[ProficiencyLevel]:
    """CFRubricCriterionLevels -> ranked levels (see the module docstring)."""
    scores = [lv.get("score") for lv in raw]
    by_score = all(isinstance(s, (int, float)) for s in scores) and len(set(scores)) == len(scores)
    if by_score:
        order = sorted(range(len(raw)), key=lambda k: scores[k])
    else:
        order = sorted(range(len(raw)), key=lambda k: (raw[k].get("position") if isinstance(raw[k].get("position"), int) else k, k))
    lo = min(scores) if by_score else 0
    span = (max(scores) - lo) if by_score else 0
    out = []
    for rank, k in enumerate(order):
        lv = raw[k]
        label = (lv.get("quality") or lv.get("description") or f"Level {rank + 1}").strip()[:256] or f"Level {rank + 1}"
        out.append(ProficiencyLevel(
            code=_norm_id(lv["identifier"]), label=label, rank=rank, description=lv.get("description"),
            min_scaled=((scores[k] - lo) / span if span else 0.0) if by_score and len(raw) > 1 else None,
        ))
    return out





__all__ = ["CasePackage", "find_cycles", "load_json", "parse_package"]
