"""Tessera as an LTI 1.3 platform: launching a registered tool (Security Framework 1.0, 5.1.1).

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

id_tokens are signed with the gateway's ``KeyStore`` (rotated keys, published at
``/.well-known/jwks.json`` and at ``/lti/platform/jwks``). The tool's service calls come
next, with a token from ``token_endpoint``.
"""

from __future__ import annotations

import html
import logging
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway import __version__
from gateway.api.context import AppContext
from gateway.auth import Principal
from gateway.errors import ErrorDetail, ValidationError
from gateway.model import Person, Section, utcnow

from ..claims import (
    AGS_SCOPES,
    C_AGS,
    C_CONTEXT,
    C_CUSTOM,
    C_DEPLOYMENT,
    C_LIS,
    C_MESSAGE_TYPE,
    C_NRPS,
    C_RESOURCE_LINK,
    C_ROLES,
    C_TARGET,
    C_TOOL_PLATFORM,
    C_VERSION,
    COURSE_SECTION,
    RESOURCE_LINK,
    VERSION,
)
from ..pages import form_post_page, page
from ..roles import lis_roles
from .common import form_body, platform_issuer
from .registrations import Tool, ToolRegistry

log = logging.getLogger("tessera.lti.platform")

MESSAGE_HINT_SECONDS = 300
ID_TOKEN_SECONDS = 300
#: the audience of the message hints Tessera signs for itself
HINT_AUDIENCE = "tessera-lti-message-hint"


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
        C_MESSAGE_TYPE: RESOURCE_LINK,
        C_VERSION: VERSION,
        C_DEPLOYMENT: hint["deployment_id"],
        C_TARGET: hint["target_link_uri"],
        C_RESOURCE_LINK: {"id": launch.resource_link_id, **({"title": launch.resource_link_title} if launch.resource_link_title else {})},
        C_TOOL_PLATFORM: {"guid": issuer, "name": "Tessera", "product_family_code": "tessera", "version": __version__},
        C_CUSTOM: {**tool.custom, **launch.custom},
    }
    if person.email:
        claims["email"] = person.email
    lis: dict[str, str] = {"person_sourcedid": _sourced_id(person)}
    roles = launch.roles
    if launch.context_id is not None:
        section = ctx.store.records.get(tenant, "section", launch.context_id)
        assert isinstance(section, Section)
        cid = str(section.id)
        claims[C_CONTEXT] = {"id": cid, "label": section.code or section.title, "title": section.title, "type": [COURSE_SECTION]}
        lis["course_section_sourcedid"] = _sourced_id(section)
        base = issuer
        claims[C_AGS] = {"scope": list(AGS_SCOPES), "lineitems": f"{base}/lti/platform/ags/contexts/{cid}/lineitems"}
        claims[C_NRPS] = {"context_memberships_url": f"{base}/lti/platform/nrps/contexts/{cid}/memberships", "service_versions": ["2.0"]}
        if roles is None:
            roles = _enrollment_roles(ctx, tenant, person, section)
    claims[C_LIS] = lis
    claims[C_ROLES] = roles if roles is not None else lis_roles(person.primary_role and person.primary_role.value)
    return claims


def _enrollment_roles(ctx: AppContext, tenant: str, person: Person, section: Section) -> list[str]:
    page = ctx.store.records.page(tenant, "enrollment", limit=1, filters={"person_id": person.id, "section_id": section.id})
    if not page.items:
        return []
    return lis_roles(orjson.loads(page.items[0])["role"])


# --- the router ---------------------------------------------------------------------------


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti platform"])
    admin = Depends(ctx.require("admin"))

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

    return router


__all__ = ["LaunchRequest", "authorize", "build_router", "id_token_claims", "start_launch"]
