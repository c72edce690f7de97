"""Kit ``lti-1.3-platform`` (``lti_platform`` says what it covers and its options), first
part: ``KIT``, the kit's tool and the launch it drives, and the checks of the platform's JWKS,
the third-party login, the authentication response and id_token, the authentication requests
a platform must refuse, and service tokens (RFC 7523). ``lti_platform_services`` uses the
launch and token helpers here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import httpx
import jwt

from ..kit import Fail, Kit, Session, Skip
from .lti_common import (
    ASSERTION_TYPE,
    C_AGS,
    C_NRPS,
    LTI,
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
