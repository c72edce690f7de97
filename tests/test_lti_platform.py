"""Tessera as an LTI 1.3 platform: launch (Security Framework 5.1.1) and the token endpoint
for tools' service calls (Security Framework 4.1, RFC 7523), over real HTTP.

The helpers at the top are shared by the other test_lti_* platform-side modules.
"""

from __future__ import annotations

import re
import time
import uuid
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from adapters.lti.platform.registrations import Tool, ToolRegistration, ToolRegistry
from gateway.model import Identifier
from tests import factories as f
from tests.conftest import rsa_key

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
TOOL = "https://tool.example.org"


class ToolKey:
    """A tool's RSA key pair, as a tool would hold it."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:12]
        key = rsa_key()  # pooled (tests/conftest.py): consecutive keys differ
        self.pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        self.jwk = {**orjson.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": self.kid, "alg": "RS256", "use": "sig"}

    def assertion(self, client_id: str, aud: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.pem, algorithm="RS256", headers={"kid": self.kid})


def register(store, key: ToolKey | None = None, tenant: str = f.T, **kw: Any) -> Tool:
    reg = ToolRegistration(
        name=kw.pop("name", "Quiz tool"), login_url=kw.pop("login_url", f"{TOOL}/login"),
        redirect_uris=kw.pop("redirect_uris", [f"{TOOL}/launch"]), target_link_uri=kw.pop("target_link_uri", f"{TOOL}/launch"),
        public_jwk=None if "jwks_url" in kw else (key or ToolKey()).jwk, **kw,
    )
    return ToolRegistry(store.engine).add(tenant, reg)


def seed(store, tenant: str = f.T, n: int = 3) -> dict[str, Any]:
    """A section with ``n`` students and a teacher, and a CASE competency with its URI."""
    recs = f.roster(n, tenant)
    school, sec = recs[0], recs[2]
    teacher = f.person("t1", school, tenant, role="teacher")
    fw = f.framework(tenant=tenant)
    guid = uuid.uuid4()
    comp = f.competency("c1", fw, tenant, guid=guid, uri=f"https://case.example.org/uri/{guid}",
                        identifiers=[Identifier(system="case", kind="case.uri", value=f"https://case.example.org/uri/{guid}"),
                                     Identifier(system="case", kind="case.identifier", value=str(guid))])
    store.records.apply(tenant, [*recs, teacher, f.enrollment(teacher, sec, tenant, role="teacher"), fw, comp])
    students = [r for r in recs if r.KIND == "person"]
    return {"section": sec, "students": students, "teacher": teacher, "competency": comp}


def service_token(api, tool: Tool, key: ToolKey, scopes: list[str]) -> str:
    url = f"{api.base_url}/lti/platform/token"
    r = httpx.post(url, data={"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                              "client_assertion": key.assertion(tool.client_id, url), "scope": " ".join(scopes)},
                   timeout=30)  # as the other test clients: httpx's 5 s default timed out on a loaded machine
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def form_fields(html: str) -> dict[str, str]:
    return {m[0]: unescape(m[1]) for m in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)}


def auth_params(login_url: str, **over: str) -> dict[str, str]:
    """What a tool's OIDC login handler sends back (Security Framework 5.1.1.2)."""
    q = {k: v[0] for k, v in parse_qs(urlsplit(login_url).query).items()}
    params = {
        "scope": "openid", "response_type": "id_token", "client_id": q["client_id"], "redirect_uri": f"{TOOL}/launch",
        "login_hint": q["login_hint"], "lti_message_hint": q["lti_message_hint"], "state": "st-1", "response_mode": "form_post",
        "nonce": uuid.uuid4().hex, "prompt": "none",
    }
    params.update(over)
    return {k: v for k, v in params.items() if v != ""}


def start(api, tool: Tool, user, section=None, **body: Any) -> str:
    admin = api.auth_client(tool.tenant, ["admin"])
    payload = {"client_id": tool.client_id, "user_id": str(user.id), "resource_link_id": "rl-1", "resource_link_title": "Fractions quiz", **body}
    if section is not None:
        payload["context_id"] = str(section.id)
    r = admin.post("/v1/lti/launches", json=payload)
    assert r.status_code == 200, r.text
    return r.json()["login_url"]


# --- launch ---------------------------------------------------------------------------------


def test_launch_form_posts_an_id_token_with_the_core_and_service_claims(api, store) -> None:
    data = seed(store)
    key = ToolKey()
    tool = register(store, key, custom={"chapter": "3"})
    student, sec = data["students"][0], data["section"]
    login_url = start(api, tool, student, sec)
    assert login_url.startswith(f"{TOOL}/login?")
    q = parse_qs(urlsplit(login_url).query)
    assert q["iss"] == [api.base_url] and q["login_hint"] == [str(student.id)] and q["client_id"] == [tool.client_id]
    assert q["lti_deployment_id"] == [tool.deployments[0]] and q["target_link_uri"] == [f"{TOOL}/launch"]

    params = auth_params(login_url)
    r = httpx.get(f"{api.base_url}/lti/platform/authorize", params=params)
    assert r.status_code == 200 and f'action="{TOOL}/launch"' in r.text
    fields = form_fields(r.text)
    assert fields["state"] == "st-1"
    jwks = httpx.get(f"{api.base_url}/lti/platform/jwks").json()
    kid = jwt.get_unverified_header(fields["id_token"])["kid"]
    pub = RSAAlgorithm.from_jwk(orjson.dumps(next(k for k in jwks["keys"] if k["kid"] == kid)).decode())
    claims = jwt.decode(fields["id_token"], pub, algorithms=["RS256"], audience=tool.client_id, issuer=api.base_url)
    assert claims["nonce"] == params["nonce"] and claims["azp"] == tool.client_id and claims["sub"] == str(student.id)
    assert claims[LTI + "message_type"] == "LtiResourceLinkRequest" and claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "deployment_id"] == tool.deployments[0]
    assert claims[LTI + "resource_link"] == {"id": "rl-1", "title": "Fractions quiz"}
    assert claims[LTI + "roles"][0] == "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
    assert claims[LTI + "context"]["id"] == str(sec.id)
    assert claims[LTI + "lis"] == {"person_sourcedid": student.native_id, "course_section_sourcedid": sec.native_id}
    assert claims[LTI + "custom"] == {"chapter": "3"}
    ags = claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]
    assert ags["lineitems"] == f"{api.base_url}/lti/platform/ags/contexts/{sec.id}/lineitems" and AGS + "score" in ags["scope"]
    nrps = claims["https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"]
    assert nrps["service_versions"] == ["2.0"] and nrps["context_memberships_url"].endswith(f"/contexts/{sec.id}/memberships")


def test_teacher_launch_by_form_post_carries_the_instructor_role_from_the_enrollment(api, store) -> None:
    data = seed(store)
    tool = register(store)
    r = httpx.post(f"{api.base_url}/lti/platform/authorize", data=auth_params(start(api, tool, data["teacher"], data["section"])))
    claims = jwt.decode(form_fields(r.text)["id_token"], options={"verify_signature": False})
    assert "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor" in claims[LTI + "roles"]


def test_unknown_client_and_unregistered_redirect_uri_get_an_error_page_not_a_redirect(api, store) -> None:
    data = seed(store)
    tool = register(store)
    login_url = start(api, tool, data["students"][0], data["section"])
    for over in ({"client_id": "nope"}, {"redirect_uri": "https://evil.example.org/launch"}):
        r = httpx.get(f"{api.base_url}/lti/platform/authorize", params=auth_params(login_url, **over))
        assert r.status_code == 400 and "text/html" in r.headers["content-type"] and "id_token" not in r.text


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"nonce": ""}, "invalid_request"),
        ({"response_mode": "query"}, "invalid_request"),
        ({"prompt": "login"}, "invalid_request"),
        ({"response_type": "code"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"login_hint": str(uuid.uuid4())}, "login_required"),
        ({"lti_message_hint": "not-a-jwt"}, "login_required"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: the request's parameters are checked against the registration read by the good-launch tests on both backends; nothing is written
def test_bad_authentication_requests_are_returned_to_the_tool_with_the_oidc_error(api, store, over, error) -> None:
    data = seed(store)
    tool = register(store)
    r = httpx.get(f"{api.base_url}/lti/platform/authorize", params=auth_params(start(api, tool, data["students"][0], data["section"]), **over))
    assert r.status_code == 302
    where = urlsplit(r.headers["location"])
    q = parse_qs(where.query)
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{TOOL}/launch"
    assert q["error"] == [error] and q["state"] == ["st-1"] and "error_description" in q


def test_a_message_hint_issued_for_another_tool_is_refused(api, store) -> None:
    data = seed(store)
    tool, other = register(store), register(store)
    login_url = start(api, other, data["students"][0], data["section"])
    r = httpx.get(f"{api.base_url}/lti/platform/authorize", params=auth_params(login_url, client_id=tool.client_id))
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["unauthorized_client"]


def test_launch_api_needs_admin_and_keeps_tenants_apart(api, store) -> None:
    data = seed(store)
    tool = register(store)
    body = {"client_id": tool.client_id, "user_id": str(data["students"][0].id), "resource_link_id": "rl"}
    assert api.auth_client("t1", ["evidence.readonly"]).post("/v1/lti/launches", json=body).status_code == 403
    assert api.auth_client("t2", ["admin"]).post("/v1/lti/launches", json=body).status_code == 404
    bad = api.auth_client("t1", ["admin"]).post("/v1/lti/launches", json={**body, "deployment_id": "nope"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "deployment_id"


# --- token endpoint ---------------------------------------------------------------------------


def _token(api, data: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{api.base_url}/lti/platform/token", data=data)


def _grant(assertion: str, scope: str = AGS + "score") -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion, "scope": scope}


def test_token_endpoint_grants_only_lti_service_scopes_for_a_valid_assertion(api, store) -> None:
    key = ToolKey()
    tool = register(store, key)
    url = f"{api.base_url}/lti/platform/token"
    r = _token(api, _grant(key.assertion(tool.client_id, url), f"{AGS}score {NRPS} admin"))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == f"{AGS}score {NRPS}"


def test_a_replayed_assertion_is_refused(api, store) -> None:
    key = ToolKey()
    tool = register(store, key)
    assertion = key.assertion(tool.client_id, f"{api.base_url}/lti/platform/token")
    assert _token(api, _grant(assertion)).status_code == 200
    r = _token(api, _grant(assertion))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client" and "jti" in r.json()["error_description"]


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"aud": "https://elsewhere.example.org/token"}, "aud"),
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"sub": "someone-else"}, "sub"),
        ({"jti": None}, "invalid"),
    ],
)
def test_bad_client_assertions_get_invalid_client(api, store, claims, fragment) -> None:
    key = ToolKey()
    tool = register(store, key)
    args = {"aud": f"{api.base_url}/lti/platform/token", **claims}
    r = _token(api, _grant(key.assertion(tool.client_id, **args)))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client" and fragment in r.json()["error_description"]
    assert "www-authenticate" in r.headers


def test_an_assertion_signed_with_another_key_or_by_an_unknown_client_is_refused(api, store) -> None:
    key = ToolKey()
    tool = register(store, key)
    url = f"{api.base_url}/lti/platform/token"
    forged = ToolKey(kid=key.kid).assertion(tool.client_id, url)
    assert _token(api, _grant(forged)).json()["error"] == "invalid_client"
    assert _token(api, _grant(key.assertion("unknown-client", url))).json()["error"] == "invalid_client"


def test_token_request_errors_are_rfc6749_json(api, store) -> None:
    key = ToolKey()
    tool = register(store, key)
    url = f"{api.base_url}/lti/platform/token"
    r = _token(api, {**_grant(key.assertion(tool.client_id, url)), "grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = _token(api, _grant(key.assertion(tool.client_id, url), "admin"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = httpx.post(url, json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_a_tool_with_a_jwks_url_is_verified_against_it_and_a_new_kid_is_fetched(api, store) -> None:
    from fastapi import FastAPI

    from tests.conftest import serve

    keys = [ToolKey()]
    jwks_app = FastAPI()

    @jwks_app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return {"keys": [k.jwk for k in keys]}

    with serve(jwks_app) as tool_base:
        tool = register(store, jwks_url=f"{tool_base}/jwks")
        url = f"{api.base_url}/lti/platform/token"
        assert _token(api, _grant(keys[0].assertion(tool.client_id, url))).status_code == 200
        keys.append(ToolKey())  # the tool rotates: the platform refetches on the unknown kid
        assert _token(api, _grant(keys[1].assertion(tool.client_id, url))).status_code == 200


def test_id_tokens_are_signed_with_the_current_key_after_a_rotation(api, store) -> None:
    from gateway.auth.keys import KeyStore

    data = seed(store)
    tool = register(store)

    def kid() -> str:
        r = httpx.get(f"{api.base_url}/lti/platform/authorize", params=auth_params(start(api, tool, data["students"][0], data["section"])))
        return jwt.get_unverified_header(form_fields(r.text)["id_token"])["kid"]

    before = kid()
    rotated = KeyStore(store.engine, token_ttl_seconds=3600).rotate()
    assert kid() == rotated != before
    published = {k["kid"] for k in httpx.get(f"{api.base_url}/lti/platform/jwks").json()["keys"]}
    assert {before, rotated} <= published
