"""The class view and the district/school views over HTTP, against a real server with the
demo data: what the pages show is checked against the store and against gateway.reports
(the progression statuses, the de-identified distribution report and its suppression)."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import orjson
import pytest
from sqlalchemy import event

from gateway.console.classes import csv_safe, tenant_model
from gateway.reports import Deidentify, Reports, Scope, parse_scope
from gateway.reports.deidentify import DEFAULT_MIN_CELL, SUPPRESSED
from gateway.store import Store
from gateway.wiring import open_store

from .console_support import ConsoleSite, console_site  # noqa: F401

pytestmark = pytest.mark.slow

COL = re.compile(r'<th scope="col" class="comp-col[^"]*"[^>]*><a href="[^"]*sort=c%3A([0-9a-f-]{36})[^"]*"[^>]*>([^<]*)</a>')
ROW = re.compile(r'<tr>\s*<th scope="row" class="learner-col"><a href="/console/learners/([0-9a-f-]{36})">([^<]*)</a></th>'
                 r'\s*<td class="share-col num">(\d+)%</td>(.*?)</tr>', re.S)
CELL = re.compile(r'<abbr class="lvl (lvl-[a-z0-9]+)" title="([^"]*)">')


@pytest.fixture
def store_any(store: Store) -> Store:
    """conftest's ``store``: a fresh store on SQLite and on PostgreSQL."""
    return store


@pytest.fixture(scope="module")
def site_store(console_site: ConsoleSite) -> Iterator[Store]:  # noqa: F811
    s = open_store(f"sqlite:///{console_site.db_path}")
    yield s
    s.engine.dispose()


def _uuid(v: Any) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(v)) if isinstance(v, bytes | memoryview) else uuid.UUID(str(v))


@pytest.fixture(scope="module")
def math_class(console_site: ConsoleSite) -> tuple[uuid.UUID, uuid.UUID]:  # noqa: F811
    """(teacher, section) of a demo section whose course lists competencies."""
    rows = console_site.rows(
        "SELECT e.person_id, e.section_id FROM enrollments e JOIN sections s ON s.id = e.section_id JOIN courses c ON c.id = s.course_id"
        " WHERE e.tenant = 'demo' AND e.role = 'teacher' AND e.status = 'active'"
        " AND json_array_length(json_extract(c.data, '$.competency_ids')) > 0 ORDER BY e.section_id")
    return _uuid(rows[0][0]), _uuid(rows[0][1])


def parse(page: str) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """(columns as (competency id, code), rows as {id, name, share, cells: [(css, label)]})."""
    cols = COL.findall(page)
    rows = [{"id": lid, "name": html.unescape(name), "share": int(share), "cells": CELL.findall(body)}
            for lid, name, share, body in ROW.findall(page)]
    return cols, rows


def test_class_list_shows_a_teachers_sections_and_every_section_to_an_admin(console_site: ConsoleSite, math_class: Any) -> None:  # noqa: F811
    teacher, section = math_class
    taught = {_uuid(r[0]) for r in console_site.rows(
        "SELECT section_id FROM enrollments WHERE tenant = 'demo' AND person_id = ? AND role = 'teacher' AND status = 'active'",
        teacher.bytes)}
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        page = c.get("/console/classes").text
    listed = set(map(uuid.UUID, re.findall(r'href="/console/classes/([0-9a-f-]{36})"', page)))
    assert listed == taught and section in listed
    students = len(console_site.students_of(str(section)))
    assert re.search(rf'href="/console/classes/{section}">[^<]+</a></th>.*?<td class="num">{students}</td>', page, re.S)
    with console_site.http(console_site.viewer("admin")) as c:
        page = c.get("/console/classes").text
    every = {_uuid(r[0]) for r in console_site.rows("SELECT id FROM sections WHERE tenant = 'demo' AND status = 'active'")}
    assert set(map(uuid.UUID, re.findall(r'href="/console/classes/([0-9a-f-]{36})"', page))) == every


def test_heatmap_has_every_learner_and_the_levels_of_their_states(console_site: ConsoleSite, math_class: Any, site_store: Store) -> None:  # noqa: F811
    teacher, section = math_class
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        r = c.get(f"/console/classes/{section}")
    assert r.status_code == 200
    assert "script-src" not in r.text and 'style="' not in r.text
    cols, rows = parse(r.text)
    assert {row["id"] for row in rows} == set(console_site.students_of(str(section)))
    course = orjson.loads(console_site.rows("SELECT c.data FROM courses c JOIN sections s ON s.course_id = c.id WHERE s.id = ?",
                                            section.bytes)[0][0])
    col_ids = [uuid.UUID(cid) for cid, _ in cols]
    assert {uuid.UUID(x) for x in course["competency_ids"]} <= set(col_ids)
    states = {(_uuid(lid), _uuid(cid)): level for lid, cid, level in console_site.rows(
        "SELECT learner_id, competency_id, level FROM mastery_states WHERE tenant = 'demo' AND status = 'active'")}
    with site_store.engine.connect() as conn:
        model = tenant_model(site_store, conn, "demo")
    checked = 0
    for row in rows:
        assert len(row["cells"]) == len(cols)
        for cid, (css, label) in zip(col_ids, row["cells"], strict=True):
            level = states.get((uuid.UUID(row["id"]), cid))
            if level is None:
                assert (css, label) == ("lvl-none", "Not yet assessed")
            else:
                scale = model.rule_and_scale(cid)[1]
                lv = scale.get(level)
                assert lv is not None and label == lv.label
                assert css == f"lvl-{1 + round(scale.levels.index(lv) * 3 / (len(scale.levels) - 1))}"
                checked += 1
        mastered = sum(1 for cid in col_ids if (lv := states.get((uuid.UUID(row["id"]), cid))) is not None
                       and model.rule_and_scale(cid)[1].get(lv).mastery)  # type: ignore[union-attr]
        assert row["share"] == round(100 * mastered / len(cols))
    assert checked > 100
    # a legend names every abbreviation shown, and names are in name order by default
    assert re.search(r'<ul class="legend"[^>]*>.*Beginning.*Advanced.*Not yet assessed', r.text, re.S)
    names = [row["name"].split(" ", 1)[1].casefold() for row in rows]
    assert names == sorted(names)
    assert 'aria-sort="ascending"' in r.text.split("</th>")[0] + "</th>"


def test_sorting_by_a_competency_by_share_mastered_and_by_name(console_site: ConsoleSite, math_class: Any) -> None:  # noqa: F811
    teacher, section = math_class
    rank = {"lvl-none": -1, "lvl-1": 0, "lvl-2": 1, "lvl-3": 2, "lvl-4": 3}
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        cols, _ = parse(c.get(f"/console/classes/{section}").text)
        cid, code = cols[1]
        for direction in ("asc", "desc"):
            page = c.get(f"/console/classes/{section}", params={"sort": f"c:{cid}", "dir": direction}).text
            _, rows = parse(page)
            levels = [rank[row["cells"][1][0]] for row in rows]
            assert levels == sorted(levels, reverse=direction == "desc") and len(set(levels)) > 1
            want = "ascending" if direction == "asc" else "descending"
            assert re.search(rf'aria-sort="{want}"><a href="[^"]*sort=c%3A{cid}&amp;dir={"desc" if direction == "asc" else "asc"}', page)
            assert page.count("aria-sort=") == 1
        page = c.get(f"/console/classes/{section}", params={"sort": "mastered", "dir": "desc"}).text
        shares = [row["share"] for row in parse(page)[1]]
        assert shares == sorted(shares, reverse=True) and len(set(shares)) > 1
        names = [row["name"] for row in parse(c.get(f"/console/classes/{section}", params={"sort": "name", "dir": "desc"}).text)[1]]
        assert [n.split(" ", 1)[1] for n in names] == sorted((n.split(" ", 1)[1] for n in names), key=str.casefold, reverse=True)
        # an unknown sort falls back to names
        assert parse(c.get(f"/console/classes/{section}", params={"sort": "c:nope"}).text)[1][0]["name"] == parse(
            c.get(f"/console/classes/{section}").text)[1][0]["name"]


def test_branch_filter_narrows_the_columns(console_site: ConsoleSite, math_class: Any) -> None:  # noqa: F811
    teacher, section = math_class
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        page = c.get(f"/console/classes/{section}").text
        cols, _ = parse(page)
        branches = re.findall(r'<option value="([0-9a-f-]{36})">', page)
        assert len(branches) >= 2
        top = branches[0]
        kids = {_uuid(r[0]) for r in console_site.rows(
            "SELECT origin_id FROM relations WHERE tenant = 'demo' AND type = 'is_child_of' AND status = 'active' AND destination_id = ?",
            uuid.UUID(top).bytes)}
        narrowed = c.get(f"/console/classes/{section}", params={"branch": top})
        shown, rows = parse(narrowed.text)
        assert shown[0][0] == top and {uuid.UUID(x) for x, _ in shown[1:]} <= kids and len(shown) < len(cols)
        assert all(len(r["cells"]) == len(shown) for r in rows)
        assert f'<option value="{top}" selected>' in narrowed.text
        # sort links keep the filter; the CSV link downloads what is shown
        assert f"branch={top}" in re.search(r'<th scope="col" class="learner-col"[^>]*><a href="([^"]*)"', narrowed.text)[1]  # type: ignore[index]
        csv_rows = list(csv.reader(io.StringIO(c.get(f"/console/classes/{section}.csv", params={"branch": top}).text.lstrip("\ufeff"))))
        assert len(csv_rows[0]) == len(shown) + 3
        bad = c.get(f"/console/classes/{section}", params={"branch": str(uuid.uuid4())})
        assert bad.status_code == 200 and "That part of the standards is not in this class." in bad.text
        assert len(parse(bad.text)[0]) == len(cols)


def test_groups_are_the_progression_reports_statuses(console_site: ConsoleSite, math_class: Any, site_store: Store) -> None:  # noqa: F811
    teacher, section = math_class
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        page = c.get(f"/console/classes/{section}").text
    report = Reports(site_store).build("progression", "demo", parse_scope(section=str(section)))
    counts = {r["status"]: r["learners"] for r in report.rows}
    statuses = Reports(site_store).learner_statuses("demo", Scope(section=section), *_population(site_store, "demo", section))
    for status in ("needs_intensive_support", "needs_short_term_support", "accelerating"):
        block = re.search(rf'<section class="card group group-{status}".*?</section>', page, re.S)
        assert block is not None
        members = re.findall(r'href="/console/learners/([0-9a-f-]{36})"', block[0])
        assert len(members) == counts[status], status
        assert {uuid.UUID(m) for m in members} == {x for x, s in statuses.items() if s == status}, status
        assert f"({counts[status]})" in block[0]
    assert sum(counts.values()) == len(console_site.students_of(str(section)))
    assert counts["needs_intensive_support"] + counts["accelerating"] > 0  # the demo has learners in them


def test_csv_download(console_site: ConsoleSite, math_class: Any) -> None:  # noqa: F811
    teacher, section = math_class
    students = console_site.students_of(str(section))
    victim = uuid.UUID(students[0])
    (data,) = console_site.rows("SELECT data FROM people WHERE id = ?", victim.bytes)[0]
    doc = orjson.loads(data)
    evil = {**doc, "given_name": '=HYPERLINK("http://evil.example","x")', "preferred_name": None}
    console_site.rows("UPDATE people SET data = ? WHERE id = ?", orjson.dumps(evil).decode(), victim.bytes)
    try:
        with console_site.http(console_site.viewer("teacher", teacher)) as c:
            r = c.get(f"/console/classes/{section}.csv")
            page = c.get(f"/console/classes/{section}").text
    finally:
        console_site.rows("UPDATE people SET data = ? WHERE id = ?", data, victim.bytes)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="grade-7-mathematics-period-\d\.csv"', r.headers["content-disposition"])
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    cols, html_rows = parse(page)
    assert rows[0][:2] == ["Learner", "Learner id"] and rows[0][-1] == "Share mastered"
    assert [h.split(" ", 1)[0] for h in rows[0][2:-1]] == [code for _, code in cols]
    assert {row[1] for row in rows[1:]} == set(students)
    by_id = {row[1]: row for row in rows[1:]}
    for hr in html_rows:
        assert by_id[hr["id"]][2:-1] == [label for _, label in hr["cells"]]
        assert by_id[hr["id"]][-1] == f"{hr['share']}%"
    assert by_id[str(victim)][0].startswith("'=HYPERLINK(")
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_csv_safe() -> None:
    assert csv_safe("=1+2") == "'=1+2" and csv_safe("+1") == "'+1" and csv_safe("-1") == "'-1" and csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert csv_safe("\t=1") == "'\t=1" and csv_safe("Ada") == "Ada" and csv_safe("") == ""


def test_who_may_open_a_class(console_site: ConsoleSite, math_class: Any) -> None:  # noqa: F811
    teacher, section = math_class
    other = next(_uuid(r[0]) for r in console_site.rows(
        "SELECT id FROM sections WHERE tenant = 'demo' AND id NOT IN (SELECT section_id FROM enrollments WHERE person_id = ?"
        " AND role = 'teacher')", teacher.bytes))
    learner = uuid.UUID(console_site.students_of(str(section))[0])
    guardian = console_site.people("guardian")[0]["id"]
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        for path in (f"/console/classes/{other}", f"/console/classes/{other}.csv", f"/console/classes/{uuid.uuid4()}",
                     "/console/classes/not-an-id", "/console/classes/not-an-id.csv"):
            r = c.get(path)
            assert r.status_code == 404 and "We could not find that page" in r.text, path
        assert c.get("/console/schools").status_code == 403
    for role, pid in (("learner", learner), ("guardian", guardian)):
        with console_site.http(console_site.viewer(role, pid)) as c:
            assert c.get(f"/console/classes/{section}").status_code == 404
            assert c.get(f"/console/classes/{section}.csv").status_code == 404
            assert c.get("/console/classes").status_code == 403
            assert c.get("/console/schools").status_code == 403
            assert c.get(f"/console/schools/{uuid.uuid4()}").status_code == 403
    with console_site.http(console_site.viewer("admin")) as c:
        assert c.get(f"/console/classes/{other}").status_code == 200
    with console_site.http() as c:
        r = c.get(f"/console/classes/{section}")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in?next=")


def _page_table(page: str, tid: str) -> dict[tuple[str, str], str]:
    """(row key, level) -> the count shown ("*" when suppressed), and (row key, "") -> learners with a result."""
    out: dict[tuple[str, str], str] = {}
    for key, body in re.findall(rf'<tr id="{tid}-([^"]+)">(.*?)</tr>', page, re.S):
        out[(key, "")] = re.search(r'data-assessed="([^"]*)"', body)[1]  # type: ignore[index]
        for level, count in re.findall(r'data-level="([^"]*)" data-count="([^"]*)"', body):
            out[(key, level)] = count
    return out


def _report_table(store: Store, key: str, **scope: Any) -> dict[tuple[str, str], str]:
    rep = Reports(store).build("distribution", "demo", parse_scope(**scope), Deidentify(min_cell=DEFAULT_MIN_CELL))
    out: dict[tuple[str, str], str] = {}
    for r in rep.rows:
        k = str(r[key])
        out[(k, "")] = "*" if r["assessed"] is SUPPRESSED else str(r["assessed"])
        out[(k, r["level"] or "")] = "*" if r["learners"] is SUPPRESSED else str(r["learners"])
    return out


def test_schools_page_suppresses_exactly_as_the_deidentified_report(console_site: ConsoleSite, site_store: Store) -> None:  # noqa: F811
    district = next(p["id"] for p in (orjson.loads(r[0]) for r in console_site.rows(
        "SELECT data FROM orgs WHERE tenant = 'demo' AND type = 'district' ORDER BY id")) if p["native_id"] == "org-district")
    with console_site.http(console_site.viewer("admin")) as c:
        whole = c.get("/console/schools")
        page = c.get(f"/console/schools/{district}")
    assert whole.status_code == 200 and page.status_code == 200
    assert _page_table(whole.text, "std") == _report_table(site_store, "competency_id")
    shown = _page_table(page.text, "std")
    assert shown == _report_table(site_store, "competency_id", org=district)
    assert "*" in shown.values() and any(v not in ("*", "0") for v in shown.values())
    standard = re.search(r'<input type="hidden" name="standard" value="([0-9a-f-]{36})">', page.text)[1]  # type: ignore[index]
    assert _page_table(page.text, "school") == _report_table(site_store, "group", org=district, competency=[standard], group_by="org")
    assert _page_table(page.text, "grade") == _report_table(site_store, "group", org=district, competency=[standard], group_by="grade")
    assert "<svg" in page.text and "<rect" in page.text and 'style="' not in page.text
    # another standard, picked from the table's links
    other = next(k for k, _ in shown if k != standard)
    with console_site.http(console_site.viewer("admin")) as c:
        picked = c.get(f"/console/schools/{district}", params={"standard": other}).text
    assert _page_table(picked, "school") == _report_table(site_store, "group", org=district, competency=[other], group_by="org")
    # one set of standards only
    fw = next(_uuid(r[0]) for r in console_site.rows(
        "SELECT framework_id FROM competencies WHERE id = ?", uuid.UUID(other).bytes))
    with console_site.http(console_site.viewer("admin")) as c:
        narrowed = c.get(f"/console/schools/{district}", params={"framework": str(fw)})
        wrong = c.get(f"/console/schools/{district}", params={"framework": str(uuid.uuid4())})
    only = _page_table(narrowed.text, "std")
    assert only == _report_table(site_store, "competency_id", org=district, framework=str(fw))
    assert 0 < len(only) <= len(shown) and f'<option value="{fw}" selected>' in narrowed.text
    assert wrong.status_code == 422 and "That set of standards is not known here" in wrong.text


def test_as_of_date_changes_the_figures(console_site: ConsoleSite, site_store: Store) -> None:  # noqa: F811
    first = min(r[0] for r in console_site.rows("SELECT observed_at FROM evidence WHERE tenant = 'demo'"))
    early = date.fromisoformat(str(first)[:10]).isoformat()
    with console_site.http(console_site.viewer("admin")) as c:
        now = c.get("/console/schools").text
        then = c.get("/console/schools", params={"as_of": early})
        before = c.get("/console/schools", params={"as_of": "2000-01-01"})
        wrong = c.get("/console/schools", params={"as_of": "31/12/2026"})
        future = c.get("/console/schools", params={"as_of": "2999-01-01"})
    assert then.status_code == 200 and f'value="{early}"' in then.text
    at_then = _page_table(then.text, "std")
    assert at_then and at_then != _page_table(now, "std")
    assert at_then == _report_table(site_store, "competency_id", as_of=early)
    assert not _page_table(before.text, "std") and "No results yet" in before.text
    for r, message in ((wrong, "Enter a date like"), (future, "Pick today or a day in the past")):
        assert r.status_code == 422 and message in r.text and 'aria-invalid="true"' in r.text
    with console_site.http(console_site.viewer("admin")) as c:
        assert c.get(f"/console/schools/{uuid.uuid4()}").status_code == 404
        assert c.get("/console/schools/nope").status_code == 404


# --- in process, on both backends ------------------------------------------------------------------

def test_class_data_and_district_tables_on_both_backends(store_any: Store) -> None:
    """``load_class`` and ``district`` on SQLite and PostgreSQL: tree-ordered columns, the
    levels of the states, the progression statuses and the de-identified counts."""
    from datetime import UTC, datetime

    from gateway.console.classes import branch_columns, load_class, sort_learners
    from gateway.console.schools import district
    from gateway.model import (
        Competency,
        Course,
        Enrollment,
        Framework,
        MasteryState,
        Org,
        OrgRole,
        Person,
        Relation,
        Section,
    )

    tenant = "t1"
    school = Org(tenant=tenant, source="sis", native_id="s", name="Hill School", type="school")
    fw = Framework(tenant=tenant, source="case", native_id="fw", title="Maths")
    top = Competency(tenant=tenant, source="case", native_id="N", framework_id=fw.id, statement="Number", code="N")
    kids = [Competency(tenant=tenant, source="case", native_id=f"N.{i}", framework_id=fw.id, statement=f"Number {i}", code=f"N.{i}")
            for i in (10, 2)]
    rels = [Relation(tenant=tenant, source="case", native_id=f"r{k.code}", type="is_child_of", origin_id=k.id, destination_id=top.id)
            for k in kids]
    crs = Course(tenant=tenant, source="sis", native_id="c", title="Maths 4", org_id=school.id, competency_ids=[top.id])
    sec = Section(tenant=tenant, source="sis", native_id="x", title="Maths 4 - Room 1", course_id=crs.id, org_id=school.id)
    people = [Person(tenant=tenant, source="sis", native_id=f"p{i}", given_name=g, family_name=f, grades=["04"],
                     roles=[OrgRole(role="student", org_id=school.id, primary=True)])
              for i, (g, f) in enumerate((("Zoe", "Adams"), ("Al", "Young"), ("Mo", "Baker")))]
    enrol = [Enrollment(tenant=tenant, source="sis", native_id=f"e{p.native_id}", person_id=p.id, section_id=sec.id, role="student")
             for p in people]
    now = datetime(2026, 11, 1, tzinfo=UTC)
    levels = {(0, kids[1].id): "3", (0, kids[0].id): "4", (0, top.id): "4", (1, kids[1].id): "1", (2, kids[0].id): "Developing"}
    states = [MasteryState(tenant=tenant, source="tessera.mastery", native_id=f"{people[i].id}:{c}", learner_id=people[i].id,
                           competency_id=c, level=lv, value=0.5, mastered=lv in ("3", "4"), method="latest", evidence_count=1,
                           computed_at=now) for (i, c), lv in levels.items()]
    store_any.records.apply(tenant, [school, fw, top, *kids, *rels, crs, sec, *people, *enrol, *states])

    reports = Reports(store_any)
    data = load_class(store_any, reports, tenant, sec.id)
    assert [c.code for c in data.columns] == ["N", "N.2", "N.10"]  # the branch first, its children in natural order
    assert [x.name for x in data.learners] == ["Zoe Adams", "Mo Baker", "Al Young"]
    zoe = data.learners[0]
    assert [zoe.cells[c.id].label for c in data.columns] == ["Advanced", "Proficient", "Advanced"]
    assert data.learners[2].cells[kids[1].id].css == "lvl-1" and kids[0].id not in data.learners[2].cells
    assert data.learners[1].cells[kids[0].id].label == "Developing"  # a level named by its label is understood too
    assert [x.name for x in sort_learners(data.learners, data.columns, f"c:{kids[1].id}", True)] == ["Zoe Adams", "Al Young", "Mo Baker"]
    assert [x.name for x in sort_learners(data.learners, data.columns, "mastered", False)][-1] == "Zoe Adams"
    assert branch_columns(data, str(kids[0].id)) == ([data.columns[2]], None)
    expected = reports.learner_statuses(tenant, Scope(section=sec.id), *_population(store_any, tenant, sec.id))
    assert {x.id: x.status for x in data.learners} == expected
    assert data.school == "Hill School" and data.course == "Maths 4"

    # a fixed number of queries, whatever the size of the class
    def queries() -> int:
        seen: list[str] = []
        listen = lambda *a: seen.append(a[2])  # noqa: E731
        event.listen(store_any.engine, "before_cursor_execute", listen)
        try:
            load_class(store_any, reports, tenant, sec.id)
        finally:
            event.remove(store_any.engine, "before_cursor_execute", listen)
        return len(seen)

    before = queries()
    more = [Person(tenant=tenant, source="sis", native_id=f"q{i}", given_name="Kai", family_name=f"Q{i}",
                   roles=[OrgRole(role="student", org_id=school.id, primary=True)]) for i in range(6)]
    extra = Competency(tenant=tenant, source="case", native_id="N.3", framework_id=fw.id, statement="Number 3", code="N.3")
    store_any.records.apply(tenant, [*more, extra, Relation(tenant=tenant, source="case", native_id="rN.3", type="is_child_of",
                                                            origin_id=extra.id, destination_id=top.id),
                                     *(Enrollment(tenant=tenant, source="sis", native_id=f"e{p.native_id}", person_id=p.id,
                                                  section_id=sec.id, role="student") for p in more),
                                     *(MasteryState(tenant=tenant, source="tessera.mastery", native_id=f"{p.id}:{extra.id}",
                                                    learner_id=p.id, competency_id=extra.id, level="2", value=0.5, method="latest",
                                                    evidence_count=1, computed_at=now) for p in more)])
    assert len(load_class(store_any, reports, tenant, sec.id).learners) == 9
    assert queries() == before

    tables = district(store_any, reports, tenant, school.id, None, None)
    report = Reports(store_any).build("distribution", tenant, Scope(org=school.id), Deidentify(min_cell=DEFAULT_MIN_CELL))
    shown = {(r.key, lv): n for r in tables.by_standard.rows for lv, n in r.counts.items()}
    assert shown == {(str(r["competency_id"]), r["level"]): None if r["learners"] is SUPPRESSED else r["learners"] for r in report.rows}
    assert set(shown.values()) == {None}  # three learners: every cell is below 10


def _population(store: Store, tenant: str, section: uuid.UUID) -> tuple[Any, None]:
    from gateway.reports.population import resolve_population

    with store.engine.connect() as conn:
        return resolve_population(conn, tenant, Scope(section=section), need_sections=True), None
