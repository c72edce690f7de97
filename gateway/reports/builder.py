"""``Reports``: builds every report kind for one store - the distribution of levels, the
progression statuses, the evidence volume and the states (per learner and competency)
here, the course grades in ``grades`` - grouped by org, section, grade or demographic,
optionally as of a past date and de-identified.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func

from ..model import utcnow
from ..store import Store
from ..store import tables as t
from .deidentify import CSV_SUPPRESSED, SUPPRESSED, Deidentify, suppress
from .formats import Report
from .grades import grade_report
from .population import Population, Roster, active_rows, resolve_competencies, resolve_population
from .progression import STATUSES, Thresholds, course_plan, default_thresholds
from .scope import KINDS, Scope, bad
from .sources import AsOf, AsOfStates, StateSource, StoredStates, count_by_group, engine_as_of

#: orgs whose learners are usually most of a tenant's (see ``Reports._district_ahead``)
WIDE_ORGS = frozenset({"national", "state", "district"})


class Reports:
    """Builds every report kind for one store.

    ``as_of`` gives the states at a past date; by default the mastery engine's
    ``states_as_of`` (tests pass a fake). ``thresholds`` are the progression statuses'."""

    def __init__(self, store: Store, *, as_of: AsOf | None = None, thresholds: Thresholds | None = None) -> None:
        self.store = store
        self.as_of = as_of or engine_as_of(store)
        self.thresholds = thresholds or default_thresholds()

    def build(self, kind: str, tenant: str, scope: Scope, deid: Deidentify | None = None, **options: Any) -> Report:
        if kind == "grades":
            return grade_report(self, tenant, scope, deid, **options)
        build = {
            "distribution": self.distribution, "progression": self.progression,
            "evidence-volume": self.evidence_volume, "states": self.states,
        }.get(kind)
        if build is None:
            raise bad("kind", f"unknown report; expected one of {', '.join(KINDS)}")
        return build(tenant, scope, deid)

    def source(self, tenant: str, scope: Scope, competencies: Sequence[uuid.UUID] | None) -> StateSource:
        if scope.as_of is None:
            return StoredStates(self.store.engine, tenant)
        return AsOfStates(self.as_of(tenant, scope.as_of, competencies))

    def _resolve(self, tenant: str, scope: Scope, *, need_sections: bool = False) -> tuple[Population, list[uuid.UUID] | None, dict[uuid.UUID, str | None]]:
        with self.store.engine.connect() as conn:
            comps, codes = resolve_competencies(conn, tenant, scope)
            pop = resolve_population(conn, tenant, scope, need_sections=need_sections)
        return pop, comps, codes

    def _district_ahead(self, tenant: str, scope: Scope) -> tuple[Population, list[uuid.UUID] | None, dict[uuid.UUID, str | None], StateSource]:
        """``_resolve`` for a district-wide distribution, with the tenant's counts made in a
        second thread while the roster is read: a district is usually most of its tenant,
        so ``StoredStates.level_counts`` will want them (tenant minus everyone else)."""
        with self.store.engine.connect() as conn:
            comps, codes = resolve_competencies(conn, tenant, scope)
            roster = Roster(conn, tenant)
            if scope.org not in roster.orgs or roster.orgs[scope.org][2] not in WIDE_ORGS:
                pop = resolve_population(conn, tenant, scope)
                return pop, comps, codes, self.source(tenant, scope, comps)
            source = StoredStates(self.store.engine, tenant)
            with ThreadPoolExecutor(1) as pool:
                source.tenant_counts = pool.submit(source.level_counts, None, comps)
                pop = resolve_population(conn, tenant, scope)
                source.tenant_counts.result()  # before the pool closes, and so that its errors surface here
        return pop, comps, codes, source

    @staticmethod
    def _parameters(tenant: str, scope: Scope, deid: Deidentify | None) -> dict[str, Any]:
        out = {"tenant": tenant, **scope.parameters(), "deidentified": deid is not None}
        if deid is not None:
            out["min_cell"] = deid.min_cell
        return out

    @staticmethod
    def _notes(scope: Scope, deid: Deidentify | None) -> list[str]:
        notes = []
        if scope.group_by in ("org", "section", "grade", "group"):
            notes.append(f"a learner in several groups ({scope.group_by}) is counted in each")
        if deid is not None:
            notes.append(f"counts from 1 to {deid.min_cell - 1}, and complementary cells that would reveal them, are "
                         f"suppressed (null in JSON, {CSV_SUPPRESSED} in CSV)")
        return notes

    @staticmethod
    def _group_columns(deid: Deidentify | None) -> tuple[str, ...]:
        return ("group_by", "group") if deid is not None else ("group_by", "group", "group_label")

    def _group_fields(self, scope: Scope, pop: Population, key: str, deid: Deidentify | None) -> dict[str, Any]:
        out = {"group_by": scope.group_by or "", "group": key}
        if deid is None:
            out["group_label"] = pop.labels.get(key, "")
        return out

    def distribution(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """Learners per competency and level, per group: ``learners`` at the level, of
        ``assessed`` (learners of the group with a state on the competency)."""
        if scope.as_of is None and scope.group_by is None and scope.org is not None:
            pop, comps, codes, source = self._district_ahead(tenant, scope)
        else:
            pop, comps, codes = self._resolve(tenant, scope)
            source = self.source(tenant, scope, comps)
        blocks: dict[uuid.UUID, dict[tuple[str, str | None], int]] = defaultdict(dict)
        for (key, comp, level), n in source.grouped_level_counts(pop.groups, comps).items():
            blocks[comp][(key, level)] = n
        rows: list[dict[str, Any]] = []
        for comp in sorted(blocks, key=lambda c: (codes.get(c) or "", str(c))):
            cells = blocks[comp]
            levels = sorted({lv for _, lv in cells}, key=lambda lv: (lv is None, lv or ""))
            keys = sorted({g for g, _ in cells})
            table = {(g, lv): cells.get((g, lv), 0) for g in keys for lv in levels}
            hidden, small = suppress(table, deid.min_cell) if deid else (set(), set())
            for g in keys:
                assessed = sum(table[(g, lv)] for lv in levels)
                for lv in levels:
                    rows.append({
                        **self._group_fields(scope, pop, g, deid), "competency_id": comp, "competency_code": codes.get(comp),
                        "level": lv, "learners": SUPPRESSED if (g, lv) in hidden else table[(g, lv)],
                        "assessed": SUPPRESSED if g in small else assessed,
                    })
        columns = (*self._group_columns(deid), "competency_id", "competency_code", "level", "learners", "assessed")
        return Report("distribution", columns, rows, self._parameters(tenant, scope, deid), self._notes(scope, deid))

    def progression(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """Learners per progression status, per group (statuses: mappings/report-thresholds.yaml)."""
        pop, comps, _ = self._resolve(tenant, scope, need_sections=True)
        assert pop.learners is not None
        status = self.learner_statuses(tenant, scope, pop, comps)
        table = {(g, s): 0 for g in pop.groups for s in STATUSES}
        for g, learners in pop.groups.items():
            for x in learners or ():
                table[(g, status[x])] += 1
        hidden, small = suppress(table, deid.min_cell) if deid else (set(), set())
        rows = []
        for g in pop.groups:
            total = sum(table[(g, s)] for s in STATUSES)
            for s in STATUSES:
                rows.append({**self._group_fields(scope, pop, g, deid), "status": s,
                             "learners": SUPPRESSED if (g, s) in hidden else table[(g, s)],
                             "group_learners": SUPPRESSED if g in small else total})
        columns = (*self._group_columns(deid), "status", "learners", "group_learners")
        return Report("progression", columns, rows, self._parameters(tenant, scope, deid), self._notes(scope, deid))

    def learner_statuses(self, tenant: str, scope: Scope, pop: Population, comps: list[uuid.UUID] | None) -> dict[uuid.UUID, str]:
        """Each learner's status: mastered share of the competencies of their courses against
        the elapsed share of their sections' terms (see mappings/report-thresholds.yaml)."""
        assert pop.learners is not None
        at = scope.as_of or utcnow()
        with self.store.engine.connect() as conn:
            plan = course_plan(conn, tenant, {s for ss in pop.sections.values() for s in ss}, at, self.thresholds)
        keep = set(comps) if comps is not None else None
        mastered: Counter[uuid.UUID] = Counter()
        expected: Counter[uuid.UUID] = Counter()
        paced: dict[uuid.UUID, float] = defaultdict(float)
        source = self.source(tenant, scope, comps)
        by_course: dict[uuid.UUID, dict[uuid.UUID, float]] = defaultdict(dict)  # course -> learner -> elapsed share
        for x, secs in pop.sections.items():
            for s in secs:
                course, elapsed = plan.sections[s]
                by_course[course][x] = max(elapsed, by_course[course].get(x, 0.0))
        courses: dict[uuid.UUID, tuple[set[uuid.UUID], list[uuid.UUID]]] = {}
        for course, learners in by_course.items():
            k = [c for c in plan.competencies.get(course, ()) if keep is None or c in keep]
            if not k:
                continue
            courses[course] = (set(learners), k)
            for x, elapsed in learners.items():
                expected[x] += len(k)
                paced[x] += len(k) * elapsed
        for (x, _), n in source.mastered_per_course(courses).items():
            mastered[x] += n
        return {x: self.thresholds.status(mastered[x], expected[x], paced[x] / expected[x] if expected[x] else 0.0) for x in pop.learners}

    def evidence_volume(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """Evidence items (not voided) per month observed, source and evidence kind, per group."""
        pop, comps, _ = self._resolve(tenant, scope)
        ev = t.evidence
        engine = self.store.engine
        month = (func.strftime("%Y-%m", ev.c.observed_at) if engine.dialect.name == "sqlite"
                 else func.to_char(func.timezone("UTC", ev.c.observed_at), "YYYY-MM"))
        where = [active_rows(ev, tenant), ev.c.voided.is_(False)]
        if comps is not None:
            where.append(ev.c.competency_id.in_(comps))
        if scope.as_of is not None:
            where.append(ev.c.observed_at <= scope.as_of)
        blocks: dict[str, dict[tuple[str, tuple[str, str]], int]] = defaultdict(dict)
        for (g, m, src, kind), n in count_by_group(engine, ev, pop.groups, where, (month, ev.c.source, ev.c.evidence_kind), len(comps or ())).items():
            blocks[g][(m, (src, kind))] = n
        rows = []
        for g, cells in blocks.items():
            months = sorted({m for m, _ in cells})
            cols = sorted({c for _, c in cells})
            table = {(m, c): cells.get((m, c), 0) for m in months for c in cols}
            hidden, _ = suppress(table, deid.min_cell) if deid else (set(), set())
            for (m, (src, kind)), n in table.items():
                if n or (m, (src, kind)) in hidden:
                    rows.append({**self._group_fields(scope, pop, g, deid), "month": m, "source": src, "evidence_kind": kind,
                                 "items": SUPPRESSED if (m, (src, kind)) in hidden else n})
        columns = (*self._group_columns(deid), "month", "source", "evidence_kind", "items")
        return Report("evidence-volume", columns, rows, self._parameters(tenant, scope, deid), self._notes(scope, deid))

    def states(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """One row per learner and competency, streamed; de-identified: pseudonymous learners."""
        if scope.group_by is not None:
            raise bad("group_by", "the states report has a row per learner and competency: it has no groups")
        pop, comps, codes = self._resolve(tenant, scope)
        if deid is not None:
            deid.pseudonym(uuid.UUID(int=0))  # no salt: refuse now, not halfway through the stream
        source = self.source(tenant, scope, comps)
        who = "learner" if deid is not None else "learner_id"

        def rows() -> Iterator[dict[str, Any]]:
            for learner, comp, level, value, mastered in source.states(pop.learners, comps):
                yield {who: deid.pseudonym(learner) if deid else learner, "competency_id": comp,
                       "competency_code": codes.get(comp), "level": level, "value": value, "mastered": mastered}

        columns = (who, "competency_id", "competency_code", "level", "value", "mastered")
        return Report("states", columns, rows(), self._parameters(tenant, scope, deid), [])


__all__ = ["WIDE_ORGS", "Reports"]
