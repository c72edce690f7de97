"""The LTI conformance kits (``lti-1.3-tool``, ``lti-1.3-platform``) against Tessera's own
tool and platform over real HTTP, against faulty peers (each fault caught by exactly the
checks that should catch it), and against pylti1p3-based peers.

Until the conformance runner is on main, ``run`` below drives a kit the way the runner
will: setup once, each check with its own ``Session`` sharing one ``state``, teardown.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from adapters.lti.tool.platforms import PlatformIn, PlatformStore
from conformance.kit import Kit, Result, Target
from conformance.kits import kits
from conformance.kits.lti_common import KitKey, key_from_jwks
from conformance.runner import run_kit as run_with_runner
from tests import factories as f
from tests.conftest import free_port, serve

TOOL_KIT = kits()["lti-1.3-tool"]


def run(kit: Kit, target: Target) -> dict[str, Result]:
    """Every check's result by id, from the runner the CLI uses."""
    return {r.check.id: r for r in run_with_runner(kit, target).results}


def failed(results: dict[str, Result]) -> dict[str, str]:
    return {i: r.reason for i, r in results.items() if r.status == "fail"}


def skipped(results: dict[str, Result]) -> dict[str, str]:
    return {i: r.reason for i, r in results.items() if r.status == "skip"}


# --- Tessera as the tool --------------------------------------------------------------------


@pytest.fixture
def tessera_tool(api, store, tmp_path):
    """Tessera's tool side, trusting the kit's platform on a port chosen before the run; a
    learner (OneRoster sourcedId kit-learner-1) and a competency for the AGS trigger."""
    port = free_port()
    kit = f"http://127.0.0.1:{port}"
    recs = f.roster(1)
    school = recs[0]
    learner = f.person("kit-learner-1", school)
    fw = f.framework()
    comp = f.competency("c1", fw)
    store.records.apply(f.T, [*recs, learner, fw, comp])
    p = PlatformStore(store.engine).add(f.T, PlatformIn(
        name="kit", issuer=kit, client_id="kit-client", deployment_ids=["kit-deployment"],
        auth_login_url=f"{kit}/authorize", token_url=f"{kit}/token", jwks_url=f"{kit}/jwks"))
    cid, secret = api.credentials(f.T, ["admin"])
    base = api.base_url
    triggers = [
        {"method": "POST", "url": f"{base}/v1/lti/platforms/{p.id}/contexts/kit-context-1/roster-sync"},
        {"method": "POST", "url": f"{base}/v1/lti/platforms/{p.id}/contexts/kit-context-1/scores",
         "body": {"person_id": str(learner.id), "competency_id": str(comp.id), "value": 0.75}},
    ]
    return Target(base, client_id=cid, client_secret=secret, options={
        "port": str(port), "login_url": f"{base}/lti/login", "launch_url": f"{base}/lti/launch", "client_id": "kit-client",
        "deployment_id": "kit-deployment", "tool_jwks_url": f"{base}/.well-known/jwks.json",
        "service_triggers": json.dumps(triggers),
    })


def test_tessera_tool_passes_the_tool_kit(tessera_tool) -> None:
    results = run(TOOL_KIT, tessera_tool)
    assert len(TOOL_KIT.checks) >= 40
    assert failed(results) == {}
    assert skipped(results) == {}


# --- Tessera as the platform ----------------------------------------------------------------

PLATFORM_KIT = kits()["lti-1.3-platform"]


@pytest.fixture
def tessera_platform(api, store):
    """Tessera's platform side with the kit's tool registered (JWKS URL on the kit's port), a
    section with students and a teacher; a launch of a student in that section."""
    from adapters.lti.platform.registrations import ToolRegistration, ToolRegistry
    from tests.test_lti_platform import seed

    data = seed(store)
    port = free_port()
    kit = f"http://127.0.0.1:{port}"
    tool = ToolRegistry(store.engine).add(f.T, ToolRegistration(
        name="kit tool", login_url=f"{kit}/login", redirect_uris=[f"{kit}/launch"], target_link_uri=f"{kit}/launch",
        jwks_url=f"{kit}/jwks"))
    cid, secret = api.credentials(f.T, ["admin"])
    base = api.base_url
    launch = {"client_id": tool.client_id, "user_id": str(data["students"][0].id), "context_id": str(data["section"].id),
              "resource_link_id": "kit-rl-1"}
    return Target(base, client_id=cid, client_secret=secret, options={
        "port": str(port), "issuer": base, "auth_url": f"{base}/lti/platform/authorize", "token_url": f"{base}/lti/platform/token",
        "jwks_url": f"{base}/lti/platform/jwks", "client_id": tool.client_id, "deployment_id": tool.deployments[0],
        "launch_url": f"{base}/v1/lti/launches", "launch_body": json.dumps(launch),
        "openid_configuration_url": f"{base}/lti/platform/.well-known/openid-configuration",
    })


def test_tessera_platform_passes_the_platform_kit(tessera_platform) -> None:
    results = run(PLATFORM_KIT, tessera_platform)
    assert len(PLATFORM_KIT.checks) >= 40
    assert failed(results) == {}
    assert skipped(results) == {}


# --- a small tool with planted faults ---------------------------------------------------------


class MiniTool:
    """A minimal LTI 1.3 tool (login, launch, deep linking response), right by default;
    each name in ``faults`` switches one of its rules off."""

    def __init__(self, kit: str, faults: frozenset[str] = frozenset()) -> None:
        self.kit, self.faults, self.key, self.base = kit, faults, KitKey(), ""
        self.logins: dict[str, dict[str, str]] = {}
        self.spent: set[str] = set()
        self.http = httpx.Client(timeout=10)
        app = self.app = FastAPI()

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [self.key.jwk]}

        @app.api_route("/login", methods=["GET", "POST"])
        async def login(request: Request) -> Response:
            p = {**request.query_params, **dict(parse_qsl((await request.body()).decode()))}
            if p.get("iss") != kit and "any_iss_login" not in faults:
                return JSONResponse({"error": "unknown platform"}, 400)
            state, nonce = uuid.uuid4().hex, "fixed" if "fixed_nonce" in faults else uuid.uuid4().hex
            self.logins[state] = {"nonce": nonce, "target": str(p.get("target_link_uri"))}
            q = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
                 "client_id": "mini-client", "redirect_uri": f"{self.base}/launch", "login_hint": p.get("login_hint", ""),
                 "lti_message_hint": p.get("lti_message_hint", ""), "state": state, "nonce": nonce}
            if "no_prompt" in faults:
                del q["prompt"]
            return RedirectResponse(f"{kit}/authorize?{httpx.QueryParams(q)}", 302)

        @app.post("/launch")
        async def launch(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            try:
                claims = self.validate(str(form.get("id_token", "")), str(form.get("state", "")))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            if claims.get(LTI + "message_type") == "LtiDeepLinkingRequest":
                return HTMLResponse(self.deep_link(claims))
            return JSONResponse({"ok": True, "sub": claims.get("sub")})

    def validate(self, token: str, state: str) -> dict[str, Any]:
        import jwt as pyjwt

        faults = self.faults
        login = self.logins.get(state) if "replay_ok" in faults else self.logins.pop(state, None)
        if login is None:
            raise ValueError("unknown state")
        try:
            head = pyjwt.get_unverified_header(token)
        except pyjwt.InvalidTokenError as exc:
            raise ValueError("not a JWT") from exc
        jwks = self.http.get(f"{self.kit}/jwks").json()
        options: dict[str, Any] = {"require": ["iss", "aud", "iat"] + ([] if "ignore_exp" in faults else ["exp"])}
        if "ignore_exp" in faults:
            options["verify_exp"] = False
        if "ignore_iat" in faults:
            options["verify_iat"] = False
        if "any_aud" in faults:
            options["verify_aud"] = False
        if "any_iss" in faults:
            options["verify_iss"] = False
        kw = {"audience": "mini-client", "issuer": self.kit, "leeway": 60, "options": options}
        try:
            if head.get("alg") == "none" and "unsigned_ok" in faults:
                claims = pyjwt.decode(token, options={"verify_signature": False})
            elif head.get("alg") == "HS256" and "alg_confusion" in faults:
                import base64
                import hashlib
                import hmac
                signing, _, sig = token.rpartition(".")
                pem = key_from_jwks(jwks, head.get("kid")).public_bytes(
                    __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
                    __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).PublicFormat.SubjectPublicKeyInfo)
                if base64.urlsafe_b64encode(hmac.new(pem, signing.encode(), hashlib.sha256).digest()).rstrip(b"=").decode() != sig:
                    raise ValueError("bad HMAC")
                claims = pyjwt.decode(token, options={"verify_signature": False})
            else:
                kid = head.get("kid")
                if kid is None and "no_kid_ok" in faults:
                    kid = jwks["keys"][0]["kid"]
                key = key_from_jwks(jwks, kid) if kid else None
                if key is None:
                    raise ValueError("unknown kid")
                claims = pyjwt.decode(token, key, algorithms=["RS256"], **kw)
        except pyjwt.InvalidTokenError as exc:
            raise ValueError(str(exc)) from exc
        aud = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if "any_aud" not in faults and (len(aud) > 1 or "azp" in claims) and claims.get("azp") != "mini-client":
            raise ValueError("azp")
        if "skip_nonce" not in faults and claims.get("nonce") != login["nonce"]:
            raise ValueError("nonce")
        if not {"replay_ok", "fixed_nonce"} & faults:
            if claims.get("nonce") in self.spent:
                raise ValueError("nonce replay")
            self.spent.add(str(claims.get("nonce")))
        mt = claims.get(LTI + "message_type")
        if "any_message_type" not in faults and mt not in ("LtiResourceLinkRequest", "LtiDeepLinkingRequest"):
            raise ValueError("message_type")
        if "any_version" not in faults and claims.get(LTI + "version") != "1.3.0":
            raise ValueError("version")
        if "any_deployment" not in faults and claims.get(LTI + "deployment_id") != "mini-deployment":
            raise ValueError("deployment_id")
        if "no_roles_check" not in faults and not isinstance(claims.get(LTI + "roles"), list):
            raise ValueError("roles")
        if mt == "LtiDeepLinkingRequest":
            if not (claims.get("https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings") or {}).get("deep_link_return_url"):
                raise ValueError("deep_link_return_url")
        else:
            if claims.get(LTI + "target_link_uri") != login["target"]:
                raise ValueError("target_link_uri")
            if not isinstance(claims.get(LTI + "resource_link"), dict) or not claims[LTI + "resource_link"].get("id"):
                raise ValueError("resource_link")
            if "sub" not in claims and "crash_anonymous" in faults:
                raise RuntimeError("no sub")
        return claims

    def deep_link(self, claims: dict[str, Any]) -> str:
        from html import escape

        dl = "https://purl.imsglobal.org/spec/lti-dl/claim/"
        settings = claims[dl + "deep_linking_settings"]
        body = {"iss": "mini-client", "aud": self.kit, "iat": int(time.time()), "exp": int(time.time()) + 300, "nonce": uuid.uuid4().hex,
                LTI + "message_type": "LtiDeepLinkingResponse", LTI + "version": "1.3.0",
                LTI + "deployment_id": claims[LTI + "deployment_id"],
                dl + "content_items": [{"type": "ltiResourceLink", "title": "Mini", "url": f"{self.base}/launch"}]}
        if "dl_no_data" not in self.faults and "data" in settings:
            body[dl + "data"] = settings["data"]
        signer = KitKey(kid=self.key.kid) if "dl_wrong_key" in self.faults else self.key
        token = signer.sign(body)
        return (f'<form method="post" action="{escape(settings["deep_link_return_url"])}">'
                f'<input type="hidden" name="JWT" value="{escape(token)}"></form>')


LTI = "https://purl.imsglobal.org/spec/lti/claim/"
SERVICE_CHECKS = {c.id for c in TOOL_KIT.checks if c.id.startswith(("LTI-TOOL-TOKEN", "LTI-TOOL-AGS", "LTI-TOOL-NRPS"))}

#: fault -> the checks of lti-1.3-tool it must fail, and no other
TOOL_FAULTS = {
    "unsigned_ok": {"LTI-TOOL-BAD-004"},
    "alg_confusion": {"LTI-TOOL-BAD-005"},
    "no_kid_ok": {"LTI-TOOL-BAD-001"},
    "any_aud": {"LTI-TOOL-BAD-019", "LTI-TOOL-BAD-020"},
    "any_iss": {"LTI-TOOL-BAD-018"},
    "skip_nonce": {"LTI-TOOL-BAD-021", "LTI-TOOL-BAD-022"},
    "ignore_exp": {"LTI-TOOL-BAD-015", "LTI-TOOL-BAD-017"},
    "ignore_iat": {"LTI-TOOL-BAD-016"},
    "any_version": {"LTI-TOOL-BAD-006", "LTI-TOOL-BAD-007"},
    "any_message_type": {"LTI-TOOL-BAD-008", "LTI-TOOL-BAD-009"},
    "any_deployment": {"LTI-TOOL-BAD-010", "LTI-TOOL-BAD-011"},
    "no_roles_check": {"LTI-TOOL-BAD-014"},
    "replay_ok": {"LTI-TOOL-BAD-025"},
    "fixed_nonce": {"LTI-TOOL-LOGIN-013"},
    "no_prompt": {"LTI-TOOL-LOGIN-006"},
    "any_iss_login": {"LTI-TOOL-LOGIN-014"},
    "crash_anonymous": {"LTI-TOOL-LAUNCH-013"},
    "dl_no_data": {"LTI-TOOL-DL-005"},
    "dl_wrong_key": {"LTI-TOOL-DL-002"},
}


def run_mini_tool(faults: frozenset[str]) -> dict[str, Result]:
    from tests.conftest import serve

    port = free_port()
    kit = f"http://127.0.0.1:{port}"
    tool = MiniTool(kit, faults)
    with serve(tool.app) as base:
        tool.base = base
        return run(TOOL_KIT, Target(base, options={
            "port": str(port), "login_url": f"{base}/login", "launch_url": f"{base}/launch", "client_id": "mini-client",
            "deployment_id": "mini-deployment", "tool_jwks_url": f"{base}/jwks", "services_wait": "0"}))


def test_a_right_small_tool_passes_the_tool_kit() -> None:
    results = run_mini_tool(frozenset())
    assert failed(results) == {}
    assert set(skipped(results)) == SERVICE_CHECKS  # it makes no service calls


#: faults planted together (their expected checks are disjoint, so each failure names its fault)
TOOL_FAULT_SETS = [
    ("unsigned_ok", "alg_confusion", "no_kid_ok", "any_aud", "any_iss", "skip_nonce", "ignore_exp"),
    ("ignore_iat", "any_version", "any_message_type", "any_deployment", "no_roles_check", "replay_ok"),
    ("fixed_nonce", "no_prompt", "any_iss_login", "crash_anonymous", "dl_no_data", "dl_wrong_key"),
]


def test_the_fault_sets_cover_every_fault_once() -> None:
    planted = [fault for group in TOOL_FAULT_SETS for fault in group]
    assert sorted(planted) == sorted(TOOL_FAULTS) and len(TOOL_FAULTS) >= 10
    expected = [check for fault in planted for check in TOOL_FAULTS[fault]]
    assert len(expected) == len(set(expected))


@pytest.mark.parametrize("faults", TOOL_FAULT_SETS, ids=lambda g: "+".join(g))
def test_the_tool_kit_catches_a_faulty_tool(faults: tuple[str, ...]) -> None:
    results = run_mini_tool(frozenset(faults))
    assert set(failed(results)) == set().union(*(TOOL_FAULTS[f] for f in faults)), failed(results)
    assert set(skipped(results)) == SERVICE_CHECKS


# --- Tessera as the platform, with faults planted by a proxy -----------------------------------


@contextmanager
def serve_on(app: Any, port: int) -> Iterator[str]:
    """``tests.conftest.serve`` on a port chosen beforehand (Tessera's public_url names it)."""
    with serve(app, port) as base:
        yield base


class FaultyProxy:
    """Forwards everything to Tessera, planting the faults named in ``faults`` on the way."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.kit_redirect = upstream, ""
        self.faults: frozenset[str] = frozenset()
        self.nrps_auth: str | None = None
        self.key = KitKey()  # re-signs the id_tokens it changes; its public key joins the JWKS
        self.http = httpx.AsyncClient(timeout=30)
        self.app = FastAPI()
        self.app.add_api_route("/{path:path}", self.forward, methods=["GET", "POST", "PUT", "DELETE"])

    async def forward(self, path: str, request: Request) -> Response:
        faults, q = self.faults, dict(request.query_params)
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        path = "/" + path
        asked_redirect = None
        if "redirect_any" in faults and path == "/lti/platform/authorize" and q.get("redirect_uri") != self.kit_redirect:
            asked_redirect, q["redirect_uri"] = q.get("redirect_uri"), self.kit_redirect
        if "nrps_role_ignored" in faults and path.startswith("/lti/platform/nrps/"):
            q.pop("role", None)
        if "lineitems_no_filter" in faults and path.endswith("/lineitems"):
            q.pop("tag", None), q.pop("resource_id", None)
        if "score_no_timestamp_ok" in faults and path.endswith("/scores") and "timestamp" not in json.loads(body or b"{}"):
            return Response(status_code=204)
        if "delete_noop" in faults and request.method == "DELETE":
            return Response(status_code=204)
        if "nrps_reuse_token" in faults and path.startswith("/lti/platform/nrps/"):
            if "authorization" in headers:
                self.nrps_auth = headers["authorization"]
            elif self.nrps_auth:
                headers["authorization"] = self.nrps_auth
        r = await self.http.request(request.method, self.upstream + path, params=q, content=body, headers=headers)
        out, status = r.content, r.status_code
        out_headers = {k: v for k, v in r.headers.items() if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")}
        resign = {f for f in faults if f.startswith("idtoken_")}
        if resign and path == "/lti/platform/jwks":
            out = json.dumps({"keys": [*r.json()["keys"], self.key.jwk]}).encode()
        if resign and path == "/lti/platform/authorize" and b'name="id_token"' in out:
            import re

            token = re.search(rb'name="id_token" value="([^"]+)"', out).group(1).decode()
            claims = jwt.decode(token, options={"verify_signature": False})
            if "idtoken_wrong_aud" in faults:
                claims["aud"], claims["azp"] = "kit-another-tool", "kit-another-tool"
            if "idtoken_no_nonce" in faults:
                claims.pop("nonce")
            if "idtoken_expired" in faults:
                claims["iat"], claims["exp"] = int(time.time()) - 900, int(time.time()) - 600
            if "idtoken_wrong_version" in faults:
                claims[LTI + "version"] = "1.1"
            if "idtoken_no_resource_link" in faults:
                claims.pop(LTI + "resource_link")
            out = out.replace(token.encode(), self.key.sign(claims).encode())
        if "openid_no_rs256" in faults and path.endswith("/openid-configuration"):
            out = json.dumps({**r.json(), "id_token_signing_alg_values_supported": ["HS256"]}).encode()
        if "jwks_no_kid" in faults and path == "/lti/platform/jwks":
            out = json.dumps({"keys": [{k: v for k, v in key.items() if k != "kid"} for key in r.json()["keys"]]}).encode()
        if "token_any_assertion" in faults and path == "/lti/platform/token" and status in (400, 401):
            status, out = 200, json.dumps({"access_token": "any", "token_type": "Bearer", "expires_in": 3600}).encode()
            out_headers["content-type"] = "application/json"
        if "nrps_no_paging" in faults and path.startswith("/lti/platform/nrps/"):
            out_headers.pop("link", None)
        if "lineitems_media_type" in faults and path.endswith("/lineitems") and request.method == "GET":
            out_headers["content-type"] = "application/json"
        if "state_not_echoed" in faults and path == "/lti/platform/authorize":
            out = out.replace(b'value="kit-state-', b'value="changed-state-')
        if asked_redirect is not None:
            from html import escape

            out = out.replace(f'action="{escape(self.kit_redirect)}"'.encode(), f'action="{escape(asked_redirect)}"'.encode())
        return Response(out, status_code=status, headers=out_headers)


#: fault -> the checks of lti-1.3-platform it must fail, and no other
PLATFORM_FAULTS = {
    "jwks_no_kid": {"LTI-PLAT-JWKS-002", "LTI-PLAT-IDT-001", "LTI-PLAT-IDT-002"},
    "token_any_assertion": {f"LTI-PLAT-TOKEN-{n:03d}" for n in range(4, 16)},
    "score_no_timestamp_ok": {"LTI-PLAT-AGS-012"},
    "lineitems_media_type": {"LTI-PLAT-AGS-001"},
    "state_not_echoed": {"LTI-PLAT-AUTH-002"},
    "openid_no_rs256": {"LTI-PLAT-CONF-002"},
    "nrps_no_paging": {"LTI-PLAT-NRPS-005"},
    "redirect_any": {"LTI-PLAT-AUTH-BAD-001"},
    "nrps_role_ignored": {"LTI-PLAT-NRPS-006"},
    "delete_noop": {"LTI-PLAT-AGS-021"},
    "lineitems_no_filter": {"LTI-PLAT-AGS-005"},
    "nrps_reuse_token": {"LTI-PLAT-NRPS-007"},
    "idtoken_wrong_aud": {"LTI-PLAT-IDT-004"},
    "idtoken_no_nonce": {"LTI-PLAT-IDT-005", "LTI-PLAT-IDT-017"},
    "idtoken_expired": {"LTI-PLAT-IDT-006"},
    "idtoken_wrong_version": {"LTI-PLAT-IDT-009"},
    "idtoken_no_resource_link": {"LTI-PLAT-IDT-012"},
}
PLATFORM_FAULT_SETS = [
    ("jwks_no_kid", "token_any_assertion", "score_no_timestamp_ok", "lineitems_media_type", "state_not_echoed",
     "openid_no_rs256"),
    ("nrps_no_paging", "redirect_any", "nrps_role_ignored", "delete_noop", "lineitems_no_filter", "nrps_reuse_token",
     "idtoken_wrong_aud", "idtoken_no_nonce", "idtoken_expired", "idtoken_wrong_version", "idtoken_no_resource_link"),
]


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_platform_kit_catches_a_faulty_platform(make_api, store) -> None:
    from adapters.lti.platform.registrations import ToolRegistration, ToolRegistry
    from tests.test_lti_platform import seed

    planted = [fault for group in PLATFORM_FAULT_SETS for fault in group]
    assert sorted(planted) == sorted(PLATFORM_FAULTS) and len(planted) >= 10
    expected_all = [c for fault in planted for c in PLATFORM_FAULTS[fault]]
    assert len(expected_all) == len(set(expected_all))

    proxy_port = free_port()
    proxy_base = f"http://127.0.0.1:{proxy_port}"
    api = make_api(public_url=proxy_base)
    data = seed(store)
    cid, secret = api.credentials(f.T, ["admin"])
    proxy = FaultyProxy(api.base_url)
    with serve_on(proxy.app, proxy_port) as base:
        for faults in PLATFORM_FAULT_SETS:
            # a tool registration (and kit port) per run: the platform caches each tool's JWKS
            kit_port = free_port()
            kit = f"http://127.0.0.1:{kit_port}"
            tool = ToolRegistry(store.engine).add(f.T, ToolRegistration(
                name="kit tool", login_url=f"{kit}/login", redirect_uris=[f"{kit}/launch"], target_link_uri=f"{kit}/launch",
                jwks_url=f"{kit}/jwks"))
            launch = {"client_id": tool.client_id, "user_id": str(data["students"][0].id), "context_id": str(data["section"].id),
                      "resource_link_id": "kit-rl-1"}
            target = Target(base, client_id=cid, client_secret=secret, options={
                "port": str(kit_port), "issuer": base, "auth_url": f"{base}/lti/platform/authorize",
                "token_url": f"{base}/lti/platform/token", "jwks_url": f"{base}/lti/platform/jwks", "client_id": tool.client_id,
                "deployment_id": tool.deployments[0], "launch_url": f"{base}/v1/lti/launches", "launch_body": json.dumps(launch),
                "openid_configuration_url": f"{base}/lti/platform/.well-known/openid-configuration"})
            proxy.faults, proxy.kit_redirect = frozenset(faults), f"{kit}/launch"
            results = run(PLATFORM_KIT, target)
            assert set(failed(results)) == set().union(*(PLATFORM_FAULTS[f] for f in faults)), (faults, failed(results))
            assert skipped(results) == {}


# --- pylti1p3 as the tool ----------------------------------------------------------------------


def _pylti1p3_tool(kit: str):
    """tests/test_lti_pylti1p3.py's pylti1p3 tool (login, launch, AGS on every launch),
    registered with the kit's platform, answering deep linking with pylti1p3's DeepLink."""
    from pylti1p3.deep_link_resource import DeepLinkResource
    from pylti1p3.exception import LtiException
    from pylti1p3.session import SessionService
    from pylti1p3.tool_config import ToolConfDict

    from tests.test_lti_pylti1p3 import PyLtiTool, ToolCookies, ToolLaunch, ToolRequest

    class KitPyLtiTool(PyLtiTool):
        services_done = False

        def configure(self, issuer: str, client_id: str, deployments: list[str]) -> None:
            self.conf = ToolConfDict({issuer: [{
                "default": True, "client_id": client_id, "auth_login_url": f"{kit}/authorize", "auth_token_url": f"{kit}/token",
                "key_set_url": f"{kit}/jwks", "deployment_ids": deployments}]})
            self.conf.set_private_key(issuer, self.key.pem, client_id=client_id)
            self.conf.set_public_key(issuer, self._public_pem(), client_id=client_id)

        def _launch(self, form: dict[str, str], session: dict[str, Any], cookies: dict[str, str]) -> Response:
            assert self.conf is not None
            lti_request = ToolRequest(form, session)
            launch = ToolLaunch(lti_request, self.conf, SessionService(lti_request), ToolCookies(cookies))
            try:
                launch.get_launch_data()
            except LtiException as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if launch.is_deep_link_launch():
                item = DeepLinkResource().set_url(f"{self.base}/launch").set_title("pylti1p3 activity")
                return HTMLResponse(launch.get_deep_link().output_response_form([item]))
            if self.services_done or not (launch.has_nrps() and launch.has_ags()):
                return JSONResponse({"ok": True, "sub": launch.get_launch_data().get("sub")})
            self.services_done = True  # the roster and a grade once, as a tool syncs on its first launch
            launch.get_nrps().get_members()  # pylti1p3 follows the Link rel=next pages
            return super()._launch(form, session, cookies)  # the harness's launch: a line item, a grade, the results

        async def login_post(self, request: Request) -> Response:
            """The login initiation as a form POST (the harness routes GET only)."""
            from fastapi.responses import RedirectResponse as Redirect

            from tests.test_lti_pylti1p3 import SESSION_COOKIE, ToolLogin

            assert self.conf is not None
            sid, session = self._session(request)
            lti_request = ToolRequest(dict(parse_qsl((await request.body()).decode())), session)
            out = ToolCookies(dict(request.cookies))
            resp = Redirect(ToolLogin(lti_request, self.conf, SessionService(lti_request), out).redirect(f"{self.base}/launch"), 302)
            resp.set_cookie(SESSION_COOKIE, sid)
            for name, value in out.outgoing.items():
                resp.set_cookie(name, value)
            return resp

    tool = KitPyLtiTool("https://case.example.org/uri/kit-competency")
    tool.app.post("/login")(tool.login_post)
    tool.configure(kit, "pylti-client", ["pylti-deployment"])
    return tool


def test_a_pylti1p3_tool_passes_the_tool_kit() -> None:
    from tests.conftest import serve

    port = free_port()
    tool = _pylti1p3_tool(f"http://127.0.0.1:{port}")
    with serve(tool.app) as base:
        tool.base = base
        results = run(TOOL_KIT, Target(base, options={
            "port": str(port), "login_url": f"{base}/login", "launch_url": f"{base}/launch", "client_id": "pylti-client",
            "deployment_id": "pylti-deployment", "tool_jwks_url": f"{base}/jwks", "services_wait": "1"}))
    # What pylti1p3 (MessageLaunch) itself lets through, found by the kit: an id_token without
    # exp (its jwt.decode requires no exp; OIDC Core 2 makes exp REQUIRED), a target_link_uri
    # other than the login's (a SHOULD), and the same id_token posted twice from the same
    # browser session (its nonce check reads the session and never spends it; a SHOULD).
    assert set(failed(results)) == {"LTI-TOOL-BAD-017", "LTI-TOOL-BAD-024", "LTI-TOOL-BAD-025"}, failed(results)
    assert [i for i in failed(results) if results[i].check.required] == ["LTI-TOOL-BAD-017"]
    assert skipped(results) == {}


# --- bad input: the kits never crash ------------------------------------------------------------


def test_the_kits_report_an_unreachable_peer_and_a_missing_option_check_by_check() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    tool = run(TOOL_KIT, Target(closed, timeout=2, options={
        "login_url": f"{closed}/login", "launch_url": f"{closed}/launch", "client_id": "c", "deployment_id": "d", "services_wait": "0"}))
    assert {r.status for r in tool.values()} <= {"fail", "skip"}
    assert "no answer" in tool["LTI-TOOL-LOGIN-001"].reason and tool["LTI-TOOL-LOGIN-001"].exchanges
    assert "a valid launch" in tool["LTI-TOOL-BAD-001"].reason or "no answer" in tool["LTI-TOOL-BAD-001"].reason

    platform = run(PLATFORM_KIT, Target(closed, timeout=2, options={
        "issuer": closed, "auth_url": f"{closed}/auth", "token_url": f"{closed}/token", "jwks_url": f"{closed}/jwks",
        "client_id": "c", "deployment_id": "d", "launch_url": f"{closed}/launch"}))
    assert {r.status for r in platform.values()} <= {"fail", "skip"}
    assert "no answer" in platform["LTI-PLAT-JWKS-001"].reason
    assert "no answer" in platform["LTI-PLAT-TOKEN-001"].reason

    missing = run(PLATFORM_KIT, Target(closed, options={"issuer": closed}))
    assert {r.reason for r in missing.values()} == {"setup failed: this kit needs --option auth_url=..."}


def test_every_check_names_its_requirement_and_group() -> None:
    for kit in (TOOL_KIT, PLATFORM_KIT):
        ids = [c.id for c in kit.checks]
        assert len(ids) == len(set(ids)) and len(ids) >= 40
        for c in kit.checks:
            assert c.requirement and c.description and c.tags, c.id
        assert kit.writes
    assert {c.tags[-1] for c in TOOL_KIT.checks} == {"login", "launch", "bad", "dl", "token", "ags", "nrps"}
