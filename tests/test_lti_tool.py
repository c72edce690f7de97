"""Tessera as an LTI 1.3 tool, driven by a platform built here from the spec.

The platform has its own RSA key; its JWKS is served by a small ASGI app on a real port.
Each test runs the browser's part: the OIDC third-party initiated login (Security Framework
5.1.1.1) against Tessera's real server, the platform's authentication response (an id_token
signed as LTI 1.3 core 5 describes) form-posted to ``/lti/launch`` with the state cookie.
Every bad input of issue 5 is refused with the LTI error (a page, or the return URL with
``lti_errormsg``), logged without the token, and records nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm

from adapters.lti.claims import LTI
from gateway.store import Store
from tests import factories as f
from tests.conftest import Api, rsa_key, serve

ISS = "https://lms.example.edu"
CLIENT_ID = "tessera-client-1"
DEPLOYMENT = "deploy-1"
AUTH_URL = "https://lms.example.edu/api/lti/authorize"
TOKEN_URL = "https://lms.example.edu/login/oauth2/token"
RETURN_URL = "https://lms.example.edu/courses/7/modules"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


@pytest.fixture(autouse=True)
def _tool_page_not_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the tool's own launched page: the web console is off (a launch's
    console sign-in is tested in tests/test_console_auth.py)."""
    monkeypatch.setenv("TESSERA_CONSOLE__ENABLED", "false")


def new_key(kid: str) -> tuple[Any, dict[str, Any]]:
    key = rsa_key()  # pooled (tests/conftest.py): consecutive keys differ
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg="RS256", use="sig")
    return key, jwk


@dataclass
class SpecPlatform:
    """An LTI 1.3 platform as the spec describes it: keys, a JWKS endpoint, id_tokens."""

    jwks_url: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    jwks_hits: int = 0

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        key, jwk = new_key(kid)
        self.keys[kid] = key
        if publish:
            self.published.append(jwk)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            self.jwks_hits += 1
            return {"keys": self.published}

        return app

    def registration(self) -> dict[str, Any]:
        return {
            "name": "District LMS", "issuer": ISS, "client_id": CLIENT_ID, "deployment_ids": [DEPLOYMENT],
            "auth_login_url": AUTH_URL, "token_url": TOKEN_URL, "jwks_url": self.jwks_url,
        }

    def claims(self, issued_nonce: str, target: str, **over: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISS, "aud": CLIENT_ID, "sub": "lms-user-42", "iat": now, "exp": now + 300, "nonce": issued_nonce,
            "given_name": "Grace", "family_name": "Hopper", "email": "grace@example.edu",
            LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0",
            LTI + "deployment_id": DEPLOYMENT, LTI + "target_link_uri": target,
            LTI + "resource_link": {"id": "rl-1", "title": "Fractions"},
            LTI + "roles": [LEARNER],
            LTI + "context": {"id": "ctx-7", "label": "MATH7", "title": "Math 7"},
            LTI + "launch_presentation": {"return_url": RETURN_URL},
        }
        for k, v in over.items():
            if v is None:
                claims.pop(k, None)
            else:
                claims[k] = v
        return claims

    def sign(self, claims: dict[str, Any], kid: str = "k1", alg: str = "RS256") -> str:
        return jwt.encode(claims, self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture(name="platform")
def platform_fixture() -> Any:
    p = SpecPlatform()
    p.add_key("k1")
    with serve(p.app()) as base:
        p.jwks_url = f"{base}/jwks"
        yield p


def register(api: Api, platform: SpecPlatform, tenant: str = "t1", **over: Any) -> dict[str, Any]:
    with api.auth_client(tenant, ["admin"]) as c:
        r = c.post("/v1/lti/platforms", json={**platform.registration(), **over})
    assert r.status_code == 201, r.text
    return r.json()


def login(browser: httpx.Client, api: Api, **over: str) -> dict[str, str]:
    """Security Framework 5.1.1.1: the platform sends the browser to Tessera's login."""
    params = {"iss": ISS, "login_hint": "42", "target_link_uri": f"{api.base_url}/lti/launch", "client_id": CLIENT_ID,
              "lti_message_hint": "hint-xyz", "lti_deployment_id": DEPLOYMENT, **over}
    r = browser.get("/lti/login", params=params)
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == AUTH_URL
    return {k: v[0] for k, v in parse_qs(loc.query).items()}


def launch(browser: httpx.Client, token: str, state: str) -> httpx.Response:
    return browser.post("/lti/launch", data={"id_token": token, "state": state})


def counts(store: Store) -> tuple[int, int]:
    return store.records.count("t1", "person"), store.records.count("t1", "enrollment")


# --- the happy paths ------------------------------------------------------------------------------


def test_login_answers_with_an_oidc_authentication_request(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    with api.client() as browser:
        auth = login(browser, api)
        # Security Framework 5.1.1.2: the authentication request's fixed parameters
        assert auth["scope"] == "openid" and auth["response_type"] == "id_token"
        assert auth["response_mode"] == "form_post" and auth["prompt"] == "none"
        assert auth["client_id"] == CLIENT_ID and auth["login_hint"] == "42" and auth["lti_message_hint"] == "hint-xyz"
        assert auth["redirect_uri"] == f"{api.base_url}/lti/launch"
        assert auth["state"] and auth["nonce"] and auth["state"] != auth["nonce"]
        assert browser.cookies.get(f"lti1p3-state-{auth['state']}") == auth["state"]
        # the login is a POST just as well
        r = browser.post("/lti/login", data={"iss": ISS, "login_hint": "42", "target_link_uri": f"{api.base_url}/lti/launch"})
        assert r.status_code == 302 and r.headers["location"].startswith(AUTH_URL)


def test_a_learner_launch_records_the_person_and_enrollment_and_shows_their_view(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    with api.client() as browser:
        auth = login(browser, api)
        r = launch(browser, platform.sign(platform.claims(auth["nonce"], f"{api.base_url}/lti/launch")), auth["state"])
    assert r.status_code == 200, r.text
    assert "my competencies" in r.text
    hits = api.store.records.lookup("t1", ISS, "lti.sub", "lms-user-42", record_kind="person")
    assert len(hits) == 1
    person = api.store.records.get("t1", "person", hits[0][1])
    assert (person.given_name, person.family_name, person.email) == ("Grace", "Hopper", "grace@example.edu")
    (enr,) = [api.store.records.get("t1", "enrollment", uuid.UUID(__import__("orjson").loads(d)["id"]))
              for d in api.store.records.page("t1", "enrollment").items]
    assert enr.person_id == person.id and enr.role.value == "student"
    section = api.store.records.get("t1", "section", enr.section_id)
    assert section.native_id == "ctx-7" and section.title == "Math 7"


def test_the_lis_claim_joins_the_launch_to_the_oneroster_person_and_section(api: Api, platform: SpecPlatform) -> None:
    school = f.org()
    crs = f.course("c1", school)
    sec = f.section("sec-7", crs, school)
    sec = sec.model_copy(update={"identifiers": [f.Identifier(system="sis", kind="oneroster.sourcedId", value="sec-7")]})
    pupil = f.person("u-7", school)
    api.store.records.apply("t1", [school, crs, sec, pupil])
    register(api, platform)
    lis = {"person_sourcedid": "u-7", "course_section_sourcedid": "sec-7"}
    with api.client() as browser:
        auth = login(browser, api)
        token = platform.sign(platform.claims(auth["nonce"], f"{api.base_url}/lti/launch", **{LTI + "lis": lis}))
        assert launch(browser, token, auth["state"]).status_code == 200
    # no second person: the SIS person now also answers to the LTI sub
    assert api.store.records.count("t1", "person") == 1
    assert api.store.records.lookup("t1", ISS, "lti.sub", "lms-user-42") == [("person", pupil.id)]
    (doc,) = api.store.records.page("t1", "enrollment").items
    assert f'"section_id":"{sec.id}"' in doc and f'"person_id":"{pupil.id}"' in doc


def test_an_anonymous_launch_is_shown_but_records_no_one(api: Api, platform: SpecPlatform) -> None:
    """LTI core 5.3.6: sub may be left out (an anonymous launch): there is no one to record."""
    register(api, platform)
    with api.client() as browser:
        auth = login(browser, api)
        r = launch(browser, platform.sign(platform.claims(auth["nonce"], f"{api.base_url}/lti/launch", sub=None)), auth["state"])
    assert r.status_code == 200 and "my competencies" in r.text
    assert counts(api.store) == (0, 0)


def test_an_instructor_sees_the_class(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    target = f"{api.base_url}/lti/launch"
    with api.client() as browser:
        auth = login(browser, api)
        assert launch(browser, platform.sign(platform.claims(auth["nonce"], target)), auth["state"]).status_code == 200
    with api.client() as browser:
        auth = login(browser, api)
        claims = platform.claims(auth["nonce"], target, sub="teacher-1", given_name="Ada", family_name="Byron",
                                 **{LTI + "roles": [INSTRUCTOR]})
        r = launch(browser, platform.sign(claims), auth["state"])
    assert r.status_code == 200 and "class mastery" in r.text and "Grace Hopper" in r.text


def test_a_rotated_platform_key_is_fetched_once_then_served_from_cache(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    target = f"{api.base_url}/lti/launch"
    with api.client() as browser:
        auth = login(browser, api)
        assert launch(browser, platform.sign(platform.claims(auth["nonce"], target)), auth["state"]).status_code == 200
    assert platform.jwks_hits == 1
    platform.add_key("k2")  # the platform rotates: Tessera has not seen k2 yet
    for _ in range(2):
        with api.client() as browser:
            auth = login(browser, api)
            r = launch(browser, platform.sign(platform.claims(auth["nonce"], target), kid="k2"), auth["state"])
            assert r.status_code == 200, r.text
    assert platform.jwks_hits == 2


# --- bad input: refused with the LTI error, logged without the token, recording nothing ------------


def _mutations(target: str) -> dict[str, tuple[dict[str, Any], int]]:
    now = int(time.time())
    return {
        "expired": ({"exp": now - 3600, "iat": now - 4000}, 401),
        "future-dated": ({"iat": now + 3600, "exp": now + 4000}, 401),
        "wrong audience": ({"aud": "someone-else"}, 401),
        "two audiences, no azp": ({"aud": [CLIENT_ID, "other"]}, 401),
        "azp not Tessera": ({"aud": [CLIENT_ID, "other"], "azp": "other"}, 401),
        "wrong issuer": ({"iss": "https://evil.example"}, 401),
        "unknown deployment": ({LTI + "deployment_id": "deploy-unknown"}, 400),
        "wrong version": ({LTI + "version": "1.1.0"}, 400),
        "unknown message type": ({LTI + "message_type": "LtiSubmissionReviewRequest"}, 400),
        "no resource link id": ({LTI + "resource_link": {"title": "x"}}, 400),
        "no roles": ({LTI + "roles": None}, 400),
        "no deployment": ({LTI + "deployment_id": None}, 400),
        "other target_link_uri": ({LTI + "target_link_uri": target + "/elsewhere"}, 400),
        "no nonce": ({"nonce": None}, 401),
        "other nonce": ({"nonce": "not-the-one-issued"}, 401),
    }


@pytest.mark.parametrize("case", list(_mutations("x")))
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: the claims are checked before anything is stored: the launch's state and nonce rows are read and written on both backends by the good-launch tests
def test_bad_id_tokens_are_refused(api: Api, platform: SpecPlatform, case: str, caplog: pytest.LogCaptureFixture) -> None:
    register(api, platform)
    target = f"{api.base_url}/lti/launch"
    over, status = _mutations(target)[case]
    with api.client() as browser, caplog.at_level(logging.WARNING, logger="tessera.lti"):
        auth = login(browser, api)
        token = platform.sign(platform.claims(auth["nonce"], target, **over))
        r = launch(browser, token, auth["state"])
    if status == 400:
        # a verified token's claims are wrong: LTI core 4.4.1, back to the platform with lti_errormsg
        assert r.status_code == 302
        loc = urlsplit(r.headers["location"])
        assert f"{loc.scheme}://{loc.netloc}{loc.path}" == RETURN_URL
        assert parse_qs(loc.query)["lti_errormsg"][0]
    else:
        # an unverified token's return_url is not to be trusted: Tessera's own error page
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
        assert "LTI launch refused" in r.text
    assert "LTI launch refused" in caplog.text
    assert token not in caplog.text and token.split(".")[1] not in caplog.text
    assert counts(api.store) == (0, 0)


def test_unsigned_and_unknown_kid_tokens_are_refused(api: Api, platform: SpecPlatform, caplog: pytest.LogCaptureFixture) -> None:
    register(api, platform)
    target = f"{api.base_url}/lti/launch"
    platform.add_key("secret-k", publish=False)
    with caplog.at_level(logging.WARNING, logger="tessera.lti"):
        for make in (
            lambda nonce: jwt.encode(platform.claims(nonce, target), None, algorithm="none"),  # unsigned
            lambda nonce: jwt.encode(platform.claims(nonce, target), "a-shared-secret-at-least-32-bytes-long", algorithm="HS256", headers={"kid": "k1"}),
            lambda nonce: platform.sign(platform.claims(nonce, target), kid="secret-k"),  # kid the JWKS lacks
        ):
            with api.client() as browser:
                auth = login(browser, api)
                token = make(auth["nonce"])
                r = launch(browser, token, auth["state"])
                assert r.status_code == 401 and "LTI launch refused" in r.text
                assert token not in caplog.text
    assert counts(api.store) == (0, 0)


def test_a_replayed_launch_and_a_launch_without_the_state_cookie_are_refused(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    target = f"{api.base_url}/lti/launch"
    with api.client() as browser:
        auth = login(browser, api)
        token = platform.sign(platform.claims(auth["nonce"], target))
        with api.client() as other_browser:  # the form posted from a browser that did not log in
            r = launch(other_browser, token, auth["state"])
            assert r.status_code == 401 and "state cookie" in r.text
        assert launch(browser, token, auth["state"]).status_code == 200
        browser.cookies.set(f"lti1p3-state-{auth['state']}", auth["state"], path="/lti/")
        r = launch(browser, token, auth["state"])  # the same form posted again
        assert r.status_code == 401 and "used or expired" in r.text
    assert counts(api.store) == (1, 1)


def test_a_replayed_nonce_is_refused_and_records_nothing(store: Store, make_api: Any, platform: SpecPlatform) -> None:
    """The nonce is spent in the launch's own transaction: a second launch carrying it (the
    state check aside) is refused and writes no record."""
    from adapters.lti.tool.common import LtiLaunchError
    from adapters.lti.tool.message_launch import validate_id_token
    from adapters.lti.tool.platforms import PlatformIn, PlatformStore
    from adapters.lti.tool.router import ToolService
    from gateway.api.context import AppContext
    from gateway.auth import Auth
    from gateway.config import Settings

    p = PlatformStore(store.engine).add("t1", PlatformIn(**platform.registration()))
    ctx = AppContext(Settings(database_url="sqlite://"), store, Auth.build(store.engine, issuer="t", token_ttl_seconds=3600))
    service = ToolService(ctx)
    claims = platform.claims("n-1", "https://tessera.example/lti/launch")
    first = validate_id_token(platform.sign(claims), p, nonce="n-1", target_link_uri="https://tessera.example/lti/launch", keys=service.keys)
    service.record(first)
    claims2 = platform.claims("n-1", "https://tessera.example/lti/launch", sub="someone-else")
    second = validate_id_token(platform.sign(claims2), p, nonce="n-1", target_link_uri="https://tessera.example/lti/launch", keys=service.keys)
    with pytest.raises(LtiLaunchError, match="already used"):
        service.record(second)
    assert store.records.lookup("t1", ISS, "lti.sub", "someone-else") == []
    assert counts(store) == (1, 1)


def test_login_from_an_unknown_platform_or_to_a_foreign_target_is_refused(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    with api.client() as browser:
        r = browser.get("/lti/login", params={"iss": "https://unknown.example", "login_hint": "1", "target_link_uri": f"{api.base_url}/lti/launch"})
        assert r.status_code == 401 and "no platform" in r.text
        r = browser.get("/lti/login", params={"iss": ISS, "login_hint": "1", "target_link_uri": "https://evil.example/steal"})
        assert r.status_code == 400 and "target_link_uri" in r.text
        r = browser.get("/lti/login", params={"iss": ISS, "target_link_uri": f"{api.base_url}/lti/launch"})
        assert r.status_code == 400 and "login_hint" in r.text
        r = browser.get("/lti/login", params={"iss": ISS, "login_hint": "1", "target_link_uri": f"{api.base_url}/lti/launch",
                                              "lti_deployment_id": "not-ours"})
        assert r.status_code == 400 and "lti_deployment_id" in r.text


# --- the registrations API --------------------------------------------------------------------------


def test_platform_registrations_need_the_admin_scope_and_are_tenant_isolated(api: Api, platform: SpecPlatform) -> None:
    created = register(api, platform)
    with api.auth_client("t1", ["roster.readonly"]) as c:
        assert c.get("/v1/lti/platforms").status_code == 403
    with api.client() as anon:
        assert anon.get("/v1/lti/platforms").status_code == 401
    with api.auth_client("t2", ["admin"]) as other:
        assert other.get(f"/v1/lti/platforms/{created['id']}").status_code == 404
        assert other.post(f"/v1/lti/platforms/{created['id']}/deployments", json={"deployment_id": "x"}).status_code == 404
        assert other.get("/v1/lti/platforms").json() == {"platforms": []}
    with api.auth_client("t1", ["admin"]) as c:
        assert c.post("/v1/lti/platforms", json=platform.registration()).status_code == 409
        bad = c.post("/v1/lti/platforms", json={**platform.registration(), "jwks_url": "not a url"})
        assert bad.status_code == 422 and "jwks_url" in bad.text
        assert c.get(f"/v1/lti/platforms/{created['id']}").json()["issuer"] == ISS
        added = c.post(f"/v1/lti/platforms/{created['id']}/deployments", json={"deployment_id": "deploy-2"})
        assert added.status_code == 201 and added.json()["deployment_ids"] == [DEPLOYMENT, "deploy-2"]
        assert c.delete(f"/v1/lti/platforms/{created['id']}").status_code == 204
        assert c.get("/v1/lti/platforms").json() == {"platforms": []}


def test_the_cli_adds_lists_and_removes_platforms(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import out

    monkeypatch.setattr(out, "_width", 300)  # rich would shorten the table to a terminal's width
    cli("migrate")
    r = cli("lti", "platforms", "add", "--issuer", ISS, "--client-id", CLIENT_ID, "--deployment-id", DEPLOYMENT,
            "--auth-login-url", AUTH_URL, "--token-url", TOKEN_URL, "--jwks-url", "https://lms.example.edu/jwks", "--tenant", "t1")
    pid = r.stdout.split()[2]  # stdout alone: a log line (stderr) may come first in .output
    uuid.UUID(pid)
    assert CLIENT_ID in cli("lti", "platforms", "list").output
    assert "deploy-2" in cli("lti", "platforms", "add-deployment", pid, "deploy-2", "--tenant", "t1").output
    cli("lti", "platforms", "remove", pid, "--tenant", "t1")
    assert CLIENT_ID not in cli("lti", "platforms", "list").output


def test_a_launch_adds_no_second_enrollment_where_the_roster_already_enrolls(api: Api, platform: SpecPlatform) -> None:
    school = f.org()
    crs = f.course("c1", school)
    sec = f.section("sec-7", crs, school).model_copy(
        update={"identifiers": [f.Identifier(system="sis", kind="oneroster.sourcedId", value="sec-7")]})
    pupil = f.person("u-7", school)
    api.store.records.apply("t1", [school, crs, sec, pupil, f.enrollment(pupil, sec)])
    register(api, platform)
    lis = {"person_sourcedid": "u-7", "course_section_sourcedid": "sec-7"}
    with api.client() as browser:
        auth = login(browser, api)
        token = platform.sign(platform.claims(auth["nonce"], f"{api.base_url}/lti/launch", **{LTI + "lis": lis}))
        assert launch(browser, token, auth["state"]).status_code == 200
    (doc,) = api.store.records.page("t1", "enrollment").items
    assert '"source":"sis"' in doc
