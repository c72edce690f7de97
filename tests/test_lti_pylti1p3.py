"""Interoperability: Tessera as the LTI 1.3 platform, the independent ``pylti1p3`` library
as the tool, over real HTTP with real RSA keys.

The tool below is a small web app built on pylti1p3's own OIDC login and message launch
classes, with a minimal request/session/cookie adapter (pylti1p3 leaves those to the web
framework). A "browser" (an httpx client with a cookie jar) walks the launch: Tessera's
launch API -> the tool's login initiation URL -> Tessera's authorization endpoint -> the
form post of the id_token to the tool, which validates it against Tessera's JWKS. The tool
then uses pylti1p3's Assignment and Grade Services client to create a line item tagged
with a CASE competency and post a score, which must land in the store as Evidence.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pylti1p3.cookie import CookieService
from pylti1p3.exception import LtiException
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.request import Request as LtiRequest
from pylti1p3.session import SessionService
from pylti1p3.tool_config import ToolConfDict
from starlette.concurrency import run_in_threadpool

from adapters.lti.platform.registrations import ToolRegistration, ToolRegistry
from tests.conftest import serve
from tests.test_lti_platform import ToolKey, seed

SESSION_COOKIE = "tool-session"


# --- the adapter pylti1p3 needs: request, cookies, redirect ------------------------------------


class ToolRequest(LtiRequest):
    def __init__(self, params: dict[str, str], session: dict[str, Any]) -> None:
        self._params = params
        self._session = session

    @property
    def session(self) -> dict[str, Any]:
        return self._session

    def is_secure(self) -> bool:
        return False

    def get_param(self, key: str) -> str:
        return self._params.get(key)  # type: ignore[return-value]


class ToolCookies(CookieService):
    def __init__(self, incoming: dict[str, str]) -> None:
        self.incoming = incoming
        self.outgoing: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return f"{self._cookie_prefix}-{name}"

    def get_cookie(self, name: str) -> str | None:
        return self.incoming.get(self._name(name))

    def set_cookie(self, name: str, value: str | int, exp: int | None = 3600) -> None:
        self.outgoing[self._name(name)] = str(value)


class ToolRedirect(Redirect[str]):
    def __init__(self, location: str) -> None:
        self._location = location

    def do_redirect(self) -> str:
        return self._location

    def do_js_redirect(self) -> str:
        return self._location

    def set_redirect_url(self, location: str) -> None:
        self._location = location

    def get_redirect_url(self) -> str:
        return self._location


class ToolLogin(OIDCLogin):
    def get_redirect(self, url: str) -> ToolRedirect:
        return ToolRedirect(url)


class ToolLaunch(MessageLaunch):
    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)


# --- the tool ---------------------------------------------------------------------------------


class PyLtiTool:
    """A web app around pylti1p3; ``configure`` once Tessera has registered it."""

    def __init__(self, competency_uri: str) -> None:
        self.key = ToolKey()
        self.competency_uri = competency_uri
        self.sessions: dict[str, dict[str, Any]] = {}
        self.conf: ToolConfDict | None = None
        self.base = ""
        self.app = FastAPI()
        self.app.get("/jwks")(self.jwks)
        self.app.get("/login")(self.login)
        self.app.post("/launch")(self.launch)

    def configure(self, issuer: str, client_id: str, deployments: list[str]) -> None:
        self.conf = ToolConfDict({issuer: [{
            "default": True, "client_id": client_id, "auth_login_url": f"{issuer}/lti/platform/authorize",
            "auth_token_url": f"{issuer}/lti/platform/token", "key_set_url": f"{issuer}/lti/platform/jwks",
            "deployment_ids": deployments,
        }]})
        public_pem = self._public_pem()
        self.conf.set_private_key(issuer, self.key.pem, client_id=client_id)
        self.conf.set_public_key(issuer, public_pem, client_id=client_id)

    def _public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        priv = serialization.load_pem_private_key(self.key.pem.encode(), password=None)
        return priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def _session(self, request: Request) -> tuple[str, dict[str, Any]]:
        sid = request.cookies.get(SESSION_COOKIE) or uuid.uuid4().hex
        return sid, self.sessions.setdefault(sid, {})

    def jwks(self) -> dict[str, Any]:
        assert self.conf is not None
        return self.conf.get_jwks()

    async def login(self, request: Request) -> Response:
        assert self.conf is not None
        sid, session = self._session(request)
        lti_request = ToolRequest(dict(request.query_params), session)
        cookies = ToolCookies(dict(request.cookies))
        login = ToolLogin(lti_request, self.conf, SessionService(lti_request), cookies)
        location = login.redirect(f"{self.base}/launch")
        resp = RedirectResponse(location, status_code=302)
        resp.set_cookie(SESSION_COOKIE, sid)
        for name, value in cookies.outgoing.items():
            resp.set_cookie(name, value)
        return resp

    async def launch(self, request: Request) -> Response:
        # pylti1p3 is synchronous, and Tessera calls back into this app (its JWKS) while
        # the launch is served: run it off the event loop.
        _, session = self._session(request)
        form = dict(parse_qsl((await request.body()).decode()))
        return await run_in_threadpool(self._launch, form, session, dict(request.cookies))

    def _launch(self, form: dict[str, str], session: dict[str, Any], cookies: dict[str, str]) -> Response:
        assert self.conf is not None
        lti_request = ToolRequest(form, session)
        launch = ToolLaunch(lti_request, self.conf, SessionService(lti_request), ToolCookies(cookies))
        try:
            data = launch.get_launch_data()  # validates: state, signature (Tessera's JWKS), nonce, registration, deployment
        except LtiException as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        ags = launch.get_ags()
        item = ags.find_or_create_lineitem(
            LineItem().set_tag("fractions").set_label("Fractions quiz").set_score_maximum(20).set_resource_id(self.competency_uri)
        )
        grade = (Grade().set_user_id(data["sub"]).set_score_given(15).set_score_maximum(20)
                 .set_timestamp(datetime(2026, 11, 25, 9, 30, tzinfo=UTC).isoformat())
                 .set_activity_progress("Completed").set_grading_progress("FullyGraded"))
        ags.put_grade(grade, item)
        return JSONResponse({"sub": data["sub"], "roles": data["https://purl.imsglobal.org/spec/lti/claim/roles"],
                             "lis": data.get("https://purl.imsglobal.org/spec/lti/claim/lis"), "lineitem": item.get_id(),
                             "grades": ags.get_grades(item)})


def _walk_launch(api, tool: PyLtiTool, client_id: str, user, section, browser: httpx.Client) -> httpx.Response:
    admin = api.auth_client("t1", ["admin"])
    start = admin.post("/v1/lti/launches", json={"client_id": client_id, "user_id": str(user.id), "context_id": str(section.id),
                                                 "resource_link_id": "rl-fractions"})
    assert start.status_code == 200, start.text
    to_platform = browser.get(start.json()["login_url"])  # the tool's OIDC login (pylti1p3)
    assert to_platform.status_code == 302 and to_platform.headers["location"].startswith(f"{api.base_url}/lti/platform/authorize?")
    page = browser.get(to_platform.headers["location"])  # Tessera's authorization endpoint
    assert page.status_code == 200, page.text
    action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    fields = {k: unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
    return browser.post(action, data=fields)  # the form post to the tool's launch URL


def test_pylti1p3_tool_launches_from_tessera_and_its_ags_score_becomes_evidence(api, store) -> None:
    data = seed(store)
    comp, student, sec = data["competency"], data["students"][1], data["section"]
    tool = PyLtiTool(comp.uri)
    with serve(tool.app) as tool_base, httpx.Client(timeout=30) as browser:
        tool.base = tool_base
        reg = ToolRegistry(store.engine).add("t1", ToolRegistration(
            name="pylti1p3 tool", login_url=f"{tool_base}/login", redirect_uris=[f"{tool_base}/launch"],
            target_link_uri=f"{tool_base}/launch", jwks_url=f"{tool_base}/jwks"))
        tool.configure(api.base_url, reg.client_id, reg.deployments)

        r = _walk_launch(api, tool, reg.client_id, student, sec, browser)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sub"] == str(student.id)
        assert body["roles"][0] == "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
        assert body["lis"]["person_sourcedid"] == student.native_id
        assert body["lineitem"].startswith(f"{api.base_url}/lti/platform/ags/contexts/{sec.id}/lineitems/")
        assert body["grades"] == [{"id": f"{body['lineitem']}/results/{student.id}", "scoreOf": body["lineitem"],
                                   "userId": str(student.id), "resultScore": 15.0, "resultMaximum": 20.0}]

        [evidence] = [orjson.loads(e.model_dump_json()) for e in store.records.iter_records("t1", ["evidence"])]
        assert evidence["learner_id"] == str(student.id) and evidence["competency_id"] == str(comp.id)
        assert evidence["score"]["scaled"] == 0.75 and evidence["provenance"]["standard"] == "lti-ags"
        assert evidence["observed_at"].startswith("2026-11-25T09:30:00")

        # a second launch finds the line item by its tag and the same score stays one evidence
        again = _walk_launch(api, tool, reg.client_id, student, sec, browser)
        assert again.status_code == 200 and again.json()["lineitem"] == body["lineitem"]
        assert store.records.count("t1", "evidence") == 1


def test_pylti1p3_refuses_an_id_token_that_was_tampered_with(api, store) -> None:
    data = seed(store)
    tool = PyLtiTool(data["competency"].uri)
    with serve(tool.app) as tool_base, httpx.Client(timeout=30) as browser:
        tool.base = tool_base
        reg = ToolRegistry(store.engine).add("t1", ToolRegistration(
            name="pylti1p3 tool", login_url=f"{tool_base}/login", redirect_uris=[f"{tool_base}/launch"],
            target_link_uri=f"{tool_base}/launch", jwks_url=f"{tool_base}/jwks"))
        tool.configure(api.base_url, reg.client_id, reg.deployments)
        admin = api.auth_client("t1", ["admin"])
        start = admin.post("/v1/lti/launches", json={"client_id": reg.client_id, "user_id": str(data["students"][0].id),
                                                     "context_id": str(data["section"].id), "resource_link_id": "rl"}).json()
        page = browser.get(browser.get(start["login_url"]).headers["location"])
        fields = {k: unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
        head, payload, sig = fields["id_token"].split(".")
        fields["id_token"] = ".".join((head, payload, sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")))
        r = browser.post(f"{tool_base}/launch", data=fields)
        assert r.status_code == 400 and "decode" in r.json()["error"].lower()
        assert store.records.count("t1", "evidence") == 0
