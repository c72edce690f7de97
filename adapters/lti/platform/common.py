"""What every endpoint of Tessera-as-platform shares: its issuer URL, the error shape of the
LTI Advantage services it answers (AGS, NRPS), and form bodies read as OAuth reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from fastapi.responses import Response

from gateway.errors import AuthError, ScopeError, TesseraError

if TYPE_CHECKING:
    from gateway.api.context import AppContext


def platform_issuer(ctx: AppContext, request: Request) -> str:
    """LTI 1.3 core 5.1.2: ``iss`` is the platform's HTTPS URL; the configured public URL,
    else the URL the request came in on (a test server, a development box)."""
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


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


__all__ = ["form_body", "platform_issuer", "render_service_error"]
