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

from gateway.console.classes import csv_safe, tenant_model
from gateway.reports import Deidentify, Reports, parse_scope
from gateway.reports.deidentify import DEFAULT_MIN_CELL, SUPPRESSED
from gateway.store import Store
from gateway.wiring import open_store

from .console_support import ConsoleSite, console_site  # noqa: F401

pytestmark = pytest.mark.slow

COL = re.compile(r'<th scope="col" class="comp-col[^"]*"[^>]*><a href="[^"]*sort=c%3A([0-9a-f-]{36})[^"]*"[^>]*>([^<]*)</a>')
ROW = re.compile(r'<tr>\s*<th scope="row" class="learner-col"><a href="/console/learners/([0-9a-f-]{36})">([^<]*)</a></th>'
                 r'\s*<td class="share-col num">(\d+)%</td>(.*?)</tr>', re.S)
CELL = re.compile(r'<abbr class="lvl (lvl-[a-z0-9]+)" title="([^"]*)">')


@pytest.fixture(scope="module")
def store(console_site: ConsoleSite) -> Iterator[Store]:  # noqa: F811
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


def test_heatmap_has_every_learner_and_the_levels_of_their_states(console_site: ConsoleSite, math_class: Any, store: Store) -> None:  # noqa: F811
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
    with store.engine.connect() as conn:
        model = tenant_model(store, conn, "demo")
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


def test_groups_are_the_progression_reports_statuses(console_site: ConsoleSite, math_class: Any, store: Store) -> None:  # noqa: F811
    teacher, section = math_class
    with console_site.http(console_site.viewer("teacher", teacher)) as c:
        page = c.get(f"/console/classes/{section}").text
    report = Reports(store).build("progression", "demo", parse_scope(section=str(section)))
    counts = {r["status"]: r["learners"] for r in report.rows}
    for status in ("needs_intensive_support", "needs_short_term_support", "accelerating"):
        block = re.search(rf'<section class="card group group-{status}".*?</section>', page, re.S)
        assert block is not None
        members = re.findall(r'href="/console/learners/([0-9a-f-]{36})"', block[0])
        assert len(members) == counts[status], status
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
            assert "/console/classes/" not in c.get("/console/classes").text
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


def test_schools_page_suppresses_exactly_as_the_deidentified_report(console_site: ConsoleSite, store: Store) -> None:  # noqa: F811
    district = next(p["id"] for p in (orjson.loads(r[0]) for r in console_site.rows(
        "SELECT data FROM orgs WHERE tenant = 'demo' AND type = 'district' ORDER BY id")) if p["native_id"] == "org-district")
    with console_site.http(console_site.viewer("admin")) as c:
        whole = c.get("/console/schools")
        page = c.get(f"/console/schools/{district}")
    assert whole.status_code == 200 and page.status_code == 200
    assert _page_table(whole.text, "std") == _report_table(store, "competency_id")
    shown = _page_table(page.text, "std")
    assert shown == _report_table(store, "competency_id", org=district)
    assert "*" in shown.values() and any(v not in ("*", "0") for v in shown.values())
    standard = re.search(r'<input type="hidden" name="standard" value="([0-9a-f-]{36})">', page.text)[1]  # type: ignore[index]
    assert _page_table(page.text, "school") == _report_table(store, "group", org=district, competency=[standard], group_by="org")
    assert _page_table(page.text, "grade") == _report_table(store, "group", org=district, competency=[standard], group_by="grade")
    assert "<svg" in page.text and "<rect" in page.text and 'style="' not in page.text
    # another standard, picked from the table's links
    other = next(k for k, _ in shown if k != standard)
    with console_site.http(console_site.viewer("admin")) as c:
        picked = c.get(f"/console/schools/{district}", params={"standard": other}).text
    assert _page_table(picked, "school") == _report_table(store, "group", org=district, competency=[other], group_by="org")


def test_as_of_date_changes_the_figures(console_site: ConsoleSite, store: Store) -> None:  # noqa: F811
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
    assert at_then == _report_table(store, "competency_id", as_of=early)
    assert not _page_table(before.text, "std") and "No results yet" in before.text
    for r, message in ((wrong, "Enter a date like"), (future, "Pick today or a day in the past")):
        assert r.status_code == 422 and message in r.text and 'aria-invalid="true"' in r.text
    with console_site.http(console_site.viewer("admin")) as c:
        assert c.get(f"/console/schools/{uuid.uuid4()}").status_code == 404
        assert c.get("/console/schools/nope").status_code == 404
