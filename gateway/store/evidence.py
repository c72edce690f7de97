"""Evidence is append-only (DESIGN section 3): what ``write.RecordWriter`` enforces when a
stored evidence item comes again, and how a correction supersedes the item it corrects.

A stored item may change only in ``EVIDENCE_MUTABLE``: it may be voided (one-way), superseded
(``superseded_by``, never lost to a re-delivery) and aligned late (``competency_id``,
``alignment_id``); anything else is a ``Conflict`` that asks for a correction instead.

**Evidence derived behind the acknowledgement** (``Consistency``): an adapter that answers
its caller before the evidence is derived (the LRS with ``TESSERA_XAPI__DERIVE=async``)
registers a ``Consistency`` for the store (``add_consistency``). The evidence and
mastery-state APIs then say how far derivation has come (``X-Tessera-Consistent-Through``)
and let a client wait for it (``consistent_through=``, ``wait_for_derived``). The store
knows no adapter: it only holds what the composition hands it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy import insert as core_insert

from ..errors import Conflict, ErrorDetail, ValidationError
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


class Consistency(Protocol):
    """How far evidence derived behind the acknowledgement has come, for one store."""

    def consistent_through(self, tenant: str) -> datetime | None:
        """A time such that every acknowledged input stored at or before it has its evidence
        (None: the tenant has no input yet)."""

    def wait(self, tenant: str, target: str) -> tuple[bool, datetime | None]:
        """Wait (bounded) until ``target`` (an ISO 8601 time, or an id the adapter knows,
        e.g. a statement id) has its evidence: (reached, ``consistent_through``). A target
        it cannot read raises ValueError with a message for the caller."""


_CONSISTENCY: WeakKeyDictionary[Any, dict[str, Consistency]] = WeakKeyDictionary()

#: the response header that says how far derivation has come (an ISO 8601 time)
THROUGH_HEADER = "X-Tessera-Consistent-Through"
#: with ``consistent_through=``: "true" when the target was reached, "false" when the wait ended first
REACHED_HEADER = "X-Tessera-Consistent"


def add_consistency(store: Any, name: str, consistency: Consistency) -> None:
    """Register ``consistency`` for ``store`` under ``name`` (an adapter's; the latest app's wins)."""
    _CONSISTENCY.setdefault(store, {})[name] = consistency


def remove_consistency(store: Any, name: str) -> None:
    _CONSISTENCY.get(store, {}).pop(name, None)


def wait_for_derived(store: Any, tenant: str, target: str | None) -> dict[str, str]:
    """The headers of a read of derived records (evidence, mastery states): how far
    derivation has come, after waiting (bounded) for ``target`` when given. Nothing when no
    adapter derives behind its acknowledgement. A target no registered adapter can read is
    a ValidationError of the query parameter ``consistent_through``."""
    found = list(_CONSISTENCY.get(store, {}).values())
    if not found:
        return {REACHED_HEADER: "true"} if target is not None else {}
    reached = True
    through: list[datetime] = []
    for c in found:
        if target is None:
            at = c.consistent_through(tenant)
        else:
            try:
                ok, at = c.wait(tenant, target)
            except ValueError as exc:
                raise ValidationError("invalid query", errors=[ErrorDetail(str(exc), location="query", field="consistent_through")]) from None
            reached = reached and ok
        if at is not None:
            through.append(at)
    headers = {THROUGH_HEADER: min(through).isoformat().replace("+00:00", "Z")} if through else {}
    if target is not None:
        headers[REACHED_HEADER] = "true" if reached else "false"
    return headers


__all__ = ["EVIDENCE_MUTABLE", "REACHED_HEADER", "THROUGH_HEADER", "Consistency", "add_consistency", "evidence_rules",
           "mark_superseded", "remove_consistency", "wait_for_derived"]
