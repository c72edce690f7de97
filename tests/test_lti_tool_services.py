"""Tessera as a tool calling the platform's services, end to end over real HTTP.

A launch leaves its course's AGS and NRPS endpoints; an administrator then pulls the
course's roster (NRPS) and posts a learner's mastery (AGS) through Tessera's /v1 API. The
platform is a real ASGI app on a port: its token endpoint checks Tessera's RFC 7523 client
assertion against Tessera's own JWKS, fetched over HTTP, before it hands out a token."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import jwt
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from adapters.lti.claims import C_AGS, C_NRPS
from adapters.lti.tool.assignments_grades import (
    COMPETENCY_TAG,
    LINEITEM,
    LINEITEMS,
    SCOPE_LINEITEM,
    SCOPE_RESULT,
    SCOPE_SCORE,
    SCORE,
)
from adapters.lti.tool.names_roles import MEMBERSHIPS
from adapters.lti.tool.service_auth import ASSERTION_TYPE
from tests import factories as f
from tests.conftest import Api, serve
from tests.test_lti_tool import CLIENT_ID, LEARNER, SpecPlatform, login, register


@pytest.fixture(autouse=True)
def _tool_page_not_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the tool's own launched page: the web console is off (a launch's
    console sign-in is tested in tests/test_console_auth.py)."""
    monkeypatch.setenv("TESSERA_CONSOLE__ENABLED", "false")


class ServicePlatform(SpecPlatform):
    """The spec platform, with a token endpoint, a gradebook and a membership service."""

    def __init__(self) -> None:
        super().__init__()
        self.base = ""
        self.tool_jwks = ""
        self.items: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.tokens = 0

    def app(self) -> FastAPI:
        app = super().app()

        @app.post("/token")
        async def token(request: Request) -> Any:
            form = dict(parse_qsl((await request.body()).decode()))
            assertion = form.get("client_assertion", "")
            try:
                key = jwt.PyJWKClient(self.tool_jwks).get_signing_key_from_jwt(assertion).key
                claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=f"{self.base}/token")
            except jwt.PyJWTError:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("client_assertion_type") != ASSERTION_TYPE or claims["iss"] != CLIENT_ID or claims["sub"] != CLIENT_ID:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            self.tokens += 1
            return {"access_token": f"plat-tok-{self.tokens}", "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope")}

        @app.api_route("/courses/7/line_items", methods=["GET", "POST"])
        async def line_items(request: Request) -> Any:
            assert request.headers["authorization"].startswith("Bearer plat-tok-")
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
            self.scores.append({**orjson.loads(await request.body()), "item": n})
            return Response(status_code=204)

        @app.get("/courses/7/memberships")
        def memberships(request: Request) -> Any:
            assert request.headers["accept"] == MEMBERSHIPS
            ctx = {"id": "ctx-7", "label": "MATH7", "title": "Math 7"}
            if request.query_params.get("page") == "2":
                return JSONResponse({"id": "m", "context": ctx, "members": [
                    {"status": "Active", "user_id": "lms-user-43", "given_name": "Alan", "family_name": "Turing", "roles": [LEARNER]}]},
                    media_type=MEMBERSHIPS)
            return JSONResponse({"id": "m", "context": ctx, "members": [
                {"status": "Active", "user_id": "lms-user-42", "given_name": "Grace", "family_name": "Hopper", "roles": [LEARNER]}]},
                media_type=MEMBERSHIPS, headers={"Link": f'<{self.base}/courses/7/memberships?page=2>; rel="next"'})

        return app


@pytest.fixture
def lms(api: Api) -> Any:
    p = ServicePlatform()
    p.add_key("k1")
    with serve(p.app()) as base:
        p.base, p.jwks_url, p.tool_jwks = base, f"{base}/jwks", f"{api.base_url}/.well-known/jwks.json"
        yield p


def launched(api: Api, lms: ServicePlatform) -> dict[str, Any]:
    reg = register(api, lms, token_url=f"{lms.base}/token")
    services = {
        C_AGS: {"scope": [SCOPE_LINEITEM, SCOPE_RESULT, SCOPE_SCORE], "lineitems": f"{lms.base}/courses/7/line_items"},
        C_NRPS: {"context_memberships_url": f"{lms.base}/courses/7/memberships", "service_versions": ["2.0"]},
    }
    with api.client() as browser:
        auth = login(browser, api)
        r = browser.post("/lti/launch", data={"id_token": lms.sign(lms.claims(auth["nonce"], f"{api.base_url}/lti/launch", **services)),
                                              "state": auth["state"]})
        assert r.status_code == 200, r.text
    return reg


def test_roster_sync_pulls_the_course_membership(api: Api, lms: ServicePlatform) -> None:
    reg = launched(api, lms)
    with api.auth_client("t1", ["admin"]) as c:
        r = c.post(f"/v1/lti/platforms/{reg['id']}/contexts/ctx-7/roster-sync")
    assert r.status_code == 200, r.text
    assert api.store.records.count("t1", "person") == 2 and api.store.records.count("t1", "enrollment") == 2
    assert api.store.records.lookup("t1", "https://lms.example.edu", "lti.sub", "lms-user-43")


def test_mastery_is_posted_to_the_competency_column(api: Api, lms: ServicePlatform) -> None:
    reg = launched(api, lms)
    fw = f.framework()
    comp = f.competency("RL.3.1", fw, uri="https://case.example/uri/rl-3-1")
    api.store.records.apply("t1", [fw, comp])
    (hit,) = api.store.records.lookup("t1", "https://lms.example.edu", "lti.sub", "lms-user-42")
    url = f"/v1/lti/platforms/{reg['id']}/contexts/ctx-7/scores"
    with api.auth_client("t1", ["admin"]) as c:
        for value in (0.8, 0.9):
            r = c.post(url, json={"person_id": str(hit[1]), "competency_id": str(comp.id), "value": value})
            assert r.status_code == 200, r.text
    assert r.json() == {"line_item": f"{lms.base}/courses/7/line_items/1", "user_id": "lms-user-42", "score_given": 90.0}
    (item,) = lms.items
    assert item["resourceId"] == "https://case.example/uri/rl-3-1" and item["tag"] == COMPETENCY_TAG and item["scoreMaximum"] == 100
    assert [(s["userId"], s["scoreGiven"], s["scoreMaximum"]) for s in lms.scores] == [("lms-user-42", 80.0, 100.0), ("lms-user-42", 90.0, 100.0)]
    assert lms.tokens == 2  # one per scope set (line items, score), each cached for the second post


def test_service_calls_are_refused_without_a_launch_a_tenant_or_a_known_user(api: Api, lms: ServicePlatform) -> None:
    reg = launched(api, lms)
    fw = f.framework()
    comp = f.competency("C", fw)
    stranger = f.person("u-never", f.org())
    api.store.records.apply("t1", [fw, comp, f.org(), stranger])
    body = {"person_id": str(stranger.id), "competency_id": str(comp.id), "value": 0.5}
    base = f"/v1/lti/platforms/{reg['id']}/contexts"
    with api.auth_client("t1", ["admin"]) as c:
        assert c.post(f"{base}/no-such-course/roster-sync").status_code == 404
        r = c.post(f"{base}/ctx-7/scores", json=body)
        assert r.status_code == 422 and "never launched" in r.text
        assert c.post(f"{base}/ctx-7/scores", json={**body, "value": 1.5}).status_code == 422
    with api.auth_client("t2", ["admin"]) as other:
        assert other.post(f"{base}/ctx-7/roster-sync").status_code == 404
    with api.auth_client("t1", ["evidence.readonly"]) as weak:
        assert weak.post(f"{base}/ctx-7/roster-sync").status_code == 403
    assert lms.scores == []
