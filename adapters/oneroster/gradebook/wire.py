"""Gradebook objects on the way out: the REST binding's shape of a stored object."""

from __future__ import annotations

from typing import Any

from ..values import format_datetime
from .storage import Stored
from .types import COLLECTIONS, V12_FIELDS


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
