"""Kit ``lti-1.3-platform``: the kit plays an LTI 1.3 tool against the vendor's platform.

Over 600 lines because: one check per requirement of the OIDC launch, the id_token, the
token endpoint and the two services, each a few lines, kept in one list so the ids read in
order; what both LTI kits share lives in ``lti_common``.

What it covers: the platform's JWKS (kids, usable RSA keys, no private parts), the OIDC
third-party initiated login and authentication response (1EdTech Security Framework 1.0
5.1.1; LTI 1.3 Core 5.3-5.4 claims; signature against the JWKS; nonce and state round
trip; authentication requests a platform must refuse), service tokens (Security Framework
4.1, RFC 7523: a right assertion accepted; wrong signature, audience, expiry, reused jti,
unknown key or client refused; key rotation), AGS 2.0 (line items list/create/get/put/
delete, filters, paging, scores, results, media types, scopes) and NRPS 2.0 (membership
container, paging with Link rel=next, role filter).

Options (``--option KEY=VALUE``):

- ``issuer``, ``auth_url``, ``token_url``, ``jwks_url`` (required): the platform's.
- ``client_id``, ``deployment_id`` (required): what the platform gave the kit's tool.
- How a launch starts: ``launch_url`` (the kit calls it, POSTing ``launch_body`` when given,
  with the target's client credentials as a bearer token when given) answering a redirect to
  the tool's login URL, a form to it, or JSON ``{"login_url": ...}``; or
  ``login_initiation_url``, a ready third-party login URL (with its query).
- ``port``: the kit's tool server port (default: a free one), ``bind`` (default 127.0.0.1),
  ``public_url`` (its URL as the platform sees it, default ``http://bind:port``). The platform must know the
  kit's tool as: login URL ``{base}/login``, redirect URI ``{base}/launch``, JWKS
  ``{base}/jwks`` (signing key ``--tool-key-file`` or one made for the run).
- ``lineitems_url``, ``memberships_url``: the services, when the launch does not name them.
- ``score_user_id``: the userId scores are posted for (default: the launch's sub).
- ``openid_configuration_url``: the platform's OpenID configuration (Dynamic Registration
  1.0 3.3); its checks are skipped without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import jwt

from ..kit import Fail, Kit, Session, Skip
from .lti_common import (
    ASSERTION_TYPE,
    C_AGS,
    C_NRPS,
    LINEITEM,
    LINEITEMS,
    LTI,
    MEMBERSHIPS,
    RESULTS,
    ROLE,
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READ,
    SCOPE_NRPS,
    SCOPE_RESULT,
    SCOPE_SCORE,
    KitKey,
    Received,
    decode_unverified,
    forms,
    json_answer,
    key_from_jwks,
    kit_client,
    load_key,
    need,
    new_id,
    now,
    option,
    query_of,
    start_server,
    unsigned,
)

SF = "1EdTech Security Framework 1.0"
CORE = "LTI 1.3 Core"
AGS = "LTI AGS 2.0"
NRPS = "LTI NRPS 2.0"
ALL_AGS = [SCOPE_LINEITEM, SCOPE_LINEITEM_READ, SCOPE_RESULT, SCOPE_SCORE]


KIT = Kit(
    "lti-1.3-platform", "LTI 1.3 platform: launch, id_token, service tokens, AGS, NRPS", "LTI 1.3 Core / LTI Advantage",
    client=kit_client,
    writes="creates line items (tag kit-*) in the launch's context, posts scores for the launched user, and deletes one line item it made",
)


# --- setup: the kit's tool -----------------------------------------------------------------


def _setup(s: Session) -> None:
    t = s.target
    for name in ("issuer", "auth_url", "token_url", "jwks_url", "client_id", "deployment_id"):
        need(t, name)
    if not option(t, "launch_url") and not option(t, "login_initiation_url"):
        raise Fail("this kit needs --option launch_url=... or --option login_initiation_url=...")
    key = load_key(t)
    extra: list[KitKey] = []

    def handler(req: Received) -> tuple[int, dict[str, str], bytes]:
        if req.path == "/jwks":
            return json_answer({"keys": [key.jwk, *(k.jwk for k in extra)]})
        return 200, {"Content-Type": "text/plain"}, b"conformance kit tool: recorded"

    srv = start_server(t, handler)
    s.state.update(srv=srv, key=key, extra_keys=extra, run=new_id()[:8])


def _teardown(s: Session) -> None:
    if s.state.get("srv") is not None:
        s.state["srv"].stop()


KIT.setup, KIT.teardown = _setup, _teardown


def _base(s: Session) -> str:
    if "srv" not in s.state:
        raise Skip("the kit's tool server is not running (setup failed)")
    return s.state["srv"].base


def _o(s: Session, name: str) -> str:
    return need(s.target, name)


# --- the launch ----------------------------------------------------------------------------


def _bearer(s: Session) -> dict[str, str]:
    t = s.target
    if not (t.client_id and t.client_secret):
        return {}
    if "api_token" not in s.state:
        r = s.post(t.token_url or f"{t.base_url.rstrip('/')}/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(t.client_id, t.client_secret))
        if r.status_code != 200:
            raise Fail(f"the target's client credentials got no token: HTTP {r.status_code}")
        s.state["api_token"] = r.json().get("access_token", "")
    return {"Authorization": f"Bearer {s.state['api_token']}"}


def _login(s: Session) -> dict[str, str]:
    """The platform's third-party initiated login to the kit's tool (Security Framework 5.1.1.1)."""
    if "login" in s.state:
        if isinstance(s.state["login"], str):
            raise Fail(s.state["login"])
        return s.state["login"]
    try:
        s.state["login"] = _start_launch(s)
    except (Fail, Skip) as exc:
        s.state["login"] = str(exc)
        raise
    return s.state["login"]


def _start_launch(s: Session) -> dict[str, str]:
    fixed = option(s.target, "login_initiation_url")
    if fixed:
        return query_of(fixed)
    url, body = _o(s, "launch_url"), option(s.target, "launch_body")
    r = s.post(url, json=json.loads(body), headers=_bearer(s)) if body else s.get(url, headers=_bearer(s))
    login = f"{_base(s)}/login"
    if r.status_code in (301, 302, 303, 307, 308):
        loc = urljoin(url, r.headers.get("location", ""))
        if loc.split("?")[0] == login:
            return query_of(loc)
    if r.status_code == 200:
        if "json" in r.headers.get("content-type", ""):
            found = r.json().get("login_url") if isinstance(r.json(), dict) else None
            if isinstance(found, str) and found.split("?")[0] == login:
                return query_of(found)
        for f in forms(r.text):
            if f.action.split("?")[0] == login:
                return {**query_of(f.action), **f.hidden}
    raise Fail(f"the launch did not reach the kit's login initiation URL {login}: HTTP {r.status_code}")


def _auth_params(s: Session, **over: Any) -> dict[str, str]:
    login = _login(s)
    p = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
         "client_id": _o(s, "client_id"), "redirect_uri": f"{_base(s)}/launch", "login_hint": login.get("login_hint", ""),
         "state": "kit-state-" + new_id()[:12], "nonce": "kit-nonce-" + new_id()[:16]}
    if login.get("lti_message_hint"):
        p["lti_message_hint"] = login["lti_message_hint"]
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def _authorize(s: Session, params: dict[str, str]) -> tuple[httpx.Response, dict[str, str] | None]:
    """The authentication request; the form-posted fields when the answer carries an id_token."""
    r = s.get(_o(s, "auth_url"), params=params)
    if r.status_code == 200:
        for f in forms(r.text):
            if "id_token" in f.hidden:
                return r, {**f.hidden, "_action": urljoin(str(r.request.url), f.action)}
    if r.status_code in (301, 302, 303, 307, 308):
        loc = r.headers.get("location", "")
        frag = dict(x.split("=", 1) for x in loc.partition("#")[2].split("&") if "=" in x)
        q = {**query_of(loc), **frag}
        if "id_token" in q:
            return r, {**q, "_action": loc.split("?")[0].split("#")[0]}
    return r, None


def _launch(s: Session) -> dict[str, Any]:
    """One valid launch, done once: the auth request, the answer, the id_token's header and claims."""
    if "launch" in s.state:
        if isinstance(s.state["launch"], str):
            raise Fail(s.state["launch"])
        return s.state["launch"]
    try:
        params = _auth_params(s)
        r, post = _authorize(s, params)
        if post is None:
            raise Fail(f"a valid authentication request got no id_token: HTTP {r.status_code} {r.text[:200]!r}")
        head, claims = decode_unverified(post["id_token"])
        s.state["launch"] = {"params": params, "post": post, "head": head, "claims": claims, "token": post["id_token"]}
    except (Fail, Skip) as exc:
        s.state["launch"] = str(exc)
        raise
    return s.state["launch"]


def _claims(s: Session) -> dict[str, Any]:
    return _launch(s)["claims"]


def _jwks(s: Session) -> dict[str, Any]:
    """The platform's key set, read after a launch (as a tool reads it: on an id_token's kid;
    a platform may make its first key when it first signs)."""
    if "jwks" not in s.state:
        try:
            _launch(s)
        except (Fail, Skip):
            pass  # the launch checks say why; the key set is judged on its own
        r = s.get(_o(s, "jwks_url"))
        try:
            s.state["jwks"] = (r.status_code, r.headers.get("content-type", ""), r.json())
        except ValueError:
            s.state["jwks"] = (r.status_code, r.headers.get("content-type", ""), None)
    status, _, doc = s.state["jwks"]
    if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise Fail(f"the JWKS URL answered HTTP {status} without a keys array")
    return doc


# --- JWKS (Security Framework 6.3) -----------------------------------------------------------


@KIT.check("LTI-PLAT-JWKS-001", f"{SF} 6.3 / RFC 7517 5", "The JWKS URL answers 200 with a JSON key set (a keys array)")
def jwks_doc(s: Session) -> None:
    if not _jwks(s)["keys"]:
        raise Fail("the key set is empty")


@KIT.check("LTI-PLAT-JWKS-002", f"{SF} 6.3 (kid)", "Every key has a kid, unique in the set")
def jwks_kid(s: Session) -> None:
    kids = [k.get("kid") for k in _jwks(s)["keys"] if isinstance(k, dict)]
    if not kids or any(not isinstance(k, str) or not k for k in kids) or len(set(kids)) != len(kids):
        raise Fail(f"kids: {kids}")


@KIT.check("LTI-PLAT-JWKS-003", f"{SF} 6.1 / RFC 7518 6.3", "Every RSA key is usable for RS256 signatures (n, e; use sig and alg RS256 when given)")
def jwks_usable(s: Session) -> None:
    for k in _jwks(s)["keys"]:
        if k.get("kty") != "RSA" or not k.get("n") or not k.get("e") or k.get("use", "sig") != "sig" or k.get("alg", "RS256") != "RS256":
            raise Fail(f"key {k.get('kid')!r} is not an RS256 signing key: kty {k.get('kty')!r}, use {k.get('use')!r}, alg {k.get('alg')!r}")
        try:
            jwt.PyJWK(k, algorithm="RS256")
        except jwt.PyJWKError as exc:
            raise Fail(f"key {k.get('kid')!r} cannot be loaded: {exc}") from None


@KIT.check("LTI-PLAT-JWKS-004", f"{SF} 6.3 / RFC 7518 6.3.2", "The JWKS publishes no private key material (d, p, q, dp, dq, qi)")
def jwks_public(s: Session) -> None:
    for k in _jwks(s)["keys"]:
        leaked = sorted({"d", "p", "q", "dp", "dq", "qi"} & set(k))
        if leaked:
            raise Fail(f"key {k.get('kid')!r} publishes {leaked}")


@KIT.check("LTI-PLAT-JWKS-005", "RFC 7517 8.5", "The JWKS is served as JSON (application/json or application/jwk-set+json)", required=False)
def jwks_type(s: Session) -> None:
    _jwks(s)
    ctype = s.state["jwks"][1]
    if "json" not in ctype:
        raise Fail(f"Content-Type {ctype!r}")


# --- the third-party initiated login (Security Framework 5.1.1.1) ---------------------------


def _login_param(id: str, description: str, test: Callable[[Session, dict[str, str]], str | None], required: bool = True) -> None:
    @KIT.check(id, f"{SF} 5.1.1.1 / {CORE} 4.1", description, required=required)
    def run(s: Session) -> None:
        problem = test(s, _login(s))
        if problem:
            raise Fail(problem)


_login_param("LTI-PLAT-LOGIN-001", "A launch reaches the tool's login initiation URL with iss, login_hint and target_link_uri",
             lambda s, p: None if all(p.get(k) for k in ("iss", "login_hint", "target_link_uri")) else f"parameters: {sorted(p)}")
_login_param("LTI-PLAT-LOGIN-002", "The login initiation's iss is the platform's issuer",
             lambda s, p: None if p.get("iss") == _o(s, "issuer") else f"iss {p.get('iss')!r}")
_login_param("LTI-PLAT-LOGIN-003", "The login initiation names the tool's client_id",
             lambda s, p: None if p.get("client_id") == _o(s, "client_id") else f"client_id {p.get('client_id')!r}", required=False)
_login_param("LTI-PLAT-LOGIN-004", "The login initiation names the deployment (lti_deployment_id)",
             lambda s, p: None if p.get("lti_deployment_id") == _o(s, "deployment_id") else f"lti_deployment_id {p.get('lti_deployment_id')!r}",
             required=False)
_login_param("LTI-PLAT-LOGIN-005", "The login initiation's target_link_uri is an http(s) URL",
             lambda s, p: None if str(p.get("target_link_uri", "")).startswith(("https://", "http://")) else f"target_link_uri {p.get('target_link_uri')!r}")


# --- the authentication response and the id_token -------------------------------------------


@KIT.check("LTI-PLAT-AUTH-001", f"{SF} 5.1.1.3 / OAuth 2.0 Form Post Response Mode", "A valid authentication request is answered by a form post of an id_token to the registered redirect_uri")
def auth_form_post(s: Session) -> None:
    post = _launch(s)["post"]
    if post["_action"].split("?")[0] != f"{_base(s)}/launch":
        raise Fail(f"the id_token is posted to {post['_action']!r}, not the redirect_uri")


@KIT.check("LTI-PLAT-AUTH-002", f"{SF} 5.1.1.3 / OIDC Core 3.1.2.5", "The state of the authentication request comes back unchanged")
def auth_state(s: Session) -> None:
    launch = _launch(s)
    if launch["post"].get("state") != launch["params"]["state"]:
        raise Fail(f"state {launch['post'].get('state')!r}, sent {launch['params']['state']!r}")


@KIT.check("LTI-PLAT-IDT-001", f"{SF} 5.1.2 / 6.3", "The id_token header is alg RS256 with a kid the platform's JWKS holds")
def idt_header(s: Session) -> None:
    head = _launch(s)["head"]
    if head.get("alg") != "RS256":
        raise Fail(f"alg {head.get('alg')!r}")
    if key_from_jwks(_jwks(s), head.get("kid")) is None or not head.get("kid"):
        raise Fail(f"kid {head.get('kid')!r} is not in the platform's JWKS")


@KIT.check("LTI-PLAT-IDT-002", f"{SF} 5.1.3 step 1", "The id_token's signature verifies with the JWKS key its kid names")
def idt_signature(s: Session) -> None:
    launch = _launch(s)
    key = key_from_jwks(_jwks(s), launch["head"].get("kid"))
    if key is None:
        raise Fail(f"no JWKS key with kid {launch['head'].get('kid')!r}")
    try:
        jwt.decode(launch["token"], key, algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False, "verify_iat": False})
    except jwt.InvalidTokenError as exc:
        raise Fail(f"the signature does not verify: {exc}") from None


def _claim_check(id: str, requirement: str, description: str, test: Callable[[Session, dict[str, Any]], str | None], required: bool = True) -> None:
    @KIT.check(id, requirement, description, required=required)
    def run(s: Session) -> None:
        problem = test(s, _claims(s))
        if problem:
            raise Fail(problem)


def _aud(s: Session, c: dict[str, Any]) -> str | None:
    aud: list[Any] = c["aud"] if isinstance(c.get("aud"), list) else [c.get("aud")]
    cid = _o(s, "client_id")
    if cid not in aud:
        return f"aud {c.get('aud')!r} does not hold the client_id {cid!r}"
    if (len(aud) > 1 or "azp" in c) and c.get("azp") != cid:
        return f"azp {c.get('azp')!r} (several audiences need azp = client_id)"
    return None


def _times(s: Session, c: dict[str, Any]) -> str | None:
    iat, exp = c.get("iat"), c.get("exp")
    if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
        return f"iat {iat!r}, exp {exp!r}"
    if iat > now() + 60 or exp <= now() or exp <= iat:
        return f"iat {iat} / exp {exp} against now {now()}"
    return None


def _ags_claim(s: Session, c: dict[str, Any]) -> str | None:
    a = c.get(C_AGS)
    if a is None:
        return None
    if not isinstance(a, dict) or not isinstance(a.get("scope"), list) or not set(a["scope"]) <= set(ALL_AGS):
        return f"AGS claim {a!r}"
    for k in ("lineitems", "lineitem"):
        if k in a and not str(a[k]).startswith(("https://", "http://")):
            return f"AGS {k} {a[k]!r} is not a URL"
    return None


def _nrps_claim(s: Session, c: dict[str, Any]) -> str | None:
    n = c.get(C_NRPS)
    if n is None:
        return None
    if not isinstance(n, dict) or not str(n.get("context_memberships_url", "")).startswith(("https://", "http://")):
        return f"NRPS claim {n!r}"
    if "2.0" not in (n.get("service_versions") or []):
        return f"service_versions {n.get('service_versions')!r} lacks 2.0"
    return None


def _context(s: Session, c: dict[str, Any]) -> str | None:
    ctx = c.get(LTI + "context")
    if ctx is None:
        return None
    if not isinstance(ctx, dict) or not isinstance(ctx.get("id"), str) or not ctx["id"] or len(ctx["id"]) > 255:
        return f"context {ctx!r}"
    if "type" in ctx and not isinstance(ctx["type"], list):
        return "context.type is not an array"
    return None


def _str(value: Any, limit: int = 255) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


_claim_check("LTI-PLAT-IDT-003", f"{SF} 5.1.2 / {CORE} 5.1.2", "iss is the platform's issuer",
             lambda s, c: None if c.get("iss") == _o(s, "issuer") else f"iss {c.get('iss')!r}")
_claim_check("LTI-PLAT-IDT-004", f"{SF} 5.1.2 (aud, azp)", "aud holds the tool's client_id (azp = client_id when several audiences)", _aud)
_claim_check("LTI-PLAT-IDT-005", f"{SF} 5.1.2 / 5.1.3 step 9", "nonce is the one of the authentication request",
             lambda s, c: None if c.get("nonce") == _launch(s)["params"]["nonce"] else f"nonce {c.get('nonce')!r}")
_claim_check("LTI-PLAT-IDT-006", f"{SF} 5.1.2 (iat, exp)", "iat is now and exp in the future, after iat", _times)
_claim_check("LTI-PLAT-IDT-007", f"{CORE} 5.3.6 (sub)", "sub, when present, is a non-empty string of at most 255 characters",
             lambda s, c: None if "sub" not in c or _str(c["sub"]) else f"sub {c.get('sub')!r}")
_claim_check("LTI-PLAT-IDT-008", f"{CORE} 5.3.1", "message_type is LtiResourceLinkRequest",
             lambda s, c: None if c.get(LTI + "message_type") == "LtiResourceLinkRequest" else f"message_type {c.get(LTI + 'message_type')!r}")
_claim_check("LTI-PLAT-IDT-009", f"{CORE} 5.3.2", "version is 1.3.0",
             lambda s, c: None if c.get(LTI + "version") == "1.3.0" else f"version {c.get(LTI + 'version')!r}")
_claim_check("LTI-PLAT-IDT-010", f"{CORE} 5.3.3", "deployment_id is the tool's deployment (at most 255 characters)",
             lambda s, c: None if _str(c.get(LTI + "deployment_id")) and c[LTI + "deployment_id"] == _o(s, "deployment_id")
             else f"deployment_id {c.get(LTI + 'deployment_id')!r}")
_claim_check("LTI-PLAT-IDT-011", f"{CORE} 5.3.4", "target_link_uri is the login initiation's target_link_uri",
             lambda s, c: None if c.get(LTI + "target_link_uri") == _login(s).get("target_link_uri")
             else f"target_link_uri {c.get(LTI + 'target_link_uri')!r}")
_claim_check("LTI-PLAT-IDT-012", f"{CORE} 5.3.5", "resource_link.id is a non-empty string of at most 255 characters",
             lambda s, c: None if isinstance(c.get(LTI + "resource_link"), dict) and _str(c[LTI + "resource_link"].get("id"))
             else f"resource_link {c.get(LTI + 'resource_link')!r}")
_claim_check("LTI-PLAT-IDT-013", f"{CORE} 5.3.7", "roles is an array of role URIs (strings)",
             lambda s, c: None if isinstance(c.get(LTI + "roles"), list) and all(isinstance(r, str) for r in c[LTI + "roles"])
             else f"roles {c.get(LTI + 'roles')!r}")
_claim_check("LTI-PLAT-IDT-014", f"{CORE} 5.4.1", "context, when present, has an id of at most 255 characters and a type array", _context)
_claim_check("LTI-PLAT-IDT-015", f"{AGS} 3.1", "The AGS endpoint claim, when present, grants AGS scopes and gives http(s) URLs", _ags_claim)
_claim_check("LTI-PLAT-IDT-016", f"{NRPS} 3.6.1.1", "The NRPS claim, when present, gives context_memberships_url and service_versions with 2.0", _nrps_claim)


@KIT.check("LTI-PLAT-IDT-017", f"{SF} 5.1.1.3", "Each authentication request gets its own id_token with its own nonce")
def idt_fresh(s: Session) -> None:
    _launch(s)
    params = _auth_params(s)
    r, post = _authorize(s, params)
    if post is None:
        raise Fail(f"a second valid authentication request got no id_token: HTTP {r.status_code}")
    if decode_unverified(post["id_token"])[1].get("nonce") != params["nonce"]:
        raise Fail("the second id_token does not carry the second request's nonce")


# --- authentication requests the platform must refuse (Security Framework 5.1.1.2) -----------


def _bad_auth(id: str, what: str, requirement: str, required: bool = True, **over: Any) -> None:
    @KIT.check(id, requirement, f"An authentication request with {what} gets no id_token", required=required)
    def run(s: Session) -> None:
        _launch(s)  # a valid request works: a refusal below means something
        r, post = _authorize(s, _auth_params(s, **over))
        if post is not None:
            raise Fail(f"the platform issued an id_token for a request with {what} (posted to {post['_action']!r})")


_bad_auth("LTI-PLAT-AUTH-BAD-001", "an unregistered redirect_uri", f"{SF} 5.1.1.2 / OIDC Core 3.1.2.1",
          redirect_uri="https://attacker.kit.example.org/launch")
_bad_auth("LTI-PLAT-AUTH-BAD-002", "response_type=code", f"{SF} 5.1.1.2", response_type="code")
_bad_auth("LTI-PLAT-AUTH-BAD-003", "a scope without openid", f"{SF} 5.1.1.2", scope="profile")
_bad_auth("LTI-PLAT-AUTH-BAD-004", "no nonce", f"{SF} 5.1.1.2 / OIDC Core 3.2.2.1", nonce=None)
_bad_auth("LTI-PLAT-AUTH-BAD-005", "an unknown client_id", f"{SF} 5.1.1.2", client_id="kit-unknown-client")
_bad_auth("LTI-PLAT-AUTH-BAD-006", "the login_hint of someone else", f"{SF} 5.1.1.2 (login_hint)", login_hint="kit-someone-else")
_bad_auth("LTI-PLAT-AUTH-BAD-007", "prompt=login", f"{SF} 5.1.1.2 (prompt=none)", required=False, prompt="login")
_bad_auth("LTI-PLAT-AUTH-BAD-008", "response_mode=query", f"{SF} 5.1.1.2 (response_mode=form_post)", required=False, response_mode="query")


# --- service tokens (Security Framework 4.1, RFC 7523) ----------------------------------------


def _assertion(s: Session, key: KitKey | None = None, *, kid: str | None | bool = True, sign: Callable[[dict[str, Any]], str] | None = None,
               **over: Any) -> str:
    cid = _o(s, "client_id")
    c: dict[str, Any] = {"iss": cid, "sub": cid, "aud": _o(s, "token_url"), "iat": now(), "exp": now() + 300, "jti": "kit-" + new_id()}
    c.update(over)
    c = {k: v for k, v in c.items() if v is not None}
    if sign is not None:
        return sign(c)
    return (key or s.state["key"]).sign(c, kid=kid)


def _token_request(s: Session, assertion: str, scopes: list[str], **over: str | None) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
            "scope": " ".join(scopes)}
    form.update(over)  # type: ignore[arg-type]
    return s.post(_o(s, "token_url"), data={k: v for k, v in form.items() if v is not None})


def _token(s: Session, scopes: list[str]) -> str:
    """An access token for ``scopes``, once per scope set."""
    cache = s.state.setdefault("tokens", {})
    k = " ".join(sorted(scopes))
    if k not in cache:
        r = _token_request(s, _assertion(s), scopes)
        body = r.json() if "json" in r.headers.get("content-type", "") else {}
        cache[k] = (r.status_code, body)
    status, body = cache[k]
    if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
        raise Fail(f"the token endpoint gave no access token for {k}: HTTP {status} {body!r}")
    return body["access_token"]


def _h(s: Session, scopes: list[str], **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(s, scopes)}", **more}


@KIT.check("LTI-PLAT-TOKEN-001", f"{SF} 4.1 / RFC 6749 5.1", "A right client assertion gets an access token (token_type Bearer, expires_in)")
def token_ok(s: Session) -> None:
    _token(s, ALL_AGS + [SCOPE_NRPS])
    status, body = s.state["tokens"][" ".join(sorted(ALL_AGS + [SCOPE_NRPS]))]
    if str(body.get("token_type", "")).lower() != "bearer" or not isinstance(body.get("expires_in"), (int, float)):
        raise Fail(f"token_type {body.get('token_type')!r}, expires_in {body.get('expires_in')!r}")


@KIT.check("LTI-PLAT-TOKEN-002", "RFC 6749 5.1 (scope)", "The granted scope is among the scopes asked for")
def token_scope(s: Session) -> None:
    _token(s, [SCOPE_NRPS])
    body = s.state["tokens"][SCOPE_NRPS][1]
    if "scope" in body and not set(str(body["scope"]).split()) <= {SCOPE_NRPS}:
        raise Fail(f"asked {SCOPE_NRPS}, granted {body['scope']!r}")


def _refused(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code in (400, 401) and not (isinstance(body, dict) and body.get("access_token")):
        return None
    return f"HTTP {r.status_code} {r.text[:200]!r}"


def _stranger(s: Session) -> KitKey:
    """A key the platform never saw (made once a run: RSA keys take a while to make)."""
    if "stranger" not in s.state:
        s.state["stranger"] = KitKey()
    return s.state["stranger"]


def _bad_token(id: str, what: str, requirement: str, make: Callable[[Session], httpx.Response], required: bool = True) -> None:
    @KIT.check(id, requirement, f"A token request with {what} is refused (400/401, no token)", required=required)
    def run(s: Session) -> None:
        _token(s, ALL_AGS + [SCOPE_NRPS])  # a right assertion works: a refusal below means something
        problem = _refused(make(s))
        if problem:
            raise Fail(f"the token endpoint did not refuse {what}: {problem}")


@KIT.check("LTI-PLAT-TOKEN-003", f"{SF} 6.3 (key rotation)", "An assertion signed by a new key the tool's JWKS now publishes (new kid) is accepted", required=False)
def token_rotation(s: Session) -> None:
    _token(s, ALL_AGS + [SCOPE_NRPS])
    new = KitKey()
    s.state["extra_keys"].append(new)
    r = _token_request(s, _assertion(s, new), [SCOPE_NRPS])
    if r.status_code != 200:
        raise Fail(f"an assertion with the tool's rotated key was refused: HTTP {r.status_code} {r.text[:200]!r}")


_bad_token("LTI-PLAT-TOKEN-004", "a signature by another key (right kid)", f"{SF} 4.1 / RFC 7523 3 (signature)",
           lambda s: _token_request(s, _assertion(s, _stranger(s), kid=s.state["key"].kid), [SCOPE_NRPS]))
_bad_token("LTI-PLAT-TOKEN-005", "an aud that is not the token endpoint", "RFC 7523 3 (aud)",
           lambda s: _token_request(s, _assertion(s, aud="https://elsewhere.kit.example.org/token"), [SCOPE_NRPS]))
_bad_token("LTI-PLAT-TOKEN-006", "an expired assertion", "RFC 7523 3 (exp)",
           lambda s: _token_request(s, _assertion(s, iat=now() - 7200, exp=now() - 3600), [SCOPE_NRPS]))


def _replay(s: Session) -> httpx.Response:
    a = _assertion(s)
    first = _token_request(s, a, [SCOPE_NRPS])
    if first.status_code != 200:
        raise Fail(f"the first use of the assertion was refused: HTTP {first.status_code}")
    return _token_request(s, a, [SCOPE_NRPS])


_bad_token("LTI-PLAT-TOKEN-007", "a jti already used (a replayed assertion)", "RFC 7523 3 (jti) / SF 4.1", _replay)
_bad_token("LTI-PLAT-TOKEN-008", "an iss and sub the platform does not know", "RFC 7523 3 (iss, sub)",
           lambda s: _token_request(s, _assertion(s, iss="kit-unknown-client", sub="kit-unknown-client"), [SCOPE_NRPS]))
_bad_token("LTI-PLAT-TOKEN-009", "sub other than the client_id", "RFC 7523 3 (sub)",
           lambda s: _token_request(s, _assertion(s, sub="kit-someone-else"), [SCOPE_NRPS]))
_bad_token("LTI-PLAT-TOKEN-010", "grant_type=password", "RFC 6749 4.4.2 / SF 4.1",
           lambda s: _token_request(s, _assertion(s), [SCOPE_NRPS], grant_type="password"))
_bad_token("LTI-PLAT-TOKEN-011", "no client_assertion_type", "RFC 7521 4.2 / SF 4.1",
           lambda s: _token_request(s, _assertion(s), [SCOPE_NRPS], client_assertion_type=None))
_bad_token("LTI-PLAT-TOKEN-012", "an unsigned assertion (alg none)", "RFC 7523 3 / RFC 8725 3.1",
           lambda s: _token_request(s, _assertion(s, sign=lambda c: unsigned(c, s.state["key"].kid)), [SCOPE_NRPS]))
_bad_token("LTI-PLAT-TOKEN-013", "a kid the tool's JWKS does not hold", f"{SF} 6.3",
           lambda s: _token_request(s, _assertion(s, _stranger(s), kid="kit-unknown-" + new_id()[:8]), [SCOPE_NRPS]))
_bad_token("LTI-PLAT-TOKEN-014", "no exp claim", "RFC 7523 3 (exp)",
           lambda s: _token_request(s, _assertion(s, exp=None), [SCOPE_NRPS]))


@KIT.check("LTI-PLAT-TOKEN-015", "RFC 6749 5.2", "A refused token request answers a JSON error with an RFC 6749 error code")
def token_error_shape(s: Session) -> None:
    r = _token_request(s, _assertion(s, aud="https://elsewhere.kit.example.org/token"), [SCOPE_NRPS])
    try:
        body = r.json()
    except ValueError:
        raise Fail(f"the error is not JSON: HTTP {r.status_code} {r.text[:100]!r}") from None
    if not isinstance(body, dict) or body.get("error") not in ("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                                                               "unsupported_grant_type", "invalid_scope"):
        raise Fail(f"error body {body!r}")


@KIT.check("LTI-PLAT-TOKEN-016", "RFC 6749 5.1 (Cache-Control)", "Token responses are not cacheable (Cache-Control: no-store)", required=False)
def token_no_store(s: Session) -> None:
    r = _token_request(s, _assertion(s), [SCOPE_NRPS])
    if "no-store" not in r.headers.get("cache-control", ""):
        raise Fail(f"Cache-Control {r.headers.get('cache-control')!r}")


# --- AGS 2.0 --------------------------------------------------------------------------------


def _lineitems_url(s: Session) -> str:
    url = option(s.target, "lineitems_url")
    if url:
        return url
    claim = _claims(s).get(C_AGS)
    if not isinstance(claim, dict) or not claim.get("lineitems"):
        raise Skip("the launch carries no AGS lineitems URL (give --option lineitems_url=...)")
    return claim["lineitems"]


def _user(s: Session) -> str:
    uid = option(s.target, "score_user_id") or _claims(s).get("sub")
    if not uid:
        raise Skip("no user to post scores for (an anonymous launch: give --option score_user_id=...)")
    return uid


def _with_query(url: str, **q: Any) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(q)


def _below(url: str, segment: str, **q: Any) -> str:
    base, _, query = url.partition("?")
    out = base.rstrip("/") + "/" + segment + (f"?{query}" if query else "")
    return _with_query(out, **q) if q else out


def _create(s: Session, label: str, **extra: Any) -> httpx.Response:
    body = {"label": label, "scoreMaximum": 10, **extra}
    return s.post(_lineitems_url(s), content=json.dumps(body), headers=_h(s, [SCOPE_LINEITEM], **{"Content-Type": LINEITEM, "Accept": LINEITEM}))


def _items(s: Session) -> list[dict[str, Any]]:
    """Two line items the kit made (one tagged, one with a resourceId), once."""
    if "items" not in s.state:
        run, made = s.state["run"], []
        for n, extra in enumerate(({"tag": f"kit-tag-{run}", "resourceId": f"kit-res-{run}"}, {"tag": f"kit-other-{run}"})):
            r = _create(s, f"Kit item {n + 1}", **extra)
            if r.status_code not in (200, 201):
                s.state["items"] = f"creating a line item answered HTTP {r.status_code} {r.text[:200]!r}"
                break
            made.append(r.json())
        else:
            s.state["items"] = made
    if isinstance(s.state["items"], str):
        raise Fail(s.state["items"])
    return s.state["items"]


def _ctype(r: httpx.Response) -> str:
    return r.headers.get("content-type", "").split(";")[0].strip()


def _status(r: httpx.Response, *ok: int) -> None:
    if r.status_code not in ok:
        raise Fail(f"{r.request.method} {r.request.url}: HTTP {r.status_code} {r.text[:200]!r}")


@KIT.check("LTI-PLAT-AGS-001", f"{AGS} 3.2.4", "GET on the line item container answers a JSON array as application/vnd.ims.lis.v2.lineitemcontainer+json")
def ags_container(s: Session) -> None:
    r = s.get(_lineitems_url(s), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
    _status(r, 200)
    if _ctype(r) != LINEITEMS or not isinstance(r.json(), list):
        raise Fail(f"Content-Type {_ctype(r)!r}, body {r.text[:100]!r}")


@KIT.check("LTI-PLAT-AGS-002", f"{AGS} 3.2.5", "POSTing a line item creates it: 201/200 with its id (a URL), label, scoreMaximum, tag and resourceId")
def ags_create(s: Session) -> None:
    item, run = _items(s)[0], s.state["run"]
    if not str(item.get("id", "")).startswith(("https://", "http://")):
        raise Fail(f"id {item.get('id')!r}")
    want = {"label": "Kit item 1", "scoreMaximum": 10, "tag": f"kit-tag-{run}", "resourceId": f"kit-res-{run}"}
    wrong = {k: item.get(k) for k, v in want.items() if item.get(k) != v}
    if wrong:
        raise Fail(f"the created line item differs: {wrong}")


@KIT.check("LTI-PLAT-AGS-003", f"{AGS} 3.2.7", "GET on a line item's id answers it as application/vnd.ims.lis.v2.lineitem+json")
def ags_get(s: Session) -> None:
    item = _items(s)[0]
    r = s.get(item["id"], headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEM))
    _status(r, 200)
    if _ctype(r) != LINEITEM or r.json().get("label") != item["label"]:
        raise Fail(f"Content-Type {_ctype(r)!r}, label {r.json().get('label')!r}")


@KIT.check("LTI-PLAT-AGS-004", f"{AGS} 3.2.8", "PUT on a line item updates it, and a GET shows the update")
def ags_put(s: Session) -> None:
    item = _items(s)[0]
    body = {**{k: v for k, v in item.items()}, "label": "Kit item 1 renamed"}
    r = s.put(item["id"], content=json.dumps(body), headers=_h(s, [SCOPE_LINEITEM], **{"Content-Type": LINEITEM, "Accept": LINEITEM}))
    _status(r, 200)
    again = s.get(item["id"], headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEM))
    if again.json().get("label") != "Kit item 1 renamed":
        raise Fail(f"after PUT the label is {again.json().get('label')!r}")
    item["label"] = "Kit item 1 renamed"


@KIT.check("LTI-PLAT-AGS-005", f"{AGS} 3.2.4 (tag, resource_id)", "The container filters by tag and by resource_id")
def ags_filter(s: Session) -> None:
    first, run = _items(s)[0], s.state["run"]
    for q in ({"tag": f"kit-tag-{run}"}, {"resource_id": f"kit-res-{run}"}):
        r = s.get(_with_query(_lineitems_url(s), **q), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
        _status(r, 200)
        ids = [i.get("id") for i in r.json()]
        if ids != [first["id"]]:
            raise Fail(f"filter {q} answered {ids}, want only {first['id']}")


@KIT.check("LTI-PLAT-AGS-006", f"{AGS} 3.2.4.1 (paging)", "limit=1 pages the container with Link rel=next; the next page holds another line item")
def ags_paging(s: Session) -> None:
    _items(s)
    r = s.get(_with_query(_lineitems_url(s), limit=1), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
    _status(r, 200)
    nxt = r.links.get("next", {}).get("url")
    if len(r.json()) != 1 or not nxt:
        raise Fail(f"limit=1 answered {len(r.json())} items, Link {r.headers.get('link')!r}")
    r2 = s.get(urljoin(str(r.request.url), nxt), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
    _status(r2, 200)
    if not r2.json() or r2.json()[0].get("id") == r.json()[0].get("id"):
        raise Fail("the next page repeats the first page's line item")


def _bad_item(id: str, what: str, body: dict[str, Any]) -> None:
    @KIT.check(id, f"{AGS} 3.2", f"A line item with {what} is refused (4xx)")
    def run(s: Session) -> None:
        _items(s)
        r = s.post(_lineitems_url(s), content=json.dumps(body), headers=_h(s, [SCOPE_LINEITEM], **{"Content-Type": LINEITEM}))
        if not 400 <= r.status_code < 500:
            raise Fail(f"HTTP {r.status_code} {r.text[:200]!r}")


_bad_item("LTI-PLAT-AGS-007", "no label", {"scoreMaximum": 10})
_bad_item("LTI-PLAT-AGS-008", "scoreMaximum 0", {"label": "Kit zero", "scoreMaximum": 0})


def _ts(delta: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).isoformat(timespec="microseconds")


def _score(s: Session, item: dict[str, Any], body: dict[str, Any], content_type: str = "application/vnd.ims.lis.v1.score+json") -> httpx.Response:
    return s.post(_below(item["id"], "scores"), content=json.dumps(body), headers=_h(s, [SCOPE_SCORE], **{"Content-Type": content_type}))


def _good_score(s: Session, given: float = 7, delta: float = 0.0) -> dict[str, Any]:
    return {"userId": _user(s), "scoreGiven": given, "scoreMaximum": 10, "activityProgress": "Completed",
            "gradingProgress": "FullyGraded", "timestamp": _ts(delta), "comment": "conformance kit"}


def _scored(s: Session) -> dict[str, Any]:
    item = _items(s)[0]
    if "scored" not in s.state:
        r = _score(s, item, _good_score(s))
        s.state["scored"] = r.status_code
        if r.status_code not in (200, 201, 202, 204):
            raise Fail(f"a valid score answered HTTP {r.status_code} {r.text[:200]!r}")
    elif s.state["scored"] not in (200, 201, 202, 204):
        raise Fail(f"a valid score answered HTTP {s.state['scored']}")
    return item


def _results(s: Session, item: dict[str, Any], **q: Any) -> httpx.Response:
    return s.get(_below(item["id"], "results", **q), headers=_h(s, [SCOPE_RESULT], Accept=RESULTS))


@KIT.check("LTI-PLAT-AGS-009", f"{AGS} 3.4", "A valid score POSTed to {lineitem}/scores is accepted (200/201/202/204)")
def ags_score(s: Session) -> None:
    _scored(s)


@KIT.check("LTI-PLAT-AGS-010", f"{AGS} 3.3", "GET {lineitem}/results answers application/vnd.ims.lis.v2.resultcontainer+json with the user's result")
def ags_results(s: Session) -> None:
    item = _scored(s)
    r = _results(s, item)
    _status(r, 200)
    if _ctype(r) != RESULTS:
        raise Fail(f"Content-Type {_ctype(r)!r}")
    mine = [x for x in r.json() if x.get("userId") == _user(s)]
    if not mine:
        raise Fail(f"no result for {_user(s)}")
    res = mine[0]
    if not isinstance(res.get("resultScore"), (int, float)) or abs(res["resultScore"] / float(res.get("resultMaximum") or 1) - 0.7) > 1e-6:
        raise Fail(f"result {res!r} is not 7 of 10")
    if res.get("scoreOf") not in (None, item["id"]):
        raise Fail(f"scoreOf {res.get('scoreOf')!r}")


@KIT.check("LTI-PLAT-AGS-011", f"{AGS} 3.3.4 (user_id)", "results?user_id= answers only that user's result")
def ags_results_user(s: Session) -> None:
    item = _scored(s)
    r = _results(s, item, user_id=_user(s))
    _status(r, 200)
    if [x.get("userId") for x in r.json()] != [_user(s)]:
        raise Fail(f"user_id filter answered {[x.get('userId') for x in r.json()]}")


def _bad_score(id: str, what: str, change: Callable[[dict[str, Any]], dict[str, Any]], requirement: str) -> None:
    @KIT.check(id, requirement, f"A score with {what} is refused (4xx)")
    def run(s: Session) -> None:
        item = _scored(s)
        r = _score(s, item, change(_good_score(s, delta=1)))
        if not 400 <= r.status_code < 500:
            raise Fail(f"HTTP {r.status_code} {r.text[:200]!r}")


def _without(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda b: {k: v for k, v in b.items() if k not in keys}


_bad_score("LTI-PLAT-AGS-012", "no timestamp", _without("timestamp"), f"{AGS} 3.4.4")
_bad_score("LTI-PLAT-AGS-013", "no userId", _without("userId"), f"{AGS} 3.4.1")
_bad_score("LTI-PLAT-AGS-014", "activityProgress 'Finished'", lambda b: {**b, "activityProgress": "Finished"}, f"{AGS} 3.4.5")
_bad_score("LTI-PLAT-AGS-015", "gradingProgress 'Done'", lambda b: {**b, "gradingProgress": "Done"}, f"{AGS} 3.4.6")
_bad_score("LTI-PLAT-AGS-016", "scoreGiven but no scoreMaximum", _without("scoreMaximum"), f"{AGS} 3.4.2-3.4.3")


@KIT.check("LTI-PLAT-AGS-017", f"{AGS} 3.4 (timestamp order)", "A score older than the one on record does not replace it")
def ags_older(s: Session) -> None:
    item = _scored(s)
    newer = _score(s, item, _good_score(s, given=9, delta=5))
    _status(newer, 200, 201, 202, 204)
    _score(s, item, _good_score(s, given=1, delta=-3600))
    r = _results(s, item, user_id=_user(s))
    _status(r, 200)
    got = [x.get("resultScore") for x in r.json()]
    if not got or abs(float(got[0]) / float(r.json()[0].get("resultMaximum") or 1) - 0.9) > 1e-6:
        raise Fail(f"after an older score the result is {r.json()!r}, want 9 of 10")


@KIT.check("LTI-PLAT-AGS-018", f"{AGS} 3.1 (scopes) / {SF} 4.1", "A token with only lineitem.readonly cannot create a line item (401/403)")
def ags_readonly(s: Session) -> None:
    _items(s)
    r = s.post(_lineitems_url(s), content=json.dumps({"label": "Kit forbidden", "scoreMaximum": 1}),
               headers=_h(s, [SCOPE_LINEITEM_READ], **{"Content-Type": LINEITEM}))
    if r.status_code not in (401, 403):
        raise Fail(f"HTTP {r.status_code} {r.text[:200]!r}")


@KIT.check("LTI-PLAT-AGS-019", f"{AGS} 3.1 (scopes)", "A token with only the score scope cannot read results (401/403)")
def ags_score_only(s: Session) -> None:
    item = _scored(s)
    r = s.get(_below(item["id"], "results"), headers=_h(s, [SCOPE_SCORE], Accept=RESULTS))
    if r.status_code not in (401, 403):
        raise Fail(f"HTTP {r.status_code}")


@KIT.check("LTI-PLAT-AGS-020", f"{AGS} 3.2 / RFC 6750 3.1", "The container refuses a call without a token, or with a made-up one (401)")
def ags_no_token(s: Session) -> None:
    url = _lineitems_url(s)
    for headers in ({}, {"Authorization": "Bearer kit-made-up-token"}):
        r = s.get(url, headers={"Accept": LINEITEMS, **headers})
        if r.status_code != 401:
            raise Fail(f"{'no token' if not headers else 'a made-up token'}: HTTP {r.status_code}")


@KIT.check("LTI-PLAT-AGS-021", f"{AGS} 3.2.9", "DELETE on a line item removes it: 2xx, then GET answers 404")
def ags_delete(s: Session) -> None:
    r = _create(s, "Kit item to delete", tag=f"kit-delete-{s.state['run']}")
    _status(r, 200, 201)
    url = r.json()["id"]
    d = s.delete(url, headers=_h(s, [SCOPE_LINEITEM]))
    _status(d, 200, 202, 204)
    g = s.get(url, headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEM))
    if g.status_code != 404:
        raise Fail(f"GET after DELETE: HTTP {g.status_code}")


@KIT.check("LTI-PLAT-AGS-022", f"{AGS} 3.4 (media type)", "A score sent as text/plain is refused (415 or 400)", required=False)
def ags_score_type(s: Session) -> None:
    item = _scored(s)
    r = _score(s, item, _good_score(s, delta=2), content_type="text/plain")
    if r.status_code not in (400, 406, 415):
        raise Fail(f"HTTP {r.status_code}")


# --- NRPS 2.0 -------------------------------------------------------------------------------


def _members_url(s: Session) -> str:
    url = option(s.target, "memberships_url")
    if url:
        return url
    claim = _claims(s).get(C_NRPS)
    if not isinstance(claim, dict) or not claim.get("context_memberships_url"):
        raise Skip("the launch carries no NRPS context_memberships_url (give --option memberships_url=...)")
    return claim["context_memberships_url"]


def _nrps(s: Session, url: str | None = None, token_scopes: list[str] | None = None) -> httpx.Response:
    return s.get(url or _members_url(s), headers=_h(s, token_scopes or [SCOPE_NRPS], Accept=MEMBERSHIPS))


def _all_members(s: Session) -> list[dict[str, Any]]:
    if "members" not in s.state:
        r = _nrps(s)
        _status(r, 200)
        members, url, seen = list(r.json().get("members") or []), r.links.get("next", {}).get("url"), 0
        while url and seen < 50:
            r = _nrps(s, urljoin(str(r.request.url), url))
            _status(r, 200)
            members += r.json().get("members") or []
            url, seen = r.links.get("next", {}).get("url"), seen + 1
        s.state["members"] = members
    return s.state["members"]


@KIT.check("LTI-PLAT-NRPS-001", f"{NRPS} 2.2", "The membership container answers 200 as application/vnd.ims.lti-nrps.v2.membershipcontainer+json")
def nrps_container(s: Session) -> None:
    r = _nrps(s)
    _status(r, 200)
    if _ctype(r) != MEMBERSHIPS:
        raise Fail(f"Content-Type {_ctype(r)!r}")


@KIT.check("LTI-PLAT-NRPS-002", f"{NRPS} 2.2", "The container has id, context.id and a members array")
def nrps_shape(s: Session) -> None:
    body = _nrps(s).json()
    if not isinstance(body, dict) or not body.get("id") or not isinstance(body.get("context"), dict) or not body["context"].get("id") \
            or not isinstance(body.get("members"), list):
        raise Fail(f"container {str(body)[:200]}")


@KIT.check("LTI-PLAT-NRPS-003", f"{NRPS} 2.2 / 2.3", "Every member has user_id, a roles array of strings and a valid status")
def nrps_members(s: Session) -> None:
    for m in _all_members(s):
        if not _str(m.get("user_id")) or not isinstance(m.get("roles"), list) or not all(isinstance(r, str) for r in m["roles"]):
            raise Fail(f"member {m!r}")
        if m.get("status", "Active") not in ("Active", "Inactive", "Deleted"):
            raise Fail(f"status {m.get('status')!r}")


@KIT.check("LTI-PLAT-NRPS-004", f"{NRPS} 2.3 / {CORE} 5.3.6", "The launched user is a member, under the same user_id as the id_token's sub")
def nrps_launched(s: Session) -> None:
    sub = _claims(s).get("sub")
    if not sub:
        raise Skip("an anonymous launch: no sub to find")
    if sub not in [m.get("user_id") for m in _all_members(s)]:
        raise Fail(f"sub {sub!r} is not among the members")


@KIT.check("LTI-PLAT-NRPS-005", f"{NRPS} 2.4.2 (paging)", "limit=1 pages the membership with Link rel=next, and the pages together are the whole membership")
def nrps_paging(s: Session) -> None:
    everyone = _all_members(s)
    if len(everyone) < 2:
        raise Skip("the context has fewer than two members: nothing to page")
    r = _nrps(s, _with_query(_members_url(s), limit=1))
    _status(r, 200)
    got, url, hops = list(r.json().get("members") or []), r.links.get("next", {}).get("url"), 0
    if len(got) != 1 or not url:
        raise Fail(f"limit=1 answered {len(got)} members with Link {r.headers.get('link')!r}")
    while url and hops < len(everyone) + 2:
        r = _nrps(s, urljoin(str(r.request.url), url))
        _status(r, 200)
        got += r.json().get("members") or []
        url, hops = r.links.get("next", {}).get("url"), hops + 1
    if sorted(str(m.get("user_id")) for m in got) != sorted(str(m.get("user_id")) for m in everyone):
        raise Fail(f"paged {len(got)} members, the whole membership has {len(everyone)}")


@KIT.check("LTI-PLAT-NRPS-006", f"{NRPS} 2.4.1 (role)", "role=Learner answers only members holding the Learner role")
def nrps_role(s: Session) -> None:
    learner = ROLE + "Learner"
    if not any(learner in m.get("roles", []) for m in _all_members(s)):
        raise Skip("no learner in the context")
    r = _nrps(s, _with_query(_members_url(s), role=learner))
    _status(r, 200)
    members = r.json().get("members") or []
    if not members or any(learner not in m.get("roles", []) and "Learner" not in m.get("roles", []) for m in members):
        raise Fail(f"role filter answered roles {[m.get('roles') for m in members]}")


@KIT.check("LTI-PLAT-NRPS-007", f"{NRPS} 2.1 / {SF} 4.1", "Memberships are refused without a token, and with a token lacking the NRPS scope (401/403)")
def nrps_scope(s: Session) -> None:
    url = _members_url(s)
    r = s.get(url, headers={"Accept": MEMBERSHIPS})
    if r.status_code != 401:
        raise Fail(f"no token: HTTP {r.status_code}")
    r = _nrps(s, url, token_scopes=[SCOPE_SCORE])
    if r.status_code not in (401, 403):
        raise Fail(f"a score-only token: HTTP {r.status_code}")



# --- the platform's OpenID configuration (LTI Dynamic Registration 1.0 3.3) -------------------


def _openid(s: Session) -> dict[str, Any]:
    url = option(s.target, "openid_configuration_url")
    if not url:
        raise Skip("no openid_configuration_url option")
    if "openid" not in s.state:
        r = s.get(url)
        try:
            s.state["openid"] = r.json() if r.status_code == 200 else f"HTTP {r.status_code}"
        except ValueError:
            s.state["openid"] = "not JSON"
    if not isinstance(s.state["openid"], dict):
        raise Fail(f"the OpenID configuration answered {s.state['openid']}")
    return s.state["openid"]


DR = "LTI Dynamic Registration 1.0 3.3 / OpenID Connect Discovery 3"


@KIT.check("LTI-PLAT-CONF-001", DR, "The OpenID configuration names the platform's issuer, and the same endpoints and JWKS the kit was given")
def conf_endpoints(s: Session) -> None:
    c = _openid(s)
    want = {"issuer": _o(s, "issuer"), "authorization_endpoint": _o(s, "auth_url"), "token_endpoint": _o(s, "token_url"),
            "jwks_uri": _o(s, "jwks_url")}
    wrong = {k: c.get(k) for k, v in want.items() if c.get(k) != v}
    if wrong:
        raise Fail(f"differs from the options: {wrong}")


@KIT.check("LTI-PLAT-CONF-002", DR, "It offers private_key_jwt client authentication and RS256 for it and for id_tokens")
def conf_algs(s: Session) -> None:
    c = _openid(s)
    if "private_key_jwt" not in (c.get("token_endpoint_auth_methods_supported") or []):
        raise Fail(f"token_endpoint_auth_methods_supported {c.get('token_endpoint_auth_methods_supported')!r}")
    for k in ("token_endpoint_auth_signing_alg_values_supported", "id_token_signing_alg_values_supported"):
        if "RS256" not in (c.get(k) or []):
            raise Fail(f"{k} {c.get(k)!r}")


@KIT.check("LTI-PLAT-CONF-003", DR, "It supports response type id_token and the openid scope")
def conf_types(s: Session) -> None:
    c = _openid(s)
    if "id_token" not in (c.get("response_types_supported") or []) or "openid" not in (c.get("scopes_supported") or []):
        raise Fail(f"response_types_supported {c.get('response_types_supported')!r}, scopes_supported {c.get('scopes_supported')!r}")


@KIT.check("LTI-PLAT-CONF-004", DR, "It carries the LTI platform configuration with LtiResourceLinkRequest among messages_supported")
def conf_lti(s: Session) -> None:
    lti = _openid(s).get("https://purl.imsglobal.org/spec/lti-platform-configuration")
    if not isinstance(lti, dict) or not lti.get("product_family_code"):
        raise Fail(f"lti-platform-configuration {lti!r}")
    types = [m.get("type") for m in lti.get("messages_supported") or [] if isinstance(m, dict)]
    if "LtiResourceLinkRequest" not in types:
        raise Fail(f"messages_supported {types}")


for _check in KIT.checks:  # the group a check belongs to, from its id: login, launch, bad, dl, token, ags, nrps, ...
    _check.tags = (*_check.tags, _check.id.split("-")[2].lower())
