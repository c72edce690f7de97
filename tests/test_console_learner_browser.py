"""The learner pages in a real browser (Debian's Chromium under Playwright) against a real
server with the demo data: a guardian opens their child's profile, expands a competency
with the mouse and another with the keyboard, follows a link to the competency's own page;
axe-core on each page; screenshots at phone width (390 px) and desktop width."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from .console_support import ConsoleSite, assert_accessible, browser, console_site, screenshot  # noqa: F401

pytestmark = pytest.mark.slow


def _learner_and_guardian(site: ConsoleSite) -> tuple[str, str]:
    (lid, _), *_ = site.rows("SELECT learner_id, count(*) FROM evidence WHERE tenant = 'demo' GROUP BY learner_id"
                             " ORDER BY count(*) DESC, learner_id LIMIT 1")
    lid = uuid.UUID(bytes=bytes(lid))
    doc = orjson.loads(site.rows("SELECT data FROM people WHERE id = ?", lid.bytes)[0][0])
    return str(lid), doc["agent_ids"][0]


def test_a_guardian_reads_their_childs_progress(console_site: ConsoleSite, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    lid, guardian = _learner_and_guardian(console_site)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.add_cookies([console_site.browser_cookie(console_site.viewer("guardian", guardian, name="A parent"))])
    page = ctx.new_page()
    try:
        page.goto(f"{console_site.base_url}/console/learners")
        assert page.locator(f'a[href="/console/learners/{lid}"]').count() == 1
        assert_accessible(page, "my children")
        page.locator(f'a[href="/console/learners/{lid}"]').click()
        page.wait_for_url(f"**/console/learners/{lid}")
        assert page.locator("h1").inner_text()
        assert_accessible(page, "profile")
        screenshot(page, tmp_path, "learner-profile-desktop")

        # the keyboard: Tab reaches a summary of the tree; Enter opens it
        for _ in range(120):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.tagName === 'SUMMARY' && !!document.activeElement.closest('ul.tree')"):
                break
        else:
            pytest.fail("Tab never reached the competency tree")
        assert page.evaluate("() => document.activeElement.parentElement.open") is False
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.parentElement.open") is True
        assert_accessible(page, "profile with a branch open")

        # the mouse: open a branch with work in it, then a competency in it; its explanation and work show
        page.reload()
        page.locator("ul.tree > li > details:has(ul.trail) > summary").first.click()
        skill = page.locator("ul.tree > li > details[open] details:has(> div.why > ul.trail)").first
        why = skill.locator("> div.why")
        assert not why.is_visible()
        skill.locator("> summary").click()
        assert why.is_visible() and "Why this level:" in why.inner_text() and "Latest work:" in why.inner_text()

        # follow its link to the competency's full trail
        why.get_by_role("link", name="All the work on").click()
        page.wait_for_url("**/competencies/**")
        assert page.locator("table.trail tbody tr").count() >= 1
        assert page.get_by_role("heading", name="The work behind it").is_visible()
        assert_accessible(page, "one competency")
        screenshot(page, tmp_path, "learner-competency-desktop")
        page.get_by_role("link", name="Back to").click()
        page.wait_for_url(f"**/console/learners/{lid}")

        # phone width: nothing wider than the screen, the chart scales down
        phone = ctx.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(f"{console_site.base_url}/console/learners/{lid}")
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
        box = phone.locator("svg.chart").first.bounding_box()
        assert box is not None and box["width"] <= 390
        assert_accessible(phone, "profile at phone width")
        screenshot(phone, tmp_path, "learner-profile-phone")
        phone.goto(f"{console_site.base_url}/console/learners")
        screenshot(phone, tmp_path, "learners-phone")
    finally:
        ctx.close()
