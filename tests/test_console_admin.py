"""The integrator dashboard (``/console/admin``) over HTTP against a real server with the demo
data: each page's content against the store, credentials made in the console (the secret
shown once, never again; a revoked client gets no token), the forms' CSRF and validation,
routing (health, runs, dead letters replayed and discarded), aligning an activity (mastery
follows), and who may see it: admins of this tenant only.

The admin_data functions run once more on the ``store`` fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, select

from gateway.console import admin_data
from gateway.model import Evidence, Identifier, Org, OrgRole, Person, Provenance, Score, utcnow
from gateway.routing import repository
from gateway.routing.outcomes import SyncRunSummary
from gateway.store import Store
from gateway.store import tables as t
from gateway.store.tenants import ensure_tenant
from gateway.wiring import open_store

from .console_support import ConsoleSite, console_site  # noqa: F401
from .factories import competency as make_competency
from .factories import framework as make_framework

pytestmark = pytest.mark.slow

ACTIVITY = "https://lms.cvusd.example.org/quizzes/unlinked-fractions"
NORTH_ACTIVITY = "https://north.example.org/activities/secret-north"
PAGES = ["/console/admin", "/console/admin/imports", "/console/admin/credentials", "/console/admin/credentials/new?kind=oauth",
         "/console/admin/credentials/new?kind=lrs", "/console/admin/routing", "/console/admin/unaligned"]


def _evidence(tenant: str, native: str, learner: uuid.UUID, activity: str, title: str, raw: float, day: int) -> Evidence:
    at = datetime(2026, 11, day, 15, 0, tzinfo=UTC)
    return Evidence(tenant=tenant, source="lms", native_id=native, learner_id=learner, competency_id=None,
                    activity={"system": "lms", "id": activity, "title": title}, score=Score(raw=raw, min=0, max=10), observed_at=at,
                    provenance=Provenance(standard="xapi", version="1.0.3", system="lms", native_id=native, received_at=at))


def _route(conn: Any, tenant: str, name: str, mode: str, role: str, url: str) -> tuple[uuid.UUID, uuid.UUID]:
    cid, rid, now = uuid.uuid4(), uuid.uuid4(), utcnow()
    conn.execute(insert(t.connections).values(id=cid, tenant=tenant, name=f"{name}-conn", adapter="webhook" if role == "webhook" else "oneroster",
                                              role=role, system=name, base_url=url, auth="{}", options="{}", created_at=now))
    conn.execute(insert(t.routes).values(
        id=rid, tenant=tenant, name=name, source_connection_id=cid if mode == "pull" else None,
        destination_connection_id=cid if mode == "push" else None, kinds='["person"]', mode=mode, enabled=True, created_at=now))
    return cid, rid


def _dead(conn: Any, tenant: str, route_id: uuid.UUID, n: int) -> int:
    now = utcnow()
    rid = uuid.uuid4()
    return int(conn.execute(insert(t.outbox).values(
        tenant=tenant, route_id=route_id, record_kind="person", record_id=rid, content_hash="ab" * 32,
        idempotency_key=f"{route_id}:{rid}:{n}", state="dead", attempts=3, next_attempt_at=now, last_error="the destination refused it",
        last_status=400, last_request=f"POST https://lms.example.org/hook body excerpt {n}", last_response='{"error": "unknown school"}',
        created_at=now - timedelta(minutes=5), dead_at=now)).inserted_primary_key[0])


@pytest.fixture(scope="module")
def seeded(console_site: ConsoleSite) -> dict[str, Any]:  # noqa: F811
    """Demo tenant: unaligned evidence of two learners, a pull route with two runs (one with
    errors), a push route with an open breaker and two dead letters. Tenant ``north``: its
    own client, route, dead letter and unaligned evidence."""
    store = open_store(f"sqlite:///{console_site.db_path}")
    try:
        learners = [uuid.UUID(p["id"]) for p in console_site.people("student")[:2]]
        store.records.apply("demo", [
            _evidence("demo", "unlinked-1", learners[0], ACTIVITY, "Fractions exit ticket", 9, 2),
            _evidence("demo", "unlinked-2", learners[0], ACTIVITY, "Fractions exit ticket", 8, 3),
            _evidence("demo", "unlinked-3", learners[1], ACTIVITY, "Fractions exit ticket", 9, 4),
        ])
        school = Org(tenant="north", source="sis", native_id="n-school", name="North School", type="school")
        kid = Person(tenant="north", source="sis", native_id="n-kid", given_name="Nora", family_name="North",
                     roles=[OrgRole(role="student", org_id=school.id, primary=True)],
                     identifiers=[Identifier(system="sis", kind="oneroster.sourcedId", value="n-kid")])
        store.records.apply("north", [school, kid, _evidence("north", "n-ev", kid.id, NORTH_ACTIVITY, "North quiz", 5, 5)])
        with store.engine.begin() as conn:
            ensure_tenant(conn, "north")
            _, pull_id = _route(conn, "demo", "sis-nightly", "pull", "oneroster.rostering", "https://sis.example.org/ims/oneroster")
            push_conn, push_id = _route(conn, "demo", "to-lms", "push", "webhook", "https://lms.example.org/hook")
            dead = [_dead(conn, "demo", push_id, 1), _dead(conn, "demo", push_id, 2)]
            conn.execute(insert(t.connection_health).values(
                connection_id=push_conn, tenant="demo", consecutive_failures=5, open_until=utcnow() + timedelta(hours=1),
                last_error="HTTP 503 from lms.example.org", last_failure_at=utcnow()))
            _, north_route = _route(conn, "north", "north-route", "push", "webhook", "https://north.example.org/hook")
            north_dead = _dead(conn, "north", north_route, 9)
        route = repository.load_route(store, pull_id)
        old = repository.start_run(store, route, now=utcnow() - timedelta(days=1))
        repository.finish_run(store, SyncRunSummary(old, pull_id, "succeeded", read=40, written=40), now=utcnow() - timedelta(days=1))
        new = repository.start_run(store, route)
        repository.finish_run(store, SyncRunSummary(new, pull_id, "partial", read=12, written=10, failed=2, errors=[
            {"message": "required column 'givenName' is missing", "location": "users.csv row 1", "field": "givenName"},
            {"message": "unknown org 'x-9'", "location": "enrollments.csv row 7", "field": "schoolSourcedId"}]))
        north_client, _ = store_client(store, "north", ["roster.readonly"], "north-sync")
        return {"learners": learners, "dead": dead, "north_dead": north_dead, "north_client": north_client,
                "pull_runs": (str(old), str(new))}
    finally:
        store.dispose()


def store_client(store: Store, tenant: str, scopes: list[str], name: str) -> tuple[str, str]:
    from gateway.auth import ClientStore

    client, secret = ClientStore(store.engine).create(tenant, scopes, name)
    return client.client_id, secret


def admin(site: ConsoleSite, tenant: str = "demo") -> httpx.Client:
    return site.http(site.viewer("admin", tenant=tenant, name="Dana Admin"))


def csrf(site: ConsoleSite, client: httpx.Client) -> str:
    from gateway.console.web import COOKIE

    viewer = site.codec.loads(client.cookies.get(COOKIE) or "")
    assert viewer is not None
    return site.codec.csrf(viewer)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+([:,.])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))))


def token(site: ConsoleSite, cid: str, secret: str) -> httpx.Response:
    return httpx.post(f"{site.base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))


def test_the_overview_puts_what_needs_attention_first(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    with admin(console_site) as c:
        r = c.get("/console/admin")
    assert r.status_code == 200
    page = text_of(r.text)
    attention = page[page.index("Needs attention"):page.index("At a glance")]
    assert "Deliveries that failed: 2 waiting" in attention
    assert "Route to-lms: paused after repeated failures" in attention
    assert "Imports with errors" in attention and "Evidence not linked to a standard: 3 items" in attention
    people = console_site.rows("SELECT count(*) FROM people WHERE tenant = 'demo' AND status = 'active'")[0][0]
    assert f"People {people} " in page and "Failed deliveries 2 " in page
    assert "north" not in page.lower()


def test_imports_newest_first_with_each_error_by_file_row_and_field(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    with admin(console_site) as c:
        r = c.get("/console/admin/imports")
    page = text_of(r.text)
    assert r.status_code == 200
    first, second = page.index("Finished with errors"), page.index("Finished in")
    assert first < second  # the newer run (with errors) first
    assert "Read 12, saved 10, unchanged 0, removed 0, failed 2" in page and "Read 40, saved 40" in page
    assert "users.csv row 1 givenName required column 'givenName' is missing" in page
    assert "enrollments.csv row 7 schoolSourcedId unknown org 'x-9'" in page
    assert "2 errors" in page and "No errors." in page
    with admin(console_site) as c:
        older = text_of(c.get("/console/admin/imports", params={"before": (utcnow() - timedelta(hours=12)).isoformat()}).text)
        assert "Read 40, saved 40" in older and "Read 12" not in older and "Newest imports" in older
        assert c.get("/console/admin/imports", params={"before": "last tuesday"}).status_code == 404


def _create(site: ConsoleSite, c: httpx.Client, kind: str, name: str, scopes: list[str], token_: str | None = None) -> httpx.Response:
    form = {"csrf_token": token_ if token_ is not None else csrf(site, c), "kind": kind, "name": name,
            **{f"scope.{s}": "on" for s in scopes}}
    return c.post("/console/admin/credentials", data=form)


def test_a_new_client_shows_its_secret_once_and_never_again(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    with admin(console_site) as c:
        listing = c.get("/console/admin/credentials")
        demo_client = console_site.rows("SELECT client_id FROM oauth_clients WHERE tenant = 'demo' AND name = 'demo'")[0][0]
        assert demo_client in listing.text and "roster.readonly" in listing.text and "In use" in listing.text
        assert seeded["north_client"] not in listing.text
        r = _create(console_site, c, "oauth", "Gradebook sync", ["roster-core.readonly", "evidence.write"])
        assert r.status_code == 200 and "shown only this once" in r.text
        cid = re.search(r'id="new-key">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        secret = re.search(r'id="new-secret">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        row = console_site.rows("SELECT tenant, name, scopes, secret_hash FROM oauth_clients WHERE client_id = ?", cid)[0]
        assert row[:3] == ("demo", "Gradebook sync", "roster-core.readonly evidence.write") and secret not in row[3]
        got = token(console_site, cid, secret)
        assert got.status_code == 200 and got.json()["scope"] == "roster-core.readonly evidence.write"
        # never again: on no page, nor in what the server logged
        for path in [*PAGES, f"/console/admin/credentials/{cid}/revoke"]:
            again = c.get(path)
            assert again.status_code == 200 and secret not in again.text, path
        assert cid in c.get("/console/admin/credentials").text
    assert secret not in (console_site.tmp / "server.log").read_text()


def test_lrs_credentials_are_made_and_listed_apart_and_work_at_the_lrs(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    with admin(console_site) as c:
        form = c.get("/console/admin/credentials/new?kind=lrs").text
        assert "xapi/statements/write" in form and "roster.readonly" not in form
        r = _create(console_site, c, "lrs", "Reading app", ["xapi/statements/write", "xapi/statements/read/mine"])
        assert r.status_code == 200
        key = re.search(r'id="new-key">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        secret = re.search(r'id="new-secret">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        listing = c.get("/console/admin/credentials").text
        lrs_part = listing[listing.index('id="lrs"'):]
        assert key in lrs_part and key not in listing[:listing.index('id="lrs"')]
    got = httpx.get(f"{console_site.base_url}/xapi/statements", auth=(key, secret), headers={"X-Experience-API-Version": "1.0.3"})
    assert got.status_code == 200, got.text


def test_revoking_asks_first_and_then_the_client_gets_no_token(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    with admin(console_site) as c:
        r = _create(console_site, c, "oauth", "Old report tool", ["reports.deidentified"])
        cid = re.search(r'id="new-key">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        secret = re.search(r'id="new-secret">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        assert token(console_site, cid, secret).status_code == 200
        confirm = c.get(f"/console/admin/credentials/{cid}/revoke")
        assert confirm.status_code == 200 and "Yes, revoke it" in confirm.text and "cannot be undone" in confirm.text
        assert token(console_site, cid, secret).status_code == 200  # asking is not revoking
        for bad in ("", "not-the-token"):
            refused = c.post(f"/console/admin/credentials/{cid}/revoke", data={"csrf_token": bad})
            assert refused.status_code == 403 and "did not come from this site" in refused.text
        assert token(console_site, cid, secret).status_code == 200
        done = c.post(f"/console/admin/credentials/{cid}/revoke", data={"csrf_token": csrf(console_site, c)})
        assert done.status_code == 303 and done.headers["location"] == f"/console/admin/credentials?revoked={cid}"
        assert token(console_site, cid, secret).status_code == 401
        listing = text_of(c.get(done.headers["location"]).text)
        assert f"Revoked {cid}" in listing and "Old report tool" in listing
        assert console_site.rows("SELECT revoked_at IS NOT NULL FROM oauth_clients WHERE client_id = ?", cid) == [(1,)]
        assert c.post("/console/admin/credentials/tsr_nosuchclient/revoke",
                      data={"csrf_token": csrf(console_site, c)}).status_code == 404


def test_the_create_form_names_each_wrong_field_and_creates_nothing(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    before = console_site.rows("SELECT count(*) FROM oauth_clients")[0][0]
    with admin(console_site) as c:
        r = _create(console_site, c, "oauth", "  ", [])
        assert r.status_code == 422
        page = text_of(r.text)
        assert "Give it a name" in page and "Choose at least one permission" in page
        assert 'aria-invalid="true"' in r.text and 'id="field-name"' in r.text and 'id="field-scopes"' in r.text
        r = _create(console_site, c, "oauth", "Mixed up", ["roster.readonly", "xapi/all", "made-up.scope"])
        assert r.status_code == 422 and "Not a permission this kind of credential can have: made-up.scope, xapi/all" in r.text
        assert 'value="Mixed up"' in r.text and re.search(r'name="scope\.roster\.readonly" value="on"\s+checked', r.text)
        r = _create(console_site, c, "oauth", "x" * 101, ["roster.readonly"])
        assert r.status_code == 422 and "at most 100 characters" in r.text
        assert _create(console_site, c, "oauth", "No token", ["roster.readonly"], token_="").status_code == 403
        assert _create(console_site, c, "oauth", "Bad token", ["roster.readonly"], token_="f" * 64).status_code == 403
        assert _create(console_site, c, "root", "Wrong kind", ["roster.readonly"]).status_code == 404
    assert console_site.rows("SELECT count(*) FROM oauth_clients")[0][0] == before


def test_routing_shows_health_last_runs_and_dead_letters_and_replays_and_discards(console_site: ConsoleSite,  # noqa: F811
                                                                                  seeded: dict[str, Any]) -> None:
    first, second = seeded["dead"]
    with admin(console_site) as c:
        page = text_of(c.get("/console/admin/routing").text)
        assert "to-lms-conn" in page and "Paused after 5 failures" in page and "HTTP 503 from lms.example.org" in page
        assert "sis-nightly" in page and "partial" in page and "read 12, saved 10, unchanged 0, failed 2" in page
        assert "users.csv row 1: required column 'givenName' is missing" in page
        assert f"Delivery {first}" in page and f"Delivery {second}" in page and "HTTP 400: the destination refused it" in page
        assert f"Delivery {seeded['north_dead']}" not in page and "north-route" not in page
        detail = text_of(c.get(f"/console/admin/dead-letters/{first}").text)
        assert "POST https://lms.example.org/hook body excerpt 1" in detail and '{"error": "unknown school"}' in detail
        assert "Attempts 3" in detail and "HTTP 400" in detail
        for action in ("replay", "discard"):
            assert c.post(f"/console/admin/dead-letters/{first}/{action}", data={"csrf_token": "nope"}).status_code == 403
        assert console_site.rows("SELECT state FROM outbox WHERE id = ?", first) == [("dead",)]
        r = c.post(f"/console/admin/dead-letters/{first}/replay", data={"csrf_token": csrf(console_site, c)})
        assert r.status_code == 303 and f"replayed={first}" in r.headers["location"]
        assert console_site.rows("SELECT state, attempts FROM outbox WHERE id = ?", first) == [("pending", 0)]
        assert f"Delivery {first} is queued again" in c.get(r.headers["location"]).text
        r = c.post(f"/console/admin/dead-letters/{second}/discard", data={"csrf_token": csrf(console_site, c)})
        assert r.status_code == 303 and console_site.rows("SELECT state FROM outbox WHERE id = ?", second) == [("discarded",)]
        after = text_of(c.get("/console/admin/routing").text)
        assert f"Delivery {first} " not in after and f"Delivery {second} " not in after
        assert c.get(f"/console/admin/dead-letters/{first}").status_code == 404  # pending again: not a dead letter
        assert c.get("/console/admin/dead-letters/abc").status_code == 404


def test_aligning_an_activity_links_its_evidence_and_updates_mastery(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    learners = seeded["learners"]
    with admin(console_site) as c:
        page = text_of(c.get("/console/admin/unaligned").text)
        assert "Fractions exit ticket" in page and f"{ACTIVITY} lms 3 2 2026-11-02 to 2026-11-04" in page
        assert "North quiz" not in page
        form = c.get("/console/admin/unaligned/align", params={"system": "lms", "activity": ACTIVITY})
        assert form.status_code == 200 and "3 unlinked evidence items" in text_of(form.text)
        fw_id, fw_title = console_site.rows("SELECT id, json_extract(data, '$.title') FROM frameworks WHERE tenant = 'demo' ORDER BY native_id")[0]
        assert fw_title in form.text
        # a competency none of the two learners has a state for yet
        comp = next(uuid.UUID(bytes=bytes(r[0])) for r in console_site.rows(
            "SELECT id FROM competencies WHERE tenant = 'demo' AND framework_id = ? ORDER BY code", fw_id)
            if not console_site.rows("SELECT 1 FROM mastery_states WHERE competency_id = ? AND learner_id IN (?, ?)",
                                     r[0], learners[0].bytes, learners[1].bytes))
        shown = c.get("/console/admin/unaligned/align", params={"system": "lms", "activity": ACTIVITY,
                                                               "framework": str(uuid.UUID(bytes=bytes(fw_id)))})
        assert str(comp) in shown.text
        base = {"csrf_token": csrf(console_site, c), "system": "lms", "activity": ACTIVITY}
        r = c.post("/console/admin/unaligned/align", data={**base, "competency": ""})
        assert r.status_code == 422 and "Choose the standard this activity shows" in r.text
        r = c.post("/console/admin/unaligned/align", data={**base, "competency": str(uuid.uuid4())})
        assert r.status_code == 422 and "not one of this district" in r.text
        r = c.post("/console/admin/unaligned/align", data={**base, "activity": NORTH_ACTIVITY, "competency": str(comp)})
        assert r.status_code == 422 and "has no unlinked evidence" in r.text
        assert c.post("/console/admin/unaligned/align", data={**base, "competency": str(comp), "csrf_token": "x"}).status_code == 403
        r = c.post("/console/admin/unaligned/align", data={**base, "competency": str(comp)})
        assert r.status_code == 303 and r.headers["location"] == "/console/admin/unaligned?aligned=3"
        assert "Linked: 3 evidence items" in c.get(r.headers["location"]).text
        assert ACTIVITY not in c.get("/console/admin/unaligned").text
    aligned = console_site.rows("SELECT competency_id FROM evidence WHERE tenant = 'demo' AND native_id LIKE 'unlinked-%'")
    (al_id, al_comp, source), = console_site.rows(
        "SELECT id, competency_id, source FROM alignments WHERE tenant = 'demo' AND target_id = ?", ACTIVITY)
    assert source == "console" and bytes(al_comp) == comp.bytes
    assert [bytes(a) for (a,) in aligned] == [comp.bytes] * 3
    assert all(orjson.loads(d)["alignment_id"] == str(uuid.UUID(bytes=bytes(al_id))) for (d,) in console_site.rows(
        "SELECT data FROM evidence WHERE tenant = 'demo' AND native_id LIKE 'unlinked-%'"))
    states = console_site.rows("SELECT learner_id, level FROM mastery_states WHERE tenant = 'demo' AND competency_id = ? AND status = 'active'",
                               comp.bytes)
    assert {bytes(r[0]) for r in states} == {learners[0].bytes, learners[1].bytes}


ROLES = ("teacher", "learner", "guardian")


def test_teachers_learners_and_guardians_get_the_403_page_everywhere(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    people = {"teacher": console_site.teacher_with_section()[0], "learner": console_site.people("student")[0]["id"],
              "guardian": console_site.people("guardian")[0]["id"]}
    paths = [*PAGES, f"/console/admin/dead-letters/{seeded['dead'][0]}",
             "/console/admin/credentials/tsr_x/revoke", f"/console/admin/unaligned/align?system=lms&activity={ACTIVITY}"]
    posts = ["/console/admin/credentials", "/console/admin/credentials/tsr_x/revoke", f"/console/admin/dead-letters/{seeded['dead'][0]}/replay",
             f"/console/admin/dead-letters/{seeded['dead'][0]}/discard", "/console/admin/unaligned/align"]
    for role in ROLES:
        viewer = console_site.viewer(role, people[role])
        with console_site.http(viewer) as c:
            for path in paths:
                r = c.get(path)
                assert r.status_code == 403 and "for district administrators" in r.text, (role, path)
                assert "Integrations" not in r.text  # not in their menu either
            for path in posts:
                r = c.post(path, data={"csrf_token": console_site.codec.csrf(viewer), "kind": "oauth", "name": "x",
                                       "scope.admin": "on", "competency": str(uuid.uuid4()), "system": "lms", "activity": ACTIVITY})
                assert r.status_code == 403, (role, path)
    with console_site.http() as anon:
        r = anon.get("/console/admin/routing")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in?next=")


def test_an_admin_of_another_tenant_sees_nothing_of_this_one(console_site: ConsoleSite, seeded: dict[str, Any]) -> None:  # noqa: F811
    demo_client = console_site.rows("SELECT client_id FROM oauth_clients WHERE tenant = 'demo' AND name = 'demo'")[0][0]
    with admin(console_site, "north") as c:
        seen = " ".join(c.get(p).text for p in PAGES)
        for secret_of_demo in (demo_client, "sis-nightly", "to-lms", "Fractions exit ticket", "users.csv", f"Delivery {seeded['dead'][0]}"):
            assert secret_of_demo not in seen
        assert seeded["north_client"] in seen and "north-route" in seen and "North quiz" in seen
        assert c.get(f"/console/admin/credentials/{demo_client}/revoke").status_code == 404
        assert c.post(f"/console/admin/credentials/{demo_client}/revoke", data={"csrf_token": csrf(console_site, c)}).status_code == 404
        for oid in seeded["dead"]:
            assert c.get(f"/console/admin/dead-letters/{oid}").status_code == 404
            assert c.post(f"/console/admin/dead-letters/{oid}/discard", data={"csrf_token": csrf(console_site, c)}).status_code == 404
        assert c.get("/console/admin/unaligned/align", params={"system": "lms", "activity": ACTIVITY}).status_code == 404
    assert console_site.rows("SELECT revoked_at FROM oauth_clients WHERE client_id = ?", demo_client) == [(None,)]


# --- the same reads and the alignment on both databases ---------------------------------------------


def test_admin_data_on_both_databases(store: Store) -> None:
    from tests import factories as f

    school = f.org()
    kid = f.person("k1", school)
    fw = make_framework()
    comp = make_competency("c1", fw)
    store.records.apply(f.T, [school, kid, fw, comp, _evidence(f.T, "e1", kid.id, ACTIVITY, "Quiz", 9, 2),
                              _evidence(f.T, "e2", kid.id, ACTIVITY, "Quiz", 7, 3)])
    found = admin_data.unaligned(store, f.T)
    assert found.total == 2 and [(a.id, a.items, len(a.learners)) for a in found.activities] == [(ACTIVITY, 2, 1)]
    assert admin_data.overview(store, f.T, frozenset()).counts["unaligned"] == 2
    assert admin_data.frameworks(store, f.T) == [{"id": str(fw.id), "title": fw.title}]
    items = admin_data.activity_evidence(store, f.T, "lms", ACTIVITY)
    _, n = admin_data.align(store, f.T, "lms", ACTIVITY, comp.id, items)
    assert n == 2 and admin_data.unaligned(store, f.T).total == 0
    with store.engine.connect() as conn:
        assert conn.execute(select(t.mastery_states.c.learner_id).where(t.mastery_states.c.competency_id == comp.id)).all() == [(kid.id,)]
    assert admin_data.split_location("users.csv row 4") == ("users.csv", "row 4")
    assert admin_data.split_location("statement 12ab") == ("", "statement 12ab")
    assert admin_data.imports(store, f.T) == [] and admin_data.dead_letters(store, f.T) == []
