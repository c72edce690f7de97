"""Canonical ids by the names other systems give records: a record's native id in any
source, and a competency's CASE identifier (its ``guid``).

For adapters that resolve a wire reference against what is stored (the OneRoster gradebook
names classes, users and CASE objectives by their sourcedId or GUID) without reading the
core's tables. Read-only; each call opens its own connection and looks the keys up 500 at
a time, well under every engine's parameter limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Engine, select

from .tables import RECORD_TABLES, competencies

CHUNK = 500


def ids_by_native_id(engine: Engine, tenant: str, kind: str, native_ids: Iterable[str],
                     prefer: str | None = None) -> dict[str, uuid.UUID]:
    """native id -> canonical id of the stored records of ``kind`` (from any source; where
    two sources hold the same native id, ``prefer``'s record wins)."""
    tbl = RECORD_TABLES[kind]
    want = list(dict.fromkeys(native_ids))
    found: dict[str, tuple[bool, uuid.UUID]] = {}
    with engine.connect() as conn:
        for i in range(0, len(want), CHUNK):
            q = select(tbl.c.native_id, tbl.c.id, tbl.c.source).where(tbl.c.tenant == tenant, tbl.c.native_id.in_(want[i:i + CHUNK]))
            for sid, rid, src in conn.execute(q):
                rank = src == prefer
                if sid not in found or (rank and not found[sid][0]):
                    found[sid] = (rank, rid)
    return {sid: rid for sid, (_, rid) in found.items()}


def competency_ids_by_guid(engine: Engine, tenant: str, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """CASE identifier -> canonical id of the tenant's stored competencies (the first source
    in name order, where several hold the same identifier)."""
    want = list(dict.fromkeys(guids))
    out: dict[uuid.UUID, uuid.UUID] = {}
    tbl = competencies
    with engine.connect() as conn:
        for i in range(0, len(want), CHUNK):
            q = select(tbl.c.guid, tbl.c.id).where(tbl.c.tenant == tenant, tbl.c.guid.in_(want[i:i + CHUNK])).order_by(tbl.c.source)
            for g, rid in conn.execute(q):
                out.setdefault(g, rid)
    return out


__all__ = ["competency_ids_by_guid", "ids_by_native_id"]
