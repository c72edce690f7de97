"""Evidence is append-only (DESIGN section 3): what ``write.RecordWriter`` enforces when a
stored evidence item comes again, and how a correction supersedes the item it corrects.

A stored item may change only in ``EVIDENCE_MUTABLE``: it may be voided (one-way), superseded
(``superseded_by``, never lost to a re-delivery) and aligned late (``competency_id``,
``alignment_id``); anything else is a ``Conflict`` that asks for a correction instead.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy import insert as core_insert

from ..errors import Conflict, ErrorDetail
from ..model import Evidence, Record
from .prepare import content_hash, record_location
from .tables import changes, evidence

#: The only fields of stored evidence that may change (DESIGN: evidence is append-only).
EVIDENCE_MUTABLE = frozenset(
    {"voided", "superseded_by", "competency_id", "alignment_id", "status", "updated_at", "recorded_at", "identifiers"}
)


def evidence_rules(rec: Record, doc: dict[str, Any], old: tuple[str, str] | None, now: datetime) -> uuid.UUID | None:
    """Enforce append-only evidence: only voiding, superseding and late alignment may
    change. Returns the competency the stored item was aligned to."""
    assert isinstance(rec, Evidence)
    if old is None:
        doc["recorded_at"] = (rec.recorded_at or now).isoformat()
        return None
    stored = orjson.loads(old[1] or "{}")
    changed = sorted(k for k in set(doc) | set(stored) if k not in EVIDENCE_MUTABLE and doc.get(k) != stored.get(k))
    if changed:
        raise Conflict(
            "evidence is append-only: submit a correction that supersedes it instead",
            errors=[ErrorDetail(f"would change {', '.join(changed)}", location=record_location(rec))],
        )
    doc["recorded_at"] = stored.get("recorded_at")
    # Voiding is one-way, and a stored superseded_by is never lost to a re-delivery.
    doc["voided"] = bool(doc.get("voided") or stored.get("voided"))
    superseded_by = doc.get("superseded_by") or stored.get("superseded_by")
    if superseded_by:
        doc["superseded_by"] = superseded_by
    was = stored.get("competency_id")
    return uuid.UUID(was) if was else None


def mark_superseded(
    conn: Connection,
    tenant: str,
    pairs: list[tuple[uuid.UUID, uuid.UUID]],
    batch_id: uuid.UUID,
    now: datetime,
    touched: set[tuple[uuid.UUID, uuid.UUID]],
) -> list[tuple[uuid.UUID, str, str]]:
    """Point each superseded evidence item at its correction (``superseded_by``)."""
    tbl = evidence
    written = []
    for old_id, new_id in pairs:
        row = conn.execute(select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id == old_id)).first()
        if row is None:  # references are checked first, so only a same-batch original lands here
            continue
        doc = orjson.loads(row.data)
        if doc.get("superseded_by") == str(new_id):
            continue
        doc["superseded_by"] = str(new_id)
        digest = content_hash(doc)
        doc["updated_at"] = now.isoformat()
        conn.execute(
            update(tbl)
            .where(tbl.c.id == old_id)
            .values(data=orjson.dumps(doc).decode(), content_hash=digest, updated_at=now, superseded_by=new_id)
        )
        if doc.get("competency_id"):
            touched.add((uuid.UUID(doc["learner_id"]), uuid.UUID(doc["competency_id"])))
        conn.execute(
            core_insert(changes).values(
                tenant=tenant, batch_id=batch_id, record_kind="evidence", record_id=old_id, op="updated", content_hash=digest, at=now
            )
        )
        written.append((old_id, digest, doc["source"]))
    return written


__all__ = ["EVIDENCE_MUTABLE", "evidence_rules", "mark_superseded"]
