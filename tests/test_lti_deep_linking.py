"""Deep Linking 2.0, tool side, end to end: the platform's LtiDeepLinkingRequest launch, the
teacher's pick, and the signed LtiDeepLinkingResponse form-posted back, checked as the
platform would check it: signature against Tessera's JWKS (fetched over HTTP), iss = the
client_id, aud = the platform, the request's data echoed, one ltiResourceLink per competency."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import jwt

from adapters.lti.claims import DL, LTI
from adapters.lti.tool.assignments_grades import COMPETENCY_TAG
from tests import factories as f
from tests.conftest import Api
from tests.test_lti_tool import (
    CLIENT_ID,
    DEPLOYMENT,
    INSTRUCTOR,
    ISS,
    SpecPlatform,
    login,
    platform_fixture,  # noqa: F401 - the fixture ``platform``
    register,
)

RETURN = "https://lms.example.edu/deep_links/return"


def dl_claims(p: SpecPlatform, nonce: str, target: str, **settings: Any) -> dict[str, Any]:
    claims = p.claims(nonce, target, sub="teacher-1", **{
        LTI + "message_type": "LtiDeepLinkingRequest", LTI + "resource_link": None, LTI + "roles": [INSTRUCTOR],
    })
    claims[DL + "deep_linking_settings"] = {
        "deep_link_return_url": RETURN, "accept_types": ["link", "ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"], "accept_multiple": True,
        "data": "csrftoken:c7fbba78-7b75-46e3-9201-11e6d5f36f53", **settings,
    }
    return claims


def fields(page: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', page):
        out.setdefault(html.unescape(name), []).append(html.unescape(value))
    return out


def start(api: Api, p: SpecPlatform, **settings: Any) -> tuple[Any, str]:
    register(api, p)
    fw = f.framework()
    comps = [f.competency("RL.3.1", fw, uri="https://case.example/uri/rl-3-1"), f.competency("RL.3.2", fw)]
    api.store.records.apply("t1", [fw, *comps])
    browser = api.client()
    auth = login(browser, api)
    r = browser.post("/lti/launch", data={"id_token": p.sign(dl_claims(p, auth["nonce"], f"{api.base_url}/lti/launch", **settings)), "state": auth["state"]})
    assert r.status_code == 200, r.text
    assert "RL.3.1" in r.text and "RL.3.2" in r.text
    return (browser, comps), r.text


def test_a_teacher_places_competency_views_and_the_platform_gets_a_signed_response(api: Api, platform: SpecPlatform) -> None:
    (browser, comps), picker = start(api, platform)
    session = fields(picker)["session"][0]
    r = browser.post("/lti/deep-linking", data={"session": session, "competency": [str(c.id) for c in comps]})
    assert r.status_code == 200
    assert f'action="{RETURN}"' in r.text
    token = fields(r.text)["JWT"][0]
    jwks = jwt.PyJWKClient(f"{api.base_url}/.well-known/jwks.json")
    claims = jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"], audience=ISS)
    assert claims["iss"] == CLIENT_ID and claims["nonce"] and claims["exp"] > time.time()
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse" and claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "deployment_id"] == DEPLOYMENT
    assert claims[DL + "data"] == "csrftoken:c7fbba78-7b75-46e3-9201-11e6d5f36f53"
    first, second = claims[DL + "content_items"]
    assert first["type"] == "ltiResourceLink" and first["url"] == f"{api.base_url}/lti/launch"
    assert first["custom"]["competency"] == "https://case.example/uri/rl-3-1"
    assert first["lineItem"]["resourceId"] == "https://case.example/uri/rl-3-1" and first["lineItem"]["tag"] == COMPETENCY_TAG
    assert second["custom"]["competency_id"] == str(comps[1].id)
    browser.close()


def test_a_platform_that_takes_no_resource_links_gets_lti_errormsg(api: Api, platform: SpecPlatform) -> None:
    (browser, comps), picker = start(api, platform, accept_types=["link"])
    r = browser.post("/lti/deep-linking", data={"session": fields(picker)["session"][0], "competency": str(comps[0].id)})
    assert r.status_code == 302 and r.headers["location"].startswith(f"{RETURN}?lti_errormsg=")
    browser.close()


def test_a_forged_session_or_a_foreign_competency_is_refused(api: Api, platform: SpecPlatform) -> None:
    (browser, comps), picker = start(api, platform)
    session = fields(picker)["session"][0]
    r = browser.post("/lti/deep-linking", data={"session": session[:-4] + "AAAA", "competency": str(comps[0].id)})
    assert r.status_code == 401 and "deep linking session" in r.text
    fw2 = f.framework(tenant="t2")
    other = f.competency("X", fw2, tenant="t2")
    api.store.records.apply("t2", [fw2, other])  # exists, but in another tenant
    r = browser.post("/lti/deep-linking", data={"session": session, "competency": str(other.id)})
    assert r.status_code == 404
    browser.close()


def test_a_deep_linking_request_without_its_settings_is_refused(api: Api, platform: SpecPlatform) -> None:
    register(api, platform)
    with api.client() as browser:
        auth = login(browser, api)
        claims = dl_claims(platform, auth["nonce"], f"{api.base_url}/lti/launch")
        del claims[DL + "deep_linking_settings"]
        r = browser.post("/lti/launch", data={"id_token": platform.sign(claims), "state": auth["state"]})
    assert r.status_code == 302 and "deep_linking_settings" in r.headers["location"]
