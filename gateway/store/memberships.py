"""Memberships: whether a person is an active member of a section, and the people of a
roster page, read from the canonical tables so that adapters never touch them.

Written for Tessera as an LTI platform (AGS 2.0 3.4: a score is for a member of the line
item's context; NRPS 2.0: a context's members), and open to any standard that asks the same questions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, Exists, select

from ..model import Person, Status
from . import tables as t

ACTIVE = Status.active.value


class MembershipRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def active_member(*, tenant: Any, section_id: Any, person_id: Any) -> Exists:
        """EXISTS an active enrollment of ``person_id`` in ``section_id`` of ``tenant``.

        A clause, not a query: each argument is a value, a bind parameter or a column of the
        caller's own statement, and the check goes into that statement, so it costs no round
        trip (the AGS score path runs one query per score: line item, result on record and
        membership together). It matches (tenant, person_id, section_id) whole, which the
        index ``ix_enrollments_tenant_person_id_section_id`` answers (tests/test_query_plans.py)."""
        enr = t.enrollments
        return (
            select(enr.c.id).where(enr.c.tenant == tenant, enr.c.section_id == section_id,
                                   enr.c.person_id == person_id, enr.c.status == ACTIVE)
            .exists()
        )

    def people(self, tenant: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Person]:
        """The tenant's people with these ids, by id, in one query (a roster page's members);
        unknown ids and other tenants' are left out."""
        ids = set(ids)
        if not ids:
            return {}
        tbl = t.people
        with self.engine.connect() as conn:
            docs = conn.scalars(select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id.in_(ids))).all()
        people = [Person.model_validate_json(d) for d in docs]
        return {p.id: p for p in people if p.id is not None}


__all__ = ["MembershipRepository"]
