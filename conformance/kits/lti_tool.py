"""Kit ``lti-1.3-tool``: the kit plays an LTI 1.3 platform and launches the vendor's tool.

Over 600 lines because: one check per certification-guide case (login, valid launches,
known-bad payloads, deep linking, services), each a few lines, kept in one list so the ids
read in order; the shared machinery lives in ``lti_common`` and ``lti_mock_platform``.

What it covers: LTI 1.3 Core, the 1EdTech Security Framework 1.0 (third-party initiated
login, id_token validation), the LTI Advantage Conformance Certification Guide's tool tests
(valid instructor and learner launches with role variants, the known-bad payloads), Deep
Linking 2.0 (the tool's signed response) and the tool's AGS 2.0 / NRPS 2.0 calls against the
kit's own platform endpoints.

Options (``--option KEY=VALUE``):

- ``login_url`` (required): the tool's OIDC login initiation URL.
- ``launch_url`` (required): the tool's launch URL (the target_link_uri of resource links).
- ``redirect_uris``: the redirect URIs the tool registered (comma list; default launch_url).
- ``deep_link_url``: where deep linking requests go (default launch_url; ``none`` skips DL).
- ``client_id``, ``deployment_id`` (required): what the kit's platform gave the tool.
- ``tool_jwks_url``: the tool's JWKS (checks its deep linking responses and token assertions).
- ``port``: the kit's own server port (default: a free one), ``bind`` (default 127.0.0.1),
  ``public_url`` (its URL as the tool sees it, default ``http://bind:port``); ``issuer``: the
  kit's issuer (default its base URL). The tool must trust ``{issuer}`` with JWKS ``{base}/jwks``, auth
  URL ``{base}/authorize`` and token URL ``{base}/token``. The signing key is
  ``--tool-key-file`` (PEM) or one made for the run.
- ``success``: what a tool's acceptance looks like: ``2xx3xx`` (default: any 2xx, or a 3xx
  that is not to the kit's return_url with ``lti_errormsg``) or ``2xx``. A refusal is any
  other answer: 4xx/5xx, a redirect to the launch_presentation return_url carrying
  ``lti_errormsg``/``lti_errorlog`` (LTI core 4.4.1), or a 2xx whose body holds
  ``reject_marker`` (an option: for tools that answer errors with 200 pages).
- ``anonymous``: ``allow`` (default; LTI core 5.3.6 lets a platform omit ``sub``) or ``refuse``.
- ``service_triggers``: a JSON list of ``{"method", "url", "body"}`` calls the kit makes (with
  the target's client credentials) after a learner launch, to make the tool use AGS/NRPS;
  ``services_wait`` (seconds, default 5) to wait for the tool's calls.
- ``context_id``, ``learner_sourcedid``, ``instructor_sourcedid``: the ids the launches carry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import jwt

from ..kit import Fail, Kit, Session, Skip
from .lti_common import (
    AGS_SCOPE,
    C_AGS,
    C_NRPS,
    DL,
    INST_ROLE,
    LINEITEM,
    LTI,
    ROLE,
    SCOPE_NRPS,
    SCORE,
    KitKey,
    KitServer,
    decode_unverified,
    forms,
    hs256_with_public_key,
    key_from_jwks,
    kit_client,
    load_key,
    need,
    new_id,
    now,
    option,
    options_list,
    query_of,
    start_server,
    unsigned,
)
from .lti_mock_platform import MockPlatform

SF = "1EdTech Security Framework 1.0"
CORE = "LTI 1.3 Core"
CERT = "LTI Advantage Certification Guide (tool)"
DROP = object()


KIT = Kit(
    "lti-1.3-tool", "LTI 1.3 tool: launches, known-bad payloads, deep linking, services", "LTI 1.3 Core / LTI Advantage",
    client=kit_client,
    writes="launches test users (kit-instructor-1, kit-learner-1) into a test context (kit-context-1) of the tool",
)


# --- setup: the kit's platform -----------------------------------------------------------


def _setup(s: Session) -> None:
    t = s.target
    for name in ("login_url", "launch_url", "client_id", "deployment_id"):
        need(t, name)
    key = load_key(t)
    ctx = option(t, "context_id", "kit-context-1")
    members = [
        {"status": "Active", "user_id": "kit-instructor-1", "roles": [ROLE + "Instructor"], "name": "Ida Instructor",
         "given_name": "Ida", "family_name": "Instructor", "lis_person_sourcedid": option(t, "instructor_sourcedid", "kit-instructor-1")},
        {"status": "Active", "user_id": "kit-learner-1", "roles": [ROLE + "Learner"], "name": "Lea Learner",
         "given_name": "Lea", "family_name": "Learner", "lis_person_sourcedid": option(t, "learner_sourcedid", "kit-learner-1")},
    ]
    platform = MockPlatform(key, members=members, page_size=1, tool_jwks_url=option(t, "tool_jwks_url"))
    srv = start_server(t, platform)
    platform.base = srv.base
    s.state.update(srv=srv, platform=platform, key=key, issuer=option(t, "issuer", srv.base), context=ctx)


def _teardown(s: Session) -> None:
    srv = s.state.get("srv")
    if srv is not None:
        srv.stop()


KIT.setup, KIT.teardown = _setup, _teardown


# --- the launch machinery ----------------------------------------------------------------


def _srv(s: Session) -> KitServer:
    srv = s.state.get("srv")
    if srv is None:
        raise Skip("the kit's platform server is not running (setup failed)")
    return srv


def _login_params(s: Session, **over: Any) -> dict[str, str]:
    t = s.target
    p = {"iss": s.state["issuer"], "login_hint": over.pop("login_hint", "kit-instructor-1"),
         "target_link_uri": need(t, "launch_url"), "lti_message_hint": over.pop("lti_message_hint", new_id()),
         "client_id": need(t, "client_id"), "lti_deployment_id": need(t, "deployment_id")}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def _auth_request(s: Session, r: httpx.Response) -> dict[str, str] | None:
    """The tool's OIDC authentication request to the kit's auth URL: a redirect, or a form."""
    auth = f"{_srv(s).base}/authorize"
    if r.status_code in (301, 302, 303, 307, 308):
        loc = urljoin(str(r.request.url), r.headers.get("location", ""))
        return query_of(loc) if loc.split("?")[0] == auth else None
    if r.status_code == 200:
        for f in forms(r.text):
            if f.action.split("?")[0] == auth:
                return {**query_of(f.action), **f.hidden}
    return None


def _login(s: Session, *, method: str = "GET", **over: Any) -> dict[str, str]:
    params = _login_params(s, **over)
    url = need(s.target, "login_url")
    r = s.get(url, params=params) if method == "GET" else s.post(url, data=params)
    auth = _auth_request(s, r)
    if auth is None:
        raise Fail(f"the login initiation ({method}) did not answer with an authentication request to the kit's "
                   f"auth URL: HTTP {r.status_code}")
    auth["_login_hint"], auth["_message_hint"] = params["login_hint"], params.get("lti_message_hint", "")
    return auth


def _claims(s: Session, login_nonce: str, *, role: str = "instructor", **over: Any) -> dict[str, Any]:
    t, srv, ctx = s.target, _srv(s), s.state["context"]
    sub = "kit-learner-1" if role == "learner" else "kit-instructor-1"
    roles = [ROLE + "Learner"] if role == "learner" else [ROLE + "Instructor", INST_ROLE + "Faculty"]
    c: dict[str, Any] = {
        "iss": s.state["issuer"], "aud": need(t, "client_id"), "sub": sub, "iat": now(), "exp": now() + 300, "nonce": login_nonce,
        "name": "Lea Learner" if role == "learner" else "Ida Instructor", "given_name": "Lea" if role == "learner" else "Ida",
        "family_name": "Learner" if role == "learner" else "Instructor", "email": f"{sub}@kit.example.org",
        LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0",
        LTI + "deployment_id": need(t, "deployment_id"), LTI + "target_link_uri": need(t, "launch_url"),
        LTI + "resource_link": {"id": "kit-resource-link-1", "title": "Conformance kit activity"},
        LTI + "roles": roles,
        LTI + "context": {"id": ctx, "label": "KIT", "title": "Conformance kit course",
                          "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"]},
        LTI + "tool_platform": {"guid": "tessera-conformance-kit", "name": "Tessera conformance kit", "product_family_code": "tessera-kit"},
        LTI + "launch_presentation": {"document_target": "iframe", "return_url": f"{srv.base}/return"},
        LTI + "lis": {"person_sourcedid": option(t, f"{role}_sourcedid", sub), "course_section_sourcedid": ctx},
        LTI + "custom": {"kit": "lti-1.3-tool"},
        C_AGS: {"scope": [AGS_SCOPE + "lineitem", AGS_SCOPE + "lineitem.readonly", AGS_SCOPE + "result.readonly", AGS_SCOPE + "score"],
                "lineitems": f"{srv.base}/ags/{ctx}/lineitems"},
        C_NRPS: {"context_memberships_url": f"{srv.base}/nrps/{ctx}/memberships", "service_versions": ["2.0"]},
    }
    for k, v in over.items():
        name = k if k in c or k.startswith("http") or k in ("iss", "aud", "sub", "iat", "exp", "nonce", "azp") else LTI + k
        if v is DROP:
            c.pop(name, None)
        else:
            c[name] = v() if callable(v) else v
    return c


def _accepted(s: Session, r: httpx.Response) -> bool:
    """The tool's answer to a launch: True when it took it (module docstring, ``success``)."""
    marker = option(s.target, "reject_marker")
    if r.status_code >= 400:
        return False
    if 300 <= r.status_code < 400:
        if option(s.target, "success", "2xx3xx") == "2xx":
            return False
        loc = urljoin(str(r.request.url), r.headers.get("location", ""))
        q = query_of(loc)
        return not (loc.split("?")[0] == f"{_srv(s).base}/return" and ("lti_errormsg" in q or "lti_errorlog" in q))
    return not (marker and marker in r.text)


def _launch(s: Session, *, sign: Callable[[dict[str, Any], KitKey], str] | None = None, role: str = "instructor",
            state: str | None = None, **over: Any) -> tuple[httpx.Response, bool, dict[str, Any], dict[str, str]]:
    auth = _login(s, login_hint="kit-learner-1" if role == "learner" else "kit-instructor-1")
    claims = _claims(s, auth.get("nonce", ""), role=role, **over)
    key: KitKey = s.state["key"]
    token = sign(claims, key) if sign else key.sign(claims)
    redirect = auth.get("redirect_uri") or need(s.target, "launch_url")
    r = s.post(redirect, data={"id_token": token, "state": auth.get("state", "") if state is None else state})
    return r, _accepted(s, r), claims, {**auth, "_id_token": token}


def _excerpt(r: httpx.Response) -> str:
    return f"HTTP {r.status_code} {r.text[:200]!r}"


def _valid(s: Session, role: str = "instructor", **over: Any) -> httpx.Response:
    r, ok, _, _ = _launch(s, role=role, **over)
    if not ok:
        raise Fail(f"a valid launch was refused: {_excerpt(r)}")
    return r


def _baseline(s: Session) -> None:
    """Known-bad checks mean something only when a valid launch goes through."""
    if "baseline" not in s.state:
        try:
            r, ok, _, _ = _launch(s)
            s.state["baseline"] = None if ok else f"a valid instructor launch is refused ({_excerpt(r)})"
        except Fail as exc:
            s.state["baseline"] = str(exc)
    if s.state["baseline"]:
        raise Skip(f"{s.state['baseline']}: a refusal of a bad launch would prove nothing")


def _bad(s: Session, what: str, **kw: Any) -> None:
    _baseline(s)
    r, ok, _, _ = _launch(s, **kw)
    if ok:
        raise Fail(f"the tool accepted a launch with {what}: {_excerpt(r)}")


def _auth(s: Session) -> dict[str, str]:
    if "auth" not in s.state:
        s.state["auth"] = _login(s)
    return s.state["auth"]


# --- OIDC third-party initiated login (Security Framework 5.1.1.1-5.1.1.2) ---------------

def _auth_param(id: str, name: str, description: str, test: Callable[[Session, dict[str, str]], str | None], section: str = "5.1.1.2") -> None:
    @KIT.check(id, f"{SF} {section}", description)
    def run(s: Session) -> None:
        problem = test(s, _auth(s))
        if problem:
            raise Fail(problem)


@KIT.check("LTI-TOOL-LOGIN-001", f"{SF} 5.1.1.1", "A GET login initiation answers with an authentication request to the platform")
def login_get(s: Session) -> None:
    _auth(s)


@KIT.check("LTI-TOOL-LOGIN-002", f"{SF} 5.1.1.1", "A POSTed (form) login initiation works as well as a GET")
def login_post(s: Session) -> None:
    _login(s, method="POST")


_auth_param("LTI-TOOL-LOGIN-003", "response_type", "The authentication request asks response_type=id_token",
            lambda s, a: None if a.get("response_type") == "id_token" else f"response_type is {a.get('response_type')!r}")
_auth_param("LTI-TOOL-LOGIN-004", "scope", "The authentication request's scope includes openid",
            lambda s, a: None if "openid" in a.get("scope", "").split() else f"scope is {a.get('scope')!r}")
_auth_param("LTI-TOOL-LOGIN-005", "response_mode", "The authentication request asks response_mode=form_post",
            lambda s, a: None if a.get("response_mode") == "form_post" else f"response_mode is {a.get('response_mode')!r}")
_auth_param("LTI-TOOL-LOGIN-006", "prompt", "The authentication request sends prompt=none",
            lambda s, a: None if a.get("prompt") == "none" else f"prompt is {a.get('prompt')!r}")
_auth_param("LTI-TOOL-LOGIN-007", "nonce", "The authentication request carries a nonce",
            lambda s, a: None if a.get("nonce") else "no nonce")
_auth_param("LTI-TOOL-LOGIN-008", "state", "The authentication request carries a state",
            lambda s, a: None if a.get("state") else "no state")
_auth_param("LTI-TOOL-LOGIN-009", "client_id", "The authentication request names the tool's client_id",
            lambda s, a: None if a.get("client_id") == need(s.target, "client_id") else f"client_id is {a.get('client_id')!r}")
_auth_param("LTI-TOOL-LOGIN-010", "redirect_uri", "The redirect_uri is one the tool registered",
            lambda s, a: None if a.get("redirect_uri") in (options_list(s.target, "redirect_uris") or [need(s.target, "launch_url")])
            else f"redirect_uri {a.get('redirect_uri')!r} is not registered")
_auth_param("LTI-TOOL-LOGIN-011", "login_hint", "The login_hint comes back unchanged",
            lambda s, a: None if a.get("login_hint") == a["_login_hint"] else f"login_hint is {a.get('login_hint')!r}")
_auth_param("LTI-TOOL-LOGIN-012", "lti_message_hint", "The lti_message_hint comes back unchanged",
            lambda s, a: None if a.get("lti_message_hint") == a["_message_hint"] else "lti_message_hint was not passed back unchanged")


@KIT.check("LTI-TOOL-LOGIN-013", f"{SF} 5.1.1.2", "Each login gets a fresh nonce and state")
def login_fresh(s: Session) -> None:
    a, b = _login(s), _login(s)
    if a.get("nonce") == b.get("nonce") or a.get("state") == b.get("state"):
        raise Fail("two logins got the same nonce or state: a replayed id_token would pass")


@KIT.check("LTI-TOOL-LOGIN-014", f"{SF} 5.1.1.1", "A login initiation from an unknown issuer gets no authentication request")
def login_unknown_iss(s: Session) -> None:
    params = _login_params(s, iss="https://unknown-platform.kit.example.org")
    r = s.get(need(s.target, "login_url"), params=params)
    if _auth_request(s, r) is not None:
        raise Fail("the tool started a login for an issuer it does not know")


# --- valid launches (certification guide: instructor and learner launches) ----------------

def _valid_check(id: str, description: str, requirement: str = f"{CERT}, valid launches", role: str = "instructor",
                 claims: dict[str, Any] | None = None, **over: Any) -> None:
    @KIT.check(id, requirement, description)
    def run(s: Session) -> None:
        _valid(s, role, **over, **(claims or {}))


_valid_check("LTI-TOOL-LAUNCH-001", "An instructor launch (membership#Instructor + institution Faculty) is accepted")
_valid_check("LTI-TOOL-LAUNCH-002", "A learner launch (membership#Learner) is accepted", role="learner")
_valid_check("LTI-TOOL-LAUNCH-003", "An instructor launch with the short role name 'Instructor' is accepted", roles=["Instructor"])
_valid_check("LTI-TOOL-LAUNCH-004", "A learner launch with the short role name 'Learner' is accepted", role="learner", roles=["Learner"])
_valid_check("LTI-TOOL-LAUNCH-005", "A launch with institution roles only is accepted",
             roles=[INST_ROLE + "Faculty", INST_ROLE + "Staff"])
_valid_check("LTI-TOOL-LAUNCH-006", "A launch with several roles (Learner and Mentor) is accepted", role="learner",
             roles=[ROLE + "Learner", ROLE + "Mentor"])
_valid_check("LTI-TOOL-LAUNCH-007", "A launch with an unknown role is accepted", requirement=f"{CORE} 5.3.7 / {CERT}",
             roles=["http://purl.imsglobal.org/vocab/lis/v2/membership#KitUnknownRole"])
_valid_check("LTI-TOOL-LAUNCH-008", "A launch with an empty roles array is accepted", requirement=f"{CORE} 5.3.7", roles=[])
_valid_check("LTI-TOOL-LAUNCH-009", "A launch without name or email (no PII) is accepted", requirement=f"{CORE} 5.3.6",
             name=DROP, given_name=DROP, family_name=DROP, email=DROP)
_valid_check("LTI-TOOL-LAUNCH-010", "A launch without a context claim is accepted", requirement=f"{CORE} 5.4.1",
             context=DROP, lis=DROP, claims={C_AGS: DROP, C_NRPS: DROP})


_valid_check("LTI-TOOL-LAUNCH-014", "A launch carrying extension claims the tool does not know is accepted", requirement=f"{CORE} 5.4.7",
             claims={"https://www.example.com/extension": {"color": "violet"}, "http://www.ExamplePlatformVendor.com/session": {"id": "89023sj890dju080"}})
_valid_check("LTI-TOOL-LAUNCH-015", "A launch with a mentor role and role_scope_mentor is accepted", requirement=f"{CORE} 5.4.2",
             roles=[ROLE + "Mentor"], role_scope_mentor=["kit-learner-1"])
_valid_check("LTI-TOOL-LAUNCH-016", "A learner launch with the institution Student role beside membership#Learner is accepted",
             role="learner", roles=[ROLE + "Learner", INST_ROLE + "Student"])


@KIT.check("LTI-TOOL-LAUNCH-011", f"{SF} 5.1.3 step 3-4", "A launch whose aud is an array with azp = client_id is accepted")
def launch_aud_array(s: Session) -> None:
    cid = need(s.target, "client_id")
    _valid(s, aud=[cid, "https://another-audience.kit.example.org"], azp=cid)


@KIT.check("LTI-TOOL-LAUNCH-012", f"{SF} 6.3 (key rotation)", "After the platform rotates its key, a launch signed with the new key (new kid) is accepted")
def launch_rotated(s: Session) -> None:
    platform: MockPlatform = s.state["platform"]
    new = s.state.get("rotated") or KitKey()
    s.state["rotated"] = new
    if new not in platform.extra_keys:
        platform.extra_keys.append(new)
    _valid(s, sign=lambda c, k: new.sign(c))


@KIT.check("LTI-TOOL-LAUNCH-013", f"{CORE} 5.3.6 / {CERT} 'user Claim Missing'",
           "A launch without sub is handled: accepted as anonymous (anonymous=allow) or refused (anonymous=refuse), never a server error")
def launch_anonymous(s: Session) -> None:
    _baseline(s)
    r, ok, _, _ = _launch(s, sub=DROP)
    if r.status_code >= 500:
        raise Fail(f"the tool failed on a launch without sub: {_excerpt(r)}")
    if option(s.target, "anonymous", "allow") == "refuse" and ok:
        raise Fail(f"anonymous=refuse, but the tool accepted a launch without sub: {_excerpt(r)}")


# --- known-bad payloads (certification guide) ---------------------------------------------

def _bad_check(id: str, requirement: str, what: str, required: bool = True, claims: dict[str, Any] | None = None, **kw: Any) -> None:
    @KIT.check(id, requirement, f"A launch with {what} is refused", required=required)
    def run(s: Session) -> None:
        _bad(s, what, **kw, **(claims or {}))


_bad_check("LTI-TOOL-BAD-001", f"{CERT} 'No KID Sent in JWT header' / {SF} 6.3", "no kid in the JWT header",
           sign=lambda c, k: k.sign(c, kid=None))
_bad_check("LTI-TOOL-BAD-002", f"{CERT} 'Incorrect KID in JWT header' / {SF} 6.3", "a kid the platform's JWKS does not hold",
           sign=lambda c, k: k.sign(c, kid="kit-unknown-" + new_id()[:10]))
_bad_check("LTI-TOOL-BAD-003", f"{SF} 5.1.3 step 1", "a signature by another key (right kid)",
           sign=lambda c, k: KitKey(kid=k.kid).sign(c))
_bad_check("LTI-TOOL-BAD-004", f"{SF} 5.1.3 step 1 / RFC 8725 3.1", "no signature at all (alg none)",
           sign=lambda c, k: unsigned(c, k.kid))
_bad_check("LTI-TOOL-BAD-005", f"{SF} 5.1.3 step 6 / RFC 8725 2.1", "HS256 keyed with the platform's public key (algorithm confusion)",
           sign=hs256_with_public_key)
_bad_check("LTI-TOOL-BAD-006", f"{CERT} 'Wrong LTI Version' / {CORE} 5.3.2", "LTI version 1.2.0", version="1.2.0")
_bad_check("LTI-TOOL-BAD-007", f"{CERT} 'No LTI Version' / {CORE} 5.3.2", "no LTI version claim", version=DROP)
_bad_check("LTI-TOOL-BAD-008", f"{CERT} 'Invalid LTI message' / {CORE} 5.3.1", "an unknown message type",
           message_type="LtiKitUnknownRequest")
_bad_check("LTI-TOOL-BAD-009", f"{CERT} 'messsage_type Claim Missing' / {CORE} 5.3.1", "no message_type claim", message_type=DROP)
_bad_check("LTI-TOOL-BAD-010", f"{CERT} 'deployment_id Claim Missing' / {CORE} 5.3.3", "no deployment_id claim", deployment_id=DROP)
_bad_check("LTI-TOOL-BAD-011", f"{CORE} 5.3.3", "a deployment_id the tool does not know", deployment_id="kit-unknown-deployment")
_bad_check("LTI-TOOL-BAD-012", f"{CERT} 'resource_link_id Claim Missing' / {CORE} 5.3.5", "no resource_link claim", resource_link=DROP)
_bad_check("LTI-TOOL-BAD-013", f"{CERT} 'resource_link_id Claim Missing' / {CORE} 5.3.5", "a resource_link without id",
           resource_link={"title": "no id"})
_bad_check("LTI-TOOL-BAD-014", f"{CERT} 'role Claim Missing' / {CORE} 5.3.7", "no roles claim", roles=DROP)
_bad_check("LTI-TOOL-BAD-015", f"{CERT} 'Timestamps Incorrect' / {SF} 5.1.3 step 7", "an exp in the past",
           iat=lambda: now() - 3600, exp=lambda: now() - 1800)
_bad_check("LTI-TOOL-BAD-016", f"{CERT} 'Timestamps Incorrect' / {SF} 5.1.3 step 8", "an iat an hour in the future",
           iat=lambda: now() + 3600, exp=lambda: now() + 7200)
_bad_check("LTI-TOOL-BAD-017", f"{SF} 5.1.3 step 7 / OIDC Core 2", "no exp claim", exp=DROP)
_bad_check("LTI-TOOL-BAD-018", f"{SF} 5.1.3 step 2", "another issuer (iss)", iss="https://impostor.kit.example.org")
_bad_check("LTI-TOOL-BAD-019", f"{SF} 5.1.3 step 3", "an aud that is not the tool's client_id", aud="kit-some-other-client")
_bad_check("LTI-TOOL-BAD-020", f"{SF} 5.1.3 step 4-5", "an aud array whose azp is another client",
           aud=["kit-some-other-client", "kit-second-client"], azp="kit-some-other-client")
_bad_check("LTI-TOOL-BAD-021", f"{SF} 5.1.3 step 9 / {CERT} nonce", "a nonce other than the one sent at login", nonce="kit-wrong-nonce")
_bad_check("LTI-TOOL-BAD-022", f"{SF} 5.1.3 step 9", "no nonce claim", nonce=DROP)
_bad_check("LTI-TOOL-BAD-023", f"{SF} 5.1.1.3 / OIDC Core 3.1.2.7", "a state the tool never issued", state="kit-forged-state")
# core 5.3.4 puts the MUST on the platform; a tool that checks it closes an open redirect (SHOULD)
_bad_check("LTI-TOOL-BAD-024", f"{CORE} 5.3.4", "a target_link_uri claim other than the login's", required=False,
           target_link_uri="https://elsewhere.kit.example.org/launch")


@KIT.check("LTI-TOOL-BAD-025", f"{SF} 5.1.3 step 9 (nonce replay: SHOULD)", "The same id_token and state posted a second time is refused",
           required=False)
def bad_replay(s: Session) -> None:
    _baseline(s)
    r, ok, _, auth = _launch(s)
    if not ok:
        raise Skip(f"the first launch was refused: {_excerpt(r)}")
    again = s.post(auth.get("redirect_uri") or need(s.target, "launch_url"), data={"id_token": auth["_id_token"], "state": auth["state"]})
    if _accepted(s, again):
        raise Fail(f"the tool accepted a replayed id_token: {_excerpt(again)}")


@KIT.check("LTI-TOOL-BAD-026", f"{SF} 5.1.3 step 1", "An id_token that is not a JWT is refused without a server error")
def bad_garbage(s: Session) -> None:
    _baseline(s)
    r, ok, _, _ = _launch(s, sign=lambda c, k: "kit.not-a-jwt")
    if ok or r.status_code >= 500:
        raise Fail(f"the tool did not refuse a malformed id_token cleanly: {_excerpt(r)}")


# --- Deep Linking 2.0 ---------------------------------------------------------------------

def _deep_link(s: Session) -> dict[str, Any]:
    """One deep linking round trip, done once: the request, the tool's pages, the response JWT."""
    done = s.state.get("dl")
    if isinstance(done, dict):
        return done
    if isinstance(done, tuple):
        raise (Skip if done[0] == "skip" else Fail)(done[1])
    try:
        return _deep_link_once(s)
    except (Skip, Fail) as exc:
        s.state["dl"] = ("skip" if isinstance(exc, Skip) else "fail", str(exc))
        raise


def _deep_link_once(s: Session) -> dict[str, Any]:
    url = option(s.target, "deep_link_url") or need(s.target, "launch_url")
    if url == "none":
        raise Skip("the tool offers no deep linking (deep_link_url=none)")
    srv, data = _srv(s), "kit-data-" + new_id()[:12]
    settings = {"deep_link_return_url": f"{srv.base}/deep-link-return", "accept_types": ["ltiResourceLink", "link"],
                "accept_presentation_document_targets": ["iframe", "window"], "accept_multiple": True, "auto_create": True,
                "title": "Kit placement", "data": data}
    auth = _login(s, target_link_uri=url)
    dl_claims: dict[str, Any] = {DL + "deep_linking_settings": settings}
    claims = _claims(s, auth.get("nonce", ""), message_type="LtiDeepLinkingRequest", target_link_uri=url, resource_link=DROP,
                     **dl_claims)
    r = s.post(auth.get("redirect_uri") or url, data={"id_token": s.state["key"].sign(claims), "state": auth.get("state", "")})
    if not _accepted(s, r):
        raise Fail(f"the deep linking request was refused: {_excerpt(r)}")
    jwt_value = None
    for _ in range(4):  # the tool's pages: submit each form with its first choices until the response JWT shows
        fs = forms(r.text) if r.status_code == 200 else []
        back = next((f for f in fs if f.action.split("?")[0] == settings["deep_link_return_url"] and "JWT" in f.hidden), None)
        if back is not None:
            jwt_value = back.hidden["JWT"]
            break
        if not fs:
            break
        f = fs[0]
        fields = [*f.hidden.items(), *((name, values[0]) for name, values in f.choices.items())]
        action = urljoin(str(r.request.url), f.action or str(r.request.url))
        r = (s.post(action, content=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"})
             if f.method == "post" else s.get(action, params=fields))
    if jwt_value is None:
        raise Skip("no deep linking response came back without a person choosing content (no form posting JWT to the return URL)")
    s.state["dl"] = {"jwt": jwt_value, "settings": settings, "request": claims}
    return s.state["dl"]


@KIT.check("LTI-TOOL-DL-001", "LTI Deep Linking 2.0 4.4-4.5", "A deep linking request is accepted and answered with a JWT form-posted to deep_link_return_url")
def dl_response(s: Session) -> None:
    _deep_link(s)


@KIT.check("LTI-TOOL-DL-002", "LTI Deep Linking 2.0 4.5 / RFC 7515", "The deep linking response is signed RS256 by a key of the tool's JWKS")
def dl_signed(s: Session) -> None:
    dl = _deep_link(s)
    head, _ = decode_unverified(dl["jwt"])
    url = option(s.target, "tool_jwks_url")
    if not url:
        raise Skip("no tool_jwks_url option: the signature cannot be checked")
    if head.get("alg") != "RS256":
        raise Fail(f"the response is signed with {head.get('alg')!r}, not RS256")
    key = key_from_jwks(s.get(url).json(), head.get("kid"))
    if key is None:
        raise Fail(f"the tool's JWKS holds no key with kid {head.get('kid')!r}")
    try:
        jwt.decode(dl["jwt"], key, algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False})
    except jwt.InvalidTokenError as exc:
        raise Fail(f"the response's signature does not verify: {exc}") from None


def _dl_claims(s: Session) -> dict[str, Any]:
    return decode_unverified(_deep_link(s)["jwt"])[1]


@KIT.check("LTI-TOOL-DL-003", "LTI Deep Linking 2.0 4.5 (iss, aud)", "The response's iss is the tool's client_id and its aud the platform's issuer")
def dl_iss_aud(s: Session) -> None:
    c = _dl_claims(s)
    aud: list[Any] = c["aud"] if isinstance(c.get("aud"), list) else [c.get("aud")]
    if c.get("iss") != need(s.target, "client_id") or s.state["issuer"] not in aud:
        raise Fail(f"iss {c.get('iss')!r} / aud {c.get('aud')!r}: want iss = client_id, aud = {s.state['issuer']}")


@KIT.check("LTI-TOOL-DL-004", "LTI Deep Linking 2.0 4.5", "The response carries message_type LtiDeepLinkingResponse, version 1.3.0 and the request's deployment_id")
def dl_message(s: Session) -> None:
    c = _dl_claims(s)
    want = {LTI + "message_type": "LtiDeepLinkingResponse", LTI + "version": "1.3.0", LTI + "deployment_id": need(s.target, "deployment_id")}
    wrong = [f"{k.rsplit('/', 1)[-1]}={c.get(k)!r}" for k, v in want.items() if c.get(k) != v]
    if wrong:
        raise Fail("; ".join(wrong))


@KIT.check("LTI-TOOL-DL-005", "LTI Deep Linking 2.0 4.4.1 (data)", "The request's opaque data comes back unchanged")
def dl_data(s: Session) -> None:
    dl = _deep_link(s)
    if decode_unverified(dl["jwt"])[1].get(DL + "data") != dl["settings"]["data"]:
        raise Fail("the data claim of the request was not echoed in the response")


@KIT.check("LTI-TOOL-DL-006", "LTI Deep Linking 2.0 4.5 / 3", "content_items is an array of items of a type the platform accepts")
def dl_items(s: Session) -> None:
    dl = _deep_link(s)
    items = decode_unverified(dl["jwt"])[1].get(DL + "content_items", [])
    if not isinstance(items, list):
        raise Fail("content_items is not an array")
    for item in items:
        if not isinstance(item, dict) or item.get("type") not in dl["settings"]["accept_types"]:
            raise Fail(f"a content item of type {item.get('type') if isinstance(item, dict) else item!r} was not accepted by the request")
        if item["type"] == "ltiResourceLink" and "url" in item and not str(item["url"]).startswith(("https://", "http://")):
            raise Fail(f"an ltiResourceLink url is not an http(s) URL: {item['url']!r}")


@KIT.check("LTI-TOOL-DL-007", "LTI Deep Linking 2.0 4.5 / OIDC Core 2", "The response has iat, a future exp and a nonce")
def dl_times(s: Session) -> None:
    c = _dl_claims(s)
    if not isinstance(c.get("iat"), (int, float)) or not isinstance(c.get("exp"), (int, float)) or c["exp"] <= now() - 5:
        raise Fail(f"iat {c.get('iat')!r}, exp {c.get('exp')!r}")
    if not c.get("nonce"):
        raise Fail("the response has no nonce")


_bad_check("LTI-TOOL-DL-008", "LTI Deep Linking 2.0 4.4.1", "a deep linking request without deep_link_return_url",
           message_type="LtiDeepLinkingRequest", resource_link=DROP,
           claims={DL + "deep_linking_settings": {"accept_types": ["ltiResourceLink"], "accept_presentation_document_targets": ["iframe"]}})


# --- the tool's service calls (AGS 2.0, NRPS 2.0, Security Framework 4.1) ------------------

def _services(s: Session) -> list[Any]:
    """Launch a learner, run the service triggers, wait for the tool's calls; all recorded."""
    srv = _srv(s)
    if "services" not in s.state:
        s.state["services"] = True
        r, ok, _, _ = _launch(s, role="learner")
        if not ok:
            raise Fail(f"the learner launch before the service calls was refused: {_excerpt(r)}")
        triggers = json.loads(option(s.target, "service_triggers", "[]") or "[]")
        headers = {}
        t = s.target
        if triggers and t.client_id and t.client_secret:
            tok = s.post(t.token_url or f"{t.base_url.rstrip('/')}/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(t.client_id, t.client_secret))
            headers["Authorization"] = f"Bearer {tok.json().get('access_token', '')}"
        for trig in triggers:
            s.request(trig.get("method", "POST"), trig["url"], json=trig.get("body"), headers=headers)
        deadline = time.time() + float(option(s.target, "services_wait", "5") or 5)
        while time.time() < deadline and not (srv.calls("/ags/", "POST") and srv.calls("/nrps/")):
            time.sleep(0.05)
    return srv.received


def _calls(s: Session, prefix: str, method: str | None = None, what: str = "") -> list[Any]:
    _services(s)
    found = _srv(s).calls(prefix, method)
    if not found:
        raise Skip(f"the tool made no {what or prefix} call (give service_triggers, or use a tool that calls on launch)")
    return found


@KIT.check("LTI-TOOL-TOKEN-001", f"{SF} 4.1 / RFC 7523 2.2", "The tool's token request is client_credentials with a JWT client assertion signed by its key (iss = sub = client_id, aud = token URL)")
def token_assertion(s: Session) -> None:
    platform: MockPlatform = s.state["platform"]
    for call in _calls(s, "/token", "POST", "token endpoint"):
        problem = platform.verify_assertion(call.form(), need(s.target, "client_id"))
        if problem:
            raise Fail(problem)


@KIT.check("LTI-TOOL-TOKEN-002", "RFC 7523 3 (jti)", "Each client assertion has its own jti")
def token_jti(s: Session) -> None:
    jtis = [decode_unverified(c.form().get("client_assertion", ""))[1].get("jti") for c in _calls(s, "/token", "POST", "token endpoint")]
    if None in jtis or len(set(jtis)) != len(jtis):
        raise Fail(f"assertion jti values: {jtis}")


@KIT.check("LTI-TOOL-TOKEN-003", "LTI AGS 2.0 3.1 / NRPS 2.0 3.6.1.1", "The tool asks only for LTI Advantage scopes the launch offered")
def token_scopes(s: Session) -> None:
    offered = {AGS_SCOPE + x for x in ("lineitem", "lineitem.readonly", "result.readonly", "score")} | {SCOPE_NRPS}
    for c in _calls(s, "/token", "POST", "token endpoint"):
        asked = set(c.form().get("scope", "").split())
        if not asked or not asked <= offered:
            raise Fail(f"scope asked: {sorted(asked)}")


@KIT.check("LTI-TOOL-AGS-001", f"LTI AGS 2.0 3.1 / {SF} 4.1", "Every AGS call carries a bearer token the kit's token endpoint issued")
def ags_bearer(s: Session) -> None:
    platform: MockPlatform = s.state["platform"]
    bad = [f"{c.method} {c.path}" for c in _calls(s, "/ags/", what="AGS") if platform.scope_of(c) is None]
    if bad:
        raise Fail(f"calls without a valid bearer token: {bad}")


@KIT.check("LTI-TOOL-AGS-002", "LTI AGS 2.0 3.2.5 / 3.2.7", "A line item the tool creates is POSTed as application/vnd.ims.lis.v2.lineitem+json with label and scoreMaximum > 0")
def ags_lineitem(s: Session) -> None:
    posts = [c for c in _calls(s, "/ags/", what="AGS") if c.method == "POST" and c.path.rstrip("/").endswith("/lineitems")]
    if not posts:
        raise Skip("the tool created no line item")
    for c in posts:
        body = c.json()
        if c.headers.get("content-type", "").split(";")[0] != LINEITEM:
            raise Fail(f"Content-Type {c.headers.get('content-type')!r}")
        if not isinstance(body, dict) or not body.get("label") or not (isinstance(body.get("scoreMaximum"), (int, float)) and body["scoreMaximum"] > 0):
            raise Fail(f"line item {body!r}")


def _score_posts(s: Session) -> list[Any]:
    return [c for c in _calls(s, "/ags/", "POST", "AGS score") if c.path.endswith("/scores")] or _no("the tool posted no score")


def _no(why: str) -> list[Any]:
    raise Skip(why)


@KIT.check("LTI-TOOL-AGS-003", "LTI AGS 2.0 3.4", "Scores are POSTed to {lineitem}/scores as application/vnd.ims.lis.v1.score+json")
def ags_score_media(s: Session) -> None:
    for c in _score_posts(s):
        if c.headers.get("content-type", "").split(";")[0] != SCORE:
            raise Fail(f"Content-Type {c.headers.get('content-type')!r}")
        if c.path.rsplit("/", 2)[0].rsplit("/", 1)[-1] not in s.state["platform"].line_items and c.path.split("/")[-2] not in s.state["platform"].line_items:
            raise Fail(f"{c.path} is not below a line item the platform has")


@KIT.check("LTI-TOOL-AGS-004", "LTI AGS 2.0 3.4.1-3.4.7", "A score has userId, an ISO 8601 timestamp with offset, valid activityProgress/gradingProgress, and scoreMaximum with scoreGiven")
def ags_score_body(s: Session) -> None:
    from datetime import datetime

    for c in _score_posts(s):
        b = c.json() if isinstance(c.json(), dict) else {}
        problems = []
        if not isinstance(b.get("userId"), str) or not b["userId"]:
            problems.append("no userId")
        try:
            ts = datetime.fromisoformat(str(b.get("timestamp")).replace("Z", "+00:00"))
            if ts.tzinfo is None:
                problems.append("timestamp has no offset")
        except ValueError:
            problems.append(f"timestamp {b.get('timestamp')!r}")
        if b.get("activityProgress") not in ("Initialized", "Started", "InProgress", "Submitted", "Completed"):
            problems.append(f"activityProgress {b.get('activityProgress')!r}")
        if b.get("gradingProgress") not in ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"):
            problems.append(f"gradingProgress {b.get('gradingProgress')!r}")
        if "scoreGiven" in b and not isinstance(b.get("scoreMaximum"), (int, float)):
            problems.append("scoreGiven without scoreMaximum")
        if problems:
            raise Fail("; ".join(problems))


@KIT.check("LTI-TOOL-AGS-005", "LTI AGS 2.0 3.4.1 (userId)", "A score's userId is the sub of a user the platform launched")
def ags_score_user(s: Session) -> None:
    for c in _score_posts(s):
        uid = (c.json() or {}).get("userId")
        if uid not in ("kit-learner-1", "kit-instructor-1"):
            raise Fail(f"userId {uid!r} is not a sub the kit's launches carried")


@KIT.check("LTI-TOOL-AGS-006", "LTI AGS 2.0 3.2.4 / 3.3", "Line item and result reads ask for the container media types", required=False)
def ags_accept(s: Session) -> None:
    for c in _calls(s, "/ags/", "GET", "AGS read"):
        want = "application/vnd.ims.lis.v2.resultcontainer+json" if c.path.endswith("/results") else (
            "application/vnd.ims.lis.v2.lineitemcontainer+json" if c.path.endswith("/lineitems") else LINEITEM)
        if want not in c.headers.get("accept", ""):
            raise Fail(f"GET {c.path} Accept {c.headers.get('accept')!r}, want {want}")


@KIT.check("LTI-TOOL-NRPS-001", f"LTI NRPS 2.0 3.6.1.1 / {SF} 4.1", "The memberships call carries a bearer token granted the NRPS scope")
def nrps_bearer(s: Session) -> None:
    platform: MockPlatform = s.state["platform"]
    for c in _calls(s, "/nrps/", what="NRPS"):
        scope = platform.scope_of(c)
        if scope is None or SCOPE_NRPS not in scope.split():
            raise Fail(f"GET {c.path}: token scope {scope!r}")


@KIT.check("LTI-TOOL-NRPS-002", "LTI NRPS 2.0 2.4.2 (paging)", "The tool follows Link rel=next through every page of the membership")
def nrps_paging(s: Session) -> None:
    calls = _calls(s, "/nrps/", what="NRPS")
    if not any(c.query.get("page") for c in calls):
        raise Fail("the kit served the membership in pages (Link rel=next) and the tool read only the first")


@KIT.check("LTI-TOOL-NRPS-003", "LTI NRPS 2.0 2.2", "Memberships are read with Accept application/vnd.ims.lti-nrps.v2.membershipcontainer+json", required=False)
def nrps_accept(s: Session) -> None:
    for c in _calls(s, "/nrps/", what="NRPS"):
        if "application/vnd.ims.lti-nrps.v2.membershipcontainer+json" not in c.headers.get("accept", ""):
            raise Fail(f"Accept {c.headers.get('accept')!r}")


@KIT.check("LTI-TOOL-NRPS-004", "LTI NRPS 2.0 3.6.1.1", "The memberships URL called is the one the launch's NRPS claim gave")
def nrps_url(s: Session) -> None:
    want = urlsplit(f"{_srv(s).base}/nrps/{s.state['context']}/memberships").path
    for c in _calls(s, "/nrps/", what="NRPS"):
        if c.path != want:
            raise Fail(f"GET {c.path}, want {want}")


for _check in KIT.checks:  # the group a check belongs to, from its id: login, launch, bad, dl, token, ags, nrps, ...
    _check.tags = (*_check.tags, _check.id.split("-")[2].lower())
