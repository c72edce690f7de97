"""The peers of console sign-in, written here from the specs, each on its own free port:

- ``LocalLms``: an LTI 1.3 platform (1EdTech Security Framework 5.1.1): its JWKS, and an
  authorization endpoint that answers Tessera's OIDC authentication request with the
  auto-submitting form (``response_mode=form_post``) carrying an id_token it signs for the
  user named by ``login_hint`` (LTI 1.3 core 5). ``launch_url(user)`` is the third-party
  initiated login a link in the LMS starts.
- ``LocalIdP``: an OpenID Connect provider (Core 1.0 3.1, Discovery 1.0, RFC 7636): discovery
  document, an authorization endpoint that signs in ``user`` at once (no login form) and
  redirects back with a code, a token endpoint (client_secret_basic, PKCE S256 checked, codes
  single-use) returning an id_token signed with joserfc, and the JWKS. ``tamper`` overrides
  claims of the next id_tokens (a wrong nonce, another audience).

``console_auth_site`` starts both and a real ``tessera serve`` with the demo data, the
platform registered for tenant ``demo`` and OpenID Connect configured against the provider.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from jwt.algorithms import RSAAlgorithm

from adapters.lti.claims import LTI
from gateway.model import Identifier, OrgRole, Person, Role

from .conftest import serve
from .console_support import ConsoleSite, start_site, stop_site

LMS_ISS = "https://lms.cvusd.example.org"
LMS_CLIENT = "tessera-console-tests"
DEPLOYMENT = "cvusd-1"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
LEARNER = LIS + "membership#Learner"
INSTRUCTOR = LIS + "membership#Instructor"
TA = LIS + "membership/Instructor#TeachingAssistant"
MENTOR = LIS + "membership#Mentor"
INST_ADMIN = LIS + "institution/person#Administrator"
IDP_CLIENT = "tessera-console"
IDP_SECRET = "idp-secret-" + secrets.token_hex(8)


# --- the LMS --------------------------------------------------------------------------------


@dataclass
class LocalLms:
    """An LTI 1.3 platform: ``users`` maps a login_hint to that user's launch claims."""

    base: str = ""
    tool: str = ""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True) | {"kid": "lms-1", "alg": "RS256", "use": "sig"}

    def claims(self, hint: str, nonce: str) -> dict[str, Any]:
        now = int(time.time())
        user = self.users[hint]
        claims = {
            "iss": LMS_ISS, "aud": LMS_CLIENT, "iat": now, "exp": now + 300, "nonce": nonce,
            LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0", LTI + "deployment_id": DEPLOYMENT,
            LTI + "target_link_uri": f"{self.tool}/lti/launch", LTI + "resource_link": {"id": "rl-progress", "title": "My progress"},
            LTI + "context": {"id": "ctx-math", "label": "MATH", "title": "Math"},
        }
        claims.update(user)
        return claims

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [self.jwk]}

        @app.get("/authorize")
        def authorize(request: Request) -> Response:
            q = request.query_params
            assert q["response_mode"] == "form_post" and q["client_id"] == LMS_CLIENT and q["prompt"] == "none"
            token = jwt.encode(self.claims(q["login_hint"], q["nonce"]), self.key, algorithm="RS256", headers={"kid": "lms-1"})
            fields = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                             for k, v in (("id_token", token), ("state", q["state"])))
            return HTMLResponse(f'<!doctype html><html lang="en"><head><title>LMS</title></head>'
                                f'<body onload="document.forms[0].submit()"><form method="post" action="{html.escape(q["redirect_uri"])}">'
                                f'{fields}<button type="submit">Continue</button></form></body></html>')

        @app.get("/course")
        def course(user: str) -> HTMLResponse:
            return HTMLResponse(f'<!doctype html><html lang="en"><head><title>Math</title></head><body><main>'
                                f'<a id="open" href="{html.escape(self.launch_url(user))}">Open Tessera</a></main></body></html>')

        return app

    def launch_url(self, hint: str) -> str:
        return f"{self.tool}/lti/login?" + urlencode({"iss": LMS_ISS, "client_id": LMS_CLIENT, "login_hint": hint,
                                                     "lti_deployment_id": DEPLOYMENT, "target_link_uri": f"{self.tool}/lti/launch"})

    def launch(self, hint: str) -> tuple[httpx.Client, httpx.Response]:
        """The launch as a browser makes it (login, the platform's form, its POST); the
        client keeps the cookies, the answer is the launch's (not followed)."""
        browser = httpx.Client(timeout=30, follow_redirects=False)
        r = browser.get(self.launch_url(hint))
        assert r.status_code == 302, r.text
        form = browser.get(r.headers["location"])
        assert form.status_code == 200, form.text
        fields = {m[0]: html.unescape(m[1]) for m in re.findall(r'name="([^"]+)" value="([^"]*)"', form.text)}
        action = html.unescape(re.search(r'action="([^"]+)"', form.text)[1])  # type: ignore[index]
        return browser, browser.post(action, data=fields)


# --- the identity provider ------------------------------------------------------------------


@dataclass
class LocalIdP:
    """An OpenID Connect provider that signs in ``user`` (claims: sub, email, name...)."""

    base: str = ""
    user: dict[str, Any] = field(default_factory=dict)
    tamper: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    #: sign the next id_tokens with another key under the published kid (a forgery)
    forge: bool = False

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "use": "sig", "alg": "RS256"})
        self.rogue = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "use": "sig", "alg": "RS256"})

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {"issuer": self.base, "authorization_endpoint": f"{self.base}/authorize", "token_endpoint": f"{self.base}/token",
                    "jwks_uri": f"{self.base}/jwks", "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"], "scopes_supported": ["openid", "email", "profile"]}

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        @app.get("/authorize")
        def authorize(request: Request) -> Response:
            q = dict(request.query_params)
            self.authorize_requests.append(q)
            if q.get("response_type") != "code" or q.get("client_id") != IDP_CLIENT or q.get("code_challenge_method") != "S256":
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                                "user": dict(self.user)}
            return RedirectResponse(f"{q['redirect_uri']}?" + urlencode({"code": code, "state": q["state"]}), status_code=302)

        @app.post("/token")
        def token(request: Request, grant_type: str = Form(), code: str = Form(), redirect_uri: str = Form(),
                  code_verifier: str = Form("")) -> Response:
            self.token_requests.append({"grant_type": grant_type, "code_verifier": code_verifier,
                                        "authorization": request.headers.get("authorization", "")})
            expected = "Basic " + base64.b64encode(f"{IDP_CLIENT}:{IDP_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(code, None)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=").decode()
            if grant is None or grant["redirect_uri"] != redirect_uri or challenge != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {"iss": self.base, "aud": IDP_CLIENT, "iat": now, "exp": now + 300, "nonce": grant["nonce"], **grant["user"],
                      **self.tamper}
            id_token = jose_jwt.encode({"alg": "RS256", "kid": "idp-1"}, claims, self.rogue if self.forge else self.key)
            return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                                 "id_token": id_token})

        return app


# --- the site -------------------------------------------------------------------------------


@dataclass
class AuthSite:
    site: ConsoleSite
    lms: LocalLms
    idp: LocalIdP
    people: dict[str, dict[str, Any]]

    def person(self, role: str) -> dict[str, Any]:
        return self.people[role]


def _first(site: ConsoleSite, sql: str, *args: Any) -> Any:
    rows = site.rows(sql, *args)
    assert rows, sql
    return rows[0]


def _uuid(v: Any) -> str:
    return str(uuid.UUID(v) if isinstance(v, str) else uuid.UUID(bytes=bytes(v)))


def sourced_id(doc: dict[str, Any], system: str) -> str:
    return next(i["value"] for i in doc["identifiers"] if i["kind"] == "oneroster.sourcedId" and i["system"] == system)


def demo_people(site: ConsoleSite) -> dict[str, dict[str, Any]]:
    """From the demo roster: a teacher and one section they teach, a learner of that section
    with a guardian, and an administrator added for these tests."""
    teacher_id, section_id = site.teacher_with_section()
    learners = site.students_of(section_id)
    learner = guardian = None
    for lid in learners:
        doc = orjson.loads(_first(site, "SELECT data FROM people WHERE tenant='demo' AND id = ?", uuid.UUID(lid).bytes)[0])
        if doc.get("agent_ids"):
            learner = doc
            guardian = orjson.loads(_first(site, "SELECT data FROM people WHERE tenant='demo' AND id = ?",
                                           uuid.UUID(doc["agent_ids"][0]).bytes)[0])
            break
    assert learner and guardian, "the demo data has a learner with a guardian in the section"
    teacher = orjson.loads(_first(site, "SELECT data FROM people WHERE tenant='demo' AND id = ?", uuid.UUID(teacher_id).bytes)[0])
    section = orjson.loads(_first(site, "SELECT data FROM sections WHERE tenant='demo' AND id = ?", uuid.UUID(section_id).bytes)[0])
    system = next(i["system"] for i in section["identifiers"] if i["kind"] == "oneroster.sourcedId")
    return {"teacher": teacher, "section": section, "learner": learner, "guardian": guardian, "system": {"name": system}}


def add_admin(site: ConsoleSite) -> dict[str, Any]:
    """A district administrator in the demo roster (the demo data has none)."""
    from gateway.wiring import open_store

    store = open_store(site.env["TESSERA_DATABASE_URL"])
    try:
        org_id = _uuid(_first(site, "SELECT id FROM orgs WHERE tenant='demo' ORDER BY id")[0])
        admin = Person(tenant="demo", source="sis", native_id="a-console-1", given_name="Dana", family_name="Okafor",
                       email="dana.okafor@cvusd.example.org", roles=[OrgRole(role=Role.administrator, org_id=uuid.UUID(org_id), primary=True)],
                       identifiers=[Identifier(system="sis", kind="oneroster.sourcedId", value="a-console-1")])
        store.records.apply("demo", [admin])
    finally:
        store.dispose()
    return orjson.loads(admin.model_dump_json())


def register_lms(site: ConsoleSite, lms: LocalLms, roster_system: str) -> None:
    from adapters.lti.tool.platforms import PlatformIn, PlatformStore
    from gateway.wiring import open_store

    store = open_store(site.env["TESSERA_DATABASE_URL"])
    try:
        PlatformStore(store.engine).add("demo", PlatformIn(
            name="CVUSD LMS", issuer=LMS_ISS, client_id=LMS_CLIENT, deployment_ids=[DEPLOYMENT],
            auth_login_url=f"{lms.base}/authorize", token_url=f"{lms.base}/token", jwks_url=f"{lms.base}/jwks", roster_system=roster_system))  # type: ignore[arg-type]
    finally:
        store.dispose()


def lms_users(people: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """login_hint -> launch claims for the demo people (joined to the roster by LIS sourcedIds)."""
    system = people["system"]["name"]
    section = {"course_section_sourcedid": sourced_id(people["section"], system)}

    def user(doc: dict[str, Any], roles: list[str], **extra: Any) -> dict[str, Any]:
        return {"sub": f"lms-{doc['native_id']}", "given_name": doc["given_name"], "family_name": doc["family_name"],
                LTI + "roles": roles, LTI + "lis": {"person_sourcedid": sourced_id(doc, system), **section}, **extra}

    return {
        "learner": user(people["learner"], [LEARNER]),
        "teacher": user(people["teacher"], [INSTRUCTOR]),
        "guardian": user(people["guardian"], [MENTOR], **{LTI + "role_scope_mentor": [f"lms-{people['learner']['native_id']}"]}),
        "admin": {"sub": "lms-admin-9", "given_name": "Ines", "family_name": "Admin", LTI + "roles": [INST_ADMIN]},
        "developer": {"sub": "lms-dev-1", "given_name": "Cy", "family_name": "Dev", LTI + "roles": [LIS + "membership#ContentDeveloper"]},
    }


@pytest.fixture(scope="module", name="auth_site")
def auth_site_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthSite]:
    lms, idp = LocalLms(), LocalIdP()
    with ExitStack() as stack:
        lms.base = stack.enter_context(serve(lms.app()))
        idp.base = stack.enter_context(serve(idp.app()))
        proc, site = start_site(tmp_path_factory.mktemp("console-auth"), {
            "TESSERA_CONSOLE__OIDC_ISSUER": idp.base, "TESSERA_CONSOLE__OIDC_CLIENT_ID": IDP_CLIENT,
            "TESSERA_CONSOLE__OIDC_CLIENT_SECRET": IDP_SECRET, "TESSERA_CONSOLE__OIDC_TENANT": "demo"})
        stack.callback(stop_site, proc)
        lms.tool = site.base_url
        people = demo_people(site)
        register_lms(site, lms, people["system"]["name"])
        people["admin"] = add_admin(site)
        lms.users = lms_users(people)
        yield AuthSite(site, lms, idp, people)


def location(r: httpx.Response) -> str:
    """The path and query a redirect answers."""
    loc = urlsplit(r.headers["location"])
    return loc.path + (f"?{loc.query}" if loc.query else "")


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


__all__ = ["sourced_id", "INSTRUCTOR", "INST_ADMIN", "LEARNER", "MENTOR", "TA", "AuthSite", "LocalIdP", "LocalLms", "auth_site_fixture", "location",
           "query"]
