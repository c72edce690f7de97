"""xAPI Communication (1.0.3 Part Three / 2.0 IEEE 9274.1.1 Part Three), shared by every LRS resource.

Every xAPI resource (statements, documents, activities, agents, about) sits behind one
ASGI stack, built by ``build_lrs_app`` and mounted at ``/xapi`` and ``/xAPI``:

    _Answer     every response carries X-Experience-API-Version, and every response of the
                Statement Resource X-Experience-API-Consistent-Through, errors included;
                an unexpected crash is still an xAPI-shaped 500 with those headers
    CORS        browsers are common xAPI clients (Communication 1.4 "Cross Origin Requests")
    _Gate       the 1.0.3 alternate request syntax (``POST ...?method=PUT`` with a form body,
                Communication 1.3) is rewritten into the ordinary request it stands for,
                then X-Experience-API-Version is checked (Communication 3.3)
    FastAPI     the resources' routers, with exception handlers that turn every error,
                FastAPI's own request validation included, into the xAPI error answer:
                400 (never 422) with a readable message

Resources therefore need nothing special: they declare ``Depends(principal)`` (HTTP Basic
per tenant or an OAuth 2.0 bearer token) and ``Depends(xapi_version)``, and raise
``XapiError``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from gateway.api.context import AppContext
from gateway.api.problems import register_error_shape
from gateway.auth.scopes import expand
from gateway.errors import AuthError, TesseraError, ValidationError
from gateway.model import utcnow

log = logging.getLogger("tessera.xapi")

VERSION_HEADER = "X-Experience-API-Version"
CONSISTENT_THROUGH = "X-Experience-API-Consistent-Through"
# the same names as ASGI carries them: lower-case bytes
_VERSION_KEY = VERSION_HEADER.lower().encode()
_CONSISTENT_KEY = CONSISTENT_THROUGH.lower().encode()
V1 = "1.0.3"
V2 = "2.0.0"
#: the versions About lists (Communication 2.8: every version the LRS accepts)
SUPPORTED = (V1, V2)
PREFIXES = ("/xapi", "/xAPI")
SCOPE_PREFIX = "xapi/"
_VERSION = re.compile(r"^(1\.0|2\.0)(\.\d+)?$")
#: scope key under which the negotiated version travels with the request
_SCOPE_KEY = "tessera.xapi"


def iso(dt: datetime) -> str:
    """A timestamp as the LRS writes it: ISO 8601 in UTC with milliseconds (Data 4.5)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class XapiError(TesseraError):
    """An xAPI error answer: ``status`` (400, 401, 403, 404, 409, 412, 413, ...) and a
    message a developer can act on. Rendered by ``render_error``."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = HTTPStatus(status).phrase
        self.type_slug = self.title.lower().replace(" ", "-")
        self.headers = headers or {}


def _status_of(exc: TesseraError) -> int:
    # The xAPI spec answers every malformed or invalid request with 400 (Communication 3.2);
    # the gateway's ValidationError is 422 elsewhere.
    if isinstance(exc, ValidationError):
        return 400
    return exc.status


def render_error(exc: TesseraError, version: str = V1) -> Response:
    """The xAPI error body: ``{"error": <reason phrase>, "message": <what is wrong>}``
    (the spec fixes only the status code; ADL's and Learning Locker's LRSs answer a JSON
    object with a message too), plus ``errors`` with each problem's location."""
    status = _status_of(exc)
    message = str(exc) if exc.errors else exc.detail
    body: dict[str, Any] = {"error": HTTPStatus(status).phrase, "message": message}
    if exc.errors:
        body["errors"] = [e.as_dict() for e in exc.errors]
    headers = {VERSION_HEADER: version}
    headers.update(getattr(exc, "headers", {}) or {})
    if isinstance(exc, AuthError):
        headers.setdefault("WWW-Authenticate", 'Basic realm="tessera-lrs"')
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer serialised with orjson (the statement path is hot)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def parse_json(raw: bytes, what: str = "the request body") -> Any:
    """Bytes -> JSON value, or a 400 naming ``what``."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise XapiError(400, f"{what} is not valid JSON: {exc}") from None


# --------------------------------------------------------------------------- versions

def negotiate_version(header: str | None) -> str:
    """Communication 3.3: "1.0", "1.0.x" -> 1.0.3; "2.0", "2.0.x" -> 2.0.0; anything else,
    or no header at all, is a 400."""
    if not header:
        raise XapiError(400, f"the {VERSION_HEADER} header is required (1.0.3 or 2.0.0)")
    m = _VERSION.match(header.strip())
    if m is None:
        raise XapiError(400, f"{VERSION_HEADER} {header!r} is not supported; this LRS speaks {', '.join(SUPPORTED)}")
    return V1 if m.group(1) == "1.0" else V2


async def xapi_version(request: Request) -> str:
    """FastAPI dependency: the request's xAPI version, "1.0.3" or "2.0.0" (checked by the
    gate before the route runs; re-checked here so a route can never run without one)."""
    state = request.scope.get(_SCOPE_KEY)
    if state is not None and state.get("checked"):
        return state["version"]
    return negotiate_version(request.headers.get(VERSION_HEADER))


# --------------------------------------------------------------------------- auth

@dataclass(frozen=True)
class LrsPrincipal:
    """Who is calling the LRS: credentials of one tenant, their xAPI scopes, and the Agent
    the LRS writes into ``authority`` (Data 2.4.9) of what they store."""

    tenant: str
    client_id: str
    scopes: frozenset[str]
    authority: dict[str, Any]

    def has(self, scope: str) -> bool:
        """``scope`` in the spec's own words ("statements/write", "state", ...)."""
        return SCOPE_PREFIX + scope in self.scopes

    def require(self, *any_of: str) -> None:
        """403 unless the credentials hold at least one of ``any_of`` (spec names)."""
        if not any(self.has(s) for s in any_of):
            raise XapiError(403, f"these credentials lack the scope for this request; it needs one of: {', '.join(any_of)}")


class _VerifiedSecrets:
    """HTTP Basic secrets verified recently, so scrypt (tens of ms by design) runs once per
    credential and cache period, not per request. Keyed by client id and an HMAC of the
    secret under a per-process key: the secret itself is never kept. A revoked credential
    stops working within ``TESSERA_REVOCATION_CHECK_SECONDS`` (``Auth.revocations`` is asked
    on each cache hit)."""

    TTL_SECONDS = 30.0

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: dict[tuple[str, bytes], tuple[LrsPrincipal, float]] = {}
        self._lock = threading.Lock()
        #: verifications under way in this process's event loop, by key: requests that miss the
        #: cache while one runs wait for its answer instead of running scrypt again (the first
        #: requests of a load, all at once, each ran it: about 0.8 s of a worker's CPU over the
        #: first batches of the ingest benchmark)
        self.pending: dict[tuple[str, bytes], asyncio.Future[LrsPrincipal | None]] = {}

    def key(self, client_id: str, secret: str) -> tuple[str, bytes]:
        return client_id, hmac.digest(self._key, secret.encode(), "sha256")  # one call, as hmac.new(...).digest()

    def get(self, key: tuple[str, bytes]) -> LrsPrincipal | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def put(self, key: tuple[str, bytes], principal: LrsPrincipal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (principal, time.monotonic() + self.TTL_SECONDS)


#: what a verification that failed or was cancelled tells the requests waiting for it: verify again
_RETRY: Any = object()


def authority_for(ctx: AppContext, client_id: str, name: str) -> dict[str, Any]:
    """The Agent that stands for a set of credentials (Data 2.4.9: "the authority is the
    Agent or Group representing the credentials"), identified by an account on this LRS."""
    home = (ctx.settings.public_url or "https://tessera.invalid").rstrip("/") + "/xapi/credentials"
    return {"objectType": "Agent", "name": name, "account": {"homePage": home, "name": client_id}}


async def principal(request: Request) -> LrsPrincipal:
    """FastAPI dependency: the authenticated caller (401 otherwise).

    HTTP Basic with LRS credentials (``tessera lrs credentials create``), or an OAuth 2.0
    bearer token from ``/oauth/token`` (Communication 4: both are allowed)."""
    cached = getattr(request.state, "lrs_principal", None)
    if cached is not None:
        return cached
    ctx: AppContext = request.app.state.ctx
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        who = await _basic(ctx, request.app.state.lrs_secrets, value.strip())
    elif scheme == "bearer":
        p = ctx.principal(request)  # AuthError (401) when the token is bad
        who = LrsPrincipal(p.tenant, p.client_id, expand(p.scopes), authority_for(ctx, p.client_id, p.client_id))
    else:
        raise AuthError("the LRS needs credentials: HTTP Basic (tessera lrs credentials create) or an OAuth 2.0 bearer token")
    request.state.lrs_principal = who
    return who


async def _basic(ctx: AppContext, cache: _VerifiedSecrets, value: str) -> LrsPrincipal:
    try:
        client_id, sep, secret = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("the Basic credentials are not base64 of key:secret") from None
    if not sep or not client_id:
        raise AuthError("the Basic credentials are not base64 of key:secret")
    key = cache.key(client_id, secret)
    found = cache.get(key)
    if found is not None:
        if ctx.auth.revocations.revoked(client_id):  # within TESSERA_REVOCATION_CHECK_SECONDS, not the cache's 30 s
            raise AuthError("unknown, revoked or wrong LRS credentials")
        return found
    while (under_way := cache.pending.get(key)) is not None:  # the same credentials being verified for another request
        answer = await asyncio.shield(under_way)
        if answer is None:
            raise AuthError("unknown, revoked or wrong LRS credentials")
        if answer is not _RETRY:
            return answer
    cache.pending[key] = mine = asyncio.get_running_loop().create_future()
    try:
        client = await run_in_threadpool(ctx.auth.clients.authenticate, client_id, secret)
        found = None if client is None else LrsPrincipal(client.tenant, client.client_id, expand(client.scopes),
                                                         authority_for(ctx, client.client_id, client.name))
        if found is not None:
            cache.put(key, found)
        mine.set_result(found)
    finally:
        del cache.pending[key]
        if not mine.done():  # failed or cancelled: the waiters verify for themselves
            mine.set_result(_RETRY)
    if found is None:
        raise AuthError("unknown, revoked or wrong LRS credentials")
    return found


#: Route parameter types: ``who: Caller`` and ``version: Version`` in a route's signature.
Caller = Annotated[LrsPrincipal, Depends(principal)]
Version = Annotated[str, Depends(xapi_version)]


# --------------------------------------------------------------------------- ASGI stack

#: Headers a browser may send and read (Communication 1.4 / 2.0 "CORS")
CORS_ALLOW_HEADERS = [
    "Authorization", "Content-Type", "Content-Length", "If-Match", "If-None-Match", VERSION_HEADER,
    "X-Requested-With", "Accept-Language",
]
CORS_EXPOSE_HEADERS = ["ETag", "Last-Modified", "Cache-Control", "Content-Type", "Content-Length", VERSION_HEADER, CONSISTENT_THROUGH]
#: form fields of the alternate request syntax that are headers, not parameters
_ALT_HEADERS = {"authorization", "x-experience-api-version", "content-type", "content-length", "if-match", "if-none-match"}
_ALT_METHODS = {"GET", "HEAD", "PUT", "POST", "DELETE"}


class _Answer:
    """Outermost: adds X-Experience-API-Version to every response (Communication 3.3) and
    X-Experience-API-Consistent-Through to every Statement Resource response, whatever its
    status (Communication 2.1.3.s2.b5: "on all responses to Statements Resource requests"),
    and turns a crash into an xAPI 500 that still carries them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"version": _answer_version(scope), "checked": False}
        scope[_SCOPE_KEY] = state
        statements = _route_path(scope).rstrip("/").endswith("/statements")
        started = finished = False

        async def send_versioned(message: dict[str, Any]) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _VERSION_KEY]
                headers.append((_VERSION_KEY, state["version"].encode()))
                if statements:
                    # Everything stored before now is readable: the LRS acknowledges a
                    # write only after its commit.
                    headers.append((_CONSISTENT_KEY, iso(utcnow()).encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_versioned)
        except Exception:
            if finished:
                return  # answered (a 500) and logged by the app's handler
            if started:
                raise
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            err = TesseraError("an internal error occurred; it has been logged with this request's id")
            await render_error(err, state["version"])(scope, receive, send_versioned)


def _answer_version(scope: dict[str, Any]) -> str:
    """The version a response declares: the request's major version when it names 1.0.x or
    2.0.x. A request that names none (or an unknown one) belongs to neither spec, so it
    gets the LRS's latest version, 2.0.0 (1.0.3 Communication 3.3.s3.b2 "the latest patch
    version"; 2.0 "MUST set this header to 2.0.0"; SQL LRS answers the same). ADL's 1.0.3
    conformance suite expects "1.0.3" on such a rejection and its 2.0 suite "2.0.0": an LRS
    serving both versions satisfies only one, and this one follows the current standard."""
    for k, v in scope.get("headers", []):
        if k == _VERSION_KEY:
            return V1 if v.strip().startswith(b"1.") else V2
    return V2


class _Gate:
    """Inside CORS: rewrites the alternate request syntax, then checks the version header
    (About needs none: Communication 2.8), so a request with a bad or missing version never
    reaches a resource."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope[_SCOPE_KEY]
        try:
            if scope["method"] == "POST" and _has_method_param(scope["query_string"]):
                scope, receive = await _alternate(scope, receive)
            if scope["method"] != "OPTIONS" and not _route_path(scope).rstrip("/").endswith("/about"):
                header = _header(scope, _VERSION_KEY)
                state["version"] = negotiate_version(header)
                if state.get("alternate") and state["version"] != V1:
                    raise XapiError(400, "the alternate request syntax (?method=) was removed in xAPI 2.0")
                state["checked"] = True
        except XapiError as exc:
            await render_error(exc, state["version"])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route_path(scope: dict[str, Any]) -> str:
    root = scope.get("root_path", "")
    path = scope["path"]
    return path[len(root):] if root and path.startswith(root) else path


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return None


def _has_method_param(query: bytes) -> bool:
    return any(k == "method" for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))


async def _alternate(scope: dict[str, Any], receive: Any) -> tuple[dict[str, Any], Any]:
    """1.0.3 Communication 1.3 "Alternate Request Syntax": ``POST <resource>?method=<M>``
    with an ``application/x-www-form-urlencoded`` body whose fields are the request body
    (``content``), every other parameter and, if the client chooses (1.3.s3.b6: "MAY"), the
    headers Authorization, X-Experience-API-Version, Content-Type, If-Match, ... A header
    given as a form field wins over the real one; the real Content-Type and Content-Length
    describe the form, so they never carry over. No other query parameter is allowed."""
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if len(query) != 1:
        raise XapiError(400, "with the alternate request syntax, every parameter but method must be in the form body")
    method = query[0][1].upper()
    if method not in _ALT_METHODS:
        raise XapiError(400, f"method={query[0][1]!r} is not an HTTP method the LRS serves")
    ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise XapiError(400, "the alternate request syntax needs an application/x-www-form-urlencoded body")
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise XapiError(400, "the alternate request syntax body is not valid form encoding") from None
    in_form = {name.lower() for name, _ in fields} & _ALT_HEADERS | {"content-type", "content-length"}
    headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1") not in in_form]
    params: list[tuple[str, str]] = []
    content = b""
    given_type = False
    for name, value in fields:
        low = name.lower()
        if low == "content":
            content = value.encode("utf-8")
        elif low in _ALT_HEADERS:
            if low != "content-length":
                headers.append((low.encode("latin-1"), value.encode("latin-1")))
                given_type = given_type or low == "content-type"
        else:
            params.append((name, value))
    if content and not given_type:
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(content)).encode()))
    scope[_SCOPE_KEY]["alternate"] = True
    new_scope = {**scope, "method": method, "headers": headers, "query_string": urlencode(params).encode("latin-1")}
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": content, "more_body": False}

    return new_scope, replay


def _install_errors(app: FastAPI) -> None:
    def version_of(request: Request) -> str:
        state = request.scope.get(_SCOPE_KEY)
        return state["version"] if state else V1

    @app.exception_handler(TesseraError)
    async def _tessera(request: Request, exc: TesseraError) -> Response:
        if exc.status >= 500:
            log.error("request failed: %s", exc.detail)
        return render_error(exc, version_of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = (f"{loc[0]} parameter {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc)) or "request"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return render_error(XapiError(400, "; ".join(problems) or "the request is invalid"), version_of(request))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer; ``_Answer`` sees it has been sent in full
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = TesseraError("an internal error occurred; it has been logged with this request's id")
        return render_error(err, version_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = HTTPStatus(exc.status_code).phrase
        message = str(exc.detail) if exc.detail and exc.detail != title else f"{request.method} {request.url.path}: {title}"
        return render_error(XapiError(exc.status_code, message, headers=dict(exc.headers or {})), version_of(request))


def build_lrs_app(ctx: AppContext, routers: Iterable[APIRouter]) -> Any:
    """The LRS as one ASGI application (see the module docstring); mount it with
    ``lrs_router``."""
    app = FastAPI(title="Tessera LRS (xAPI 1.0.3 / 2.0)", docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.state.lrs_secrets = _VerifiedSecrets()
    _install_errors(app)
    for router in routers:
        app.include_router(router)
    cors = CORSMiddleware(
        _Gate(app),
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"],
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )
    return _Answer(cors)


def lrs_router(ctx: AppContext, routers: Iterable[APIRouter]) -> APIRouter:
    """An APIRouter that mounts the LRS at /xapi and /xAPI (the spec's examples use both)."""
    app = build_lrs_app(ctx, list(routers))
    outer = APIRouter()
    for prefix in PREFIXES:
        outer.mount(prefix, app)
    return outer


# Errors the gateway's own middleware renders for these paths (e.g. a crash before the LRS
# app runs) take the xAPI shape too.
for _prefix in PREFIXES:
    register_error_shape(_prefix, lambda request, exc: render_error(exc, _answer_version(request.scope)))


__all__ = [
    "CONSISTENT_THROUGH", "SUPPORTED", "V1", "V2", "VERSION_HEADER", "Caller", "LrsPrincipal", "Version", "XapiError",
    "authority_for", "build_lrs_app", "iso", "json_response", "lrs_router", "negotiate_version", "parse_json",
    "principal", "render_error", "xapi_version",
]
