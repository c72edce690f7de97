"""LTI routing roles, Tessera as the tool of an LMS that launched it: ``lti.ags`` posts mastery
as scores in one line item per (context, competency), a retry carrying the same timestamp;
``lti.nrps`` pulls the full membership and retires the members no longer listed.

Two LMSs, each on a real port, each launching Tessera for real first:

* a second Tessera, whose own LTI platform registered this Tessera as a tool and launches
  it through the whole OIDC exchange; its AGS service turns the scores into evidence;
* the spec platform of tests/test_lti_tool.py, extended with a token endpoint that checks
  Tessera's RFC 7523 assertion against Tessera's JWKS over HTTP, a line item container, a
  score service that keeps one score per user and refuses one not newer than it holds,
  and a membership service whose members the test changes (Tessera's platform derives its
  membership from its roster, so a member leaving is easier to stage here)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import jwt
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from adapters.lti.claims import C_AGS, C_NRPS
from adapters.lti.routing import AgsDestination, NrpsSource
from adapters.lti.tool.assignments_grades import COMPETENCY_TAG, LINEITEM, LINEITEMS, SCOPE_LINEITEM, SCOPE_SCORE, SCORE
from adapters.lti.tool.names_roles import MEMBERSHIPS
from adapters.lti.tool.service_auth import ASSERTION_TYPE
from gateway.model import MasteryMethod, MasteryState, Status
from gateway.routing.protocol import WaitForDependency

from . import factories as f
from .conftest import Api, serve
from .routing_support import connection, delivery, make_peer_fixture, pull_all, pull_route, push_route  # noqa: F401 - fixture
from .test_lti_tool import CLIENT_ID, LEARNER, SpecPlatform, login, register

T = "t1"


@pytest.fixture(autouse=True)
def _tool_page_not_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the tool's own launched page: the web console is off (a launch's
    console sign-in is tested in tests/test_console_auth.py)."""
    monkeypatch.setenv("TESSERA_CONSOLE__ENABLED", "false")


class Lms(SpecPlatform):
    def __init__(self) -> None:
        super().__init__()
        self.base = ""
        self.tool_jwks = ""
        self.items: list[dict[str, Any]] = []
        self.scores: dict[tuple[int, str], dict[str, Any]] = {}
        self.posts = 0
        self.members = [("lms-user-42", "Grace", "Hopper"), ("lms-user-43", "Alan", "Turing"), ("lms-user-44", "Ada", "Byron")]

    def app(self) -> FastAPI:
        app = super().app()

        @app.post("/token")
        async def token(request: Request) -> Any:
            form = dict(parse_qsl((await request.body()).decode()))
            try:
                key = jwt.PyJWKClient(self.tool_jwks).get_signing_key_from_jwt(form.get("client_assertion", "")).key
                claims = jwt.decode(form["client_assertion"], key, algorithms=["RS256"], audience=f"{self.base}/token")
            except (jwt.PyJWTError, KeyError):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("client_assertion_type") != ASSERTION_TYPE or claims["sub"] != CLIENT_ID:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            return {"access_token": "lms-token", "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope")}

        @app.api_route("/courses/7/line_items", methods=["GET", "POST"])
        async def line_items(request: Request) -> Any:
            assert request.headers["authorization"] == "Bearer lms-token"
            if request.method == "POST":
                assert request.headers["content-type"] == LINEITEM
                item = {**orjson.loads(await request.body()), "id": f"{self.base}/courses/7/line_items/{len(self.items) + 1}"}
                self.items.append(item)
                return JSONResponse(item, status_code=201, media_type=LINEITEM)
            q = request.query_params
            found = [i for i in self.items if i["resourceId"] == q.get("resource_id", i["resourceId"]) and i["tag"] == q.get("tag", i["tag"])]
            return JSONResponse(found, media_type=LINEITEMS)

        @app.post("/courses/7/line_items/{n}/scores")
        async def scores(n: int, request: Request) -> Response:
            assert request.headers["content-type"] == SCORE
            self.posts += 1
            score = orjson.loads(await request.body())
            held = self.scores.get((n, score["userId"]))
            if held is not None and held["timestamp"] >= score["timestamp"]:
                return JSONResponse({"error": "a score with this timestamp or a newer one is recorded"}, status_code=409)
            self.scores[(n, score["userId"])] = score
            return Response(status_code=204)

        @app.get("/courses/7/memberships")
        def memberships(request: Request) -> Any:
            ctx = {"id": "ctx-7", "label": "MATH7", "title": "Math 7"}
            people = [{"status": "Active", "user_id": u, "given_name": g, "family_name": fam, "roles": [LEARNER]} for u, g, fam in self.members]
            if request.query_params.get("page") == "2":
                return JSONResponse({"id": "m", "context": ctx, "members": people[1:]}, media_type=MEMBERSHIPS)
            return JSONResponse({"id": "m", "context": ctx, "members": people[:1]}, media_type=MEMBERSHIPS,
                                headers={"Link": f'<{self.base}/courses/7/memberships?page=2>; rel="next"'})

        return app


@pytest.fixture
def lms(api: Api) -> Any:
    p = Lms()
    p.add_key("k1")
    with serve(p.app()) as base:
        p.base, p.jwks_url, p.tool_jwks = base, f"{base}/jwks", f"{api.base_url}/.well-known/jwks.json"
        yield p


def launched(api: Api, lms: Lms) -> dict[str, Any]:
    """A learner launches Tessera from course 7: the launch leaves its AGS and NRPS URLs."""
    reg = register(api, lms, token_url=f"{lms.base}/token")
    services = {
        C_AGS: {"scope": [SCOPE_LINEITEM, SCOPE_SCORE], "lineitems": f"{lms.base}/courses/7/line_items"},
        C_NRPS: {"context_memberships_url": f"{lms.base}/courses/7/memberships", "service_versions": ["2.0"]},
    }
    with api.client() as browser:
        auth = login(browser, api)
        r = browser.post("/lti/launch", data={"id_token": lms.sign(lms.claims(auth["nonce"], f"{api.base_url}/lti/launch", **services)),
                                              "state": auth["state"]})
        assert r.status_code == 200, r.text
    return reg


def person_of(api: Api, sub: str):
    (hit,) = api.store.records.lookup(T, "https://lms.example.edu", "lti.sub", sub)
    return api.store.records.get(T, "person", hit[1])


def test_the_membership_is_pulled_whole_and_a_member_gone_is_retired(api: Api, lms: Lms) -> None:
    reg = launched(api, lms)
    src = NrpsSource(connection("lms", "lti", "lti.nrps", None, platform=reg["id"]))
    route = pull_route(src.connection)
    pages, cursor = pull_all(src, api.store, route, None)
    assert cursor is None and len(pages) == 1 and pages[0].read == 3 and pages[0].deleted == 0
    enrolled = {e.native_id.rsplit(":", 1)[1]: e.status for e in api.store.records.iter_records(T, ["enrollment"])}
    assert enrolled == {"lms-user-42": Status.active, "lms-user-43": Status.active, "lms-user-44": Status.active}

    lms.members = lms.members[:2]  # Ada left the course
    pages, _ = pull_all(src, api.store, route, None)
    assert pages[0].deleted == 1 and pages[0].unchanged >= 2
    enrolled = {e.native_id.rsplit(":", 1)[1]: e.status for e in api.store.records.iter_records(T, ["enrollment"])}
    assert enrolled["lms-user-44"] == Status.tobedeleted and enrolled["lms-user-42"] == Status.active

    pages, _ = pull_all(src, api.store, route, None)  # nothing changed: nothing written, nothing retired again
    assert pages[0].written == 0 and pages[0].deleted == 0


def mastery(learner, comp, value: float, at) -> MasteryState:
    return MasteryState(tenant=T, source="tessera", native_id=f"{learner.id}:{comp.id}", learner_id=learner.id, competency_id=comp.id,
                        value=value, level="proficient", mastered=value >= 0.8, method=MasteryMethod.latest, evidence_count=1, computed_at=at)


def test_mastery_becomes_a_score_in_the_competency_column_once_per_context(api: Api, lms: Lms) -> None:
    from datetime import UTC, datetime

    reg = launched(api, lms)
    src = NrpsSource(connection("lms", "lti", "lti.nrps", None, platform=reg["id"]))
    pull_all(src, api.store, pull_route(src.connection), None)  # the roster: every member's sub and enrollment
    fw = f.framework()
    c1 = f.competency("RL.3.1", fw, uri="https://case.example/uri/rl-3-1")
    c2 = f.competency("RL.3.2", fw, uri="https://case.example/uri/rl-3-2")
    api.store.records.apply(T, [fw, c1, c2])
    grace, alan = person_of(api, "lms-user-42"), person_of(api, "lms-user-43")

    dest = AgsDestination(connection("lms-gradebook", "lti", "lti.ags", None, platform=reg["id"]))
    route = push_route(dest.connection, ("mastery_state",))
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    first = mastery(grace, c1, 0.8, t0)
    dest.deliver(api.store, delivery(route, first))
    dest.deliver(api.store, delivery(route, first, attempt=2))  # a retry: same timestamp, the LMS keeps one score
    dest.deliver(api.store, delivery(route, mastery(alan, c1, 0.5, t0)))
    dest.deliver(api.store, delivery(route, mastery(grace, c2, 0.25, t0)))
    later = mastery(grace, c1, 0.9, datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    AgsDestination(dest.connection).deliver(api.store, delivery(route, later))  # another worker: finds the column

    assert [(i["resourceId"], i["tag"], i["scoreMaximum"]) for i in lms.items] == [
        ("https://case.example/uri/rl-3-1", COMPETENCY_TAG, 100), ("https://case.example/uri/rl-3-2", COMPETENCY_TAG, 100)]
    got = {(n, u): (s["scoreGiven"], s["gradingProgress"]) for (n, u), s in lms.scores.items()}
    assert got == {(1, "lms-user-42"): (90.0, "FullyGraded"), (1, "lms-user-43"): (50.0, "FullyGraded"), (2, "lms-user-42"): (25.0, "FullyGraded")}
    assert lms.posts == 5


def test_a_learner_the_lms_never_named_waits_and_one_in_no_course_sends_nothing(api: Api, lms: Lms) -> None:
    from datetime import UTC, datetime

    reg = launched(api, lms)
    fw = f.framework()
    comp = f.competency("RL.3.1", fw)
    school = f.org()
    sis_only = f.person("sis-9", school)
    api.store.records.apply(T, [fw, comp, school, sis_only])
    dest = AgsDestination(connection("lms-gradebook", "lti", "lti.ags", None, platform=reg["id"]))
    route = push_route(dest.connection, ("mastery_state",))
    dest.deliver(api.store, delivery(route, mastery(sis_only, comp, 0.7, datetime(2026, 12, 1, tzinfo=UTC))))
    assert lms.posts == 0 and lms.items == []

    # enrolled in the LMS course's section by the SIS, but never launched nor listed by NRPS
    grace = person_of(api, "lms-user-42")
    (enr,) = list(api.store.records.iter_records(T, ["enrollment"]))
    from gateway.model import Enrollment

    api.store.records.apply(T, [Enrollment(tenant=T, source="sis", native_id="e9", person_id=sis_only.id, section_id=enr.section_id,
                                           role="student")])
    with pytest.raises(WaitForDependency):
        dest.deliver(api.store, delivery(route, mastery(sis_only, comp, 0.7, datetime(2026, 12, 1, tzinfo=UTC))))
    dest.deliver(api.store, delivery(route, mastery(grace, comp, 0.7, datetime(2026, 12, 1, tzinfo=UTC))))
    assert lms.posts == 1


def test_a_second_tessera_as_the_lms_takes_mastery_as_scores_on_its_line_items(api: Api, make_peer) -> None:
    """Tessera's own LTI platform is the LMS: it registered this Tessera as a tool, launched it
    (the whole OIDC exchange, over HTTP), then takes the mastery scores through its AGS service,
    where a score on a line item naming the competency becomes evidence."""
    import re
    from datetime import UTC, datetime
    from html import unescape

    import httpx

    from adapters.lti.platform.registrations import ToolRegistration, ToolRegistry

    from .test_lti_platform import seed, start

    peer = make_peer()
    data = seed(peer.store, T)  # the LMS: a section, students, a CASE competency
    api.store.records.apply(T, [r for r in peer.store.records.iter_records(T, ["org", "course", "section", "person", "enrollment",
                                                                              "framework", "competency"])])  # the same SIS roster here
    tool = ToolRegistry(peer.store.engine).add(T, ToolRegistration(
        name="Tessera", login_url=f"{api.base_url}/lti/login", redirect_uris=[f"{api.base_url}/lti/launch"],
        target_link_uri=f"{api.base_url}/lti/launch", jwks_url=f"{api.base_url}/.well-known/jwks.json"))
    with api.auth_client(T, ["admin"]) as admin:
        r = admin.post("/v1/lti/platforms", json={
            "name": "State LMS", "issuer": peer.base_url, "client_id": tool.client_id, "deployment_ids": list(tool.deployments),
            "auth_login_url": f"{peer.base_url}/lti/platform/authorize", "token_url": f"{peer.base_url}/lti/platform/token",
            "jwks_url": f"{peer.base_url}/lti/platform/jwks"})
        assert r.status_code == 201, r.text
        platform_id = r.json()["id"]

    student, section, comp = data["students"][0], data["section"], data["competency"]
    peer_api = type("PeerApi", (), {"auth_client": peer.auth_client})()
    login_url = start(peer_api, tool, student, section)
    with httpx.Client(timeout=30) as browser:
        to_platform = browser.get(login_url)
        assert to_platform.status_code == 302, to_platform.text
        form = browser.get(to_platform.headers["location"])
        assert form.status_code == 200, form.text
        fields = {m[0]: unescape(m[1]) for m in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.text)}
        launched = browser.post(f"{api.base_url}/lti/launch", data=fields)
        assert launched.status_code == 200, launched.text

    dest = AgsDestination(connection("state-lms", "lti", "lti.ags", None, platform=platform_id))
    route = push_route(dest.connection, ("mastery_state",))
    state = mastery(student, comp, 0.75, datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    dest.deliver(api.store, delivery(route, state))
    dest.deliver(api.store, delivery(route, state, attempt=2))  # the retry: the same timestamp
    dest.close()

    held = [e for e in peer.store.records.iter_records(T, ["evidence"]) if e.learner_id == student.id]
    assert len(held) == 1 and held[0].competency_id == comp.id and held[0].score.scaled == 0.75
