"""Evidence records the xAPI mapper builds without validating them again (issue 22).

The mapper (``evidence.EvidenceMapper``) makes one Evidence a statement, from a statement
the LRS validated strictly when it stored it and from values of its own. Here the same
record is built with ``CanonicalModel.trusted_dict`` whenever every value already has the
shape the model would accept unchanged; anything else goes through ``model_validate`` as
before, which refuses it in its own words. Measured alone, about 18 against 20 us an item:
pydantic's validation is cheap, and a cProfile of the consumer had made it look several
times dearer than it is. The store's own checks (references, append-only evidence) are not
touched: ``RecordStore.apply`` makes them for every caller.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from gateway.model import Evidence, EvidenceKind, Status, record_id
from gateway.model.evidence import ActivityRef, Provenance, Score


def trusted_evidence(tenant: str, source: str, native_id: Any, learner: uuid.UUID, competency_id: uuid.UUID | None,
             alignment_id: uuid.UUID | None, activity: dict[str, Any] | None, kind: EvidenceKind, score: dict[str, Any] | None,
             success: Any, completion: Any, observed: datetime | None, artifacts: list[str], version: Any, sha: str,
             stored: datetime | None, ext: dict[str, Any]) -> Evidence | None:
    """The Evidence ``model_validate`` would build from these values, built without validating
    (``CanonicalModel.trusted_dict``), when every value is already of the shape the model accepts
    unchanged: the statement was validated strictly when it was stored, and the rest is the
    mapper's own. None when anything is out of that shape (then ``model_validate`` decides,
    with its own error). Nested models too; numbers of a score become floats, as validation
    makes them, so both ways give the same record and the same content hash
    (``tests/test_xapi_evidence_trusted.py``)."""
    if (observed is None or stored is None or not isinstance(native_id, str) or not 0 < len(native_id) <= 255
            or not 0 < len(source) <= 128 or not isinstance(version, str)
            or (success is not None and success is not True and success is not False)
            or (completion is not None and completion is not True and completion is not False)):
        return None
    s: Score | None = None
    if score is not None:
        raw, lo, hi, scaled = score.get("raw"), score.get("min"), score.get("max"), score.get("scaled")
        for v in (raw, lo, hi, scaled):
            if v is not None and (v.__class__ is not float and v.__class__ is not int):
                return None
        raw = None if raw is None else float(raw)
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
        if scaled is not None:
            scaled = float(scaled)
            if not 0.0 <= scaled <= 1.0:
                return None
        if (lo is not None and hi is not None and lo > hi) or (raw is not None and ((lo is not None and raw < lo) or (hi is not None and raw > hi))):
            return None
        if scaled is None and raw is not None and lo is not None and hi is not None and hi > lo:
            scaled = (raw - lo) / (hi - lo)
        s = Score.trusted_dict({"raw": raw, "min": lo, "max": hi, "scaled": scaled})
    a: ActivityRef | None = None
    if activity is not None:
        title = activity["title"]
        if not activity["id"] or (title is not None and len(title) > 1024):
            return None
        a = ActivityRef.trusted_dict({"system": activity["system"], "id": activity["id"], "title": title})
    provenance = Provenance.trusted_dict({"standard": "xapi", "version": version, "system": source, "native_id": native_id,
                                          "payload_sha256": sha, "received_at": stored})
    # every field, in the class's order (checked below, when the module loads)
    return Evidence.trusted_dict({
        "kind": "evidence", "id": record_id(tenant, "evidence", source, native_id), "tenant": tenant, "source": source,
        "native_id": native_id, "identifiers": [], "status": Status.active, "updated_at": None, "source_updated_at": None,
        "extensions": ext, "learner_id": learner, "competency_id": competency_id, "alignment_id": alignment_id, "activity": a,
        "evidence_kind": kind, "score": s, "level": None, "success": success, "completion": completion, "observed_at": observed,
        "recorded_at": None, "assessor": None, "artifacts": artifacts, "provenance": provenance, "voided": False,
        "supersedes": None, "superseded_by": None,
    })


def _fields_in_order() -> None:
    """``trusted_dict`` takes the dicts above as they are: they must name every field, in order."""
    expect: dict[type[BaseModel], list[str]] = {
        Evidence: ["kind", "id", "tenant", "source", "native_id", "identifiers", "status", "updated_at", "source_updated_at",
                   "extensions", "learner_id", "competency_id", "alignment_id", "activity", "evidence_kind", "score", "level",
                   "success", "completion", "observed_at", "recorded_at", "assessor", "artifacts", "provenance", "voided",
                   "supersedes", "superseded_by"],
        Score: ["raw", "min", "max", "scaled"],
        ActivityRef: ["system", "id", "title"],
        Provenance: ["standard", "version", "system", "native_id", "payload_sha256", "received_at"],
    }
    for cls, names in expect.items():
        if list(cls.model_fields) != names:
            raise RuntimeError(f"{cls.__name__}'s fields changed: update adapters/xapi/evidence_trusted.py")


_fields_in_order()


__all__ = ["trusted_evidence"]
