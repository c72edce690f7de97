"""Where a report's states come from, and how the database counts them.

- **Counting happens in SQL.** A district report covers tens of thousands of learners and
  hundreds of competencies, so the distribution is a ``GROUP BY competency_id, level`` on
  ``mastery_states``' promoted columns (no state's JSON is ever parsed). Learner groups
  (a school, a section, a grade, a demographic group) are sets of learner ids, sent as one
  array parameter on PostgreSQL and in chunks on SQLite; every state belongs to exactly one
  learner, so counts add up - and a population that is most of the tenant is counted as
  the tenant's totals minus everyone else's (``StoredStates.level_counts``).
- **As of a past date** the states are not stored: ``MasteryEngine.states_as_of``
  re-derives them from the append-only evidence observed on or before that date, and the
  same counts are made in Python from those rows (``AsOfStates``). The engine is passed
  in, so tests can give a fake one.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ARRAY, Engine, String, Uuid, and_, any_, bindparam, func, select

from ..mastery.engine import MasteryEngine
from ..model import Status
from ..store import Store
from ..store import tables as t
from ..store.db import max_params

ACTIVE = Status.active.value

StateRow = tuple[uuid.UUID, uuid.UUID, str | None, float | None, bool]
#: course -> (its learners, its competencies)
Courses = dict[uuid.UUID, tuple[set[uuid.UUID], list[uuid.UUID]]]
#: ``MasteryEngine.states_as_of``'s signature: (tenant, as_of, competency_ids) -> state rows
AsOf = Callable[[str, datetime, Sequence[uuid.UUID] | None], Iterable[StateRow]]


class StateSource(Protocol):
    def grouped_level_counts(self, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]: ...
    def level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]: ...
    def mastered_counts(self, learners: Iterable[uuid.UUID], competencies: Sequence[uuid.UUID]) -> Counter[uuid.UUID]: ...
    def mastered_per_course(self, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]: ...
    def states(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]: ...


def learner_filters(engine: Engine, column: Any, learners: Iterable[uuid.UUID] | None, reserved: int = 0) -> Iterator[Any]:
    """WHERE clauses that together cover ``learners`` (one None: no filter).

    PostgreSQL takes the whole set as ONE array parameter (``= ANY(:ids)``), so a district
    is one scan, not one per chunk. SQLite has no arrays: chunks of ``IN (...)`` that fit
    its parameter limit (the counts of the chunks add up: a state has one learner)."""
    if learners is None:
        yield None
        return
    ids = sorted(learners)
    if not ids:
        return
    if engine.dialect.name == "postgresql":
        yield column == any_(bindparam("learners", ids, type_=ARRAY(Uuid())))
        return
    size = max(100, max_params(engine.dialect) - reserved - 50)
    for i in range(0, len(ids), size):
        yield column.in_(ids[i : i + size])


def count_by_group(
    engine: Engine, table: Any, groups: Mapping[str, Iterable[uuid.UUID] | None], where: Sequence[Any], keys: Sequence[Any], reserved: int = 0,
) -> Counter[tuple[Any, ...]]:
    """``count(*)`` of ``table``'s rows per (group, *keys), for learner groups (by the table's
    ``learner_id``; a group of None: every learner).

    On PostgreSQL several groups are ONE scan: the (learner, group) pairs go in as two
    arrays, unnested and joined. Elsewhere, a query per group (and chunk)."""
    out: Counter[tuple[Any, ...]] = Counter()
    learner = table.c.learner_id
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql" and len(groups) > 1 and None not in groups.values():
            pairs = sorted((x, g) for g, learners in groups.items() for x in learners or ())
            members = func.unnest(
                bindparam("members", [x for x, _ in pairs], type_=ARRAY(Uuid())), bindparam("groups", [g for _, g in pairs], type_=ARRAY(String())),
            ).table_valued("learner_id", "grp", name="members").render_derived()
            q = (select(members.c.grp, *keys, func.count()).select_from(table.join(members, learner == members.c.learner_id))
                 .where(*where).group_by(members.c.grp, *keys))
            for g, *k, n in conn.execute(q):
                out[(g, *k)] += n
            return out
        for g, learners in groups.items():
            for only in learner_filters(engine, learner, learners, reserved):
                q = select(*keys, func.count()).where(*where)
                for *k, n in conn.execute((q if only is None else q.where(only)).group_by(*keys)):
                    out[(g, *k)] += n
    return out


class StoredStates:
    """The current states, counted by the database on ``mastery_states``' promoted columns."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine, self.tenant = engine, tenant
        #: the whole tenant's level counts, when someone has started them already
        self.tenant_counts: Future[Counter[tuple[uuid.UUID, str | None]]] | None = None

    @functools.cached_property
    def people(self) -> set[uuid.UUID]:
        """Every person id of the tenant (whatever their status): all a state can belong to."""
        with self.engine.connect() as conn:
            return set(conn.scalars(select(t.people.c.id).where(t.people.c.tenant == self.tenant)))

    def _select(self, cols: Sequence[Any], competencies: Sequence[uuid.UUID] | None) -> Any:
        return select(*cols).where(*self._where(competencies))

    def level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]:
        """Learners per (competency, level). For a population that is most of the tenant (a
        district that is the whole tenant but its teachers), the tenant's counts minus
        those of everyone else: two cheap queries instead of one filtered scan."""
        if competencies is not None and not competencies:
            return Counter()
        if learners is not None:
            learners = set(learners)
            rest = self.people - learners
            if len(rest) < len(learners):
                total = Counter(self.tenant_counts.result()) if self.tenant_counts else self._level_counts(None, competencies)
                if rest:
                    total.subtract(self._level_counts(rest, competencies))
                return +total
        return self._level_counts(learners, competencies)

    def grouped_level_counts(self, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]:
        """Learners per (group, competency, level)."""
        if len(groups) <= 1 or (competencies is not None and not competencies):
            return _per_group(self, groups, competencies)
        ms = t.mastery_states
        return count_by_group(self.engine, ms, groups, self._where(competencies), (ms.c.competency_id, ms.c.level), len(competencies or ()))

    def _where(self, competencies: Sequence[uuid.UUID] | None) -> list[Any]:
        ms = t.mastery_states
        where = [ms.c.tenant == self.tenant, ms.c.status == ACTIVE]
        if competencies is not None:
            where.append(ms.c.competency_id.in_(list(competencies)))
        return where

    def _level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]:
        ms = t.mastery_states
        counts = count_by_group(self.engine, ms, {"": learners}, self._where(competencies), (ms.c.competency_id, ms.c.level),
                                len(competencies or ()))
        return Counter({(comp, level): n for (_, comp, level), n in counts.items()})

    def mastered_counts(self, learners: Iterable[uuid.UUID], competencies: Sequence[uuid.UUID]) -> Counter[uuid.UUID]:
        ms = t.mastery_states
        out: Counter[uuid.UUID] = Counter()
        if not competencies:
            return out
        with self.engine.connect() as conn:
            for where in learner_filters(self.engine, ms.c.learner_id, learners, len(competencies)):
                q = self._select((ms.c.learner_id, func.count()), competencies).where(where, ms.c.mastered.is_(True))
                out.update(dict(conn.execute(q.group_by(ms.c.learner_id)).all()))
        return out

    def mastered_per_course(self, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]:
        """Mastered competencies per (learner, course). On PostgreSQL every course is one
        scan: the (learner, course) and (course, competency) pairs go in as arrays."""
        if len(courses) <= 1 or self.engine.dialect.name != "postgresql":
            return _per_course(self, courses)
        ms = t.mastery_states
        takes = sorted((x, c) for c, (learners, _) in courses.items() for x in learners)
        covers = sorted((c, k) for c, (_, comps) in courses.items() for k in comps)
        ids = ARRAY(Uuid())
        took = func.unnest(bindparam("took_l", [x for x, _ in takes], ids), bindparam("took_c", [c for _, c in takes], ids)
                           ).table_valued("learner_id", "course_id", name="took").render_derived()
        has = func.unnest(bindparam("has_c", [c for c, _ in covers], ids), bindparam("has_k", [k for _, k in covers], ids)
                          ).table_valued("course_id", "competency_id", name="has").render_derived()
        joined = ms.join(took, ms.c.learner_id == took.c.learner_id).join(
            has, and_(has.c.course_id == took.c.course_id, has.c.competency_id == ms.c.competency_id))
        q = (self._select((took.c.learner_id, took.c.course_id, func.count()), None).select_from(joined)
             .where(ms.c.mastered.is_(True)).group_by(took.c.learner_id, took.c.course_id))
        with self.engine.connect() as conn:
            return Counter({(x, c): n for x, c, n in conn.execute(q)})

    def states(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]:
        ms = t.mastery_states
        cols = (ms.c.learner_id, ms.c.competency_id, ms.c.level, ms.c.value, ms.c.mastered)
        with self.engine.connect() as conn:
            for where in learner_filters(self.engine, ms.c.learner_id, learners, len(competencies or ())):
                q = self._select(cols, competencies)
                q = (q if where is None else q.where(where)).order_by(ms.c.learner_id, ms.c.competency_id)
                for row in conn.execution_options(stream_results=True, yield_per=5000).execute(q):
                    yield row[0], row[1], row[2], row[3], bool(row[4])


class AsOfStates:
    """States at a past date: rows of ``MasteryEngine.states_as_of`` (derived learner by
    learner from the evidence), counted here as they stream by. One pass, read once: only
    the counts are kept, never the tenant's states."""

    def __init__(self, rows: Iterable[StateRow]) -> None:
        self._rows: Iterable[StateRow] | None = rows

    def _once(self, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]:
        rows, self._rows = self._rows, None
        if rows is None:
            raise RuntimeError("as-of states stream once: make a new source for another count")
        keep = set(competencies) if competencies is not None else None
        return (r for r in rows if keep is None or r[1] in keep)

    def grouped_level_counts(self, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]:
        everyone = [g for g, learners in groups.items() if learners is None]
        member: dict[uuid.UUID, list[str]] = defaultdict(list)
        for g, learners in groups.items():
            for x in learners or ():
                member[x].append(g)
        out: Counter[tuple[str, uuid.UUID, str | None]] = Counter()
        for x, comp, level, _, _ in self._once(competencies):
            for g in (*everyone, *member.get(x, ())):
                out[(g, comp, level)] += 1
        return out

    def level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]:
        counts = self.grouped_level_counts({"": None if learners is None else set(learners)}, competencies)
        return Counter({(comp, level): n for (_, comp, level), n in counts.items()})

    def mastered_per_course(self, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]:
        takes: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for course, (learners, _) in courses.items():
            for x in learners:
                takes[x].append(course)
        covers = {course: set(comps) for course, (_, comps) in courses.items()}
        out: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
        for x, comp, _, _, mastered in self._once(None):
            for course in takes.get(x, ()) if mastered else ():
                if comp in covers[course]:
                    out[(x, course)] += 1
        return out

    def mastered_counts(self, learners: Iterable[uuid.UUID], competencies: Sequence[uuid.UUID]) -> Counter[uuid.UUID]:
        one = uuid.UUID(int=0)
        return Counter({x: n for (x, _), n in self.mastered_per_course({one: (set(learners), list(competencies))}).items()})

    def states(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]:
        only = set(learners) if learners is not None else None
        return (r for r in self._once(competencies) if only is None or r[0] in only)


def _per_group(source: StateSource, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]:
    out: Counter[tuple[str, uuid.UUID, str | None]] = Counter()
    for g, learners in groups.items():
        for (comp, level), n in source.level_counts(learners, competencies).items():
            out[(g, comp, level)] = n
    return out


def _per_course(source: StateSource, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]:
    out: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
    for course, (learners, comps) in courses.items():
        for x, n in source.mastered_counts(learners, comps).items():
            out[(x, course)] = n
    return out


def engine_as_of(store: Store) -> AsOf:
    """``MasteryEngine(store).states_as_of``, the engine made when first needed."""

    def states_as_of(tenant: str, as_of: datetime, competency_ids: Sequence[uuid.UUID] | None) -> Iterable[StateRow]:
        return MasteryEngine(store).states_as_of(tenant, as_of, competency_ids)

    return states_as_of


__all__ = ["ACTIVE", "AsOf", "AsOfStates", "Courses", "StateRow", "StateSource", "StoredStates", "count_by_group",
           "engine_as_of", "learner_filters"]
