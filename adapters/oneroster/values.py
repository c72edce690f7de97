"""The small parse / format helpers of the OneRoster mapping: versions, type names, dates and
date-times, booleans, GUIDRefs (as JSON objects or the CSV binding's plain sourcedIds), and
``Fields``, the reader of one wire object that collects every problem with its field name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from gateway.errors import ErrorDetail, ValidationError

from .vocab import GUID_TYPES, KIND_COLLECTIONS, SINGULAR, WIRE_KINDS, Vocab

#: Fields every OneRoster base object has; handled for every type.
BASE_FIELDS = ("sourcedId", "status", "dateLastModified")


@functools.lru_cache(maxsize=64)
def normalize_version(version: str) -> str:
    v = str(version).strip().lower().lstrip("v").replace("p", ".")
    if v in ("1.1", "1.1.0"):
        return "1.1"
    if v in ("1.2", "1.2.0"):
        return "1.2"
    raise ValidationError(f"unsupported OneRoster version {version!r}; supported: 1.1, 1.2")


def collection_of(obj_type: str) -> str:
    if obj_type in WIRE_KINDS:
        return obj_type
    if obj_type in SINGULAR:
        return SINGULAR[obj_type]
    raise ValidationError(f"unknown OneRoster type {obj_type!r}; expected one of {sorted(WIRE_KINDS)}")


def format_datetime(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and ``Z`` (OneRoster 1.2 DateTime)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    s = str(value).strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        # a bare date is a datetime at midnight UTC (seen in many SIS exports)
        try:
            d = date.fromisoformat(s)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time (e.g. 2024-08-01T12:00:00.000Z)") from None
        dt = datetime(d.year, d.month, d.day)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    s = str(value).strip()
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s == "true":
        return True
    if s == "false":
        return False
    raise ValueError(f"{value!r} is not a boolean (true or false)")


def ref_id(value: Any) -> str | None:
    """sourcedId of a GUIDRef given as ``{"sourcedId": ...}`` or a plain string."""
    if value is None:
        return None
    if isinstance(value, dict):
        sid = value.get("sourcedId")
        return str(sid) if sid not in (None, "") else None
    s = str(value).strip()
    return s or None


def ref_ids(value: Any) -> list[str]:
    """sourcedIds of a GUIDRef list (a JSON list, or a CSV comma-separated string)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    out = []
    for v in value:
        s = ref_id(v)
        if s:
            out.append(s)
    return out


def str_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [str(v) for v in value]


def guid_ref(kind: str, sid: str) -> dict[str, str]:
    coll = KIND_COLLECTIONS.get(kind, kind)
    return {"href": f"/{coll}/{sid}", "sourcedId": sid, "type": GUID_TYPES.get(kind, kind)}


_CONTAINERS = (list, dict)  # a tuple: ``list | dict`` would build a union object per call


def blank(v: Any) -> bool:
    # not ``v == []``: comparing every string of a 50,000-user file with a list and a dict
    # took a tenth of reading it
    return v is None or v == "" or (isinstance(v, _CONTAINERS) and not v)


class Fields:
    """Reads fields of one wire object, recording which were used and every problem."""

    def __init__(self, obj: dict[str, Any], location: str | None) -> None:
        self.obj = obj
        self.used: set[str] = set(BASE_FIELDS)
        self.errors: list[ErrorDetail] = []
        self.location = location

    def get(self, name: str, *, required: bool = False) -> Any:
        self.used.add(name)
        v = self.obj.get(name)
        if blank(v):
            if required:
                self.error(name, f"{name} is required")
            return None
        return v

    def error(self, name: str, message: str) -> None:
        self.errors.append(ErrorDetail(message, location=self.location, field=name))

    def convert(self, name: str, fn: Callable[[Any], Any], *, required: bool = False) -> Any:
        v = self.get(name, required=required)
        if v is None:
            return None
        try:
            return fn(v)
        except ValueError as exc:
            self.error(name, str(exc))
            return None

    def enum(self, name: str, vocab: Vocab, *, required: bool = False, what: str = "value") -> str | None:
        v = self.get(name, required=required)
        if v is None:
            return None
        out = vocab.to_canonical(str(v))
        if out is None:
            self.error(name, f"{v!r} is not a OneRoster {what}; expected one of {vocab.tokens}")
        return out

    def extras(self) -> dict[str, Any]:
        return {k: v for k, v in self.obj.items() if k not in self.used and not blank(v)}


__all__ = [
    "BASE_FIELDS", "Fields", "blank", "collection_of", "format_datetime", "guid_ref", "normalize_version", "parse_bool",
    "parse_date", "parse_datetime", "ref_id", "ref_ids", "str_list",
]
