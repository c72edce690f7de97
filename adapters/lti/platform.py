"""Tessera as an LTI 1.3 platform: launching registered tools and answering their service calls.

The launch is the OIDC third-party initiated login of the Security Framework 1.0 (5.1.1):

1. ``POST /v1/lti/launches`` (scope ``admin``: a portal acting for a signed-in user) names
   the tool, the deployment, the user and the context; Tessera answers with the tool's
   login initiation URL carrying ``iss``, ``login_hint``, ``target_link_uri``,
   ``lti_message_hint``, ``client_id`` and ``lti_deployment_id``. The message hint is a
   short-lived JWT signed with the gateway's keys holding the whole launch, so the
   authorization endpoint needs no session of its own: whoever presents it is the user it
   names, for ``MESSAGE_HINT_SECONDS``.
2. The tool sends the browser to ``/lti/platform/authorize`` (5.1.1.2); Tessera checks the
   authentication request and form-posts a signed id_token (5.1.1.3, LTI 1.3 core 5.3 and
   5.4) to the registered redirect URI.
3. Tools call ``/lti/platform/token`` (Security Framework 4.1) with a JWT client assertion
   (RFC 7523) for access tokens to the AGS and NRPS services.

id_tokens are signed with the gateway's ``KeyStore`` (rotated keys, published at
``/.well-known/jwks.json`` and at ``/lti/platform/jwks``).
"""

from __future__ import annotations

import html
import logging
import threading
import time
import uuid
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import jwt
import orjson
import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway import __version__
from gateway.api.context import AppContext
from gateway.auth import Principal
from gateway.auth.keys import public_key_from_jwk
from gateway.errors import (
    AuthError,
    ErrorDetail,
    ScopeError,
    TesseraError,
    ValidationError,
)
from gateway.model import Person, Section, utcnow

from .pages import form_post_page, page
from .registrations import Tool, ToolRegistry

log = logging.getLogger("tessera.lti.platform")

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
)
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SERVICE_SCOPES = frozenset((*AGS_SCOPES, NRPS_SCOPE))
COURSE_SECTION = "http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

MESSAGE_HINT_SECONDS = 300
ID_TOKEN_SECONDS = 300
ACCESS_TOKEN_SECONDS = 3600
#: clock skew allowed on a tool's client assertion
LEEWAY_SECONDS = 30
#: the audience of the message hints Tessera signs for itself
HINT_AUDIENCE = "tessera-lti-message-hint"
ROLES_FILE = Path(__file__).resolve().parents[2] / "mappings" / "lti-roles.yaml"


@cache
def _role_map() -> dict[str, Any]:
    return yaml.safe_load(ROLES_FILE.read_text(encoding="utf-8"))


def lis_roles(role: str | None) -> list[str]:
    """The LIS role URIs Tessera sends for a canonical role (mappings/lti-roles.yaml)."""
    return list(_role_map()["from_canonical"].get(role or "", [])) if role else []


def canonical_role(uri: str) -> str:
    return _role_map()["to_canonical"].get(uri, "other")


def platform_issuer(ctx: AppContext, request: Request) -> str:
    """LTI 1.3 core 5.1.2: ``iss`` is the platform's HTTPS URL; the configured public URL,
    else the URL the request came in on (a test server, a development box)."""
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


# --- the message hint: a launch, signed, carried through the tool's login ----------------


class LaunchRequest(BaseModel):
    """A portal's request to launch a tool for a user (``POST /v1/lti/launches``)."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1)
    deployment_id: str | None = None
    user_id: uuid.UUID = Field(description="the canonical Person launching")
    context_id: uuid.UUID | None = Field(default=None, description="the canonical Section launched from")
    resource_link_id: str = Field(min_length=1, max_length=255)
    resource_link_title: str | None = None
    target_link_uri: str | None = Field(default=None, pattern=r"^https?://\S+$")
    roles: list[str] | None = Field(default=None, description="LIS role URIs; by default from the user's enrollment")
    custom: dict[str, str] = Field(default_factory=dict)


def start_launch(ctx: AppContext, request: Request, tenant: str, launch: LaunchRequest) -> dict[str, Any]:
    """Security Framework 5.1.1.1: the third-party initiated login request to the tool."""
    tool = ToolRegistry(ctx.store.engine).require(tenant, launch.client_id)
    deployment = launch.deployment_id or tool.deployments[0]
    if deployment not in tool.deployments:
        raise ValidationError("unknown deployment", errors=[_err(f"{deployment!r} is not a deployment of this tool", "deployment_id")])
    ctx.store.records.get_json(tenant, "person", launch.user_id)
    if launch.context_id is not None:
        ctx.store.records.get_json(tenant, "section", launch.context_id)
    iss = platform_issuer(ctx, request)
    target = launch.target_link_uri or tool.target_link_uri
    key = ctx.auth.keys.current()
    now = utcnow()
    hint = jwt.encode(
        {
            "iss": iss, "aud": HINT_AUDIENCE, "sub": str(launch.user_id), "tenant": tenant, "client_id": tool.client_id,
            "deployment_id": deployment, "target_link_uri": target, "launch": launch.model_dump(mode="json"),
            "iat": now, "exp": now + timedelta(seconds=MESSAGE_HINT_SECONDS),
        },
        key.private_key, algorithm="RS256", headers={"kid": key.kid},
    )
    params = {
        "iss": iss, "login_hint": str(launch.user_id), "target_link_uri": target, "lti_message_hint": hint,
        "client_id": tool.client_id, "lti_deployment_id": deployment,
    }
    sep = "&" if "?" in tool.login_url else "?"
    return {"login_url": f"{tool.login_url}{sep}{urlencode(params)}", "params": params}


def _err(message: str, field: str) -> ErrorDetail:
    return ErrorDetail(message, location="body", field=field)


# --- the authorization endpoint ------------------------------------------------------------


class AuthRequestError(Exception):
    """An OIDC authentication error (OpenID Connect Core 3.1.2.6) to return to the tool."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _error_page(status: int, message: str) -> HTMLResponse:
    return page("LTI launch refused", f"<p>{html.escape(message)}</p>", status=status)


def authorize(ctx: AppContext, request: Request, params: dict[str, str]) -> Response:
    """Security Framework 5.1.1.2-5.1.1.3: check the tool's authentication request, answer
    with a signed id_token form-posted to the registered redirect URI.

    An unknown client or a redirect URI the tool did not register gets an error page (the
    browser must not be sent anywhere unverified); every other error goes back to the
    redirect URI as ``error``/``error_description``/``state`` (OIDC Core 3.1.2.6)."""
    registry = ToolRegistry(ctx.store.engine)
    tool = registry.get(params.get("client_id", ""))
    if tool is None:
        return _error_page(400, "unknown client_id: this tool is not registered with the platform")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in tool.redirect_uris:
        return _error_page(400, "redirect_uri is not one of the tool's registered redirect URIs")
    state = params.get("state")
    try:
        claims = _check_auth_request(ctx, request, tool, params)
    except AuthRequestError as exc:
        log.info("LTI authentication request refused", extra={"client_id": tool.client_id, "oidc_error": exc.error})
        query = {"error": exc.error, "error_description": exc.description, **({"state": state} if state else {})}
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode(query)}", status_code=302)
    key = ctx.auth.keys.current()
    id_token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    fields = {"id_token": id_token}
    if state:
        fields["state"] = state
    return form_post_page(redirect_uri, fields)


def _check_auth_request(ctx: AppContext, request: Request, tool: Tool, p: dict[str, str]) -> dict[str, Any]:
    for name in ("scope", "response_type", "login_hint", "nonce", "response_mode", "prompt"):
        if not p.get(name):
            raise AuthRequestError("invalid_request", f"the authentication request has no {name}")
    if "openid" not in p["scope"].split():
        raise AuthRequestError("invalid_scope", "scope must include openid")
    if p["response_type"] != "id_token":
        raise AuthRequestError("unsupported_response_type", "response_type must be id_token")
    if p["response_mode"] != "form_post":
        raise AuthRequestError("invalid_request", "response_mode must be form_post")
    if p["prompt"] != "none":
        raise AuthRequestError("invalid_request", "prompt must be none")
    hint = _verify_message_hint(ctx, request, p.get("lti_message_hint", ""))
    if hint["client_id"] != tool.client_id:
        raise AuthRequestError("unauthorized_client", "the lti_message_hint was issued for another tool")
    if hint["sub"] != p["login_hint"]:
        raise AuthRequestError("login_required", "login_hint does not match the user of this launch")
    if hint["deployment_id"] not in tool.deployments:
        raise AuthRequestError("unauthorized_client", "the deployment of this launch no longer exists")
    return id_token_claims(ctx, tool, hint, nonce=p["nonce"], issuer=platform_issuer(ctx, request))


def _verify_message_hint(ctx: AppContext, request: Request, hint: str) -> dict[str, Any]:
    if not hint:
        raise AuthRequestError("login_required", "the authentication request has no lti_message_hint")
    try:
        kid = jwt.get_unverified_header(hint).get("kid")
        key = ctx.auth.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthRequestError("login_required", "the lti_message_hint was not issued by this platform")
        return jwt.decode(hint, key.public_key, algorithms=["RS256"], audience=HINT_AUDIENCE,
                          issuer=platform_issuer(ctx, request), options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise AuthRequestError("login_required", "the launch has expired: start it again") from None
    except jwt.InvalidTokenError:
        raise AuthRequestError("login_required", "the lti_message_hint is not valid") from None


def _sourced_id(doc: Person | Section) -> str:
    """The OneRoster sourcedId the canonical record carries, else its native id."""
    for ident in doc.identifiers:
        if ident.kind == "oneroster.sourcedId":
            return ident.value
    return doc.native_id


def id_token_claims(ctx: AppContext, tool: Tool, hint: dict[str, Any], *, nonce: str, issuer: str) -> dict[str, Any]:
    """LTI 1.3 core 5.3 (required claims) and 5.4 (optional), LTI Advantage service claims."""
    tenant = hint["tenant"]
    launch = LaunchRequest.model_validate(hint["launch"])
    person = ctx.store.records.get(tenant, "person", launch.user_id)
    assert isinstance(person, Person)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": tool.client_id, "azp": tool.client_id, "sub": str(person.id),
        "iat": now, "exp": now + ID_TOKEN_SECONDS, "nonce": nonce,
        "given_name": person.given_name, "family_name": person.family_name,
        "name": " ".join(p for p in (person.given_name, person.family_name) if p),
        LTI + "message_type": "LtiResourceLinkRequest",
        LTI + "version": "1.3.0",
        LTI + "deployment_id": hint["deployment_id"],
        LTI + "target_link_uri": hint["target_link_uri"],
        LTI + "resource_link": {"id": launch.resource_link_id, **({"title": launch.resource_link_title} if launch.resource_link_title else {})},
        LTI + "tool_platform": {"guid": issuer, "name": "Tessera", "product_family_code": "tessera", "version": __version__},
        LTI + "custom": {**tool.custom, **launch.custom},
    }
    if person.email:
        claims["email"] = person.email
    lis: dict[str, str] = {"person_sourcedid": _sourced_id(person)}
    roles = launch.roles
    if launch.context_id is not None:
        section = ctx.store.records.get(tenant, "section", launch.context_id)
        assert isinstance(section, Section)
        cid = str(section.id)
        claims[LTI + "context"] = {"id": cid, "label": section.code or section.title, "title": section.title, "type": [COURSE_SECTION]}
        lis["course_section_sourcedid"] = _sourced_id(section)
        base = issuer
        claims[AGS_CLAIM] = {"scope": list(AGS_SCOPES), "lineitems": f"{base}/lti/platform/ags/contexts/{cid}/lineitems"}
        claims[NRPS_CLAIM] = {"context_memberships_url": f"{base}/lti/platform/nrps/contexts/{cid}/memberships", "service_versions": ["2.0"]}
        if roles is None:
            roles = _enrollment_roles(ctx, tenant, person, section)
    claims[LTI + "lis"] = lis
    claims[LTI + "roles"] = roles if roles is not None else lis_roles(person.primary_role and person.primary_role.value)
    return claims


def _enrollment_roles(ctx: AppContext, tenant: str, person: Person, section: Section) -> list[str]:
    page = ctx.store.records.page(tenant, "enrollment", limit=1, filters={"person_id": person.id, "section_id": section.id})
    if not page.items:
        return []
    return lis_roles(orjson.loads(page.items[0])["role"])


# --- the token endpoint: client_credentials with a JWT client assertion --------------------


class TokenError(Exception):
    """RFC 6749 5.2: an error the token endpoint answers as JSON."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="tessera-lti"'
        body = orjson.dumps({"error": self.error, "error_description": self.description})
        return Response(body, status_code=self.status, media_type="application/json", headers=headers)


class ToolKeys:
    """The tools' public keys: a registered JWK, or the tool's JWKS URL fetched and cached,
    fetched again when an assertion names a kid the cache does not hold (key rotation)."""

    CACHE_SECONDS = 300.0
    #: at most one refetch per URL in this many seconds, so unknown kids cannot hammer a tool
    REFETCH_SECONDS = 5.0

    def __init__(self, http: httpx.Client | None = None) -> None:
        self._http = http or httpx.Client(timeout=10, follow_redirects=False)
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._refetched: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, tool: Tool, kid: str | None) -> Any:
        if tool.public_jwk is not None:
            if kid and tool.public_jwk.get("kid") not in (None, kid):
                raise TokenError("invalid_client", "the client assertion names a key the tool did not register", 401)
            return public_key_from_jwk(tool.public_jwk)
        assert tool.jwks_url is not None
        keys = self._keys(tool.jwks_url, refresh=False)
        found = _pick(keys, kid)
        if found is None:
            found = _pick(self._keys(tool.jwks_url, refresh=True), kid)
        if found is None:
            raise TokenError("invalid_client", "no key of the tool's JWKS matches the client assertion's kid", 401)
        return public_key_from_jwk(found)

    def _keys(self, url: str, *, refresh: bool) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url)
            if refresh:
                if now - self._refetched.get(url, -self.REFETCH_SECONDS) < self.REFETCH_SECONDS and cached:
                    return cached[1]
                self._refetched[url] = now
            elif cached and now - cached[0] < self.CACHE_SECONDS:
                return cached[1]
        try:
            r = self._http.get(url)
            r.raise_for_status()
            doc = orjson.loads(r.content)
            keys = {str(k.get("kid", "")): k for k in doc["keys"] if isinstance(k, dict) and k.get("kty") == "RSA"}
        except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, TypeError):
            raise TokenError("invalid_client", "the tool's JWKS URL did not answer with a key set", 401) from None
        with self._lock:
            self._cache[url] = (now, keys)
        return keys


def _pick(keys: dict[str, Any], kid: str | None) -> Any:
    if kid:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None


def issue_service_token(ctx: AppContext, request: Request, form: dict[str, str], tool_keys: ToolKeys) -> dict[str, Any]:
    """Security Framework 4.1 / RFC 7523 2.2: authenticate the tool by its signed assertion,
    grant the LTI service scopes it asks for."""
    if form.get("grant_type") != "client_credentials":
        raise TokenError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion") or ""
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise TokenError("invalid_client", "client_assertion is not a JWT", 401) from None
    client_id = unverified.get("iss")
    tool = ToolRegistry(ctx.store.engine).get(client_id) if isinstance(client_id, str) else None
    if tool is None:
        raise TokenError("invalid_client", "the client assertion's iss is not a registered client_id", 401)
    if header.get("alg") != "RS256":
        raise TokenError("invalid_client", "the client assertion must be signed with RS256", 401)
    key = tool_keys.key(tool, header.get("kid"))
    endpoint = str(request.url).split("?", 1)[0]
    audiences = [endpoint, f"{platform_issuer(ctx, request)}/lti/platform/token"]
    try:
        claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=audiences, issuer=tool.client_id,
                            leeway=LEEWAY_SECONDS, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("invalid_client", "the client assertion has expired", 401) from None
    except jwt.InvalidAudienceError:
        raise TokenError("invalid_client", "the client assertion's aud is not this token endpoint", 401) from None
    except jwt.InvalidTokenError as exc:
        raise TokenError("invalid_client", f"the client assertion is invalid: {type(exc).__name__}", 401) from None
    if claims["sub"] != tool.client_id:
        raise TokenError("invalid_client", "the client assertion's sub must be the client_id", 401)
    expires = utcnow() + timedelta(seconds=max(0, int(claims["exp"]) - int(time.time())) + LEEWAY_SECONDS)
    if not ToolRegistry(ctx.store.engine).spend_jti(f"assertion:{tool.client_id}", str(claims["jti"])[:255], expires):
        raise TokenError("invalid_client", "the client assertion's jti has been used already", 401)
    asked = (form.get("scope") or "").split()
    granted = [s for s in dict.fromkeys(asked) if s in SERVICE_SCOPES]
    if not granted:
        raise TokenError("invalid_scope", "ask for at least one LTI Advantage scope (AGS or NRPS)")
    token = ctx.auth.tokens.issue(client_id=tool.client_id, tenant=tool.tenant, scopes=granted, ttl_seconds=ACCESS_TOKEN_SECONDS)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS, "scope": " ".join(granted)}


# --- errors of the LTI Advantage services ----------------------------------------------------


def render_service_error(request: Request, exc: TesseraError) -> Response:
    """AGS and NRPS errors: JSON with a message (the services define no error body of their
    own), and RFC 6750 WWW-Authenticate on 401/403."""
    body: dict[str, Any] = {"error": exc.type_slug, "message": exc.detail}
    if exc.errors:
        body["errors"] = [e.as_dict() for e in exc.errors]
    headers = {}
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = 'Bearer realm="tessera-lti", error="invalid_token"'
    elif isinstance(exc, ScopeError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera-lti", error="insufficient_scope", scope="{" ".join(exc.required)}"'
    return Response(orjson.dumps(body), status_code=exc.status, media_type="application/json", headers=headers)


async def form_body(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (first value of each name)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    out: dict[str, str] = {}
    for k, v in parse_qsl(raw, keep_blank_values=True):
        out.setdefault(k, v)
    return out


# --- the router ---------------------------------------------------------------------------


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti platform"])
    admin = Depends(ctx.require("admin"))
    tool_keys = ToolKeys()

    @router.post("/v1/lti/launches", summary="Start an LTI 1.3 launch of a registered tool (Security Framework 5.1.1.1)")
    async def launches(launch: LaunchRequest, request: Request, principal: Principal = admin) -> dict[str, Any]:
        return await run_in_threadpool(start_launch, ctx, request, principal.tenant, launch)

    # OpenID Connect Core 3.1.2.1: the authorization endpoint takes GET and POST alike.
    @router.get("/lti/platform/authorize", summary="OIDC authorization endpoint for LTI launches (GET)")
    async def authorization(request: Request) -> Response:
        return await run_in_threadpool(authorize, ctx, request, dict(request.query_params))

    @router.post("/lti/platform/authorize", summary="OIDC authorization endpoint for LTI launches (form POST)")
    async def authorization_post(request: Request) -> Response:
        return await run_in_threadpool(authorize, ctx, request, {**request.query_params, **await form_body(request)})

    @router.post("/lti/platform/token", summary="OAuth 2.0 token endpoint for tools' service calls (RFC 7523 client assertion)")
    async def token(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return TokenError("invalid_request", "the token endpoint takes application/x-www-form-urlencoded").response()
        form = await form_body(request)
        try:
            body = await run_in_threadpool(issue_service_token, ctx, request, form, tool_keys)
        except TokenError as exc:
            log.info("LTI token request refused", extra={"oauth_error": exc.error})
            return exc.response()
        return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @router.get("/lti/platform/jwks", summary="The platform's public keys (id_tokens and access tokens)")
    def jwks() -> dict[str, Any]:
        return ctx.auth.keys.jwks()

    return router


__all__ = [
    "AGS_SCOPES", "NRPS_SCOPE", "LaunchRequest", "ToolKeys", "build_router", "canonical_role", "lis_roles", "platform_issuer",
    "render_service_error",
]
