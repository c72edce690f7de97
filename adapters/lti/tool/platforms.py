"""Platforms Tessera is registered with as an LTI 1.3 tool: the store, ``/v1`` API, Dynamic Registration.

A registration is what LTI 1.3 core 3.1.3 and the Security Framework 5.1.1 make a tool keep
about a platform: its ``issuer``, the ``client_id`` the platform gave the tool, the
deployment ids under that registration, the OIDC authorization (auth login) URL, the OAuth
2.0 token URL for service calls, and the JWKS URL whose keys sign the platform's
id_tokens. ``roster_system`` names the identifier system of the LIS claim's sourcedids
(the SIS that rosters both the LMS and Tessera), so a launch joins OneRoster people.

Dynamic Registration 1.0 (tool role): an administrator creates an invitation (a signed,
expiring URL to ``/lti/register``, which names the tenant); the platform opens it with
``openid_configuration`` and ``registration_token``; Tessera fetches the platform's
configuration (section 3.4), checks that its issuer is on the same host as the
configuration URL (3.5.1, as the major implementations do), posts its tool configuration
to ``registration_endpoint`` (3.5.2) and stores the platform with the ``client_id`` and
``deployment_id`` the platform answers, then tells the platform's window it is done
(``org.imsglobal.lti.close``, 3.6).

The ``tessera lti platforms`` commands are in ``cli``.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from gateway.auth import Principal
from gateway.errors import AuthError, Conflict, NotFound, UpstreamError, ValidationError
from gateway.model import utcnow
from gateway.store.db import WRITE
from gateway.store.tenants import ensure_tenant

from ..claims import (
    DEEP_LINKING,
    PLATFORM_CONFIGURATION,
    SCOPE_CONTEXT_MEMBERSHIP,
    SCOPE_LINEITEM,
    SCOPE_RESULT_READONLY,
    SCOPE_SCORE,
    TOOL_CONFIGURATION,
)
from . import tables as tt
from .common import public_base, render_error

if TYPE_CHECKING:
    from gateway.api.context import AppContext

INVITATION_AUDIENCE = "tessera:lti-dynamic-registration"
INVITATION_TTL = timedelta(days=1)
#: the service scopes Tessera asks for (AGS 3.1, NRPS 3.6.1.1)
TOOL_SCOPES = (SCOPE_LINEITEM, SCOPE_RESULT_READONLY, SCOPE_SCORE, SCOPE_CONTEXT_MEMBERSHIP)


@dataclass(frozen=True)
class Platform:
    id: uuid.UUID
    tenant: str
    name: str
    issuer: str
    client_id: str
    deployment_ids: tuple[str, ...]
    auth_login_url: str
    token_url: str
    jwks_url: str
    roster_system: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "issuer": self.issuer, "client_id": self.client_id,
            "deployment_ids": list(self.deployment_ids), "auth_login_url": self.auth_login_url,
            "token_url": self.token_url, "jwks_url": self.jwks_url, "roster_system": self.roster_system,
        }


class PlatformIn(BaseModel):
    """A platform registration as an administrator enters it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    issuer: str = Field(min_length=1, max_length=1024, description="the platform's iss, an https URL")
    client_id: str = Field(min_length=1, max_length=255)
    deployment_ids: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, description="launches from any other deployment are refused"
    )
    auth_login_url: HttpUrl
    token_url: HttpUrl
    jwks_url: HttpUrl
    roster_system: str = Field(default="sis", min_length=1, max_length=128)


class DeploymentIn(BaseModel):
    """A deployment the platform made of Tessera (LTI core 3.1.3), e.g. after Dynamic Registration."""

    model_config = ConfigDict(extra="forbid")

    deployment_id: str = Field(min_length=1, max_length=255)


def _row(r: Any) -> Platform:
    return Platform(
        r.id, r.tenant, r.name, r.issuer, r.client_id, tuple(orjson.loads(r.deployment_ids)),
        r.auth_login_url, r.token_url, r.jwks_url, r.roster_system,
    )


class PlatformStore:
    """The platform registrations, across tenants (a launch names only iss and client_id)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, tenant: str, reg: PlatformIn) -> Platform:
        now = utcnow()
        pid = uuid.uuid4()
        values = reg.model_dump(mode="json")
        values["deployment_ids"] = orjson.dumps(sorted(set(reg.deployment_ids))).decode()
        try:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                ensure_tenant(conn, tenant)
                conn.execute(insert(tt.platforms).values(id=pid, tenant=tenant, created_at=now, updated_at=now, **values))
        except SAIntegrityError:
            raise Conflict(f"a platform with issuer {reg.issuer!r} and client_id {reg.client_id!r} is already registered") from None
        return self.get(tenant, pid)

    def add_deployment(self, platform: Platform, deployment_id: str) -> Platform:
        ids = sorted({*platform.deployment_ids, deployment_id})
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(
                update(tt.platforms).where(tt.platforms.c.id == platform.id)
                .values(deployment_ids=orjson.dumps(ids).decode(), updated_at=utcnow())
            )
        return self.get(platform.tenant, platform.id)

    def get(self, tenant: str, pid: uuid.UUID) -> Platform:
        with self.engine.connect() as conn:
            r = conn.execute(select(tt.platforms).where(tt.platforms.c.tenant == tenant, tt.platforms.c.id == pid)).first()
        if r is None:
            raise NotFound(f"no LTI platform with id {pid}")
        return _row(r)

    def by_id(self, pid: uuid.UUID) -> Platform | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(tt.platforms).where(tt.platforms.c.id == pid)).first()
        return _row(r) if r is not None else None

    def find(self, issuer: str, client_id: str | None) -> Platform | None:
        """The registration for ``iss`` (+ ``client_id``). Without a client_id (optional in the
        login initiation, Security Framework 5.1.1.1), only an issuer with ONE registration
        is found: guessing among several would launch under the wrong one."""
        q = select(tt.platforms).where(tt.platforms.c.issuer == issuer)
        if client_id is not None:
            q = q.where(tt.platforms.c.client_id == client_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.limit(2)).all()
        return _row(rows[0]) if len(rows) == 1 else None

    def list(self, tenant: str | None = None) -> list[Platform]:
        q = select(tt.platforms).order_by(tt.platforms.c.tenant, tt.platforms.c.name)
        if tenant is not None:
            q = q.where(tt.platforms.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def remove(self, tenant: str, pid: uuid.UUID) -> None:
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            n = conn.execute(delete(tt.platforms).where(tt.platforms.c.tenant == tenant, tt.platforms.c.id == pid)).rowcount
        if not n:
            raise NotFound(f"no LTI platform with id {pid}")


# --- Dynamic Registration (tool role) ------------------------------------------------------


def invitation(ctx: AppContext, tenant: str, base: str) -> str:
    """A registration initiation URL for ``tenant``: a signed, expiring invitation."""
    key = ctx.auth.keys.current()
    now = utcnow()
    token = jwt.encode(
        {"iss": ctx.settings.issuer, "aud": INVITATION_AUDIENCE, "tenant": tenant, "iat": now, "exp": now + INVITATION_TTL},
        key.private_key, algorithm="RS256", headers={"kid": key.kid},
    )
    return f"{base}/lti/register?{urlencode({'invitation': token})}"


def _invited_tenant(ctx: AppContext, token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = ctx.auth.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError("the registration invitation is not signed by this gateway")
        claims = jwt.decode(token, key.public_key, algorithms=["RS256"], audience=INVITATION_AUDIENCE, issuer=ctx.settings.issuer)
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the registration invitation is not valid: {exc}") from None
    return str(claims["tenant"])


def tool_configuration(base: str, client_name: str) -> dict[str, Any]:
    """Dynamic Registration 3.5.2: Tessera's registration request (an OIDC client registration
    with the LTI tool configuration)."""
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": f"{base}/lti/login",
        "redirect_uris": [f"{base}/lti/launch"],
        "client_name": client_name,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(TOOL_SCOPES),
        TOOL_CONFIGURATION: {
            "domain": urlsplit(base).netloc,
            "target_link_uri": f"{base}/lti/launch",
            "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
            "messages": [{"type": DEEP_LINKING, "target_link_uri": f"{base}/lti/launch", "label": client_name}],
        },
    }


def _get_json(http: httpx.Client, url: str, what: str, **kw: Any) -> dict[str, Any]:
    try:
        r = http.request(kw.pop("method", "GET"), url, **kw)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the platform's {what} ({url}) could not be reached ({type(exc).__name__})") from None
    if r.status_code not in (200, 201):
        raise UpstreamError(f"the platform's {what} answered HTTP {r.status_code}")
    try:
        doc = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"the platform's {what} is not JSON") from None
    if not isinstance(doc, dict):
        raise UpstreamError(f"the platform's {what} is not a JSON object")
    return doc


def register_with(
    store: PlatformStore, http: httpx.Client, *, tenant: str, base: str, openid_configuration: str, registration_token: str | None
) -> Platform:
    """Dynamic Registration 3.3-3.6, tool side: fetch, check, register, store."""
    auth = {"Authorization": f"Bearer {registration_token}"} if registration_token else {}
    config = _get_json(http, openid_configuration, "openid configuration", headers=auth)
    missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint") if not isinstance(config.get(k), str)]
    if missing:
        raise ValidationError("the platform's openid configuration lacks " + ", ".join(missing))
    if urlsplit(config["issuer"]).netloc != urlsplit(openid_configuration).netloc:
        raise ValidationError("the platform's issuer is not on the host of its openid_configuration URL (Dynamic Registration 3.5.1)")
    name = str((config.get(PLATFORM_CONFIGURATION) or {}).get("product_family_code") or urlsplit(config["issuer"]).netloc)
    answer = _get_json(
        http, config["registration_endpoint"], "registration endpoint", method="POST",
        content=orjson.dumps(tool_configuration(base, "Tessera")), headers={**auth, "Content-Type": "application/json"},
    )
    client_id = answer.get("client_id")
    deployment = (answer.get(TOOL_CONFIGURATION) or {}).get("deployment_id")
    if not isinstance(client_id, str) or not client_id:
        raise UpstreamError("the platform's registration answer has no client_id")
    reg = PlatformIn(
        name=name[:256], issuer=config["issuer"], client_id=client_id,
        # a platform may assign the deployment only later (Dynamic Registration 3.6.2)
        deployment_ids=[deployment] if isinstance(deployment, str) and deployment else [],
        auth_login_url=config["authorization_endpoint"], token_url=config["token_endpoint"], jwks_url=config["jwks_uri"],
    )
    return store.add(tenant, reg)


CLOSE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Tessera registered</title></head>
<body><p>Tessera is registered with {name}.</p>
<script>(window.opener || window.parent).postMessage({{subject: "org.imsglobal.lti.close"}}, "*");</script>
</body></html>"""


# --- /v1 API ---------------------------------------------------------------------------------


def build_router(ctx: AppContext) -> APIRouter:
    from gateway.api.problems import register_error_shape

    router = APIRouter(tags=["lti"])
    store = PlatformStore(ctx.store.engine)
    admin = Depends(ctx.require("admin"))
    register_error_shape("/lti/register", render_error)  # a page in the platform's window

    @router.get("/v1/lti/platforms", summary="LTI 1.3 platforms Tessera is registered with as a tool")
    def list_platforms(principal: Principal = admin) -> dict[str, Any]:
        return {"platforms": [p.as_dict() for p in store.list(principal.tenant)]}

    @router.post("/v1/lti/platforms", status_code=201, summary="Register a platform (manual registration)")
    def add_platform(body: PlatformIn, principal: Principal = admin) -> dict[str, Any]:
        return store.add(principal.tenant, body).as_dict()

    @router.get("/v1/lti/platforms/{pid}", summary="One platform registration")
    def get_platform(pid: uuid.UUID, principal: Principal = admin) -> dict[str, Any]:
        return store.get(principal.tenant, pid).as_dict()

    @router.post("/v1/lti/platforms/{pid}/deployments", status_code=201, summary="Add a deployment id to a platform")
    def add_deployment(pid: uuid.UUID, body: DeploymentIn, principal: Principal = admin) -> dict[str, Any]:
        return store.add_deployment(store.get(principal.tenant, pid), body.deployment_id).as_dict()

    @router.delete("/v1/lti/platforms/{pid}", status_code=204, summary="Remove a platform registration")
    def remove_platform(pid: uuid.UUID, principal: Principal = admin) -> Response:
        store.remove(principal.tenant, pid)
        return Response(status_code=204)

    @router.post("/v1/lti/platforms/invitations", status_code=201, summary="A Dynamic Registration URL for this tenant")
    def invite(request: Request, principal: Principal = admin) -> dict[str, str]:
        return {"registration_url": invitation(ctx, principal.tenant, public_base(ctx, request))}

    @router.get("/lti/register", summary="LTI Dynamic Registration 1.0: registration initiation (tool)")
    def register(
        request: Request,
        openid_configuration: Annotated[str, Query()],
        invitation_token: Annotated[str, Query(alias="invitation")],
        registration_token: Annotated[str | None, Query()] = None,
    ) -> HTMLResponse:
        tenant = _invited_tenant(ctx, invitation_token)
        with httpx.Client(timeout=15) as http:
            platform = register_with(
                store, http, tenant=tenant, base=public_base(ctx, request),
                openid_configuration=openid_configuration, registration_token=registration_token,
            )
        return HTMLResponse(CLOSE_PAGE.format(name=html.escape(platform.name)))

    return router


__all__ = ["DeploymentIn", "Platform", "PlatformIn", "PlatformStore", "build_router", "invitation", "register_with"]
