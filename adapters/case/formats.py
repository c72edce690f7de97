"""CASE 1.0 primitive types as format predicates: Date, DateTime, URI and UUID.

The CFPackage schema (``schema``) asserts the ``date``, ``date-time`` and ``uri`` formats with
these predicates (schemas/case/README.md); the parser and the field mapping use them too. A
predicate accepts a value of another JSON type: the schema's ``type`` keyword reports that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache

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


__all__ = ["FORMATS", "is_date", "is_datetime", "is_uri", "is_uuid", "parse_datetime"]
