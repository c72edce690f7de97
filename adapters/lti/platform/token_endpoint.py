"""Tessera as an LTI 1.3 platform: the token endpoint tools call for service access tokens.

Tools call ``/lti/platform/token`` (Security Framework 1.0, 4.1) with a JWT client
assertion (RFC 7523) for access tokens to the AGS and NRPS services; the assertion is
checked against the tool's registered key (a JWK, or its JWKS URL, fetched and cached),
spent once (its ``jti``), and the token names the tool's tenant. Errors are RFC 6749 5.2
JSON. The platform's public keys are published at ``/lti/platform/jwks``.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import jwt
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.api.context import AppContext
from gateway.auth.keys import public_key_from_jwk
from gateway.model import utcnow

from ..claims import SERVICE_SCOPES
from .common import form_body, platform_issuer
from .registrations import Tool, ToolRegistry

log = logging.getLogger("tessera.lti.platform")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKEN_SECONDS = 3600
#: clock skew allowed on a tool's client assertion
LEEWAY_SECONDS = 30


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


# --- the router ---------------------------------------------------------------------------


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti platform"])
    tool_keys = ToolKeys()

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


__all__ = ["ASSERTION_TYPE", "TokenError", "ToolKeys", "build_router", "issue_service_token"]
