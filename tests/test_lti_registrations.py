"""Tools registered with Tessera-as-platform: the /v1/lti/tools API (scope admin), the CLI
``tessera lti tools ...``, and LTI Dynamic Registration 1.0 in the platform role."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.test_lti_platform import AGS, NRPS, TOOL, ToolKey

TOOL_CONF = "https://purl.imsglobal.org/spec/lti-tool-configuration"


def _tool_body(**over) -> dict:
    return {"name": "Quiz", "login_url": f"{TOOL}/login", "redirect_uris": [f"{TOOL}/launch"], "target_link_uri": f"{TOOL}/launch",
            "jwks_url": f"{TOOL}/jwks", "deep_link_url": f"{TOOL}/dl", "deployments": ["d-1", "d-2"], **over}


def test_tools_api_registers_lists_reads_and_removes(api) -> None:
    admin = api.auth_client("t1", ["admin"])
    r = admin.post("/v1/lti/tools", json=_tool_body())
    assert r.status_code == 201
    tool = r.json()
    assert re.fullmatch(r"[0-9a-f]{32}", tool["client_id"]) and tool["deployments"] == ["d-1", "d-2"]
    assert [t["client_id"] for t in admin.get("/v1/lti/tools").json()["tools"]] == [tool["client_id"]]
    assert admin.get(f"/v1/lti/tools/{tool['client_id']}").json()["deep_link_url"] == f"{TOOL}/dl"
    other = api.auth_client("t2", ["admin"])
    assert other.get(f"/v1/lti/tools/{tool['client_id']}").status_code == 404
    assert other.delete(f"/v1/lti/tools/{tool['client_id']}").status_code == 404
    assert other.get("/v1/lti/tools").json()["tools"] == []
    assert admin.delete(f"/v1/lti/tools/{tool['client_id']}").status_code == 204
    assert admin.get(f"/v1/lti/tools/{tool['client_id']}").status_code == 404


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"jwks_url": None}, "exactly one of jwks_url and public_jwk"),
        ({"public_jwk": ToolKey().jwk}, "exactly one of jwks_url and public_jwk"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"login_url": "javascript:alert(1)"}, "login_url"),
    ],
)
def test_a_bad_registration_names_the_problem_and_stores_nothing(api, over, fragment) -> None:
    admin = api.auth_client("t1", ["admin"])
    r = admin.post("/v1/lti/tools", json=_tool_body(**over))
    assert r.status_code == 422 and fragment in r.text
    assert admin.get("/v1/lti/tools").json()["tools"] == []


def test_tools_api_needs_the_admin_scope(api) -> None:
    assert api.auth_client("t1", ["evidence.readonly"]).get("/v1/lti/tools").status_code == 403
    assert api.client().get("/v1/lti/tools").status_code == 401


def test_cli_adds_lists_and_removes_tools(cli, tmp_path) -> None:
    cli("migrate")
    pem = tmp_path / "tool.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = cli("lti", "tools", "add", "--name", "Quiz", "--login-url", f"{TOOL}/login", "--redirect-uri", f"{TOOL}/launch",
              "--public-key", str(pem), "--deployment", "dep-9", "--custom", "chapter=3", "--tenant", "t1").output
    client_id = re.search(r"client_id: (\w+)", out).group(1)
    assert "deployments: dep-9" in out
    listed = cli("lti", "tools", "list").output
    assert client_id in listed and "dep-9" in listed
    cli("lti", "tools", "remove", client_id)
    assert client_id not in cli("lti", "tools", "list").output
    assert cli("lti", "tools", "add", "--name", "X", "--login-url", f"{TOOL}/login", "--redirect-uri", f"{TOOL}/launch", code=None).exit_code != 0


# --- Dynamic Registration ----------------------------------------------------------------------


def _registration(**over) -> dict:
    body = {
        "application_type": "web", "response_types": ["id_token"], "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": f"{TOOL}/login", "redirect_uris": [f"{TOOL}/launch"], "client_name": "Quiz tool",
        "jwks_uri": f"{TOOL}/jwks", "token_endpoint_auth_method": "private_key_jwt", "scope": f"{AGS}score {NRPS} not-a-scope",
        TOOL_CONF: {"domain": "tool.example.org", "target_link_uri": f"{TOOL}/launch", "custom_parameters": {"a": "1"},
                    "claims": ["iss", "sub"], "messages": [{"type": "LtiDeepLinkingRequest", "target_link_uri": f"{TOOL}/dl"}]},
    }
    body.update(over)
    return body


def test_dynamic_registration_registers_the_tool_once_per_token(api) -> None:
    admin = api.auth_client("t1", ["admin"])
    start = admin.post("/v1/lti/registrations").json()
    config = httpx.get(start["openid_configuration"]).json()
    assert config["issuer"] == api.base_url and config["registration_endpoint"] == f"{api.base_url}/lti/platform/register"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"] and AGS + "score" in config["scopes_supported"]
    assert config["https://purl.imsglobal.org/spec/lti-platform-configuration"]["messages_supported"][0]["type"] == "LtiResourceLinkRequest"
    auth = {"Authorization": f"Bearer {start['registration_token']}"}
    r = httpx.post(config["registration_endpoint"], json=_registration(), headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == f"{AGS}score {NRPS}" and body[TOOL_CONF]["deployment_id"]
    tool = admin.get(f"/v1/lti/tools/{body['client_id']}").json()
    assert tool["jwks_url"] == f"{TOOL}/jwks" and tool["deep_link_url"] == f"{TOOL}/dl" and tool["custom"] == {"a": "1"}
    assert tool["deployments"] == [body[TOOL_CONF]["deployment_id"]]
    again = httpx.post(config["registration_endpoint"], json=_registration(), headers=auth)
    assert again.status_code == 401 and again.json()["error"] == "invalid_token"


def test_subdomains_and_secondary_domains_are_the_tools_own(api) -> None:
    admin = api.auth_client("t1", ["admin"])
    start = admin.post("/v1/lti/registrations").json()
    endpoint = httpx.get(start["openid_configuration"]).json()["registration_endpoint"]
    body = _registration(redirect_uris=[f"{TOOL}/launch", "https://eu.tool.example.org/launch", "https://tool-cdn.example.com/cb"])
    body[TOOL_CONF]["secondary_domains"] = ["tool-cdn.example.com"]
    r = httpx.post(endpoint, json=body, headers={"Authorization": f"Bearer {start['registration_token']}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code"]}, "invalid_client_metadata"),
        ({TOOL_CONF: None}, "invalid_client_metadata"),
        # Dynamic Registration 3.2.1: URLs off the declared domain(s), or no domain at all
        ({"redirect_uris": ["https://evil.example.net/launch"]}, "invalid_redirect_uri"),
        ({"initiate_login_uri": "https://tool.example.org.evil.net/login"}, "invalid_client_metadata"),
        ({TOOL_CONF: {"target_link_uri": f"{TOOL}/launch"}}, "invalid_client_metadata"),
        ({TOOL_CONF: {"domain": "tool.example.org", "target_link_uri": "https://other.example.com/launch"}}, "invalid_client_metadata"),
        ({TOOL_CONF: {"domain": "tool.example.org", "target_link_uri": f"{TOOL}/launch",
                      "messages": [{"type": "LtiDeepLinkingRequest", "target_link_uri": "https://other.example.com/dl"}]}},
         "invalid_client_metadata"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: the request is validated before anything is stored; a registration's rows are written on both backends by the good-registration tests
def test_a_bad_registration_request_gets_the_rfc7591_error(api, over, error) -> None:
    admin = api.auth_client("t1", ["admin"])
    token = admin.post("/v1/lti/registrations").json()["registration_token"]
    r = httpx.post(f"{api.base_url}/lti/platform/register", json=_registration(**over), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.json()["error"] == error
    assert admin.get("/v1/lti/tools").json()["tools"] == []


def test_registration_without_a_valid_token_is_refused(api) -> None:
    url = f"{api.base_url}/lti/platform/register"
    assert httpx.post(url, json=_registration()).status_code == 401
    assert httpx.post(url, json=_registration(), headers={"Authorization": "Bearer x.y.z"}).json()["error"] == "invalid_token"
