"""Identity resolution: which canonical records carry an identifier (DESIGN section 3).

Every record's ``identifiers`` ((system, kind, value), e.g. ("sis", "oneroster.sourcedId",
"u-123") or ("lrs", "xapi.mbox", "mailto:ada@example.org")) are indexed in the
``identifiers`` table when the record is written (``write.RecordWriter``); this repository
answers from that index. Adapters ask it, never the table: the xAPI mapper turns an actor
into a Person and a CASE reference into a Competency, the LTI tool finds the Person of a
``sub``.

``resolve`` is the batch form for ingest paths: one query per ``CHUNK`` values for a whole
batch, whatever the number of record kinds asked for. When several records carry the same
identifier, the one that has carried it longest (the oldest index row) wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence, Set
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from .read import reading
from .tables import identifiers

#: identifier values per IN (...) of ``resolve``
CHUNK = 400

#: The distinct identifier systems of a tenant, by a loose index scan of ix_identifiers_lookup
#: (one index probe per system; a plain DISTINCT would read every row of the tenant).
_SYSTEMS = text(
    "WITH RECURSIVE s(system) AS ("
    " SELECT MIN(system) FROM identifiers WHERE tenant = :t"
    " UNION ALL"
    " SELECT (SELECT MIN(i.system) FROM identifiers i WHERE i.tenant = :t AND i.system > s.system)"
    " FROM s WHERE s.system IS NOT NULL)"
    " SELECT system FROM s WHERE system IS NOT NULL"
)

#: (identifier kind, value)
Key = tuple[str, str]


class IdentityStore:
    """The identifier index of one database. Every method reads in the caller's connection
    when given one (``conn``), else in its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def lookup(self, tenant: str, system: str, kind: str, value: str, *, record_kind: str | None = None,
               conn: Connection | None = None) -> list[tuple[str, uuid.UUID]]:
        """(record kind, record id) of every record carrying identifier (system, kind, value),
        the longest-standing first; only records of ``record_kind`` when given."""
        idt = identifiers
        q = select(idt.c.record_kind, idt.c.record_id).where(
            idt.c.tenant == tenant,
            idt.c.system == system,
            idt.c.kind == kind,
            idt.c.value == value,
        )
        if record_kind:
            q = q.where(idt.c.record_kind == record_kind)
        with reading(self.engine, conn) as c:
            return [(r.record_kind, r.record_id) for r in c.execute(q.order_by(idt.c.id))]

    def first_carrying(self, tenant: str, record_kind: str, kinds: Sequence[str], values: Sequence[str], *,
                       conn: Connection | None = None) -> uuid.UUID | None:
        """The record of ``record_kind`` that first carried an identifier of one of ``kinds``
        with one of ``values`` (in any system), or None: e.g. the competency a CASE URI or
        identifier names (``gateway.model.CASE_IDENTIFIER_KINDS``)."""
        idt = identifiers
        q = select(idt.c.record_id).where(
            idt.c.tenant == tenant, idt.c.record_kind == record_kind, idt.c.kind.in_(kinds), idt.c.value.in_(values),
        ).order_by(idt.c.id).limit(1)
        with reading(self.engine, conn) as c:
            return c.scalar(q)

    def systems(self, tenant: str, *, conn: Connection | None = None) -> list[str]:
        """The distinct identifier systems of the tenant, in order."""
        with reading(self.engine, conn) as c:
            return list(c.scalars(_SYSTEMS, {"t": tenant}))

    def resolve(self, tenant: str, wanted: Mapping[str, Set[Key]], *, systems: Sequence[str] | None = None,
                conn: Connection | None = None) -> dict[str, dict[Key, uuid.UUID]]:
        """Record kind -> {(identifier kind, value): id of the record of that kind carrying it},
        for the (kind, value) pairs ``wanted`` of each record kind, in any identifier system
        (or only ``systems``). A pair no record carries is left out.

        Without ``systems`` the tenant's systems are read first (``systems``), so that every
        query names them and uses the whole (tenant, system, kind, value) index."""
        found: dict[str, dict[Key, tuple[Any, uuid.UUID]]] = {kind: {} for kind in wanted}
        values = sorted({v for pairs in wanted.values() for _, v in pairs})
        if not values:
            return {kind: {} for kind in wanted}
        kinds = sorted({k for pairs in wanted.values() for k, _ in pairs})
        record_kinds = tuple(wanted)
        idt = identifiers
        with reading(self.engine, conn) as c:
            if systems is None:
                systems = self.systems(tenant, conn=c)
            if not systems:
                return {kind: {} for kind in wanted}
            for i in range(0, len(values), CHUNK):
                q = select(idt.c.id, idt.c.record_kind, idt.c.record_id, idt.c.kind, idt.c.value).where(
                    idt.c.tenant == tenant,
                    idt.c.system.in_(systems),
                    idt.c.kind.in_(kinds),
                    idt.c.value.in_(values[i : i + CHUNK]),
                    idt.c.record_kind.in_(record_kinds),
                )
                for row in c.execute(q):
                    key = (row.kind, row.value)
                    if key not in wanted[row.record_kind]:
                        continue
                    best = found[row.record_kind]
                    if key not in best or row.id < best[key][0]:  # the oldest index row carrying it
                        best[key] = (row.id, row.record_id)
        return {kind: {key: rid for key, (_, rid) in best.items()} for kind, best in found.items()}


__all__ = ["CHUNK", "IdentityStore", "Key"]
