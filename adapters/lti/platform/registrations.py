"""Tools registered with Tessera-as-platform: the out-of-band half of LTI 1.3 (core 3.1.3,
Security Framework 1.0 section 4) and its automated form, LTI Dynamic Registration 1.0.

A registration holds what the platform must know to launch a tool and to trust its
service calls: the tool's OIDC login initiation URL, the redirect URIs an id_token may be
posted to, the default target link URI, the key that verifies its client assertions (a
JWKS URL or one public JWK), its Deep Linking URL and its deployments. Tessera issues the
``client_id``; it is unique across tenants, so the token endpoint finds the tenant from
the client alone.

Managed three ways, all through ``ToolRegistry``: the CLI (``tessera lti tools ...``, in ``cli``), the
``/v1/lti/tools`` API (scope ``admin``), and Dynamic Registration, where an administrator
asks for a one-time registration token and hands the tool the platform's
openid-configuration URL with it; the tool then posts its own registration.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticError
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from starlette.concurrency import run_in_threadpool

from gateway import __version__
from gateway.api.context import AppContext
from gateway.auth import Principal
from gateway.errors import NotFound
from gateway.model import utcnow
from gateway.store.db import WRITE

from ..claims import DEEP_LINKING, PLATFORM_CONFIGURATION, RESOURCE_LINK, SERVICE_SCOPES, TOOL_CONFIGURATION
from .common import platform_issuer
from .tables import lti_deployments, lti_tools, lti_used_jti

log = logging.getLogger("tessera.lti.registrations")


def _url() -> Any:
    return Field(min_length=1, max_length=2048, pattern=r"^https?://\S+$")


class ToolRegistration(BaseModel):
    """What an administrator (or a tool, through Dynamic Registration) registers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    login_url: str = _url()
    redirect_uris: list[str] = Field(min_length=1)
    target_link_uri: str = _url()
    jwks_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    public_jwk: dict[str, Any] | None = None
    deep_link_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    custom: dict[str, str] = Field(default_factory=dict)
    deployments: list[str] = Field(default_factory=list, description="deployment ids; one is made when none is given")

    @model_validator(mode="after")
    def _key_and_uris(self) -> ToolRegistration:
        # Security Framework 6.1: the platform verifies the tool's JWTs with a key it
        # registered; a JWKS URL lets the tool rotate, a single key does not. One is required.
        if (self.jwks_url is None) == (self.public_jwk is None):
            raise ValueError("give exactly one of jwks_url and public_jwk")
        if self.public_jwk is not None and (self.public_jwk.get("kty") != "RSA" or not {"n", "e"} <= self.public_jwk.keys()):
            raise ValueError("public_jwk must be an RSA public key in JWK form (kty, n, e)")
        for u in self.redirect_uris:
            if not u.startswith(("https://", "http://")) or len(u) > 2048:
                raise ValueError(f"redirect URI {u!r} is not an http(s) URL")
        return self


@dataclass(frozen=True)
class Tool:
    client_id: str
    tenant: str
    name: str
    login_url: str
    redirect_uris: list[str]
    target_link_uri: str
    jwks_url: str | None
    public_jwk: dict[str, Any] | None
    deep_link_url: str | None
    custom: dict[str, str]
    deployments: list[str]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "login_url": self.login_url,
            "redirect_uris": self.redirect_uris,
            "target_link_uri": self.target_link_uri,
            "jwks_url": self.jwks_url,
            "public_jwk": self.public_jwk,
            "deep_link_url": self.deep_link_url,
            "custom": self.custom,
            "deployments": self.deployments,
            "created_at": self.created_at.isoformat(),
        }


class ToolRegistry:
    """The one place registrations are read and written."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, tenant: str, reg: ToolRegistration) -> Tool:
        client_id = uuid.uuid4().hex
        deployments = reg.deployments or [uuid.uuid4().hex]
        now = utcnow()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(
                insert(lti_tools).values(
                    client_id=client_id, tenant=tenant, name=reg.name, login_url=reg.login_url,
                    redirect_uris=orjson.dumps(reg.redirect_uris).decode(), target_link_uri=reg.target_link_uri,
                    jwks_url=reg.jwks_url, public_jwk=orjson.dumps(reg.public_jwk).decode() if reg.public_jwk else None,
                    deep_link_url=reg.deep_link_url, custom=orjson.dumps(reg.custom).decode(), created_at=now,
                )
            )
            conn.execute(insert(lti_deployments), [{"client_id": client_id, "deployment_id": d, "created_at": now} for d in dict.fromkeys(deployments)])
        return self.get(client_id)  # type: ignore[return-value]

    def get(self, client_id: str) -> Tool | None:
        """The tool with this client_id, whatever its tenant (the token endpoint's lookup)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(lti_tools).where(lti_tools.c.client_id == client_id)).first()
            if row is None:
                return None
            deps = conn.scalars(
                select(lti_deployments.c.deployment_id).where(lti_deployments.c.client_id == client_id).order_by(lti_deployments.c.created_at, lti_deployments.c.deployment_id)
            ).all()
        return _tool(row, list(deps))

    def require(self, tenant: str, client_id: str) -> Tool:
        """The tenant's tool; NotFound for unknown ids and for other tenants' tools alike."""
        tool = self.get(client_id)
        if tool is None or tool.tenant != tenant:
            raise NotFound(f"no LTI tool with client_id {client_id}")
        return tool

    def list(self, tenant: str | None = None) -> list[Tool]:
        q = select(lti_tools.c.client_id).order_by(lti_tools.c.created_at, lti_tools.c.client_id)
        if tenant is not None:
            q = q.where(lti_tools.c.tenant == tenant)
        with self.engine.connect() as conn:
            ids = conn.scalars(q).all()
        return [t for t in (self.get(cid) for cid in ids) if t is not None]

    def remove(self, tenant: str | None, client_id: str) -> None:
        """Delete a tool with its deployments, line items and results (not the evidence)."""
        q = delete(lti_tools).where(lti_tools.c.client_id == client_id)
        if tenant is not None:
            q = q.where(lti_tools.c.tenant == tenant)
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if conn.execute(q).rowcount == 0:
                raise NotFound(f"no LTI tool with client_id {client_id}")

    def spend_jti(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record a single-use identifier; False when it was already spent (a replay)."""
        now = utcnow()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(delete(lti_used_jti).where(lti_used_jti.c.expires_at < now))
            try:
                with conn.begin_nested():
                    conn.execute(insert(lti_used_jti).values(issuer=issuer, jti=jti, expires_at=expires_at))
            except DbIntegrityError:
                return False
        return True


def _tool(row: Any, deployments: list[str]) -> Tool:
    return Tool(
        client_id=row.client_id, tenant=row.tenant, name=row.name, login_url=row.login_url,
        redirect_uris=orjson.loads(row.redirect_uris), target_link_uri=row.target_link_uri, jwks_url=row.jwks_url,
        public_jwk=orjson.loads(row.public_jwk) if row.public_jwk else None, deep_link_url=row.deep_link_url,
        custom=orjson.loads(row.custom), deployments=deployments, created_at=row.created_at,
    )


# --- LTI Dynamic Registration 1.0, platform role --------------------------------------------

REGISTRATION_AUDIENCE = "tessera-lti-registration"
REGISTRATION_TOKEN_SECONDS = 3600


class RegistrationError(Exception):
    """RFC 7591 3.2.2 error answered by the registration endpoint."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def openid_configuration(issuer: str, scopes: list[str]) -> dict[str, Any]:
    """Dynamic Registration 3.1-3.3: the platform's OpenID configuration with its LTI part."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/lti/platform/authorize",
        "token_endpoint": f"{issuer}/lti/platform/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "jwks_uri": f"{issuer}/lti/platform/jwks",
        "registration_endpoint": f"{issuer}/lti/platform/register",
        "scopes_supported": ["openid", *scopes],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "aud", "sub", "iat", "exp", "nonce", "name", "given_name", "family_name", "email"],
        PLATFORM_CONFIGURATION: {
            "product_family_code": "tessera",
            "version": __version__,
            "messages_supported": [{"type": RESOURCE_LINK}],
            "variables": [],
        },
    }


def registration_from_request(body: Any) -> ToolRegistration:
    """Dynamic Registration 3.5.1: the tool's registration request -> a ToolRegistration."""
    if not isinstance(body, dict):
        raise RegistrationError("invalid_client_metadata", "the registration request must be a JSON object")
    conf = body.get(TOOL_CONFIGURATION)
    if not isinstance(conf, dict):
        raise RegistrationError("invalid_client_metadata", f"{TOOL_CONFIGURATION} is required")
    checks = [
        (body.get("application_type", "web") == "web", "application_type must be web"),
        ({"implicit", "client_credentials"} <= set(body.get("grant_types") or []), "grant_types must include implicit and client_credentials"),
        ("id_token" in (body.get("response_types") or []), "response_types must include id_token"),
        (body.get("token_endpoint_auth_method") == "private_key_jwt", "token_endpoint_auth_method must be private_key_jwt"),
        (bool(body.get("initiate_login_uri")), "initiate_login_uri is required"),
        (bool(body.get("jwks_uri")), "jwks_uri is required"),
        (bool(conf.get("target_link_uri")), f"{TOOL_CONFIGURATION}.target_link_uri is required"),
    ]
    for ok, message in checks:
        if not ok:
            raise RegistrationError("invalid_client_metadata", message)
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) and u.startswith(("https://", "http://")) for u in uris):
        raise RegistrationError("invalid_redirect_uri", "redirect_uris must be a non-empty list of http(s) URLs")
    messages = [m for m in conf.get("messages") or [] if isinstance(m, dict)]
    _check_domains(conf, body["initiate_login_uri"], uris, [conf["target_link_uri"], *(m.get("target_link_uri") for m in messages)])
    deep_link = next((m.get("target_link_uri") for m in messages if m.get("type") == DEEP_LINKING), None)
    try:
        return ToolRegistration(
            name=str(body.get("client_name") or conf.get("domain") or "LTI tool")[:256], login_url=body["initiate_login_uri"],
            redirect_uris=uris, target_link_uri=conf["target_link_uri"], jwks_url=body["jwks_uri"],
            deep_link_url=deep_link, custom={str(k): str(v) for k, v in (conf.get("custom_parameters") or {}).items()},
        )
    except PydanticError as exc:
        raise RegistrationError("invalid_client_metadata", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


def _check_domains(conf: dict[str, Any], login: str, redirects: list[str], targets: list[Any]) -> None:
    """Dynamic Registration 3.2.1: ``domain`` (REQUIRED) is the tool's primary domain and
    ``secondary_domains`` its others. The platform holds the tool to them: its login
    initiation, redirect and launch URLs must lie on one of those domains or a subdomain,
    so a registration cannot send launches (and their id_tokens) to a host the tool did
    not declare. The JWKS URL may live elsewhere (a key service) and is not checked. A
    domain with a port ("tool.example.org:8443") must match host and port."""
    domain = conf.get("domain")
    if not isinstance(domain, str) or not domain.strip():
        raise RegistrationError("invalid_client_metadata", f"{TOOL_CONFIGURATION}.domain is required")
    others = conf.get("secondary_domains") or []
    domains = [d.strip().lower() for d in [domain, *others] if isinstance(d, str) and d.strip()]

    def covered(url: str) -> bool:
        parts = urlsplit(url)
        for d in domains:
            here = (parts.netloc if ":" in d else parts.hostname or "").lower()
            if here == d or here.endswith("." + d):
                return True
        return False

    error = "invalid_redirect_uri"
    for name, urls in (("redirect_uris", redirects), ("initiate_login_uri", [login]), ("target_link_uri", targets)):
        for url in urls:
            if isinstance(url, str) and not covered(url):
                raise RegistrationError(error, f"{name} {url} is not on the tool's domain ({', '.join(domains)})")
        error = "invalid_client_metadata"


def registration_response(body: dict[str, Any], tool: Tool, scopes: list[str]) -> dict[str, Any]:
    """Dynamic Registration 3.6: the registration as stored, with client_id and deployment_id."""
    granted = [s for s in (body.get("scope") or "").split() if s in scopes]
    conf = {**body[TOOL_CONFIGURATION], "deployment_id": tool.deployments[0]}
    return {**body, "client_id": tool.client_id, "scope": " ".join(granted), TOOL_CONFIGURATION: conf}


# --- the /v1 API and the registration endpoints ---------------------------------------------


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti registrations"])
    admin = Depends(ctx.require("admin"))
    registry = ToolRegistry(ctx.store.engine)
    scopes = sorted(SERVICE_SCOPES)

    @router.post("/v1/lti/tools", status_code=201, summary="Register an LTI 1.3 tool")
    def add_tool(reg: ToolRegistration, principal: Principal = admin) -> dict[str, Any]:
        return registry.add(principal.tenant, reg).as_dict()

    @router.get("/v1/lti/tools", summary="The tenant's LTI tools")
    def list_tools(principal: Principal = admin) -> dict[str, Any]:
        return {"tools": [t.as_dict() for t in registry.list(principal.tenant)]}

    @router.get("/v1/lti/tools/{client_id}", summary="One LTI tool")
    def get_tool(client_id: str, principal: Principal = admin) -> dict[str, Any]:
        return registry.require(principal.tenant, client_id).as_dict()

    @router.delete("/v1/lti/tools/{client_id}", status_code=204, summary="Remove an LTI tool")
    def remove_tool(client_id: str, principal: Principal = admin) -> Response:
        registry.remove(principal.tenant, client_id)
        return Response(status_code=204)

    @router.post("/v1/lti/registrations", summary="Start LTI Dynamic Registration: a one-time registration token")
    def start_registration(request: Request, principal: Principal = admin) -> dict[str, Any]:
        issuer = platform_issuer(ctx, request)
        key = ctx.auth.keys.current()
        now = utcnow()
        token = jwt.encode(
            {"iss": issuer, "aud": REGISTRATION_AUDIENCE, "tenant": principal.tenant, "jti": uuid.uuid4().hex,
             "iat": now, "exp": now + timedelta(seconds=REGISTRATION_TOKEN_SECONDS)},
            key.private_key, algorithm="RS256", headers={"kid": key.kid},
        )
        return {"openid_configuration": f"{issuer}/lti/platform/.well-known/openid-configuration", "registration_token": token,
                "expires_in": REGISTRATION_TOKEN_SECONDS}

    @router.get("/lti/platform/.well-known/openid-configuration", summary="Platform OpenID configuration (Dynamic Registration 3.3)")
    def configuration(request: Request) -> dict[str, Any]:
        return openid_configuration(platform_issuer(ctx, request), scopes)

    @router.post("/lti/platform/register", summary="Dynamic Registration endpoint: a tool registers itself")
    async def register(request: Request) -> Response:
        try:
            claims = _registration_token(ctx, request)
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise RegistrationError("invalid_client_metadata", "the registration request is not JSON") from None
            reg = registration_from_request(body)
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            if not await run_in_threadpool(registry.spend_jti, "registration", str(claims["jti"]), expires):
                raise RegistrationError("invalid_token", "this registration token has been used already", 401)
            tool = await run_in_threadpool(registry.add, claims["tenant"], reg)
        except RegistrationError as exc:
            log.info("LTI dynamic registration refused", extra={"oauth_error": exc.error})
            return Response(orjson.dumps({"error": exc.error, "error_description": exc.description}), status_code=exc.status,
                            media_type="application/json")
        return Response(orjson.dumps(registration_response(body, tool, scopes)), media_type="application/json")

    return router


def _registration_token(ctx: AppContext, request: Request) -> dict[str, Any]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RegistrationError("invalid_token", "the registration endpoint needs the registration token as a bearer token", 401)
    try:
        kid = jwt.get_unverified_header(token.strip()).get("kid")
        key = ctx.auth.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise RegistrationError("invalid_token", "the registration token was not issued by this platform", 401)
        return jwt.decode(token.strip(), key.public_key, algorithms=["RS256"], audience=REGISTRATION_AUDIENCE,
                          issuer=platform_issuer(ctx, request), options={"require": ["exp", "jti", "tenant"]})
    except jwt.InvalidTokenError:
        raise RegistrationError("invalid_token", "the registration token is invalid or expired", 401) from None


__all__ = [
    "RegistrationError", "Tool", "ToolRegistration", "ToolRegistry", "build_router", "openid_configuration",
    "registration_from_request", "registration_response",
]
