"""The district and school views for administrators: ``/console/schools`` (the whole
tenant) and ``/console/schools/{org_id}`` (a district or a school and everything below it).

Each shows mastery distributions as of a date (a GET form; today by default): how many
learners stand at each level of each standard, and for one standard (the most assessed,
or the one picked) the same by school and by grade. Every table is a de-identified
``distribution`` report of ``gateway.reports`` (``Reports.build`` with ``Deidentify()``):
the same counts and the same small-cell suppression, with the same threshold
(``DEFAULT_MIN_CELL``) and complementary cells, as a state pull gets; a suppressed cell
shows ``*`` whatever its reason, as the reports do. Bars are server-rendered SVG.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ..errors import ErrorDetail, NotFound
from ..model import utcnow
from ..reports.builder import Reports
from ..reports.deidentify import DEFAULT_MIN_CELL, SUPPRESSED, Deidentify
from ..reports.population import active_rows
from ..reports.scope import Scope, parse_scope
from ..store import Store
from ..store import tables as t
from .access import parse_id
from .classes import tenant_model
from .web import PREFIX, Console, Viewer

BAR_WIDTH = 100


@dataclass
class Row:
    """One row of a distribution table: a standard, a school or a grade."""

    key: str
    label: str
    detail: str = ""
    #: level code -> count, or None when suppressed
    counts: dict[str, int | None] = field(default_factory=dict)
    assessed: int | None = 0

    def share(self, level: str) -> int | None:
        """Whole percent of the assessed at ``level`` (None when either is hidden)."""
        n = self.counts.get(level, 0)
        if n is None or not self.assessed:
            return None
        return round(100 * n / self.assessed)


@dataclass
class Table:
    rows: list[Row]
    levels: list[tuple[str, str, str]]  # (code, label, css class), lowest first

    @property
    def suppressed(self) -> bool:
        return any(r.assessed is None or None in r.counts.values() for r in self.rows)


def _count(v: Any) -> int | None:
    return None if v is SUPPRESSED else int(v)


def _levels(store: Store, tenant: str, comps: list[uuid.UUID]) -> dict[str | None, tuple[str, int]]:
    """Level code -> (label, position) from the competencies' scales (the first that has it)."""
    out: dict[str | None, tuple[str, int]] = {}
    with store.engine.connect() as conn:
        model = tenant_model(store, conn, tenant)
    for c in comps:
        scale = model.rule_and_scale(c)[1]
        for i, lv in enumerate(scale.levels):
            out.setdefault(lv.code, (lv.label, i))
    return out


def _level_columns(found: set[str | None], names: dict[str | None, tuple[str, int]]) -> list[tuple[str, str, str]]:
    count = max((p for _, p in names.values()), default=0) + 1
    ordered = sorted(found, key=lambda lv: (names.get(lv, ("", 99))[1], lv or ""))
    out = []
    for lv in ordered:
        label, pos = names.get(lv, (lv or "No level", -1))
        css = "lvl-none" if pos < 0 else f"lvl-{1 + round(pos * 3 / (count - 1))}" if count > 1 else "lvl-4"
        out.append((lv or "", label, css))
    return out


@dataclass
class DistrictData:
    as_of: date
    by_standard: Table
    standard: tuple[uuid.UUID, str, str] | None  # (id, code, statement) of the standard broken down
    by_school: Table
    by_grade: Table
    min_cell: int


def _table(report_rows: list[dict[str, Any]], key: str, labels: dict[str, tuple[str, str]],
           names: dict[str | None, tuple[str, int]]) -> Table:
    rows: dict[str, Row] = {}
    found: set[str | None] = set()
    for r in report_rows:
        k = str(r[key])
        row = rows.get(k)
        if row is None:
            label, detail = labels.get(k, (k, ""))
            row = rows[k] = Row(k, label, detail, assessed=_count(r["assessed"]))
        row.counts[r["level"] or ""] = _count(r["learners"])
        found.add(r["level"])
    return Table(list(rows.values()), _level_columns(found, names))


def district(store: Store, reports: Reports, tenant: str, org: uuid.UUID | None, as_of: datetime | None,
             standard: uuid.UUID | None, framework: uuid.UUID | None = None) -> DistrictData:
    """The three tables of the page, each a de-identified distribution report."""
    deid = Deidentify(min_cell=DEFAULT_MIN_CELL)
    dist = reports.build("distribution", tenant, Scope(org=org, as_of=as_of, framework=framework), deid)
    rows = list(dist.rows)
    comps = list(dict.fromkeys(r["competency_id"] for r in rows))
    with store.engine.connect() as conn:
        c = t.competencies
        docs = {cid: orjson.loads(d) for cid, d in conn.execute(
            select(c.c.id, c.c.data).where(active_rows(c, tenant), c.c.id.in_(comps)))} if comps else {}
        orgs = {oid: orjson.loads(d)["name"] for oid, d in conn.execute(select(t.orgs.c.id, t.orgs.c.data).where(active_rows(t.orgs, tenant)))}
    names = _levels(store, tenant, comps)
    labels = {str(cid): (doc.get("code") or "", doc.get("short_statement") or doc.get("statement") or "") for cid, doc in docs.items()}
    by_standard = _table(rows, "competency_id", labels, names)
    for row in by_standard.rows:
        row.label = row.label or row.detail[:30]
    assessed: dict[str, int] = defaultdict(int)
    for row in by_standard.rows:
        assessed[row.key] = row.assessed if row.assessed is not None else -1
    chosen = standard if standard is not None and str(standard) in assessed else (
        uuid.UUID(max(assessed, key=lambda k: (assessed[k], k))) if assessed else None)
    empty = Table([], [])
    by_school = by_grade = empty
    picked = None
    if chosen is not None:
        code, statement = labels.get(str(chosen), ("", ""))
        picked = (chosen, code, statement)
        for group_by in ("org", "grade"):
            rep = reports.build("distribution", tenant, Scope(org=org, as_of=as_of, competencies=(chosen,), group_by=group_by), deid)
            glabels = ({str(k): (v, "") for k, v in orgs.items()} if group_by == "org" else {})
            table = _table(list(rep.rows), "group", glabels, names)
            if group_by == "grade":
                for row in table.rows:
                    row.label = _grade_label(row.key)
            table.rows.sort(key=(lambda r: (_grade_order(r.key), r.key)) if group_by == "grade" else (lambda r: (r.label.casefold(), r.key)))
            if group_by == "org":
                by_school = table
            else:
                by_grade = table
    day = (as_of or utcnow()).date()
    return DistrictData(day, by_standard, picked, by_school, by_grade, deid.min_cell)


GRADE_ORDER = ("IT", "PR", "PK", "TK", "KG", *(f"{n:02d}" for n in range(1, 14)), "PS", "UG", "Other", "unknown")


def _grade_order(code: str) -> int:
    """CEDS grade codes youngest first; anything else after them."""
    return GRADE_ORDER.index(code) if code in GRADE_ORDER else len(GRADE_ORDER)


def _grade_label(code: str) -> str:
    named = {"KG": "Kindergarten", "PK": "Pre-kindergarten", "TK": "Transitional kindergarten", "IT": "Infant/toddler",
             "PR": "Preschool", "PS": "Postsecondary", "UG": "Ungraded", "unknown": "Grade not recorded", "Other": "Other"}
    if code in named:
        return named[code]
    return f"Grade {int(code)}" if code.isdigit() else code


def frameworks_of(store: Store, tenant: str) -> list[tuple[uuid.UUID, str]]:
    """The tenant's frameworks: (id, title), by title."""
    f = t.frameworks
    with store.engine.connect() as conn:
        rows = [(rid, orjson.loads(d).get("title", "")) for rid, d in conn.execute(select(f.c.id, f.c.data).where(active_rows(f, tenant)))]
    return sorted(rows, key=lambda r: (r[1].casefold(), str(r[0])))


def _org_tree(store: Store, tenant: str) -> dict[uuid.UUID, tuple[uuid.UUID | None, str, str]]:
    """org id -> (parent id, name, type)."""
    o = t.orgs
    with store.engine.connect() as conn:
        return {rid: (parent, orjson.loads(d)["name"], kind) for rid, parent, d, kind in conn.execute(
            select(o.c.id, o.c.parent_id, o.c.data, o.c.type).where(active_rows(o, tenant)))}


def parse_day(value: str | None) -> tuple[datetime | None, date, str | None]:
    """(as-of for the reports (None: now), the day shown, an error for the date field)."""
    today = utcnow().date()
    if not value:
        return None, today, None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None, today, "Enter a date like 2026-09-30."
    if day > today:
        return None, today, "Pick today or a day in the past: there are no results for the future yet."
    if day == today:
        return None, today, None
    return parse_scope(as_of=day.isoformat()).as_of, day, None


def build(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    store = console.ctx.store
    reports = Reports(store)

    async def page(request: Request, viewer: Viewer, org_id: str | None) -> Response:
        console.access.admin(viewer)
        tree = await run_in_threadpool(_org_tree, store, viewer.tenant)
        org = None
        if org_id is not None:
            org = parse_id(org_id, "school")
            if org not in tree:
                raise NotFound("no such school", errors=[ErrorDetail("not a school or district of this tenant", field="school")])
        q = request.query_params
        as_of, day, date_error = parse_day(q.get("as_of"))
        standard = None
        if q.get("standard"):
            try:
                standard = uuid.UUID(q["standard"])
            except ValueError:
                standard = None
        frameworks = await run_in_threadpool(frameworks_of, store, viewer.tenant)
        framework, framework_error = None, None
        if q.get("framework"):
            framework = next((f for f, _ in frameworks if str(f) == q["framework"]), None)
            if framework is None:
                framework_error = "That set of standards is not known here: pick one from the list."
        data = await run_in_threadpool(district, store, reports, viewer.tenant, org, as_of, standard, framework)
        data.as_of = day
        trail: list[tuple[uuid.UUID, str]] = []
        at = org
        while at is not None and at in tree and len(trail) < 20:
            trail.insert(0, (at, tree[at][1]))
            at = tree[at][0]
        below = sorted(((k, v[1], v[2]) for k, v in tree.items() if v[0] == org or (org is None and v[0] not in tree)),
                       key=lambda r: r[1].casefold())
        title = tree[org][1] if org is not None else "Schools and district"
        here = f"{PREFIX}/schools" + (f"/{org}" if org is not None else "")
        keep = (f"&as_of={day.isoformat()}" if as_of is not None else "") + (f"&framework={framework}" if framework else "")
        return console.render(request, "schools.html", status=422 if date_error or framework_error else 200, title=title, data=data,
                              frameworks=frameworks, framework=str(framework or ""), framework_error=framework_error,
                              trail=trail[:-1] if org is not None else [], below=below, here=here, keep=keep,
                              date_value=q.get("as_of") if date_error else day.isoformat(), date_error=date_error,
                              today=utcnow().date().isoformat(), org_kind=tree[org][2] if org is not None else None,
                              bar_width=BAR_WIDTH, std_link=lambda r: f"{here}?standard={r.key}{keep}#school-h")

    @router.get("/schools")
    async def schools(request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        return await page(request, viewer, None)

    @router.get("/schools/{org_id}")
    async def school(org_id: str, request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        return await page(request, viewer, org_id)

    return router


__all__ = ["DistrictData", "Row", "Table", "build", "district", "parse_day"]
