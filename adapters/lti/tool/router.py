"""Tessera as an LTI 1.3 tool: its endpoints assembled, and what they share (``ToolService``).

The flow (1EdTech Security Framework 1.0, 5.1.1; LTI 1.3 core 5), one module per step:

1. ``/lti/login``: the platform's third-party initiated login (``oidc_login``).
2. ``/lti/launch``: the id_token, validated (``message_launch``).
3. A valid resource link launch records the learner or teacher (``roster``) and the
   context's service URLs (``contexts``), then opens a web console session and redirects to
   the person's page (``view.console_sign_in``, ``gateway.console.signin``), or, with the
   console off, shows Tessera's small page (``view``); a Deep Linking request shows the
   competency picker (``deep_link``). The nonce is spent in the
   same transaction as the records, so a refused launch records nothing.

The routers of Deep Linking, AGS (``assignments_grades``) and NRPS (``names_roles``) come
with this one. Every refusal is an ``LtiLaunchError``: an HTML error page, or a redirect to
the verified launch's ``launch_presentation.return_url`` with ``lti_errormsg`` (core
4.4.1). Refusals are logged with their reason and the issuer, never with the token.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from gateway.api.problems import register_error_shape
from gateway.http import HttpClient

from ..claims import DEEP_LINKING
from . import assignments_grades, deep_link, names_roles, oidc_login
from . import tables as tt
from .common import LtiLaunchError, refuse, render_error
from .contexts import context_row
from .message_launch import SKEW_SECONDS, Launch, PlatformKeys, spend_nonce, validate_id_token
from .oidc_login import COOKIE_PREFIX, STATE_SECONDS, take_login_state
from .platforms import PlatformStore
from .roster import launch_records
from .service_auth import ServiceAuth
from .view import console_sign_in, view

if TYPE_CHECKING:
    from gateway.api.context import AppContext

log = logging.getLogger("tessera.lti")


async def _params(request: Request) -> dict[str, str]:
    """Query parameters and, for a form POST, the form fields (later wins)."""
    out = dict(request.query_params)
    if request.method == "POST":
        out.update(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
    return out


@dataclass
class ToolService:
    """What the tool's endpoints share: the registrations and the platforms' key cache."""

    ctx: AppContext
    keys: PlatformKeys = field(default_factory=PlatformKeys)

    def __post_init__(self) -> None:
        self.platforms = PlatformStore(self.ctx.store.engine)

    def login(self, request: Request, p: dict[str, str]) -> Response:
        """Security Framework 5.1.1.1-5.1.1.2 (``oidc_login``)."""
        return oidc_login.login(self.ctx, self.platforms, request, p)

    def launch(self, request: Request, p: dict[str, str]) -> Launch:
        """Security Framework 5.1.1.3 and 5.1.3: the authentication response."""
        if p.get("error"):
            raise refuse(f"the platform refused the login: {p['error']} {p.get('error_description', '')}".strip())
        state, token = p.get("state", ""), p.get("id_token", "")
        if not state or not token:
            raise refuse("the launch lacks the state or the id_token")
        if request.cookies.get(COOKIE_PREFIX + state) != state:
            raise refuse("the launch's state does not match this browser's login (state cookie)", status=401)
        ls = take_login_state(self.ctx.store.engine, state)
        platform = self.platforms.by_id(ls.platform_id) if ls is not None else None
        if ls is None or platform is None:
            raise refuse("the launch's state is unknown, used or expired: start again from the platform", status=401)
        return validate_id_token(token, platform, nonce=ls.nonce, target_link_uri=ls.target_link_uri, keys=self.keys)

    def record(self, launch: Launch) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """Write the launch's Person and Enrollment, spend its nonce and keep its context's
    service URLs, in one transaction."""
        records, person_id, section_id = launch_records(self.ctx, launch)
        scope = f"lti13:{launch.platform.issuer}"
        nonce = str(launch.claims["nonce"])
        context = context_row(launch, section_id)

        def within(conn: Connection) -> None:
            if not spend_nonce(conn, scope, nonce, STATE_SECONDS + 2 * SKEW_SECONDS):
                raise refuse("the id_token's nonce was already used (replay)", status=401)
            if context is not None:
                tt.upsert(conn, tt.contexts, context, ["platform_id", "context_id"])

        self.ctx.store.records.apply(launch.platform.tenant, records, within=within)
        return person_id, section_id


def _logged(what: str, fn: Callable[[], Response]) -> Response:
    try:
        return fn()
    except LtiLaunchError as exc:
        log.warning("LTI %s refused: %s", what, exc.detail)
        raise


def build_router(ctx: AppContext, *, keys: PlatformKeys | None = None) -> APIRouter:
    router = APIRouter(tags=["lti"])
    service = ToolService(ctx, keys or PlatformKeys())
    for prefix in ("/lti/login", "/lti/launch", "/lti/deep-linking"):
        register_error_shape(prefix, render_error)

    # two decorators, not api_route(methods=[...]): each method gets its own OpenAPI operation id
    @router.get("/lti/login", summary="OIDC third-party initiated login (LTI 1.3 tool)")
    @router.post("/lti/login", summary="OIDC third-party initiated login (LTI 1.3 tool)")
    async def login(request: Request) -> Response:
        p = await _params(request)
        return await run_in_threadpool(_logged, "login", lambda: service.login(request, p))

    @router.post("/lti/launch", summary="LTI 1.3 launch: the id_token from the platform")
    async def launch(request: Request) -> Response:
        p = await _params(request)

        def run() -> Response:
            result = service.launch(request, p)
            if result.message_type == DEEP_LINKING:
                service.record(result)
                return deep_link.picker(ctx, result)
            person_id, section_id = service.record(result)
            console = getattr(request.app.state, "console", None)
            resp = console_sign_in(console, ctx, result, person_id, section_id, via="lti1.3") or view(ctx, result, person_id, section_id)
            resp.delete_cookie(COOKIE_PREFIX + p["state"], path="/lti/")
            return resp

        return await run_in_threadpool(_logged, "launch", run)

    router.include_router(deep_link.build_router(ctx))
    services = ServiceAuth(ctx.auth.keys, HttpClient(timeout=15))
    router.include_router(assignments_grades.build_router(ctx, services))
    router.include_router(names_roles.build_router(ctx, services))
    return router


__all__ = ["ToolService", "build_router"]
