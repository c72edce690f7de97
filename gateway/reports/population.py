"""Who is in a report, and which competencies it covers.

Who is in a group comes from the roster: a school's learners are those enrolled (as
students) in its sections or whose person roles name it as a student; a district's are its
schools' (the ``parent_id`` tree of orgs). Grades and demographics live only in the
people's JSON, so they are read once per report, for the learners concerned.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, String, bindparam, column, select, text

from ..store import tables as t
from ..store.db import UUIDType
from .scope import PERSON_GROUPINGS, Scope, unknown
from .sources import ACTIVE, learner_filters

STUDENT = "student"


@dataclass
class Population:
    """The learners a report covers (None: every learner of the tenant, no filter), the
    groups they fall into (group key -> learners; one group "all" when ungrouped), a label
    for each group, and each learner's student sections (when asked for)."""

    learners: set[uuid.UUID] | None
    groups: dict[str, set[uuid.UUID] | None]
    labels: dict[str, str] = field(default_factory=dict)
    sections: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)


def active_rows(tbl: Any, tenant: str) -> Any:
    """The rows of ``tbl`` that are ``tenant``'s and active."""
    return (tbl.c.tenant == tenant) & (tbl.c.status == ACTIVE)


class Roster:
    """Roster look-ups for one report, on one connection."""

    def __init__(self, conn: Connection, tenant: str) -> None:
        self.conn, self.tenant = conn, tenant

    @functools.cached_property
    def orgs(self) -> dict[uuid.UUID, tuple[uuid.UUID | None, str, str]]:
        """org id -> (parent id, name, type); a tenant has few orgs."""
        q = select(t.orgs.c.id, t.orgs.c.parent_id, t.orgs.c.data, t.orgs.c.type).where(active_rows(t.orgs, self.tenant))
        return {rid: (parent, orjson.loads(data)["name"], kind) for rid, parent, data, kind in self.conn.execute(q)}

    def subtree(self, org: uuid.UUID) -> set[uuid.UUID]:
        """The org and every org below it (a district's schools, their departments...)."""
        if org not in self.orgs:
            raise unknown("org", "org", org)
        children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for rid, (parent, *_) in self.orgs.items():
            if parent is not None:
                children[parent].append(rid)
        out, todo = set(), [org]
        while todo:
            o = todo.pop()
            if o not in out:
                out.add(o)
                todo.extend(children[o])
        return out

    def section(self, sid: uuid.UUID) -> dict[str, Any]:
        data = self.conn.scalar(select(t.sections.c.data).where(active_rows(t.sections, self.tenant), t.sections.c.id == sid))
        if data is None:
            raise unknown("section", "section", sid)
        return orjson.loads(data)

    def enrolled(self, *, orgs: set[uuid.UUID] | None = None, section: uuid.UUID | None = None) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
        """(learner, section, section's org) of active student enrollments. Only of stored
        people: an enrollment may hold its person unresolved (``gateway.store.unresolved``),
        a learner no record describes yet, who is counted once the record arrives."""
        e, s, p = t.enrollments, t.sections, t.people
        q = (
            select(e.c.person_id, s.c.id, s.c.org_id)
            .join(s, s.c.id == e.c.section_id)
            .join(p, p.c.id == e.c.person_id)
            .where(active_rows(e, self.tenant), active_rows(s, self.tenant), p.c.tenant == self.tenant, e.c.role == STUDENT)
        )
        if section is not None:
            q = q.where(s.c.id == section)
        if orgs is not None:
            q = q.where(s.c.org_id.in_(sorted(orgs)))
        return self.conn.execute(q).all()  # type: ignore[return-value]

    def people(self, ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, dict[str, Any]]:
        """People's JSON documents: of ``ids``, or of every person whose primary role is student."""
        p = t.people
        base = select(p.c.id, p.c.data).where(active_rows(p, self.tenant))
        if ids is None:
            return {rid: orjson.loads(d) for rid, d in self.conn.execute(base.where(p.c.primary_role == STUDENT))}
        out: dict[uuid.UUID, dict[str, Any]] = {}
        for where in learner_filters(self.conn.engine, p.c.id, ids):
            out.update((rid, orjson.loads(d)) for rid, d in self.conn.execute(base.where(where)))
        return out

    def student_roles(self, orgs: set[uuid.UUID] | None) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(person, org) of every student role a person's record names (in ``orgs``).

        Roles are not a promoted column, so the database reads them from the JSON with its
        own functions (jsonb on PostgreSQL, JSON1 on SQLite): only ids cross the wire."""
        pg = self.conn.engine.dialect.name == "postgresql"
        if pg:
            sql = ("SELECT p.id, r ->> 'org_id' FROM people p CROSS JOIN LATERAL jsonb_array_elements(p.data::jsonb -> 'roles') r "
                   "WHERE p.tenant = :tenant AND p.status = :active AND r ->> 'role' = :student")
        else:
            sql = ("SELECT p.id, json_extract(r.value, '$.org_id') FROM people p, json_each(p.data, '$.roles') r "
                   "WHERE p.tenant = :tenant AND p.status = :active AND json_extract(r.value, '$.role') = :student")
        params: dict[str, Any] = {"tenant": self.tenant, "active": ACTIVE, "student": STUDENT}
        if orgs is not None:
            params["orgs"] = sorted(str(o) for o in orgs)
            sql += " AND r ->> 'org_id' = ANY(:orgs)" if pg else " AND json_extract(r.value, '$.org_id') IN :orgs"
        q = text(sql).columns(column("id", UUIDType()), column("org", String()))
        if not pg and orgs is not None:
            q = q.bindparams(bindparam("orgs", expanding=True))
        orgs_by_text = functools.lru_cache(maxsize=None)(uuid.UUID)  # a few orgs, named by many people
        return [(pid, orgs_by_text(org)) for pid, org in self.conn.execute(q, params).all()]


def _person_groups(doc: dict[str, Any], by: str) -> list[str]:
    """The groups a person falls into by grade or by a demographic (CEDS-style categories)."""
    if by == "grade":
        return list(doc.get("grades") or ["unknown"])
    demo = doc.get("demographics") or {}
    if by == "sex":
        return [demo.get("sex") or "unknown"]
    if by == "race":
        races = demo.get("races") or []
        return [races[0] if len(races) == 1 else "two_or_more_races" if races else "unknown"]
    if by == "ethnicity":
        h = demo.get("hispanic_or_latino")
        return ["unknown" if h is None else "hispanic_or_latino" if h else "not_hispanic_or_latino"]
    return list(demo.get("groups") or ["none"])


def resolve_population(conn: Connection, tenant: str, scope: Scope, *, need_sections: bool = False) -> Population:
    """Which learners ``scope`` covers and how they group (404 naming an unknown org/section)."""
    roster = Roster(conn, tenant)
    org_set = roster.subtree(scope.org) if scope.org is not None else None
    if scope.section is not None:
        roster.section(scope.section)
    by_roster = scope.org is not None or scope.section is not None or scope.group_by in ("org", "section") or need_sections
    by_person = scope.grade is not None or scope.group is not None or scope.group_by in PERSON_GROUPINGS
    if not by_roster and not by_person:
        return Population(None, {"all": None})

    sections: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    orgs_of: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    learners: set[uuid.UUID] | None = None
    docs: dict[uuid.UUID, dict[str, Any]] | None = None
    if by_roster:
        enrolled = roster.enrolled(orgs=org_set, section=scope.section)
        # a person's roles name their school even without enrollments
        named = roster.student_roles(org_set) if scope.section is None else []
        if scope.group_by in ("org", "section") or need_sections:
            for learner, sid, oid in enrolled:
                sections[learner].add(sid)
                orgs_of[learner].add(oid)
            for pid, oid in named:
                orgs_of[pid].add(oid)
        learners = {row[0] for row in enrolled}
        learners.update(pid for pid, _ in named)
    if by_person:
        docs = roster.people(learners)
        if learners is None:
            learners = set(docs)
        learners = {x for x in learners if _person_matches(docs.get(x, {}), scope)}

    assert learners is not None
    groups, labels = _group(scope, learners, sections, orgs_of, docs or {}, roster)
    return Population(learners, groups, labels, {x: sections[x] for x in learners if x in sections} if need_sections else {})


def _person_matches(doc: dict[str, Any], scope: Scope) -> bool:
    if scope.grade is not None and scope.grade not in (doc.get("grades") or ()):
        return False
    return scope.group is None or scope.group in ((doc.get("demographics") or {}).get("groups") or ())


def _group(
    scope: Scope, learners: set[uuid.UUID], sections: dict[uuid.UUID, set[uuid.UUID]], orgs_of: dict[uuid.UUID, set[uuid.UUID]],
    docs: dict[uuid.UUID, dict[str, Any]], roster: Roster,
) -> tuple[dict[str, set[uuid.UUID] | None], dict[str, str]]:
    if scope.group_by is None:
        return {"all": learners}, {}
    groups: dict[str, set[uuid.UUID]] = defaultdict(set)
    for x in learners:
        if scope.group_by == "org":
            keys = [str(o) for o in orgs_of.get(x, ())]
        elif scope.group_by == "section":
            keys = [str(s) for s in sections.get(x, ()) if scope.section is None or s == scope.section]
        else:
            keys = _person_groups(docs.get(x, {}), scope.group_by)
        for k in keys:
            groups[k].add(x)
    labels: dict[str, str] = {}
    if scope.group_by == "org":
        labels = {k: roster.orgs[uuid.UUID(k)][1] for k in groups if uuid.UUID(k) in roster.orgs}
    elif scope.group_by == "section":
        labels = {k: roster.section(uuid.UUID(k)).get("title", "") for k in groups}
    return dict(sorted(groups.items())), labels


def resolve_competencies(conn: Connection, tenant: str, scope: Scope) -> tuple[list[uuid.UUID] | None, dict[uuid.UUID, str | None]]:
    """The competencies a report is limited to (None: all) and every competency's code."""
    c = t.competencies
    codes: dict[uuid.UUID, str | None] = {}
    by_framework: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for cid, code, fw in conn.execute(select(c.c.id, c.c.code, c.c.framework_id).where(active_rows(c, tenant))):
        codes[cid] = code
        by_framework[fw].append(cid)
    chosen: list[uuid.UUID] | None = None
    for cid in scope.competencies:
        if cid not in codes:
            raise unknown("competency", "competency", cid)
    if scope.competencies:
        chosen = list(dict.fromkeys(scope.competencies))
    if scope.framework is not None:
        exists = conn.scalar(select(t.frameworks.c.id).where(active_rows(t.frameworks, tenant), t.frameworks.c.id == scope.framework))
        if exists is None:
            raise unknown("framework", "framework", scope.framework)
        in_fw = by_framework.get(scope.framework, [])
        chosen = [x for x in chosen if x in set(in_fw)] if chosen is not None else in_fw
    return chosen, codes


__all__ = ["STUDENT", "Population", "Roster", "active_rows", "resolve_competencies", "resolve_population"]
