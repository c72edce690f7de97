"""The class view and the district view in a real browser (Debian's Chromium under
Playwright) against a real server with the demo data: sort by a column, filter by a
branch, download the CSV, click through to a learner, the phone-width layout, and axe-core
on every page. Screenshots go to the test's temporary folder."""

from __future__ import annotations

import csv
import io
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from .console_support import ConsoleSite, assert_accessible, browser, console_site, screenshot  # noqa: F401

pytestmark = pytest.mark.slow


def _uuid(v: Any) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(v)) if isinstance(v, bytes | memoryview) else uuid.UUID(str(v))


def _math_class(site: ConsoleSite) -> tuple[uuid.UUID, uuid.UUID]:
    rows = site.rows(
        "SELECT e.person_id, e.section_id FROM enrollments e JOIN sections s ON s.id = e.section_id JOIN courses c ON c.id = s.course_id"
        " WHERE e.tenant = 'demo' AND e.role = 'teacher' AND e.status = 'active'"
        " AND json_array_length(json_extract(c.data, '$.competency_ids')) > 0 ORDER BY e.section_id")
    return _uuid(rows[0][0]), _uuid(rows[0][1])


RANK = {"lvl-none": -1, "lvl-1": 0, "lvl-2": 1, "lvl-3": 2, "lvl-4": 3}


def test_class_view_in_a_browser(console_site: ConsoleSite, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    teacher, section = _math_class(console_site)
    shots = tmp_path / "screenshots"
    base = console_site.base_url
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.add_cookies([console_site.browser_cookie(console_site.viewer("teacher", teacher, name="Ms Teacher"))])
    page = context.new_page()
    try:
        page.goto(f"{base}/console/classes")
        assert page.locator("h1").inner_text() == "My classes"
        assert_accessible(page, "class list")
        screenshot(page, shots, "classes")

        page.click(f"a[href='/console/classes/{section}']")
        page.wait_for_url(f"{base}/console/classes/{section}")
        rows = page.locator("table.heat tbody tr")
        assert rows.count() == len(console_site.students_of(str(section)))
        assert page.locator("th.learner-col[aria-sort='ascending']").count() == 1
        assert_accessible(page, "class view")
        screenshot(page, shots, "class")

        # sort by the second standard: lowest level first, then highest first
        header = page.locator("thead th.comp-col").nth(1)
        header.locator("a").click()
        page.wait_for_url(re.compile(r".*sort=c%3A.*"))
        header = page.locator("thead th.comp-col").nth(1)
        assert header.get_attribute("aria-sort") == "ascending"
        levels = [RANK[c.split()[-1]] for c in page.locator("table.heat tbody tr td:nth-child(4) abbr").evaluate_all(
            "els => els.map(e => e.className)")]
        assert levels == sorted(levels) and len(set(levels)) > 1
        header.locator("a").click()
        page.wait_for_url(re.compile(r".*dir=desc.*"))
        assert page.locator("thead th.comp-col").nth(1).get_attribute("aria-sort") == "descending"
        levels = [RANK[c.split()[-1]] for c in page.locator("table.heat tbody tr td:nth-child(4) abbr").evaluate_all(
            "els => els.map(e => e.className)")]
        assert levels == sorted(levels, reverse=True)

        # filter by a branch of the framework (a GET form; the sort is kept)
        all_columns = page.locator("thead th.comp-col").count()
        branch = page.locator("#branch option").nth(1).get_attribute("value")
        page.select_option("#branch", branch)
        page.click("form.filter button[type=submit]")
        page.wait_for_url(re.compile(rf".*branch={branch}.*"))
        shown = page.locator("thead th.comp-col").count()
        assert 0 < shown < all_columns
        assert page.locator("#branch").input_value() == branch
        screenshot(page, shots, "class-filtered")

        # the CSV, downloaded by the browser: what the table shows
        with page.expect_download() as info:
            page.click("a[href*='.csv']")
        download = info.value
        assert download.suggested_filename.endswith(".csv")
        table = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
        assert table[0][0] == "Learner" and len(table[0]) == shown + 3 and len(table) == rows.count() + 1

        # click through to a learner's page (built by another part of the console)
        link = page.locator("table.heat tbody th.learner-col a").first
        href = link.get_attribute("href")
        assert href is not None and re.fullmatch(r"/console/learners/[0-9a-f-]{36}", href)
        link.click()
        page.wait_for_url(f"{base}{href}")
        assert page.url == f"{base}{href}"
    finally:
        context.close()

    # at phone width the table scrolls sideways inside its own box, not the page
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies([console_site.browser_cookie(console_site.viewer("teacher", teacher))])
    page = phone.new_page()
    try:
        page.goto(f"{base}/console/classes/{section}")
        wrap = page.locator(".heat-wrap")
        assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        # the header row and the names column stay in view while the table scrolls
        wrap.evaluate("e => { e.scrollTop = 200; e.scrollLeft = 200; }")
        box = wrap.bounding_box()
        head = page.locator("table.heat thead th.comp-col").first.bounding_box()
        name = page.locator("table.heat tbody th.learner-col").nth(10).bounding_box()
        assert box and head and name
        assert abs(head["y"] - box["y"]) <= 2 and abs(name["x"] - box["x"]) <= 2
        assert_accessible(page, "class view at phone width")
        screenshot(page, shots, "class-phone")
    finally:
        phone.close()


def test_district_view_in_a_browser(console_site: ConsoleSite, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    shots = tmp_path / "screenshots"
    base = console_site.base_url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([console_site.browser_cookie(console_site.viewer("admin", name="District Admin"))])
    page = context.new_page()
    try:
        page.goto(f"{base}/console/schools")
        assert page.locator("#std tbody tr").count() > 0
        assert_accessible(page, "district view")
        screenshot(page, shots, "schools")
        now = page.locator("#std").inner_text()

        first = min(r[0] for r in console_site.rows("SELECT observed_at FROM evidence WHERE tenant = 'demo'"))
        page.fill("#as_of", str(first)[:10])
        page.click("form.filter button[type=submit]")
        page.wait_for_url(re.compile(r".*as_of=.*"))
        assert page.locator("#std").inner_text() != now
        assert page.locator("#as_of").input_value() == str(first)[:10]

        page.locator("ul.org-list a").first.click()
        page.wait_for_url(re.compile(r".*/console/schools/[0-9a-f-]{36}$"))
        assert page.locator("nav.breadcrumbs").count() == 1
        assert_accessible(page, "school view")
        screenshot(page, shots, "school")

        # a standard picked from the table breaks it down by school and by grade
        link = page.locator("#std tbody th a").nth(1)
        code = link.inner_text()
        link.click()
        page.wait_for_url(re.compile(r".*standard=.*"))
        assert page.locator("#school-h").inner_text().startswith(code)
    finally:
        context.close()
