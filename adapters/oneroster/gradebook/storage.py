"""Where gradebook objects live: the adapter's own table (``tables.objects``, read through
``ObjectStore``), and the rostering records and CASE competencies their references resolve
to (through the store's ``native_ids`` lookups).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select

from gateway.model import record_id
from gateway.store.native_ids import ids_by_native_id

from ..tables import objects


def object_id(tenant: str, obj_type: str, sourced_id: str) -> uuid.UUID:
    """Row id: one object of a type per sourcedId in a tenant."""
    return record_id(tenant, f"oneroster.{obj_type}", "-", sourced_id)


@dataclass
class Stored:
    type: str
    sourced_id: str
    source: str
    data: dict[str, Any]
    derived: dict[str, Any]
    updated_at: datetime | None = None


class ObjectStore:
    """Reads of ``oneroster_objects`` (the writes happen in ``apply``'s transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _stored(r: Any) -> Stored:
        return Stored(r.type, r.sourced_id, r.source, orjson.loads(r.data), orjson.loads(r.derived), r.updated_at)

    def get(self, tenant: str, obj_type: str, sids: Iterable[str]) -> dict[str, Stored]:
        want = list(dict.fromkeys(sids))
        out: dict[str, Stored] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(want), 500):
                q = select(objects).where(objects.c.tenant == tenant, objects.c.type == obj_type,
                                          objects.c.sourced_id.in_(want[i:i + 500]))
                out.update({r.sourced_id: self._stored(r) for r in conn.execute(q)})
        return out

    def where(self, tenant: str, obj_type: str, *conds: Any) -> list[Stored]:
        q = select(objects).where(objects.c.tenant == tenant, objects.c.type == obj_type, *conds).order_by(objects.c.updated_at, objects.c.id)
        with self.engine.connect() as conn:
            return [self._stored(r) for r in conn.execute(q)]

    def sourced_ids(self, tenant: str, obj_type: str, source: str | None = None) -> list[str]:
        q = select(objects.c.sourced_id).where(objects.c.tenant == tenant, objects.c.type == obj_type, objects.c.status == "active")
        if source is not None:
            q = q.where(objects.c.source == source)
        with self.engine.connect() as conn:
            return list(conn.scalars(q))


def find_roster(engine: Engine, tenant: str, kind: str, sids: Iterable[str], prefer: str | None = None) -> dict[str, uuid.UUID]:
    """sourcedId -> canonical id of rostering records of ``kind`` (any source; ``prefer``'s first)."""
    return ids_by_native_id(engine, tenant, kind, sids, prefer)


def case_guid(source: str, objective: str) -> uuid.UUID | None:
    """The CASE identifier an objective names, when its set's source is CASE."""
    if source.strip().lower() != "case":
        return None
    try:
        return uuid.UUID(objective.strip())
    except ValueError:
        return None
