"""Normalising one gradebook / resources object: REST JSON, or a CSV row as REST-shaped
strings, into its 1.2 JSON with every problem named by its OneRoster field.

Spec choices: dates keep the text the sender gave (a round trip is exact) and must parse
as ISO 8601; numbers must be finite; a field this version does not name is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import ErrorDetail

from ..values import parse_datetime, ref_id
from .types import ENUMS, FIELDS, GUID_TYPE, ONLY_V12


def number(v: Any) -> int | float:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")  # noqa: TRY004 - invalid data, reported by _field
    if isinstance(v, str) and ("_" in v or v != v.strip()):
        raise ValueError(f"{v!r} is not a number")  # float() reads "1_000" and " 5": not OneRoster numbers
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
            return number(v)
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
                r["score"] = number(item["score"])
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
