"""Console sign-in in a real browser (headless Debian Chromium under Playwright).

- LTI 1.3, end to end: the learner clicks the link in the LMS's course page; the browser
  goes through Tessera's login initiation, the LMS's authorization endpoint, the
  auto-submitted launch form and lands on the learner's own page, signed in.
- OpenID Connect: a teacher opens the sign-in page, clicks "Sign in with your district
  account", passes through the local identity provider and lands in the console; signs out.
- The sign-in page and the refusal page pass axe-core (no serious or critical violation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .console_auth_support import AuthSite, auth_site_fixture  # noqa: F401
from .console_support import assert_accessible, browser, screenshot  # noqa: F401

#: a real server, the peers on their own ports and Chromium
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    context = request.getfixturevalue("browser").new_context(viewport={"width": 1100, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()


def test_a_learner_signs_in_by_an_lti_launch_from_the_lms(auth_site: AuthSite, page: Any, tmp_path: Any) -> None:
    learner = auth_site.people["learner"]
    page.goto(f"{auth_site.lms.base}/course?user=learner")
    page.click("#open")
    page.wait_for_url(f"{auth_site.site.base_url}/console/learners/{learner['id']}")
    who = page.locator("form.who span")
    assert who.inner_text() == f"Signed in as {learner['given_name']} {learner['family_name']}"
    # the session cookie is HttpOnly: no script on the page can read it
    assert page.evaluate("document.cookie").find("tessera_console") == -1
    screenshot(page, tmp_path, "console-after-lti-launch")


def test_a_teacher_signs_in_by_oidc_and_out_again(auth_site: AuthSite, page: Any, tmp_path: Any) -> None:
    teacher = auth_site.people["teacher"]
    auth_site.idp.user, auth_site.idp.tamper = {"sub": "idp-browser-t", "email": teacher["email"]}, {}
    page.goto(f"{auth_site.site.base_url}/console/sign-in")
    assert_accessible(page, "sign-in page")
    screenshot(page, tmp_path, "console-sign-in")
    page.get_by_role("link", name="Sign in with your district account").click()
    page.wait_for_url(lambda url: "/console/classes" in url)
    assert page.locator("form.who span").inner_text() == f"Signed in as {teacher['given_name']} {teacher['family_name']}"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{auth_site.site.base_url}/console/sign-in")
    assert page.locator("form.who").count() == 0
    # signed out: a console page sends the browser back to sign-in
    page.goto(f"{auth_site.site.base_url}/console")
    assert page.url.startswith(f"{auth_site.site.base_url}/console/sign-in")


def test_a_student_is_refused_with_an_accessible_page(auth_site: AuthSite, page: Any, tmp_path: Any) -> None:
    auth_site.idp.user, auth_site.idp.tamper = {"sub": "idp-browser-s", "email": auth_site.people["learner"]["email"]}, {}
    page.goto(f"{auth_site.site.base_url}/console/sign-in/oidc")
    page.wait_for_url(lambda url: "/console/sign-in/oidc/callback" in url)
    assert page.get_by_role("heading", level=1).inner_text() == "We could not sign you in"
    assert "for teachers and district staff" in page.content()
    assert_accessible(page, "sign-in refused page")
    page.set_viewport_size({"width": 375, "height": 740})  # phone width: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, tmp_path, "console-sign-in-refused")
