"""The class view for teachers: ``/console/classes`` (the sections a teacher teaches; every
section of the tenant for an admin) and ``/console/classes/{id}``: a heatmap of the
section's learners (rows) by the competencies of its course (columns), the groups that
need support or are ready for more, and ``/console/classes/{id}.csv``.

- **Columns** are the course's competencies (``Course.competency_ids``) and everything
  below them in their framework (``is_child_of``), in tree order; the branch filter (a GET
  form) narrows them to one branch of the tree.
- **Cells** show the state's level by its scale's label, abbreviated, with the ``lvl``
  colour and pattern classes (colour is never the only signal; a legend says what each
  abbreviation means); no state is "not yet".
- **Sorting** is server-side (links in the column headers with ``aria-sort``): by name, by
  one competency's level, or by the share of the shown competencies mastered.
- **Groups** are the progression statuses of ``gateway.reports`` (thresholds in
  mappings/report-thresholds.yaml) for this section, computed exactly as the progression
  report with ``section=<id>`` does (``Reports.learner_statuses``).
- **Speed**: a fixed number of queries whatever the size of the class (the roster, the
  structure model cached by the mastery engine, one query for every state of the table).
- **CSV**: one row per learner, one column per competency, levels by name; a cell that a
  spreadsheet would read as a formula is prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from sqlalchemy import Connection, LargeBinary, TypeDecorator, func, select, type_coerce
from starlette.concurrency import run_in_threadpool

from ..errors import ConfigError
from ..mastery.attach import engine_of
from ..mastery.structure import Scale, TenantModel, load, stamp
from ..reports.builder import Reports
from ..reports.population import active_rows, resolve_population
from ..reports.progression import Thresholds
from ..reports.scope import Scope
from ..store import Store
from ..store import tables as t
from .web import PREFIX, SECURITY_HEADERS, Console, Forbidden, Viewer

#: the progression statuses a teacher acts on, in the order the page shows them
GROUPS = (
    ("needs_intensive_support", "Needs intensive support"),
    ("needs_short_term_support", "Needs short-term support"),
    ("accelerating", "Ready for more challenge"),
)
NOT_YET = "Not yet assessed"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class Column:
    id: uuid.UUID
    code: str
    statement: str
    framework_id: uuid.UUID
    depth: int
    has_children: bool


@dataclass(frozen=True)
class Cell:
    label: str
    abbr: str
    css: str
    rank: int  # -1: no state
    mastered: bool
    #: the cell's ``<td>``, made once: a table has thousands of cells and a few kinds of them
    html: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "html", f'<td><abbr class="lvl {escape(self.css)}" title="{escape(self.label)}">{escape(self.abbr)}</abbr></td>')


@dataclass
class Learner:
    id: uuid.UUID
    name: str
    sort_name: str
    cells: dict[uuid.UUID, Cell] = field(default_factory=dict)
    status: str = "no_expected_competencies"

    def share(self, columns: Sequence[Column]) -> float:
        if not columns:
            return 0.0
        return sum(1 for c in columns if (cell := self.cells.get(c.id)) is not None and cell.mastered) / len(columns)


@dataclass
class ClassData:
    """Everything the class page and its CSV show, read in a fixed number of queries."""

    section_id: uuid.UUID
    title: str
    course: str
    school: str
    term: str
    columns: list[Column]
    frameworks: dict[uuid.UUID, str]
    learners: list[Learner]
    legend: list[tuple[str, str, str]]  # (abbreviation, label, css class), lowest level first
    thresholds: Thresholds


NONE_CELL = Cell(NOT_YET, "–", "lvl-none", -1, False)


class Raw(TypeDecorator[Any]):
    """A UUID column read as the driver gives it (bytes on SQLite, UUID on PostgreSQL)."""

    impl = LargeBinary
    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


def person_name(doc: dict[str, Any]) -> tuple[str, str]:
    """(shown name, sort key): the preferred or given name and the family name."""
    given = doc.get("preferred_name") or doc.get("given_name") or ""
    family = doc.get("family_name") or ""
    return f"{given} {family}".strip() or "(no name)", f"{family}\x00{given}".casefold()


def _code_key(code: str) -> list[Any]:
    """Natural order of codes: RP.2 before RP.10."""
    return [int(p) if p.isdigit() else p.casefold() for p in re.split(r"(\d+)", code)]


def _abbreviations(scale: Scale) -> dict[str, str]:
    """A level code -> a short form of its label: the first letter when that tells the
    levels of the scale apart, else the first three letters, else the whole label."""
    labels = [lv.label for lv in scale.levels]
    for n in (1, 3):
        short = [lb[:n] for lb in labels]
        if len(set(short)) == len(short):
            return {lv.code: s for lv, s in zip(scale.levels, short, strict=True)}
    return {lv.code: lv.label for lv in scale.levels}


def _css(index: int, count: int) -> str:
    """The ``lvl-1..lvl-4`` class of the index-th of ``count`` levels (lowest first)."""
    if count <= 1:
        return "lvl-4"
    return f"lvl-{1 + round(index * 3 / (count - 1))}"


class Cells:
    """Level -> cell, per scale (a tenant has few scales; a table has thousands of cells)."""

    def __init__(self) -> None:
        self._by_scale: dict[int, dict[str | None, Cell]] = {}
        self.legend: dict[tuple[str, str, str], int] = {}

    def cell(self, scale: Scale, level: str | None, mastered: bool) -> Cell:
        table = self._by_scale.get(id(scale))
        if table is None:
            abbr = _abbreviations(scale)
            n = len(scale.levels)
            table = {lv.code: Cell(lv.label, abbr[lv.code], _css(i, n), i, lv.mastery) for i, lv in enumerate(scale.levels)}
            for lv in scale.levels:  # a state written by another system may name its level by the label
                table.setdefault(lv.label, table[lv.code])
            self._by_scale[id(scale)] = table
        found = table.get(level) if level is not None else None
        if found is None:
            if level is None:
                return NONE_CELL
            found = table[level] = Cell(level, level[:3], "lvl-none", -1, mastered)  # a level its scale does not know
        if found.mastered != mastered:
            found = Cell(found.label, found.abbr, found.css, found.rank, mastered)
        self.legend.setdefault((found.abbr, found.label, found.css), found.rank)
        return found


def tenant_model(store: Store, conn: Connection, tenant: str) -> TenantModel:
    """The mastery engine's cached structure model (loaded here when the store has no engine)."""
    try:
        return engine_of(store).model(conn, tenant)
    except ConfigError:
        return load(conn, tenant, stamp(conn, tenant))


def _docs(conn: Connection, table: Any, tenant: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    q = select(table.c.id, table.c.data).where(active_rows(table, tenant), table.c.id.in_(wanted))
    return {rid: orjson.loads(d) for rid, d in conn.execute(q)}


def _columns(conn: Connection, tenant: str, roots: Sequence[uuid.UUID], model: TenantModel) -> list[Column]:
    """The course's competencies and their descendants, depth first, children by code."""
    wanted: list[tuple[uuid.UUID, int]] = []
    seen: set[uuid.UUID] = set()
    comps = t.competencies
    known = set(model.framework_of)

    def walk(c: uuid.UUID, depth: int) -> None:
        if c in seen or c not in known:
            return
        seen.add(c)
        wanted.append((c, depth))
        for kid in sorted(model.children.get(c, ()), key=lambda k: _code_key(codes[k][0]) if k in codes else []):
            walk(kid, depth + 1)

    # codes for the whole subtree, read in one query after finding the subtree in memory
    subtree: set[uuid.UUID] = set()
    todo = [c for c in roots if c in known]
    while todo:
        c = todo.pop()
        if c not in subtree:
            subtree.add(c)
            todo.extend(model.children.get(c, ()))
    codes: dict[uuid.UUID, tuple[str, str]] = {}
    ordered = sorted(subtree)
    for i in range(0, len(ordered), 5000):
        q = select(comps.c.id, comps.c.code, comps.c.data).where(active_rows(comps, tenant), comps.c.id.in_(ordered[i:i + 5000]))
        for cid, code, data in conn.execute(q):
            doc = orjson.loads(data)
            statement = doc.get("short_statement") or doc.get("statement") or ""
            codes[cid] = (code or doc.get("alternative_label") or statement[:24], statement)
    for root in roots:
        if root in codes:
            walk(root, 0)
    return [Column(c, codes[c][0], codes[c][1], model.framework_of[c], depth,
                   any(k in subtree for k in model.children.get(c, ()))) for c, depth in wanted if c in codes]


_COLUMNS: dict[tuple[str, tuple[uuid.UUID, ...], tuple[Any, ...]], list[Column]] = {}


def _cached_columns(conn: Connection, tenant: str, roots: Sequence[uuid.UUID], model: TenantModel) -> list[Column]:
    """``_columns``, kept while the tenant's competencies and relations are unchanged (the
    model's stamp moves with every write to them)."""
    key = (tenant, tuple(roots), model.stamp)
    found = _COLUMNS.get(key)
    if found is None:
        if len(_COLUMNS) >= 256:
            _COLUMNS.clear()
        found = _COLUMNS[key] = _columns(conn, tenant, roots, model)
    return found


def load_class(store: Store, reports: Reports, tenant: str, section_id: uuid.UUID) -> ClassData:
    """The section's table: roster, columns, every state, the progression statuses."""
    scope = Scope(section=section_id)
    with store.engine.connect() as conn:
        section = _docs(conn, t.sections, tenant, [section_id])[section_id]
        course_id = uuid.UUID(section["course_id"])
        course = _docs(conn, t.courses, tenant, [course_id]).get(course_id, {})
        org = _docs(conn, t.orgs, tenant, [uuid.UUID(section["org_id"])]) if section.get("org_id") else {}
        terms = _docs(conn, t.academic_sessions, tenant, [uuid.UUID(x) for x in section.get("session_ids", ())])
        pop = resolve_population(conn, tenant, scope, need_sections=True)
        learner_ids = sorted(pop.learners or ())
        people = _docs(conn, t.people, tenant, learner_ids) if learner_ids else {}
        model = tenant_model(store, conn, tenant)
        roots = [uuid.UUID(c) for c in course.get("competency_ids", ())]
        columns = _cached_columns(conn, tenant, roots, model)
        fw_ids = {c.framework_id for c in columns}
        frameworks = {fid: doc.get("title", "") for fid, doc in _docs(conn, t.frameworks, tenant, fw_ids).items()}
        ms = t.mastery_states
        rows: Sequence[Any] = []
        if learner_ids and columns:
            # ids as the driver gives them (16 bytes on SQLite): a class of 35 x 120 has
            # thousands of states, and making a UUID of each id would be most of the page's time
            q = select(type_coerce(ms.c.learner_id, Raw()), type_coerce(ms.c.competency_id, Raw()), ms.c.level, ms.c.mastered).where(
                ms.c.tenant == tenant, ms.c.status == "active", ms.c.learner_id.in_(learner_ids),
                ms.c.competency_id.in_([c.id for c in columns]))
            rows = conn.execute(q).all()
    statuses = reports.learner_statuses(tenant, scope, pop, None) if learner_ids else {}
    learners: dict[uuid.UUID, Learner] = {}
    for lid in learner_ids:
        shown, key = person_name(people.get(lid, {}))
        learners[lid] = Learner(lid, shown, key, status=statuses.get(lid, "no_expected_competencies"))
    cells = Cells()
    by_raw: dict[Any, Learner] = {}
    for x in learners.values():
        by_raw[x.id] = by_raw[x.id.bytes] = x
    scale_of: dict[Any, tuple[uuid.UUID, Scale]] = {}
    for c in columns:
        scale_of[c.id] = scale_of[c.id.bytes] = (c.id, model.rule_and_scale(c.id)[1])
    for lid, cid, level, mastered in rows:
        comp, scale = scale_of[cid]
        by_raw[lid].cells[comp] = cells.cell(scale, level, bool(mastered))
    legend = [(a, lb, css) for (a, lb, css), _ in sorted(cells.legend.items(), key=lambda kv: (kv[1], kv[0][1]))]
    term = ", ".join(d.get("title", "") for d in sorted(terms.values(), key=lambda d: d.get("start_date", "")))
    return ClassData(section_id, section.get("title", ""), course.get("title", ""),
                     next(iter(org.values()), {}).get("name", ""), term, columns, frameworks,
                     sorted(learners.values(), key=lambda x: (x.sort_name, str(x.id))), legend, reports.thresholds)


# --- what the page shows ------------------------------------------------------------------------

def branch_columns(data: ClassData, branch: str | None) -> tuple[list[Column], str | None]:
    """The columns of one branch (a competency and what is below it, or a framework), and an
    error message when ``branch`` is not one of this table's."""
    if not branch:
        return data.columns, None
    if branch.startswith("fw:"):
        keep = [c for c in data.columns if str(c.framework_id) == branch[3:]]
        return (keep, None) if keep else (data.columns, "That framework is not in this class.")
    idx = next((i for i, c in enumerate(data.columns) if str(c.id) == branch), None)
    if idx is None:
        return data.columns, "That part of the standards is not in this class."
    top = data.columns[idx]
    out = [top]
    for c in data.columns[idx + 1:]:  # tree order: the branch runs until the next column as shallow as it
        if c.depth <= top.depth:
            break
        out.append(c)
    return out, None


def sort_learners(learners: list[Learner], columns: Sequence[Column], sort: str, descending: bool) -> list[Learner]:
    """By name, by one competency's level (``c:<id>``; no state lowest) or by the share of
    ``columns`` mastered; equal values stay in name order (the sort is stable both ways)."""
    by_name = sorted(learners, key=lambda x: (x.sort_name, str(x.id)))
    if sort == "mastered":
        return sorted(by_name, key=lambda x: x.share(columns), reverse=descending)
    if sort.startswith("c:"):
        cid = uuid.UUID(sort[2:])
        return sorted(by_name, key=lambda x: x.cells.get(cid, NONE_CELL).rank, reverse=descending)
    return by_name[::-1] if descending else by_name


def csv_safe(value: str) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets an apostrophe."""
    return "'" + value if value.startswith(FORMULA_START) else value


def to_csv(data: ClassData, columns: Sequence[Column]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["Learner", "Learner id", *(csv_safe(f"{c.code} {c.statement}".strip()) for c in columns), "Share mastered"])
    for x in data.learners:
        w.writerow([csv_safe(x.name), str(x.id), *(csv_safe(x.cells.get(c.id, NONE_CELL).label) for c in columns),
                    f"{round(100 * x.share(columns))}%"])
    return buf.getvalue()


def _filename(title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()
    return (slug or "class")[:60] + ".csv"


def _branch_options(data: ClassData) -> list[tuple[str, str]]:
    opts: list[tuple[str, str]] = []
    if len(data.frameworks) > 1:
        opts.extend((f"fw:{fid}", f"All of {title}") for fid, title in sorted(data.frameworks.items(), key=lambda kv: kv[1]))
    for c in data.columns:
        if c.has_children:
            text = f"{c.code}: {c.statement}" if c.statement and c.statement != c.code else c.code
            opts.append((str(c.id), "\u2003" * c.depth + (text[:80] + "…" if len(text) > 80 else text)))
    return opts


def list_sections(store: Store, tenant: str, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """The class list: name, course, school, term and learner count of each section."""
    if not ids:
        return []
    en = t.enrollments
    with store.engine.connect() as conn:
        secs = _docs(conn, t.sections, tenant, ids)
        courses = _docs(conn, t.courses, tenant, {uuid.UUID(s["course_id"]) for s in secs.values()})
        orgs = _docs(conn, t.orgs, tenant, {uuid.UUID(s["org_id"]) for s in secs.values() if s.get("org_id")})
        terms = _docs(conn, t.academic_sessions, tenant, {uuid.UUID(x) for s in secs.values() for x in s.get("session_ids", ())})
        counts: dict[uuid.UUID, int] = dict(conn.execute(
            select(en.c.section_id, func.count()).where(active_rows(en, tenant), en.c.role == "student", en.c.section_id.in_(sorted(secs)))
            .group_by(en.c.section_id)).all())
    out = []
    for sid, s in secs.items():
        term = [terms[uuid.UUID(x)] for x in s.get("session_ids", ()) if uuid.UUID(x) in terms]
        out.append({"id": sid, "title": s.get("title", ""), "course": courses.get(uuid.UUID(s["course_id"]), {}).get("title", ""),
                    "school": orgs.get(uuid.UUID(s["org_id"]), {}).get("name", "") if s.get("org_id") else "",
                    "term": ", ".join(d.get("title", "") for d in sorted(term, key=lambda d: d.get("start_date", ""))),
                    "learners": counts.get(sid, 0)})
    return sorted(out, key=lambda r: (r["school"], r["title"], str(r["id"])))


def build(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    store = console.ctx.store
    reports = Reports(store)

    @router.get("/classes")
    async def classes(request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        if viewer.role not in ("teacher", "admin"):
            raise Forbidden("this page is for teachers")
        ids = await run_in_threadpool(console.access.sections, viewer)
        rows = await run_in_threadpool(list_sections, store, viewer.tenant, ids)
        title = "My classes" if viewer.role == "teacher" else "Classes"
        return console.render(request, "classes.html", title=title, sections=rows)

    def _load(viewer: Viewer, section_id: str) -> ClassData:
        sid = console.access.section(viewer, section_id)
        return load_class(store, reports, viewer.tenant, sid)

    @router.get("/classes/{section_id}.csv")
    async def class_csv(section_id: str, request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        data = await run_in_threadpool(_load, viewer, section_id)
        columns, _ = branch_columns(data, request.query_params.get("branch"))
        body = "\ufeff" + to_csv(data, columns)  # the BOM: spreadsheets then read the names as UTF-8
        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{_filename(data.title)}"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    @router.get("/classes/{section_id}")
    async def class_view(section_id: str, request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        data = await run_in_threadpool(_load, viewer, section_id)
        q = request.query_params
        branch = q.get("branch") or ""
        columns, branch_error = branch_columns(data, branch)
        if branch_error:
            branch = ""
        sort = q.get("sort") or "name"
        if sort not in ("name", "mastered") and not (sort.startswith("c:") and any(sort[2:] == str(c.id) for c in columns)):
            sort = "name"
        descending = q.get("dir") == "desc"
        learners = [(x, Markup("".join([x.cells.get(c.id, NONE_CELL).html for c in columns])))
                    for x in sort_learners(data.learners, columns, sort, descending)]

        def sort_link(key: str) -> str:
            flip = "desc" if key == sort and not descending else "asc"
            params = {k: v for k, v in (("branch", branch), ("sort", key), ("dir", flip)) if v}
            return f"{PREFIX}/classes/{data.section_id}?{urlencode(params)}#heatmap"

        def aria_sort(key: str) -> str | None:
            return ("descending" if descending else "ascending") if key == sort else None

        groups = [(status, label, [x for x in data.learners if x.status == status]) for status, label in GROUPS]
        csv_href = f"{PREFIX}/classes/{data.section_id}.csv" + (f"?{urlencode({'branch': branch})}" if branch else "")
        return console.render(
            request, "class.html", title=data.title, data=data, columns=columns, learners=learners, sort=sort,
            descending=descending, sort_link=sort_link, aria_sort=aria_sort, branch=branch, branch_error=branch_error,
            branch_options=_branch_options(data), groups=groups, csv_href=csv_href, none_cell=NONE_CELL,
            on_track=sum(1 for x in data.learners if x.status == "on_track"))

    return router


__all__ = ["GROUPS", "ClassData", "build", "branch_columns", "csv_safe", "list_sections", "load_class", "sort_learners", "to_csv"]
