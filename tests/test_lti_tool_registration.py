"""LTI Dynamic Registration 1.0, tool role: an invitation URL, the platform's openid
configuration fetched, Tessera's registration posted with the registration token, the
platform stored, and the window told to close. The platform is a real ASGI app on a port."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import Api, serve

REG_TOKEN = "reg-token-123"
TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"


class RegisteringPlatform:
    def __init__(self) -> None:
        self.base = ""
        self.issuer = ""
        self.posted: list[dict[str, Any]] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def config(request: Request) -> Any:
            if request.headers.get("authorization") != f"Bearer {REG_TOKEN}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            return {
                "issuer": self.issuer, "authorization_endpoint": f"{self.base}/auth", "token_endpoint": f"{self.base}/token",
                "jwks_uri": f"{self.base}/jwks", "registration_endpoint": f"{self.base}/register",
                "scopes_supported": ["openid"], "response_types_supported": ["id_token"],
                "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                    "product_family_code": "ExampleLMS", "version": "1.0",
                    "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}],
                },
            }

        @app.post("/register")
        async def register(request: Request) -> Any:
            if request.headers.get("authorization") != f"Bearer {REG_TOKEN}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            body = await request.json()
            self.posted.append(body)
            return {**body, "client_id": "dyn-client-9", TOOL_CONFIG: {**body[TOOL_CONFIG], "deployment_id": "dep-77"}}

        return app


@pytest.fixture
def lms() -> Any:
    p = RegisteringPlatform()
    with serve(p.app()) as base:
        p.base = p.issuer = base
        yield p


def invitation(api: Api, tenant: str = "t1") -> str:
    with api.auth_client(tenant, ["admin"]) as c:
        r = c.post("/v1/lti/platforms/invitations")
    assert r.status_code == 201
    return r.json()["registration_url"]


def test_dynamic_registration_registers_tessera_and_stores_the_platform(api: Api, lms: RegisteringPlatform) -> None:
    url = invitation(api)
    assert url.startswith(f"{api.base_url}/lti/register?invitation=")
    with api.client() as browser:
        r = browser.get(url + "&" + urlencode({"openid_configuration": f"{lms.base}/.well-known/openid-configuration",
                                               "registration_token": REG_TOKEN}))
    assert r.status_code == 200, r.text
    assert "org.imsglobal.lti.close" in r.text
    (sent,) = lms.posted
    assert sent["initiate_login_uri"] == f"{api.base_url}/lti/login"
    assert sent["redirect_uris"] == [f"{api.base_url}/lti/launch"]
    assert sent["jwks_uri"] == f"{api.base_url}/.well-known/jwks.json"
    assert sent["token_endpoint_auth_method"] == "private_key_jwt" and sent["response_types"] == ["id_token"]
    assert sent[TOOL_CONFIG]["domain"] == urlsplit(api.base_url).netloc
    with api.auth_client("t1", ["admin"]) as c:
        (p,) = c.get("/v1/lti/platforms").json()["platforms"]
    assert (p["issuer"], p["client_id"], p["deployment_ids"]) == (lms.issuer, "dyn-client-9", ["dep-77"])
    assert p["name"] == "ExampleLMS" and p["jwks_url"] == f"{lms.base}/jwks" and p["auth_login_url"] == f"{lms.base}/auth"
    with api.client() as browser:  # the platform can launch Tessera at once
        r = browser.get("/lti/login", params={"iss": lms.issuer, "client_id": "dyn-client-9", "login_hint": "x",
                                              "target_link_uri": f"{api.base_url}/lti/launch"})
        assert r.status_code == 302 and r.headers["location"].startswith(f"{lms.base}/auth?")


def test_an_issuer_on_another_host_is_refused_and_nothing_is_stored(api: Api, lms: RegisteringPlatform) -> None:
    lms.issuer = "https://impostor.example"
    with api.client() as browser:
        r = browser.get(invitation(api) + "&" + urlencode({"openid_configuration": f"{lms.base}/.well-known/openid-configuration",
                                                           "registration_token": REG_TOKEN}))
    assert r.status_code == 422 and "issuer" in r.text and r.headers["content-type"].startswith("text/html")
    assert lms.posted == []
    with api.auth_client("t1", ["admin"]) as c:
        assert c.get("/v1/lti/platforms").json()["platforms"] == []


def test_a_registration_without_a_valid_invitation_is_refused(api: Api, lms: RegisteringPlatform) -> None:
    cfg = f"{lms.base}/.well-known/openid-configuration"
    with api.client() as browser:
        r = browser.get("/lti/register", params={"openid_configuration": cfg, "registration_token": REG_TOKEN, "invitation": "forged"})
        assert r.status_code == 401
        r = browser.get("/lti/register", params={"registration_token": REG_TOKEN})
        assert r.status_code == 422 and "openid_configuration" in r.text
        r = browser.get(invitation(api) + "&" + urlencode({"openid_configuration": cfg}))  # no registration token: the platform says no
        assert r.status_code == 502
    assert lms.posted == []
