"""RFC 9457 problem details: the one place errors become HTTP answers for the canonical API.

Adapters whose standard defines its own error shape (OneRoster imsx_StatusInfo, xAPI,
LTI) register their own handler for their paths through ``register_error_shape``; every
other path answers ``application/problem+json``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AuthError, ErrorDetail, ScopeError, TesseraError
from ..model import pydantic_errors

log = logging.getLogger("tessera.api")

TYPE_BASE = "https://tessera.dev/problems/"

#: path prefix -> function(request, TesseraError) -> Response, for standards with their own shape
_SHAPES: list[tuple[str, Callable[[Request, TesseraError], Response]]] = []


def register_error_shape(prefix: str, render: Callable[[Request, TesseraError], Response]) -> None:
    _SHAPES.append((prefix, render))
    _SHAPES.sort(key=lambda p: -len(p[0]))


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_slug: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + type_slug if type_slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


def render(request: Request, exc: TesseraError) -> Response:
    for prefix, shape in _SHAPES:
        if request.url.path.startswith(prefix):
            return shape(request, exc)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera", error="invalid_token", error_description="{_qdtext(exc.detail)}"'
    elif isinstance(exc, ScopeError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera", error="insufficient_scope", scope="{_qdtext(" ".join(exc.required))}"'
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        type_slug=exc.type_slug,
        instance=request.url.path,
        errors=[e.as_dict() for e in exc.errors] or None,
        headers=headers or None,
    )


_NOT_QDTEXT = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def _qdtext(value: str) -> str:
    """RFC 6750 3: error_description and scope values exclude '"', '\\' and anything but
    printable ASCII; a '"' (pyjwt quotes claim names in its messages) becomes "'"."""
    return _NOT_QDTEXT.sub(lambda m: "'" if m.group() == '"' else "", value)


def install(app: FastAPI) -> None:
    @app.exception_handler(TesseraError)
    async def _tessera(request: Request, exc: TesseraError) -> Response:
        if exc.status >= 500:
            log.error("request failed: %s", exc.detail)
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            where = str(loc.pop(0)) if loc else None
            path = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
            errors.append(ErrorDetail(err.get("msg", "invalid"), location=where, field=path or None))
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        from ..errors import MalformedInput, ValidationError

        cls = MalformedInput if malformed else ValidationError
        return render(request, cls("the request body is not valid JSON" if malformed else "the request is invalid", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = HTTPStatus(exc.status_code).phrase
        err = TesseraError(str(exc.detail) if exc.detail and exc.detail != title else title)
        err.status, err.title, err.type_slug = exc.status_code, title, title.lower().replace(" ", "-")
        resp = render(request, err)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = TesseraError("an internal error occurred; it has been logged with this request's id")
        return render(request, err)


__all__ = ["install", "problem", "pydantic_errors", "register_error_shape", "render"]
