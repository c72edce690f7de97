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
   ``uri``, ``date`` and ``date-time`` formats asserted). ``jsonschema`` phrases the errors.
   Running ``jsonschema`` over 60,000 objects takes longer than the whole import may (about
   4.6 s for the benchmark package), so each object is first checked by a predicate compiled
   from the same schema file (``_Compiler``); only the objects it rejects go to
   ``jsonschema`` (tests/test_case_cf_package.py checks that both agree).
3. The rules no schema expresses: identifiers unique across the package; an item's or
   association's ``CFDocumentURI`` names the package's CFDocument; an association has at
   least one end (origin or destination) in the package (an end outside it is an external
   reference, which CASE allows, and is kept as such); a rubric criterion's ``rubricId`` and a
   level's ``rubricCriterionId`` name their parents.
4. The canonical model's own constraints (e.g. a competency code is at most 255 characters),
   reported against the CASE member that carries the value.

Mapping (DESIGN section 3). A record's native id is its CASE ``identifier`` (lower-case
UUID), its source the connection name, so a re-import lands on the same rows. Every CASE
member with a canonical field maps onto it; a member that has none, or whose value the
canonical field cannot reproduce exactly (``lastChangeDateTime`` without a zone, a
``licenseURI`` link object, an ``educationLevel`` written as a string...), is also kept in
``extensions["case"]``, so ``emit_package`` rebuilds the original field for field. A kept
value is only used while it still maps to the canonical value: edit the canonical field and
the emitted CASE follows it.

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

import copy
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from pydantic import ValidationError as PydanticValidationError

from gateway import PROJECT_ROOT
from gateway.errors import ErrorDetail, MalformedInput, ValidationError
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

SCHEMA_FILE = PROJECT_ROOT / "schemas" / "case" / "case-v1p0-cfpackage.schema.json"

#: Identifier system for CASE identifiers and URIs. CASE identifiers are globally unique
#: (1EdTech CASE 1.0 Information Model: UUID), so they live in one namespace, "case",
#: whichever connection brought the framework in.
ID_SYSTEM = "case"

#: CASE associationType <-> canonical RelationType (CASE 1.0 Information Model, CFAssociation)
ASSOCIATION_TYPES: dict[str, RelationType] = {
    "isChildOf": RelationType.is_child_of,
    "isPeerOf": RelationType.is_peer_of,
    "isPartOf": RelationType.is_part_of,
    "exactMatchOf": RelationType.exact_match_of,
    "precedes": RelationType.precedes,
    "isRelatedTo": RelationType.is_related_to,
    "replacedBy": RelationType.replaced_by,
    "exemplar": RelationType.exemplar,
    "hasSkillLevel": RelationType.has_skill_level,
}
RELATION_TO_CASE = {v.value: k for k, v in ASSOCIATION_TYPES.items()}

DEFINITION_KINDS = ("CFConcepts", "CFSubjects", "CFLicenses", "CFItemTypes", "CFAssociationGroupings")

# --- formats: asserted, as CASE 1.0 defines the primitive types ------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\"<>\\^`{|}]+")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def is_date(v: object) -> bool:
    """CASE Date: ``YYYY-MM-DD``, a real calendar date."""
    if not isinstance(v, str) or not _DATE.fullmatch(v):
        return not isinstance(v, str)
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


def is_datetime(v: object) -> bool:
    """CASE DateTime (xs:dateTime): ``YYYY-MM-DDThh:mm:ss[.f]`` with an optional zone."""
    if not isinstance(v, str):
        return True
    if not _DATETIME.fullmatch(v):
        return False
    try:
        parse_datetime(v)
    except ValueError:
        return False
    return True


def is_uri(v: object) -> bool:
    """An absolute URI (RFC 3986: scheme ":" hier-part), without whitespace."""
    return not isinstance(v, str) or bool(_URI.fullmatch(v))


def is_uuid(v: object) -> bool:
    return isinstance(v, str) and bool(_UUID.fullmatch(v))


@lru_cache(maxsize=8192)
def parse_datetime(v: str) -> datetime:
    """A CASE DateTime as an aware datetime; a value without a zone is taken as UTC.
    (Cached: a framework's objects share a handful of timestamps.)"""
    s = v[:-1] + "+00:00" if v.endswith("Z") else v
    m = re.search(r"T.*([+-])(\d{2})(\d{2})$", s)
    if m:  # +hhmm -> +hh:mm
        s = s[: m.start(1)] + f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    dt = datetime.fromisoformat(s)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


FORMATS: dict[str, tuple[Callable[[object], bool], str]] = {
    "date": (is_date, "a date, YYYY-MM-DD"),
    "date-time": (is_datetime, "a date-time, YYYY-MM-DDThh:mm:ss with an optional zone"),
    "uri": (is_uri, "an absolute URI"),
}

# --- the schema: loaded once, tightened, compiled ---------------------------------------------


@lru_cache(maxsize=1)
def published_schema() -> dict[str, Any]:
    """The CFPackage schema exactly as published (schemas/case/)."""
    return orjson.loads(SCHEMA_FILE.read_bytes())


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The published schema with the UUID pattern anchored (schemas/case/README.md)."""
    s = copy.deepcopy(published_schema())
    p = s["definitions"]["UUID"]["pattern"]
    s["definitions"]["UUID"]["pattern"] = f"^{p.strip('^$')}$"
    jsonschema.Draft7Validator.check_schema(s)
    return s


def _format_checker() -> jsonschema.FormatChecker:
    fc = jsonschema.FormatChecker(formats=())
    for name, (check, _) in FORMATS.items():
        fc.checks(name)(check)
    return fc


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _is_type(v: object, t: str) -> bool:
    if t == "string":
        return isinstance(v, str)
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if isinstance(v, bool):
        return False
    if t == "integer":
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float))
    return False


Pred = Callable[[Any], bool]


class _Compiler:
    """Compiles the subset of JSON Schema draft 7 the CFPackage schema uses into plain
    predicates: ``$ref``, ``type``, ``enum``, ``pattern``, ``format``, ``properties``,
    ``required``, ``additionalProperties``, ``items``, ``minItems``, ``maxItems``, ``oneOf``.
    A keyword outside this subset is a configuration error, never silently accepted."""

    KNOWN = {"$ref", "type", "enum", "pattern", "format", "properties", "required", "additionalProperties",
             "items", "minItems", "maxItems", "oneOf", "definitions", "description", "title", "$schema", "$id"}

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.defs: dict[str, Any] = root.get("definitions", {})
        self._refs: dict[str, Pred] = {}
        self._by_id: dict[int, Pred] = {}

    def resolve(self, s: dict[str, Any]) -> dict[str, Any]:
        while isinstance(s, dict) and "$ref" in s:
            s = self.defs[s["$ref"].rsplit("/", 1)[-1]]
        return s

    def ref(self, name: str) -> Pred:
        if name not in self._refs:
            self._refs[name] = lambda v: self._refs[name](v)  # placeholder for recursive schemas
            self._refs[name] = self.compile(self.defs[name])
        return self._refs[name]

    def compile(self, s: Any) -> Pred:
        key = id(s)
        if key in self._by_id:
            return self._by_id[key]
        fn = self._compile(s)
        self._by_id[key] = fn
        return fn

    def _compile(self, s: Any) -> Pred:
        if s is True or s == {}:
            return lambda v: True
        if s is False:
            return lambda v: False
        if "$ref" in s:  # draft 7: siblings of $ref are ignored
            return self.ref(s["$ref"].rsplit("/", 1)[-1])
        if not (set(s) & self.KNOWN):  # e.g. additionalProperties: {"CFDocumentURI": ...}: no keyword, admits anything
            return lambda v: True
        unknown = set(s) - self.KNOWN
        if unknown:
            raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported by the CFPackage validator")
        checks: list[Pred] = []
        types = s.get("type")
        types = [types] if isinstance(types, str) else types
        if types == ["string"] and set(s) & {"pattern", "format", "enum"}:
            # the hot case (identifiers, URIs, dates): one function, no generic dispatch
            search = re.compile(s["pattern"]).search if "pattern" in s else None
            fmt = FORMATS[s["format"]][0] if s.get("format") in FORMATS else None
            allowed = frozenset(s["enum"]) if "enum" in s else None

            def string(v: Any) -> bool:
                return (isinstance(v, str) and (search is None or search(v) is not None) and (fmt is None or fmt(v))
                        and (allowed is None or v in allowed))

            if not set(s) - {"type", "pattern", "format", "enum", "description"}:
                return string
            checks.append(string)
        elif types:
            if types == ["string"]:
                checks.append(lambda v: isinstance(v, str))
            elif types == ["object"]:
                checks.append(lambda v: isinstance(v, dict))
            elif types == ["array"]:
                checks.append(lambda v: isinstance(v, list))
            else:
                checks.append(lambda v, ts=tuple(types): any(_is_type(v, t) for t in ts))
            if "enum" in s:
                allowed_list = list(s["enum"])
                checks.append(lambda v: v in allowed_list)
            if "pattern" in s:
                search2 = re.compile(s["pattern"]).search
                checks.append(lambda v: not isinstance(v, str) or search2(v) is not None)
            if "format" in s and s["format"] in FORMATS:
                checks.append(FORMATS[s["format"]][0])
        else:
            if "enum" in s:
                allowed_list2 = list(s["enum"])
                checks.append(lambda v: v in allowed_list2)
            if "pattern" in s:
                search3 = re.compile(s["pattern"]).search
                checks.append(lambda v: not isinstance(v, str) or search3(v) is not None)
            if "format" in s and s["format"] in FORMATS:
                checks.append(FORMATS[s["format"]][0])
        if "properties" in s or "required" in s or "additionalProperties" in s:
            checks.append(self._object(s))
        if "items" in s or "minItems" in s or "maxItems" in s:
            item = self.compile(s["items"]) if "items" in s else None
            lo, hi = s.get("minItems", 0), s.get("maxItems")

            def arr(v: Any) -> bool:
                if not isinstance(v, list):
                    return True
                if len(v) < lo or (hi is not None and len(v) > hi):
                    return False
                return item is None or all(item(x) for x in v)

            checks.append(arr)
        if "oneOf" in s:
            branches = [self.compile(b) for b in s["oneOf"]]
            checks.append(lambda v: sum(1 for b in branches if b(v)) == 1)
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            c1, c2 = checks
            return lambda v: c1(v) and c2(v)

        def every(v: Any) -> bool:
            for c in checks:
                if not c(v):
                    return False
            return True

        return every

    def _object(self, s: dict[str, Any]) -> Pred:
        props = {k: self.compile(v) for k, v in s.get("properties", {}).items()}
        required = tuple(s.get("required", ()))
        addl = s.get("additionalProperties", True)
        closed = addl is False
        extra = None if closed or addl is True else self.compile(addl)

        def obj(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for r in required:
                if r not in v:
                    return False
            for k, x in v.items():
                f = props.get(k)
                if f is not None:
                    if not f(x):
                        return False
                elif closed or (extra is not None and not extra(x)):
                    return False
            return True

        return obj


@dataclass
class _Unit:
    """One validation unit: a definition of the schema and its jsonschema validator."""

    predicate: Pred
    validator: jsonschema.protocols.Validator
    schema: dict[str, Any]


class _Validator:
    #: package member -> the schema definition of one of its elements, validated one by one
    ELEMENTS = {"CFItems": "CFPackageItem", "CFAssociations": "CFPackageAssociation", "CFRubrics": "CFRubric"}

    def __init__(self) -> None:
        self.schema = schema()
        self.compiler = _Compiler(self.schema)
        fc = _format_checker()
        defs = self.schema["definitions"]

        def unit(sub: dict[str, Any]) -> _Unit:
            full = {**sub, "definitions": defs} if "$ref" not in sub else {"$ref": sub["$ref"], "definitions": defs}
            return _Unit(self.compiler.compile(sub), jsonschema.Draft7Validator(full, format_checker=fc), sub)

        self.root = unit(self.schema)
        self.elements = {name: unit(defs[d]) for name, d in self.ELEMENTS.items()}
        self.uuid_pattern = defs["UUID"]["pattern"]

    def validate(self, pkg: dict[str, Any], *, strict: bool) -> tuple[list[ErrorDetail], list[ErrorDetail], set[tuple[str, int]]]:
        """Returns (errors, warnings, the (member, index) of every element that failed)."""
        errors: list[ErrorDetail] = []
        warnings: list[ErrorDetail] = []
        failed: set[tuple[str, int]] = set()
        skeleton = {k: ([] if k in self.ELEMENTS and isinstance(v, list) else v) for k, v in pkg.items()}
        if not self._check(self.root, skeleton, "$", strict, errors, warnings):
            failed.add(("$", 0))
        for k in list(pkg):  # repairs of top-level members (a null dropped) apply to the package
            if k not in skeleton:
                del pkg[k]
        for name, u in self.elements.items():
            items = pkg.get(name)
            if not isinstance(items, list):
                continue
            pred = u.predicate
            for i, el in enumerate(items):
                if not pred(el) and not self._check(u, el, f"$.{name}[{i}]", strict, errors, warnings, checked=True):
                    failed.add((name, i))
        return errors, warnings, failed

    def _check(self, u: _Unit, obj: Any, path: str, strict: bool, errors: list[ErrorDetail], warnings: list[ErrorDetail],
               *, checked: bool = False) -> bool:
        if not checked and u.predicate(obj):
            return True
        if not strict:
            repaired: list[ErrorDetail] = []
            self._repair(u.schema, obj, path, repaired)
            warnings.extend(repaired)
            if repaired and u.predicate(obj):
                return True
        found = [d for err in u.validator.iter_errors(obj) for d in self._render(err, path)]
        if not found:  # the compiled predicate was stricter than jsonschema: jsonschema decides
            return True
        errors.extend(found)
        return False

    # -- the two deviations real providers produce, normalised with a warning ------------------

    def _repair(self, s: Any, v: Any, path: str, out: list[ErrorDetail]) -> None:
        s = self.compiler.resolve(s)
        if not isinstance(s, dict):
            return
        if isinstance(v, dict) and "properties" in s:
            props, required = s["properties"], set(s.get("required", ()))
            for k in list(v):
                sub = props.get(k)
                if sub is None:
                    continue
                x = v[k]
                if x is None and k not in required and not self.compiler.compile(sub)(None):
                    del v[k]
                    out.append(ErrorDetail("null is not allowed here; the member was ignored", location=f"{path}.{k}", field=k))
                elif isinstance(x, str) and (num := self._as_number(sub, x)) is not None:
                    v[k] = num
                    out.append(ErrorDetail(f"a number written as a string ({x!r}) was read as {num}", location=f"{path}.{k}", field=k))
                else:
                    self._repair(sub, x, f"{path}.{k}", out)
        elif isinstance(v, list) and "items" in s:
            for i, x in enumerate(v):
                self._repair(s["items"], x, f"{path}[{i}]", out)
        elif "oneOf" in s:
            fits = [b for b in s["oneOf"] if self._type_fits(b, v)]
            if len(fits) == 1:
                self._repair(fits[0], v, path, out)

    def _as_number(self, sub: Any, x: str) -> int | float | None:
        t = self.compiler.resolve(sub).get("type")
        if t == "integer" and re.fullmatch(r"-?\d{1,10}", x.strip()):
            return int(x)
        if t == "number" and re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", x.strip()):
            f = float(x)
            return int(f) if f.is_integer() and "." not in x and "e" not in x.lower() else f
        return None

    def _type_fits(self, branch: Any, v: Any) -> bool:
        t = self.compiler.resolve(branch).get("type")
        if t is None:
            return True
        return any(_is_type(v, x) for x in (t if isinstance(t, list) else [t]))

    # -- jsonschema errors -> ErrorDetail(JSON path, member, clear message) ----------------------

    def _render(self, err: jsonschema.ValidationError, base: str) -> list[ErrorDetail]:
        path = json_path(base, err.absolute_path)
        member = next((p for p in reversed(err.absolute_path) if isinstance(p, str)), None)
        v, kw = err.instance, err.validator
        if kw == "oneOf":
            fits = [i for i, b in enumerate(err.validator_value) if self._type_fits(b, v)]
            if len(fits) == 1:
                inner = [e for e in err.context or [] if e.relative_schema_path and e.relative_schema_path[0] == fits[0]]
                if inner:
                    return [d for e in inner for d in self._render(e, base)]
            forms = " or ".join(self._describe(b) for b in err.validator_value)
            return [ErrorDetail(f"{_short(v)} is not valid here: expected {forms}", location=path, field=member)]
        if kw == "required":
            m = re.match(r"'(.+)' is a required property", err.message)
            name = m.group(1) if m else str(err.validator_value)
            return [ErrorDetail(f"the required member {name!r} is missing", location=f"{path}.{name}", field=name)]
        if kw == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            extras = sorted(k for k in v if k not in allowed) if isinstance(v, dict) else []
            return [ErrorDetail(f"{k!r} is not a member CASE 1.0 defines here", location=f"{path}.{k}", field=k) for k in extras]
        if kw == "type":
            want = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
            return [ErrorDetail(f"must be of type {want}, not {_json_type(v)}", location=path, field=member)]
        if kw == "enum":
            if member == "associationType":
                msg = f"unknown associationType {_short(v)}; CASE 1.0 defines {', '.join(err.validator_value)}"
            else:
                msg = f"{_short(v)} is not one of {', '.join(map(str, err.validator_value))}"
            return [ErrorDetail(msg, location=path, field=member)]
        if kw == "pattern" and err.validator_value == self.uuid_pattern:
            return [ErrorDetail(f"{_short(v)} is not a UUID (8-4-4-4-12 hexadecimal digits)", location=path, field=member)]
        if kw == "format":
            what = FORMATS.get(err.validator_value, (None, err.validator_value))[1]
            return [ErrorDetail(f"{_short(v)} is not {what}", location=path, field=member)]
        if kw in ("minItems", "maxItems"):
            return [ErrorDetail(f"array has {len(v)} element(s); {kw} is {err.validator_value}", location=path, field=member)]
        return [ErrorDetail(err.message[:300], location=path, field=member)]

    def _describe(self, branch: Any) -> str:
        r = self.compiler.resolve(branch)
        name = branch["$ref"].rsplit("/", 1)[-1] if isinstance(branch, dict) and "$ref" in branch else None
        if name:
            return f"a {name} object" if r.get("type", "object") == "object" else name
        if "format" in r:
            return FORMATS.get(r["format"], (None, r["format"]))[1]
        if r.get("type") == "array" and r.get("maxItems") == 0:
            return "an empty array"
        t = r.get("type")
        return " or ".join(t) if isinstance(t, list) else str(t)


def _short(v: Any) -> str:
    s = repr(v) if isinstance(v, str) else orjson.dumps(v).decode() if not isinstance(v, (dict, list)) else f"a JSON {_json_type(v)}"
    return s if len(s) <= 80 else s[:77] + "..."


def json_path(base: str, parts: Iterable[Any]) -> str:
    out = [base]
    for p in parts:
        out.append(f"[{p}]" if isinstance(p, int) else f".{p}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(p)) else f"[{orjson.dumps(p).decode()}]")
    return "".join(out)


@lru_cache(maxsize=1)
def validator() -> _Validator:
    return _Validator()


# --- field mapping CASE <-> canonical -----------------------------------------------------------
#
# kind: how a CASE member's value becomes the canonical field's value (to_c) and back
# (from_c). A value that does not come back identical is also kept in extensions["case"].


def _to_c(kind: str, v: Any) -> Any:
    if v is None:
        return [] if kind == "list" else None
    if kind == "uuid":
        return v.lower()  # the schema checked the 8-4-4-4-12 form; pydantic makes the UUID (in Rust)
    if kind == "date":
        return date.fromisoformat(v[:10])
    if kind == "datetime":
        return parse_datetime(v)
    if kind == "list":
        return list(v) if isinstance(v, list) else [p.strip() for p in str(v).split(",") if p.strip()]
    if kind == "link":
        return v.get("uri") if isinstance(v, dict) else None
    return v


def _from_c(kind: str, v: Any) -> Any:
    if v is None or (kind == "list" and not v):
        return None
    if kind == "uuid":
        return str(v)
    if kind in ("date", "datetime"):
        return v.isoformat()
    if kind == "link":
        return None  # a LinkURI needs a title and an identifier the canonical field does not hold
    if kind == "list":
        return list(v)
    return v


def _load_c(kind: str, v: Any) -> Any:
    """A canonical field as stored (JSON) -> the Python value _to_c produces."""
    if v is None:
        return [] if kind == "list" else None
    if kind == "uuid":
        return str(v).lower()
    if kind == "date":
        return date.fromisoformat(v)
    if kind == "datetime":
        return parse_datetime(v)
    return v


# CASE member -> (canonical field, kind). Order = the order members are emitted in.
DOCUMENT_FIELDS: dict[str, tuple[str, str]] = {
    "identifier": ("guid", "uuid"),
    "uri": ("uri", "str"),
    "creator": ("creator", "str"),
    "title": ("title", "str"),
    "lastChangeDateTime": ("published_at", "datetime"),
    "officialSourceURL": ("official_source_url", "str"),
    "publisher": ("publisher", "str"),
    "description": ("description", "str"),
    "subject": ("subjects", "list"),
    "language": ("language", "str"),
    "version": ("version", "str"),
    "adoptionStatus": ("adoption_status", "str"),
    "statusStartDate": ("status_start_date", "date"),
    "statusEndDate": ("status_end_date", "date"),
    "licenseURI": ("license_uri", "link"),
    "notes": ("notes", "str"),
}
ITEM_FIELDS: dict[str, tuple[str, str]] = {
    "identifier": ("guid", "uuid"),
    "fullStatement": ("statement", "str"),
    "alternativeLabel": ("alternative_label", "str"),
    "CFItemType": ("item_type", "str"),
    "uri": ("uri", "str"),
    "humanCodingScheme": ("code", "str"),
    "listEnumeration": ("list_enumeration", "str"),
    "abbreviatedStatement": ("short_statement", "str"),
    "conceptKeywords": ("concept_keywords", "list"),
    "notes": ("notes", "str"),
    "language": ("language", "str"),
    "educationLevel": ("education_levels", "list"),
    "licenseURI": ("license_uri", "link"),
    "statusStartDate": ("status_start_date", "date"),
    "statusEndDate": ("status_end_date", "date"),
    "lastChangeDateTime": ("published_at", "datetime"),
}
#: Members some providers use in place of the CASE name (OpenSALT's early "educationalLevel").
ITEM_ALIASES = {"educationalLevel": "educationLevel"}
ASSOCIATION_FIELDS: dict[str, tuple[str, str]] = {
    "sequenceNumber": ("sequence", "int"),
    "lastChangeDateTime": ("published_at", "datetime"),
}
CANONICAL_TO_CASE = {
    "framework": {c: k for k, (c, _) in DOCUMENT_FIELDS.items()},
    "competency": {c: k for k, (c, _) in ITEM_FIELDS.items()},
    "relation": {"sequence": "sequenceNumber", "published_at": "lastChangeDateTime", "type": "associationType",
                 "origin_uri": "originNodeURI", "destination_uri": "destinationNodeURI", "grouping": "CFAssociationGroupingURI"},
}


def _split(raw: dict[str, Any], spec: dict[str, tuple[str, str]], canon: dict[str, Any], kept: dict[str, Any]) -> None:
    """CASE members -> canonical fields (in ``canon``) and the members kept for round trips."""
    for k, v in raw.items():
        f = spec.get(k)
        if f is None:
            kept[k] = v
            continue
        name, kind = f
        cv = _to_c(kind, v)
        canon[name] = cv
        if _lossy(kind, v, cv):
            kept[k] = v


def _lossy(kind: str, raw: Any, canonical: Any) -> bool:
    """Would the canonical value, as stored, not give back ``raw``? Date-times always keep the
    publisher's spelling (the store writes UTC as "Z", CASE providers mostly "+00:00")."""
    return raw is None or kind == "datetime" or _from_c(kind, canonical) != raw


def _join(doc: dict[str, Any], spec: dict[str, tuple[str, str]], kept: dict[str, Any], out: dict[str, Any],
          skip: frozenset[str] = frozenset()) -> None:
    """Canonical fields (as stored, JSON) + kept members -> CASE members; a kept value is used
    only while it still maps to the canonical value. A stored canonical value is already in
    CASE's form (UUIDs lower case, ISO 8601 dates and date-times), except a link's URI."""
    for k, (name, kind) in spec.items():
        v = doc.get(name)
        if k in kept:
            try:
                same = _to_c(kind, kept[k]) == _load_c(kind, v)
            except (ValueError, TypeError, AttributeError):
                same = False
            if same:
                out[k] = kept[k]
                continue
        if v is None or v == [] or kind == "link" or k in skip:
            continue
        out[k] = v
    for k, v in kept.items():
        if k not in out and k not in spec:
            out[k] = v


# --- parsing ------------------------------------------------------------------------------------


@dataclass
class CasePackage:
    """A validated CFPackage as canonical records, ready for ``store.records.apply``."""

    framework: Framework
    competencies: list[Competency]
    relations: list[Relation]
    scales: list[ProficiencyScale]
    warnings: list[ErrorDetail] = field(default_factory=list)

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
        raise ValidationError("the CFPackage was rejected", errors=[ErrorDetail(f"a CFPackage is a JSON object, not {_json_type(obj)}", location="$")])
    return obj


def parse_package(data: bytes | str | dict[str, Any], *, tenant: str, source: str = "case", strict: bool = False) -> CasePackage:
    """CFPackage JSON -> canonical records. Raises MalformedInput / ValidationError carrying
    every problem (JSON path, member, message); returns nothing partial. ``data`` given as a
    dict may be modified (normalised) in place."""
    pkg = load_json(data)
    errors, warnings, failed = validator().validate(pkg, strict=strict)
    if ("$", 0) in failed and not isinstance(pkg.get("CFDocument"), dict):
        raise ValidationError("the CFPackage was rejected; nothing was stored", errors=errors)
    mapper = _Mapper(pkg, tenant, source, failed, errors)
    result = mapper.run()
    if errors:
        raise ValidationError("the CFPackage was rejected; nothing was stored", errors=errors[:1000])
    assert result is not None
    result.warnings = warnings + mapper.warnings
    return result


def _norm_id(v: str) -> str:
    """A UUID's canonical spelling (8-4-4-4-12, lower case); ``v`` is known to be one."""
    return v.lower()


class _Mapper:
    def __init__(self, pkg: dict[str, Any], tenant: str, source: str, failed: set[tuple[str, int]], errors: list[ErrorDetail]) -> None:
        self.pkg, self.tenant, self.source, self.failed, self.errors = pkg, tenant, source, failed, errors
        self.warnings: list[ErrorDetail] = []
        self.seen: dict[str, str] = {}  # identifier -> JSON path of its first use

    def err(self, message: str, location: str, fld: str | None = None) -> None:
        self.errors.append(ErrorDetail(message, location=location, field=fld))

    def claim(self, ident: Any, path: str) -> None:
        """Identifiers are unique across the package (CASE 1.0: each object's GUID)."""
        if not is_uuid(ident):
            return  # the schema check already reported it
        key = ident.lower()
        first = self.seen.setdefault(key, path)
        if first != path:
            self.err(f"duplicate identifier {ident}: also used by {first}", f"{path}.identifier", "identifier")

    def _ok(self, member: str, i: int) -> bool:
        return (member, i) not in self.failed

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
                        self.claim(d.get("identifier"), f"$.CFDefinitions.{kind}[{i}]")

        # -- items -----------------------------------------------------------------------------
        fw_rid = record_id(self.tenant, "framework", self.source, doc_id)
        in_items: set[str] = set()  # normalised identifiers of the package's items
        for i, it in enumerate(items):
            if not self._ok("CFItems", i) or not isinstance(it, dict):
                continue
            self.claim(it["identifier"], f"$.CFItems[{i}]")
            self._check_document_ref(it, doc_id, f"$.CFItems[{i}]")
            in_items.add(_norm_id(it["identifier"]))

        # -- associations: the ends, replacedBy, precedes -------------------------------------
        replaced: set[str] = set()
        in_pkg = in_items | {doc_id}
        for i, a in enumerate(assocs):
            if not self._ok("CFAssociations", i) or not isinstance(a, dict):
                continue
            path = f"$.CFAssociations[{i}]"
            self.claim(a["identifier"], path)
            self._check_document_ref(a, doc_id, path)
            o, d = a["originNodeURI"]["identifier"], a["destinationNodeURI"]["identifier"]
            on, dn = _maybe_norm(o), _maybe_norm(d)
            if on not in in_pkg and dn not in in_pkg:
                self.err(
                    f"neither end of this {a['associationType']} association is in the package: origin {o!r} and destination {d!r} "
                    "are neither a CFItem of it nor its CFDocument",
                    path,
                )
            if a["associationType"] == "replacedBy" and on in in_items:
                replaced.add(on)

        # -- rubrics ----------------------------------------------------------------------------
        for i, r in enumerate(rubrics):
            if not self._ok("CFRubrics", i) or not isinstance(r, dict):
                continue
            self.claim(r["identifier"], f"$.CFRubrics[{i}]")
            for j, c in enumerate(r.get("CFRubricCriteria") or []):
                cp = f"$.CFRubrics[{i}].CFRubricCriteria[{j}]"
                self.claim(c["identifier"], cp)
                if "rubricId" in c and _maybe_norm(c["rubricId"]) != _norm_id(r["identifier"]):
                    self.err(f"rubricId {c['rubricId']} does not name the rubric this criterion is in ({r['identifier']})", f"{cp}.rubricId", "rubricId")
                for k, lv in enumerate(c.get("CFRubricCriterionLevels") or []):
                    lp = f"{cp}.CFRubricCriterionLevels[{k}]"
                    self.claim(lv["identifier"], lp)
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
        return CasePackage(framework, comps, rels, scales)

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
        _split(doc, DOCUMENT_FIELDS, canon, kept)
        ext: dict[str, Any] = {"document": kept, "members": list(self.pkg)}
        if "CFDefinitions" in self.pkg:
            ext["definitions"] = defs
        if rubrics:
            ext["rubrics"] = [_rubric_skeleton(r) for r in rubrics]
        idents = [Identifier(system=ID_SYSTEM, kind="case.identifier", value=doc_id)]
        if doc.get("uri"):
            idents.append(Identifier(system=ID_SYSTEM, kind="case.uri", value=doc["uri"]))
        return self._model(Framework, {
            "tenant": self.tenant, "source": self.source, "native_id": doc_id, "identifiers": idents,
            "source_updated_at": canon.get("published_at"), "extensions": {"case": ext}, **canon,
        }, "$.CFDocument", "framework")

    def _competency(self, it: Any, i: int, fw_rid: uuid.UUID, replaced: set[str]) -> Competency | None:
        if not self._ok("CFItems", i) or not isinstance(it, dict):
            return None
        canon: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        _split(it, ITEM_FIELDS, canon, kept)
        if "educationLevel" not in it:
            for alias in ITEM_ALIASES:
                if alias in it:
                    canon["education_levels"] = _to_c("list", it[alias])
        nid = str(canon["guid"])
        idents = [{"system": ID_SYSTEM, "kind": "case.identifier", "value": nid}, {"system": ID_SYSTEM, "kind": "case.uri", "value": it["uri"]}]
        return self._model(Competency, {
            "tenant": self.tenant, "source": self.source, "native_id": nid, "framework_id": fw_rid, "identifiers": idents,
            "deprecated": nid in replaced, "source_updated_at": canon.get("published_at"), "extensions": {"case": kept}, **canon,
        }, f"$.CFItems[{i}]", "competency")

    def _relation(self, a: Any, i: int, fw_rid: uuid.UUID, item_ids: dict[str, uuid.UUID]) -> Relation | None:
        if not self._ok("CFAssociations", i) or not isinstance(a, dict):
            return None
        nid = _norm_id(a["identifier"])
        canon: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        ends: dict[str, Any] = {}
        for k, v in a.items():
            if k in ASSOCIATION_FIELDS:
                name, kind = ASSOCIATION_FIELDS[k]
                cv = _to_c(kind, v)
                canon[name] = cv
                if _lossy(kind, v, cv):
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
        if not self._ok("CFRubrics", i) or not isinstance(r, dict):
            return []
        out = []
        for j, c in enumerate(r.get("CFRubricCriteria") or []):
            levels_raw = c.get("CFRubricCriterionLevels") or []
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
                "levels": levels, "source_updated_at": _to_c("datetime", c.get("lastChangeDateTime")),
                "extensions": {"case": {"criterion": criterion, "levels": levels_raw, "hasLevels": "CFRubricCriterionLevels" in c}},
            }, path, "proficiency_scale")
            if scale is not None:
                out.append(scale)
        return out

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
            self.warnings.append(ErrorDetail(f"precedes associations form a cycle: {chain}", location="$.CFAssociations", field="associationType"))


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


def _rubric_skeleton(r: dict[str, Any]) -> dict[str, Any]:
    """A rubric's own members, and its criteria as references to their ProficiencyScale (or
    in full, when a criterion has no level and so no scale)."""
    sk = {k: v for k, v in r.items() if k != "CFRubricCriteria"}
    if "CFRubricCriteria" in r:
        sk["CFRubricCriteria"] = [
            {"scale": _norm_id(c["identifier"])} if c.get("CFRubricCriterionLevels") else {"raw": c} for c in r["CFRubricCriteria"]
        ]
    return sk


# --- emitting: stored canonical JSON -> CASE JSON ----------------------------------------------


def _case(doc: dict[str, Any]) -> dict[str, Any]:
    return (doc.get("extensions") or {}).get("case") or {}


def _link(title: str | None, identifier: str, uri: str) -> dict[str, Any]:
    return {"title": title or "", "identifier": identifier, "uri": uri}


class Emitter:
    """Builds CASE 1.0 JSON from stored canonical records (as JSON dicts, the store's form).

    ``base`` is the provider's base URL (``.../ims/case/v1p0``), used only for URIs a record
    does not carry (a framework created outside CASE)."""

    def __init__(self, base: str = "") -> None:
        self.base = base.rstrip("/")

    def _uri(self, kind: str, ident: str) -> str:
        return f"{self.base}/{kind}/{ident}"

    @staticmethod
    def identifier(doc: dict[str, Any]) -> str:
        return doc.get("guid") or doc["id"]

    def document(self, fw: dict[str, Any], *, standalone: bool = False) -> dict[str, Any]:
        """CFDocument: in a package as imported; ``standalone`` (CFDocuments endpoints) adds the
        CFPackageURI link object CFDocument.Type requires."""
        ext = _case(fw)
        out: dict[str, Any] = {}
        _join(fw, DOCUMENT_FIELDS, ext.get("document") or {}, out)
        ident = self.identifier(fw)
        out.setdefault("identifier", ident)
        out.setdefault("uri", self._uri("CFDocuments", ident))
        out.setdefault("creator", fw.get("creator") or fw.get("publisher") or "")
        out.setdefault("lastChangeDateTime", fw.get("published_at") or fw.get("updated_at") or "")
        if standalone:
            pkg = out.get("CFPackageURI")
            if not isinstance(pkg, dict):
                out["CFPackageURI"] = _link(out.get("title"), ident, pkg if isinstance(pkg, str) and pkg else self._uri("CFPackages", ident))
        return out

    def document_link(self, fw: dict[str, Any]) -> dict[str, Any]:
        return _link(fw.get("title"), self.identifier(fw), fw.get("uri") or self._uri("CFDocuments", self.identifier(fw)))

    def item(self, c: dict[str, Any], fw: dict[str, Any] | None = None, *, standalone: bool = False) -> dict[str, Any]:
        kept = _case(c)
        out: dict[str, Any] = {}
        skip = frozenset({"educationLevel"}) if "educationLevel" not in kept and any(a in kept for a in ITEM_ALIASES) else frozenset()
        _join(c, ITEM_FIELDS, kept, out, skip)
        ident = self.identifier(c)
        out.setdefault("identifier", ident)
        out.setdefault("uri", self._uri("CFItems", ident))
        out.setdefault("lastChangeDateTime", c.get("published_at") or c.get("updated_at") or "")
        if standalone and fw is not None and not isinstance(out.get("CFDocumentURI"), dict):
            out["CFDocumentURI"] = self.document_link(fw)
        return out

    _ENDS = (("originNodeURI", "origin_guid", "origin_id", "origin_uri"), ("destinationNodeURI", "destination_guid", "destination_id", "destination_uri"))
    _ASSOCIATION_OWN = frozenset({"identifier", "uri", "originNodeURI", "destinationNodeURI", "CFAssociationGroupingURI", *ASSOCIATION_FIELDS})

    def association(self, r: dict[str, Any], fw: dict[str, Any] | None = None, *, standalone: bool = False) -> dict[str, Any]:
        kept = _case(r)
        ident = kept.get("identifier") or r["native_id"]
        out: dict[str, Any] = {"identifier": ident, "uri": kept.get("uri") or self._uri("CFAssociations", ident),
                               "associationType": RELATION_TO_CASE.get(r["type"], r["type"])}
        for member, guid, rid, uri in self._ENDS:
            link = kept.get(member) or {}
            out[member] = {"title": link.get("title", ""), "identifier": link.get("identifier") or r.get(guid) or r.get(rid) or "",
                           "uri": r.get(uri) or link.get("uri") or ""}
        if "CFAssociationGroupingURI" in kept:
            grouping = kept["CFAssociationGroupingURI"]
            if r.get("grouping") is not None and isinstance(grouping, dict):
                out["CFAssociationGroupingURI"] = {"title": grouping.get("title", ""), "identifier": grouping.get("identifier", r["grouping"]),
                                                   "uri": grouping.get("uri", "")}
            elif grouping is None:
                out["CFAssociationGroupingURI"] = None
        _join(r, ASSOCIATION_FIELDS, {k: v for k, v in kept.items() if k not in self._ASSOCIATION_OWN or k in ASSOCIATION_FIELDS}, out)
        if "lastChangeDateTime" not in out:
            out["lastChangeDateTime"] = r.get("published_at") or r.get("updated_at") or ""
        if standalone and fw is not None and not isinstance(out.get("CFDocumentURI"), dict):
            out["CFDocumentURI"] = self.document_link(fw)
        return out

    def criterion(self, s: dict[str, Any]) -> dict[str, Any]:
        ext = _case(s)
        out = dict(ext.get("criterion") or {"identifier": s["native_id"], "uri": self._uri("CFRubricCriteria", s["native_id"])})
        out.setdefault("lastChangeDateTime", s.get("source_updated_at") or s.get("updated_at") or "")
        if ext.get("hasLevels", True):
            out["CFRubricCriterionLevels"] = ext.get("levels") or [
                {"identifier": lv["code"], "uri": self._uri("CFRubricCriterionLevels", lv["code"]), "quality": lv["label"],
                 **({"description": lv["description"]} if lv.get("description") else {}), "position": lv["rank"],
                 "lastChangeDateTime": out["lastChangeDateTime"]}
                for lv in s.get("levels", [])
            ]
        return out

    def rubrics(self, fw: dict[str, Any], scales: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_id = {s["native_id"]: s for s in scales}
        out = []
        for sk in _case(fw).get("rubrics") or []:
            r = {k: v for k, v in sk.items() if k != "CFRubricCriteria"}
            if "CFRubricCriteria" in sk:
                r["CFRubricCriteria"] = [
                    c["raw"] if "raw" in c else self.criterion(by_id[c["scale"]]) for c in sk["CFRubricCriteria"] if "raw" in c or c["scale"] in by_id
                ]
            out.append(r)
        return out

    @staticmethod
    def definitions_of(fw: dict[str, Any]) -> Any:
        """The CFDefinitions imported with a framework (as given), or None."""
        return _case(fw).get("definitions")

    @staticmethod
    def rubric_skeletons(fw: dict[str, Any]) -> list[dict[str, Any]]:
        return _case(fw).get("rubrics") or []

    def package(self, fw: dict[str, Any], items: list[dict[str, Any]], assocs: list[dict[str, Any]],
                scales: list[dict[str, Any]]) -> dict[str, Any]:
        """CFPackage: the document, its (active) items and associations, definitions, rubrics."""
        ext = _case(fw)
        members = ext.get("members") or ["CFDocument", "CFItems", "CFAssociations"]
        out: dict[str, Any] = {"CFDocument": self.document(fw)}
        out["CFItems"] = [self.item(c) for c in items]
        out["CFAssociations"] = [self.association(a) for a in assocs]
        if "definitions" in ext:
            out["CFDefinitions"] = ext["definitions"]
        elif "CFDefinitions" in members:
            out["CFDefinitions"] = {}
        rubrics = self.rubrics(fw, scales)
        if rubrics or "CFRubrics" in members:
            out["CFRubrics"] = rubrics
        return out


def package_equivalent(a: Any, b: Any, path: str = "$") -> list[str]:
    """Differences between two CFPackages, with arrays of identified objects compared by
    identifier (a provider may order them differently). Empty when equivalent."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                diffs.append(f"{path}.{k}: only in {'first' if k in a else 'second'}")
            else:
                diffs.extend(package_equivalent(a[k], b[k], f"{path}.{k}"))
        return diffs
    if isinstance(a, list) and isinstance(b, list):
        keyed = all(isinstance(x, dict) and "identifier" in x for x in a + b)
        if keyed:
            ka = {x["identifier"]: x for x in a}
            kb = {x["identifier"]: x for x in b}
            if len(ka) != len(a) or len(kb) != len(b):
                return [f"{path}: duplicate identifiers"]
            diffs = [f"{path}[{k}]: only in {'first' if k in ka else 'second'}" for k in sorted(set(ka) ^ set(kb))]
            for k in sorted(set(ka) & set(kb)):
                diffs.extend(package_equivalent(ka[k], kb[k], f"{path}[{k}]"))
            return diffs
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} elements"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in package_equivalent(x, y, f"{path}[{i}]")]
    if a != b or type(a) is not type(b):
        return [f"{path}: {a!r} != {b!r}"]
    return []


__all__ = [
    "ASSOCIATION_TYPES", "CasePackage", "Emitter", "ID_SYSTEM", "find_cycles", "load_json", "package_equivalent",
    "parse_datetime", "parse_package", "published_schema", "schema", "validator",
]
