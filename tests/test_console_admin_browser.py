"""The integrator dashboard in a real browser (headless Chromium), against a real server
whose embedded delivery engine is on: revoke a credential after the confirmation step,
make a dead letter (a push route to a local webhook sink that answers 400), then let the
sink answer 200 and replay it from the page, align an unaligned activity, and check every
admin page with axe-core. Screenshots go under the test's temporary folder."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from gateway.auth import ClientStore
from gateway.model import Evidence, Provenance, Score
from gateway.wiring import open_store

from .console_support import ConsoleSite, assert_accessible, browser, screenshot, start_site, stop_site  # noqa: F401
from .routing_sink import Answer, Sink, run_sink

pytestmark = pytest.mark.slow

HOOK_SECRET = "whsec-console-" + uuid.uuid4().hex[:12]
ACTIVITY = "https://lms.cvusd.example.org/quizzes/decimals-warmup"


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    status = {"code": 400}

    def answer(s: Sink, ev: dict[str, Any]) -> Answer:
        code = status["code"]
        return Answer(code, b'{"error": "unknown school"}' if code >= 400 else b'{"ok": true}')

    with run_sink(HOOK_SECRET, answer) as s:
        s.status = status  # type: ignore[attr-defined]
        yield s


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> Iterator[ConsoleSite]:
    """The demo site with the embedded engine on, a push route to the sink, and unaligned evidence."""
    proc, s = start_site(tmp_path_factory.mktemp("console-admin"),
                         {"TESSERA_ROUTING__ENGINE": "embedded", "CADMIN_HOOK_SECRET": HOOK_SECRET})
    try:
        store = open_store(f"sqlite:///{s.db_path}")
        try:
            client, secret = ClientStore(store.engine).create("demo", ["admin", "records.write"], "setup")
            learner = uuid.UUID(s.people("student")[0]["id"])
            at = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
            store.records.apply("demo", [Evidence(
                tenant="demo", source="lms", native_id="decimals-1", learner_id=learner, activity={"system": "lms", "id": ACTIVITY,
                "title": "Decimals warm-up"}, score=Score(raw=4, min=0, max=5), observed_at=at,
                provenance=Provenance(standard="xapi", system="lms", native_id="decimals-1", received_at=at))])
            pull_run(store)
        finally:
            store.dispose()
        tok = httpx.post(f"{s.base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret))
        with httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {tok.json()['access_token']}"}, timeout=30) as api:
            r = api.post("/v1/connections", json={"name": "lms-hook", "role": "webhook", "system": "lms", "base_url": sink.url,
                                                  "auth": {"signing_secret": "env:CADMIN_HOOK_SECRET"}})
            assert r.status_code == 201, r.text
            r = api.post("/v1/routes", json={"name": "orgs-to-lms", "mode": "push", "destination": "lms-hook", "kinds": ["org"]})
            assert r.status_code == 201, r.text
            r = api.post("/v1/batches", json={"records": [{"kind": "org", "source": "sis", "native_id": "new-school",
                                                           "name": "Riverside Elementary", "type": "school"}]})
            assert r.status_code == 201, r.text
        yield s
    finally:
        stop_site(proc)


def pull_run(store: Any) -> None:
    """A pull route with one run that met errors (what the Imports page lists)."""
    from sqlalchemy import insert

    from gateway.model import utcnow
    from gateway.routing import repository
    from gateway.routing.outcomes import SyncRunSummary
    from gateway.store import tables as t

    cid, rid, now = uuid.uuid4(), uuid.uuid4(), utcnow()
    with store.engine.begin() as conn:
        conn.execute(insert(t.connections).values(id=cid, tenant="demo", name="sis", adapter="oneroster", role="oneroster.rostering",
                                                  system="sis", base_url="https://sis.example.org", auth="{}", options="{}", created_at=now))
        conn.execute(insert(t.routes).values(id=rid, tenant="demo", name="roster-in", source_connection_id=cid, kinds='["person"]',
                                             mode="pull", enabled=True, created_at=now))
    run = repository.start_run(store, repository.load_route(store, rid))
    repository.finish_run(store, SyncRunSummary(run, rid, "partial", read=5, written=4, failed=1, errors=[
        {"message": "required column 'givenName' is missing", "location": "users.csv row 1", "field": "givenName"}]))


def wait_for(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def page(site: ConsoleSite, browser: Any) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_cookies([site.browser_cookie(site.viewer("admin", name="Dana Admin"))])
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def check(page: Any, folder: Path, name: str) -> None:
    assert_accessible(page, name)
    screenshot(page, folder, name)


def test_revoke_a_credential_after_confirming(site: ConsoleSite, page: Any, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{site.db_path}")
    try:
        client, secret = ClientStore(store.engine).create("demo", ["roster-core.readonly"], "Old attendance app")
    finally:
        store.dispose()
    page.goto(f"{site.base_url}/console/admin")
    check(page, tmp_path, "admin-overview")
    page.get_by_role("navigation", name="Integrations").get_by_role("link", name="Keys and passwords").click()
    check(page, tmp_path, "admin-credentials")
    page.get_by_role("link", name="Revoke Old attendance app").click()
    expect(page.get_by_role("heading", name="Revoke Old attendance app?")).to_be_visible()
    check(page, tmp_path, "admin-revoke-confirm")
    page.get_by_role("button", name="Yes, revoke it").click()
    page.wait_for_url(re.compile(r".*/console/admin/credentials\?revoked="))
    assert f"Revoked {client.client_id}" in page.get_by_role("status").inner_text()
    token = httpx.post(f"{site.base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret))
    assert token.status_code == 401
    # a new one: the form with its errors, then the secret, once
    page.get_by_role("link", name="New API client").click()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose at least one permission")
    check(page, tmp_path, "admin-credential-form-errors")
    page.get_by_role("textbox", name="Name").fill("Gradebook sync")
    page.get_by_label(re.compile(r"^roster-core\.readonly")).check()
    page.get_by_role("button", name="Create").click()
    shown = page.locator("#new-secret").inner_text()
    assert len(shown) > 30 and "shown only this once" in page.get_by_role("alert").inner_text()
    check(page, tmp_path, "admin-credential-secret")
    page.get_by_role("link", name=re.compile("I have copied it")).click()
    expect(page.get_by_text("Gradebook sync").first).to_be_visible()
    assert "Gradebook sync" in page.content() and shown not in page.content()


def test_replay_a_dead_letter_once_the_destination_is_fixed(site: ConsoleSite, sink: Sink, page: Any, tmp_path: Path) -> None:
    dead = wait_for("the 400 to dead-letter the delivery",
                    lambda: site.rows("SELECT id FROM outbox WHERE tenant = 'demo' AND state = 'dead'"))
    (oid,), = dead
    assert len(sink.received) == 1 and not sink.applied
    page.goto(f"{site.base_url}/console/admin/routing")
    check(page, tmp_path, "admin-routing")
    assert "orgs-to-lms" in page.content() and "lms-hook" in page.content()
    page.get_by_role("link", name=f"Delivery {oid}").click()
    expect(page.get_by_text("unknown school").first).to_be_visible()
    assert "unknown school" in page.content() and "HTTP 400" in page.content()
    check(page, tmp_path, "admin-dead-letter")
    sink.status["code"] = 200  # type: ignore[attr-defined]
    page.get_by_role("button", name="Send it again").click()
    page.wait_for_url(re.compile(rf".*/console/admin/routing\?replayed={oid}"))
    assert f"Delivery {oid} is queued again" in page.get_by_role("status").inner_text()
    wait_for("the replayed delivery", lambda: site.rows("SELECT state FROM outbox WHERE id = ?", oid) == [("delivered",)])
    assert len(sink.applied) == 1 and next(iter(sink.applied.values()))["record"]["name"] == "Riverside Elementary"
    page.reload()
    assert page.get_by_role("link", name=f"Delivery {oid}").count() == 0
    page.get_by_role("navigation", name="Integrations").get_by_role("link", name="Imports").click()
    expect(page.get_by_role("cell", name="givenName", exact=True)).to_be_visible()  # the newest import's errors are open
    check(page, tmp_path, "admin-imports")


def test_align_an_unaligned_activity(site: ConsoleSite, page: Any, tmp_path: Path) -> None:
    page.goto(f"{site.base_url}/console/admin/unaligned")
    check(page, tmp_path, "admin-unaligned")
    page.get_by_role("link", name=re.compile(r"^Link to a standard\W+Decimals warm-up$")).click()
    check(page, tmp_path, "admin-align")
    frameworks = page.get_by_label("Set of standards")
    options = frameworks.locator("option").all_inner_texts()
    assert len(options) == 3
    frameworks.select_option(label=options[-1])
    page.get_by_role("button", name="Show its standards").click()
    choice = page.get_by_label("Standard this activity shows")
    value = choice.locator("option").nth(1).get_attribute("value")
    choice.select_option(value)
    page.get_by_role("button", name="Link").click()
    page.wait_for_url(re.compile(r".*/console/admin/unaligned\?aligned=1"))
    assert "Linked: 1 evidence item" in page.get_by_role("status").inner_text()
    assert "Decimals warm-up" not in page.content()
    assert site.rows("SELECT count(*) FROM evidence WHERE tenant = 'demo' AND native_id = 'decimals-1' AND competency_id = ?",
                     uuid.UUID(value).bytes) == [(1,)]
    # at phone width the pages still fit
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{site.base_url}/console/admin/routing")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    check(page, tmp_path, "admin-routing-phone")
