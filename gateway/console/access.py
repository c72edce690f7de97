"""Who sees what in the console, decided on every request from the roster.

- a **learner** sees only themself;
- a **guardian** sees the learners who list them among their agents (OneRoster
  ``agentSourcedIds``, the canonical ``Person.agent_ids``);
- a **teacher** sees the sections they teach (an active enrollment with role teacher or
  aide: a teaching assistant) and
  the learners enrolled in them;
- an **admin** sees the whole tenant, and only their tenant.

Anything else answers ``NotFound``, exactly as an unknown id does, so ids cannot be probed.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import and_, select

from ..errors import ErrorDetail, NotFound
from ..model import Status
from ..store import Store
from ..store import tables as t
from .viewer import Forbidden, Viewer

ACTIVE = Status.active.value
#: enrollment roles that let a person see a section: its teachers and teaching assistants
TEACHING = ("teacher", "aide")


def parse_id(value: str | uuid.UUID, what: str = "id") -> uuid.UUID:
    """A path id; anything that is not a UUID is simply not found."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"no such {what}", errors=[ErrorDetail("not a known id", field=what)]) from None


class Access:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _exists(self, conn: Any, table: Any, tenant: str, rid: uuid.UUID) -> bool:
        q = select(table.c.id).where(table.c.tenant == tenant, table.c.id == rid, table.c.status == ACTIVE)
        return conn.execute(q).first() is not None

    def learner(self, viewer: Viewer, learner_id: str | uuid.UUID) -> uuid.UUID:
        """The learner's id when the viewer may see them; NotFound otherwise."""
        lid = parse_id(learner_id, "learner")
        with self.store.engine.connect() as conn:
            if not self._exists(conn, t.people, viewer.tenant, lid) or not self._may_see(conn, viewer, lid):
                raise NotFound("no such learner", errors=[ErrorDetail("not a learner you can see", field="learner")])
        return lid

    def _may_see(self, conn: Any, viewer: Viewer, lid: uuid.UUID) -> bool:
        if viewer.role == "admin":
            return True
        me = viewer.person_id
        if me is None:
            return False
        if viewer.role == "learner":
            return lid == me
        if viewer.role == "guardian":
            row = conn.execute(select(t.people.c.data).where(t.people.c.tenant == viewer.tenant, t.people.c.id == lid)).first()
            return row is not None and str(me) in orjson.loads(row[0]).get("agent_ids", [])
        en = t.enrollments
        mine = en.alias("mine")
        q = (select(en.c.id)
             .join(mine, and_(mine.c.section_id == en.c.section_id, mine.c.tenant == en.c.tenant))
             .where(en.c.tenant == viewer.tenant, en.c.person_id == lid, en.c.status == ACTIVE,
                    mine.c.person_id == me, mine.c.role.in_(TEACHING), mine.c.status == ACTIVE)
             .limit(1))
        return conn.execute(q).first() is not None

    def section(self, viewer: Viewer, section_id: str | uuid.UUID) -> uuid.UUID:
        """The section's id when the viewer teaches it (or is an admin); NotFound otherwise."""
        sid = parse_id(section_id, "class")
        with self.store.engine.connect() as conn:
            ok = self._exists(conn, t.sections, viewer.tenant, sid) and (
                viewer.role == "admin" or (viewer.role == "teacher" and sid in self._taught(conn, viewer)))
        if not ok:
            raise NotFound("no such class", errors=[ErrorDetail("not a class you can see", field="class")])
        return sid

    def _taught(self, conn: Any, viewer: Viewer) -> set[uuid.UUID]:
        if viewer.person_id is None:
            return set()
        en = t.enrollments
        q = select(en.c.section_id).where(en.c.tenant == viewer.tenant, en.c.person_id == viewer.person_id,
                                          en.c.role.in_(TEACHING), en.c.status == ACTIVE)
        return {r[0] for r in conn.execute(q)}

    def sections(self, viewer: Viewer) -> list[uuid.UUID]:
        """The sections the viewer may open: a teacher's own, every one of the tenant for an admin."""
        with self.store.engine.connect() as conn:
            if viewer.role == "admin":
                q = select(t.sections.c.id).where(t.sections.c.tenant == viewer.tenant, t.sections.c.status == ACTIVE)
                return sorted({r[0] for r in conn.execute(q)}, key=str)
            if viewer.role == "teacher":
                return sorted(self._taught(conn, viewer), key=str)
        return []

    def wards(self, viewer: Viewer) -> list[uuid.UUID]:
        """The learners a guardian may see (themself for a learner)."""
        if viewer.person_id is None:
            return []
        if viewer.role == "learner":
            return [viewer.person_id]
        if viewer.role != "guardian":
            return []
        me = str(viewer.person_id)
        with self.store.engine.connect() as conn:
            # agent_ids lives in the record's JSON: a text filter narrows, the parsed JSON decides
            q = select(t.people.c.id, t.people.c.data).where(
                t.people.c.tenant == viewer.tenant, t.people.c.status == ACTIVE, t.people.c.data.contains(me))
            return sorted((r[0] for r in conn.execute(q) if me in orjson.loads(r[1]).get("agent_ids", [])), key=str)

    def admin(self, viewer: Viewer) -> None:
        """Integrator and district pages: administrators only (a 403 page for anyone else)."""
        if viewer.role != "admin":
            raise Forbidden("this page is for district administrators")


__all__ = ["Access", "parse_id"]
