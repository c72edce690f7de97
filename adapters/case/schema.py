"""The CASE 1.0 CFPackage JSON Schema: loaded once, tightened, compiled, and its errors phrased.

The published schema is ``schemas/case/case-v1p0-cfpackage.schema.json``; ``schema()`` adds the
tightenings described in ``schemas/case/README.md`` (anchored UUID pattern; ``uri``, ``date``
and ``date-time`` formats asserted, see ``formats``). ``jsonschema`` phrases the errors.
Running ``jsonschema`` over 60,000 objects takes longer than the whole import may (about
4.6 s for the benchmark package), so each object is first checked by a predicate compiled
from the same schema file (``_Compiler``); only the objects it rejects go to ``jsonschema``
(tests/test_case_cf_package.py checks that both agree). ``validator()`` is the shared
compiled validator ``cf_package.parse_package`` runs first.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema
import orjson

from gateway import PROJECT_ROOT
from gateway.errors import Deviation, ErrorDetail

from .formats import FORMATS

SCHEMA_FILE = PROJECT_ROOT / "schemas" / "case" / "case-v1p0-cfpackage.schema.json"



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


def json_type(v: object) -> str:
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
        else:
            if types == ["string"]:
                checks.append(lambda v: isinstance(v, str))
            elif types == ["object"]:
                checks.append(lambda v: isinstance(v, dict))
            elif types == ["array"]:
                checks.append(lambda v: isinstance(v, list))
            elif types:
                checks.append(lambda v, ts=tuple(types): any(_is_type(v, t) for t in ts))
            if "enum" in s:
                allowed_list = list(s["enum"])
                checks.append(lambda v: v in allowed_list)
            if "pattern" in s:
                search2 = re.compile(s["pattern"]).search
                checks.append(lambda v: not isinstance(v, str) or search2(v) is not None)
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

    def validate(self, pkg: dict[str, Any], *, strict: bool) -> tuple[list[ErrorDetail], list[Deviation], set[tuple[str, int]]]:
        """Returns (errors, the repairs made (tolerant mode only), the (member, index) of every
        element that failed)."""
        errors: list[ErrorDetail] = []
        warnings: list[Deviation] = []
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

    def _check(self, u: _Unit, obj: Any, path: str, strict: bool, errors: list[ErrorDetail], warnings: list[Deviation],
               *, checked: bool = False) -> bool:
        if not checked and u.predicate(obj):
            return True
        if not strict:
            repaired: list[Deviation] = []
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

    def _repair(self, s: Any, v: Any, path: str, out: list[Deviation]) -> None:
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
                    out.append(Deviation("null is not allowed here; the member was ignored", f"{path}.{k}", k, "null-member"))
                elif isinstance(x, str) and (num := self._as_number(sub, x)) is not None:
                    v[k] = num
                    out.append(Deviation(f"a number written as a string ({x!r}) was read as {num}", f"{path}.{k}", k, "number-as-string"))
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
            return [ErrorDetail(f"must be of type {want}, not {json_type(v)}", location=path, field=member)]
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
    s = repr(v) if isinstance(v, str) else orjson.dumps(v).decode() if not isinstance(v, (dict, list)) else f"a JSON {json_type(v)}"
    return s if len(s) <= 80 else s[:77] + "..."


def json_path(base: str, parts: Iterable[Any]) -> str:
    out = [base]
    for p in parts:
        out.append(f"[{p}]" if isinstance(p, int) else f".{p}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(p)) else f"[{orjson.dumps(p).decode()}]")
    return "".join(out)


@lru_cache(maxsize=1)
def validator() -> _Validator:
    return _Validator()


__all__ = ["SCHEMA_FILE", "json_path", "json_type", "published_schema", "schema", "validator"]
