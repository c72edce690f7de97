"""A route's ``orgs`` filter: only the records of those orgs, and what hangs off them.

``Route.orgs`` names orgs by sourcedId (their ``native_id``). The orgs *in scope* are those
and every org below them (``parent_id``, e.g. the schools of a named district). A record
is of the scope when:

* an org: it is in scope;
* an academic session: it has no org (a session every school shares), or its org is in scope;
* a course or a section: its org is in scope;
* an enrollment: its org (else its section's org) is in scope;
* a person: one of their roles is at an org in scope;
* evidence, a mastery state, a learning plan: their learner is of the scope;
* anything else (frameworks, competencies, alignments, scales, rules, an adapter's own
  kinds such as ``xapi.statement``): not tied to an org, always of the scope.

**Push routes** (``OrgScope.admits``, in ``delivery.Deliverer``): a row whose record is not
of the scope is not sent; it is marked delivered with ``last_error`` "outside the route's
orgs (not sent)", so it never waits and never counts as a failure.

**Pull routes** (``OrgScope.select``, OneRoster): each committed batch keeps only what is of
the scope, plus what the kept records need to be stored whole: the orgs above the orgs in
scope (a school's ``parent_id``) and the courses they own (a district's course taught in
a school), with a person's roles and guardians narrowed to what is kept.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import NotFound

if TYPE_CHECKING:
    from ..model import Record
    from ..store import Store

#: seconds an org tree read for a push route is reused
TTL = 30.0
#: kinds whose scope is their learner's
LEARNER_KINDS = frozenset({"evidence", "mastery_state", "learning_plan"})


class OrgScope:
    """The orgs in scope of one route's ``orgs`` (module docstring)."""

    def __init__(self, store: Store, tenant: str, sourced_ids: Iterable[str]) -> None:
        self.store, self.tenant = store, tenant
        self.named = frozenset(sourced_ids)
        self.parents: dict[uuid.UUID, uuid.UUID | None] = {}
        self.native: dict[uuid.UUID, str] = {}
        self.allowed: set[uuid.UUID] = set()
        #: the orgs above the allowed ones (pull: kept so that references resolve)
        self.above: set[uuid.UUID] = set()
        # pull: what this pull kept or the store holds in scope (enrollments and guardians need them)
        self.sections: set[uuid.UUID] = set()
        self.people: set[uuid.UUID] = set()
        self._people_checked: dict[uuid.UUID, bool] = {}
        self._stored_read = False
        self.read_orgs()

    # --- the org tree ----------------------------------------------------------------------------

    def read_orgs(self, extra: Iterable[Any] = ()) -> None:
        """The tenant's orgs (and ``extra`` ones about to be stored): which are in scope."""
        if not self.parents:
            stored: Iterable[Any] = self.store.records.iter_records(self.tenant, ["org"])
            for o in stored:
                self.parents[o.id], self.native[o.id] = o.parent_id, o.native_id
        for o in extra:
            self.parents[o.id], self.native[o.id] = o.parent_id, o.native_id
        children: dict[uuid.UUID, list[uuid.UUID]] = {}
        for oid, parent in self.parents.items():
            if parent is not None:
                children.setdefault(parent, []).append(oid)
        todo = [oid for oid, nid in self.native.items() if nid in self.named]
        allowed: set[uuid.UUID] = set()
        while todo:
            oid = todo.pop()
            if oid not in allowed:
                allowed.add(oid)
                todo.extend(children.get(oid, ()))
        above: set[uuid.UUID] = set()
        for oid in allowed:
            p = self.parents.get(oid)
            while p is not None and p not in allowed and p not in above:
                above.add(p)
                p = self.parents.get(p)
        self.allowed, self.above = allowed, above

    # --- push: one record ---------------------------------------------------------------------------

    def admits(self, kind: str, record: Record | None) -> bool:
        """Whether a pushed record is of the scope (module docstring)."""
        if record is None:
            return True  # an adapter's own kind, or a record gone from the store: not tied to an org here
        rec: Any = record
        if kind == "org":
            return bool(rec.id in self.allowed)
        if kind == "academic_session":
            return rec.org_id is None or rec.org_id in self.allowed
        if kind in ("course", "section"):
            return bool(rec.org_id in self.allowed)
        if kind == "enrollment":
            if rec.org_id is not None and rec.org_id in self.allowed:
                return True
            try:
                return bool(self.store.records.get(self.tenant, "section", rec.section_id).org_id in self.allowed)  # type: ignore[attr-defined]
            except NotFound:
                return False
        if kind == "person":
            return any(r.org_id in self.allowed for r in rec.roles)
        if kind in LEARNER_KINDS:
            return self._learner(rec.learner_id)
        return True

    def _learner(self, pid: uuid.UUID) -> bool:
        found = self._people_checked.get(pid)
        if found is None:
            try:
                person: Any = self.store.records.get(self.tenant, "person", pid)
                found = any(r.org_id in self.allowed for r in person.roles)
            except NotFound:
                found = False
            self._people_checked[pid] = found
        return found

    # --- pull: one batch ----------------------------------------------------------------------------

    def select(self, batch: Sequence[Record]) -> list[Record]:
        """The records of one pulled batch to store (module docstring). Batches come in
        dependency order: orgs first, then sessions, courses, classes, users, enrollments."""
        orgs = [r for r in batch if r.kind == "org"]
        if orgs:
            self.read_orgs(orgs)
        if not self._stored_read and any(r.kind != "org" for r in batch):
            self._stored_read = True
            self._stored_scope()
        keep_orgs = self.allowed | self.above
        out: list[Record] = []
        for r in batch:
            rec: Any = r
            kind = r.kind
            if kind == "org":
                ok = rec.id in keep_orgs
            elif kind == "academic_session":
                ok = rec.org_id is None or rec.org_id in keep_orgs
            elif kind == "course":
                ok = rec.org_id in keep_orgs
            elif kind == "section":
                ok = rec.org_id in self.allowed
                if ok:
                    self.sections.add(rec.id)
            elif kind == "person":
                ok = any(x.org_id in self.allowed for x in rec.roles)
                if ok:
                    self.people.add(rec.id)
                    rec = rec.model_copy(update={"roles": [x for x in rec.roles if x.org_id in keep_orgs],
                                                 "agent_ids": [a for a in rec.agent_ids if a in self.people or self._stored(a)]})
            elif kind == "enrollment":
                ok = rec.section_id in self.sections and (rec.person_id in self.people or self._stored(rec.person_id))
            elif kind in LEARNER_KINDS:
                ok = rec.learner_id in self.people or self._learner(rec.learner_id)
            else:
                ok = True
            if ok:
                out.append(rec)
        return out

    def _stored(self, pid: uuid.UUID) -> bool:
        """A person this pull did not list (an incremental pull), held in scope by the store."""
        return self._learner(pid)

    def _stored_scope(self) -> None:
        """Sections and people the store already holds in scope (an incremental pull lists only what changed)."""
        stored: Iterable[Any] = self.store.records.iter_records(self.tenant, ["section"])
        for s in stored:
            if s.org_id in self.allowed:
                self.sections.add(s.id)


class ScopeCache:
    """``OrgScope`` per (tenant, orgs) for the push side, read again after ``TTL`` seconds."""

    def __init__(self, store: Store, ttl: float = TTL) -> None:
        self.store, self.ttl = store, ttl
        self._lock = threading.Lock()
        self._scopes: dict[tuple[str, tuple[str, ...]], tuple[float, OrgScope]] = {}

    def get(self, tenant: str, orgs: Sequence[str]) -> OrgScope:
        key = (tenant, tuple(sorted(orgs)))
        now = time.monotonic()
        with self._lock:
            hit = self._scopes.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        scope = OrgScope(self.store, tenant, orgs)
        with self._lock:
            self._scopes[key] = (now, scope)
        return scope


__all__ = ["OrgScope", "ScopeCache"]
