"""Data 2.3.1.s9: whether a statement sent again is the one the LRS holds (the statement
store's careful path, attachments' signatures, the pull routes)."""

from __future__ import annotations

import re
from typing import Any

import orjson

_LRS_SET = ("id", "authority", "stored", "version")
_BEYOND_HUNDREDTHS = re.compile(r"([.,]\d{2})\d+S$")


def same_statement(stored: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """Data 2.3.1.s9: equal but for what the LRS may set or re-serialise (2.3.1.b1-b5: id,
    authority, stored, version, a timestamp it filled in; a timestamp's serialisation; the
    order of a Group's members)."""
    a, b = _comparable(stored), _comparable(incoming)
    if "timestamp" in a and "timestamp" in b:
        from .parameters import parse_timestamp

        if parse_timestamp(a.pop("timestamp"), "timestamp") != parse_timestamp(b.pop("timestamp"), "timestamp"):
            return False
    a.pop("timestamp", None)
    b.pop("timestamp", None)
    return _normal(a) == _normal(b)


def _comparable(s: dict[str, Any]) -> dict[str, Any]:
    """Without what the LRS sets; a timestamp equal to ``stored`` is one the LRS filled in;
    durations to the hundredth of a second."""
    out = _hundredths({k: v for k, v in s.items() if k not in _LRS_SET})
    if "timestamp" in out and out["timestamp"] == s.get("stored"):
        del out["timestamp"]
    obj = out.get("object")
    if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
        out["object"] = _hundredths(obj)
    return out


def _hundredths(s: dict[str, Any]) -> dict[str, Any]:
    """Data 4.6.s1.b5 (2.0: "shall not"): when comparing statements, precision of a
    duration beyond 0.01 s is not included; otherwise a duration compares as a string
    (2.3.1.b8: no conversion between units). A copy with ``result.duration`` cut after the
    hundredths digit."""
    result = s.get("result")
    if isinstance(result, dict) and isinstance(result.get("duration"), str):
        cut = _BEYOND_HUNDREDTHS.sub(r"\1S", result["duration"])
        if cut != result["duration"]:
            return {**s, "result": {**result, "duration": cut}}
    return s


def _normal(v: Any) -> Any:
    if isinstance(v, dict):
        out = {k: _normal(x) for k, x in v.items()}
        if "member" in out and isinstance(out["member"], list):
            out["member"] = sorted(out["member"], key=lambda m: orjson.dumps(m, option=orjson.OPT_SORT_KEYS))
        return out
    if isinstance(v, list):
        return [_normal(x) for x in v]
    return v


__all__ = ["same_statement"]
