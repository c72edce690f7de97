"""Alignments by target: which competency a non-CASE target stands for (DESIGN section 3).

An Alignment joins a target a standard names (an xAPI activity id, a OneRoster line item
or learning objective, an LTI resource link), in a target system, to a Competency. Evidence
about the target is aligned through it. Adapters ask this repository, never the table.

When several active alignments name the same target, the heaviest (``weight``, 1 when not
given) wins, then the first by id: the same answer on every engine and every call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import orjson
from sqlalchemy import Connection, Engine, select

from .read import reading
from .tables import alignments

#: target ids per IN (...) of ``by_target``
CHUNK = 400


class AlignmentStore:
    """The alignments of one database. Every method reads in the caller's connection when
    given one (``conn``), else in its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def by_target(self, tenant: str, target_systems: Iterable[str], target_ids: Iterable[str], *,
                  conn: Connection | None = None) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
        """target id -> (alignment id, competency id) of the winning active alignment of each
        of ``target_ids`` in any of ``target_systems``; targets without one are left out. One
        query per ``CHUNK`` targets."""
        tbl = alignments
        systems = sorted(set(target_systems))
        targets = sorted(set(target_ids))
        best: dict[str, tuple[float, uuid.UUID, uuid.UUID]] = {}
        with reading(self.engine, conn) as c:
            for i in range(0, len(targets), CHUNK):
                q = select(tbl.c.id, tbl.c.target_id, tbl.c.competency_id, tbl.c.data).where(
                    tbl.c.tenant == tenant,
                    tbl.c.target_system.in_(systems),
                    tbl.c.target_id.in_(targets[i : i + CHUNK]),
                    tbl.c.status == "active",
                )
                for row in c.execute(q):
                    weight = float(orjson.loads(row.data).get("weight", 1.0))
                    prev = best.get(row.target_id)
                    if prev is None or (-weight, row.id) < (-prev[0], prev[1]):
                        best[row.target_id] = (weight, row.id, row.competency_id)
        return {target: (aid, cid) for target, (_, aid, cid) in best.items()}


__all__ = ["CHUNK", "AlignmentStore"]
