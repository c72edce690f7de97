"""The console assembled: its shared services (``web.Console``), the sign-in and sign-out
pages, the home page that sends each role where it belongs, and each page module's router.

Page modules each export ``build(console) -> APIRouter`` and are listed in ``PAGES``; the
console is mounted by ``install(app, ctx)`` from ``gateway.api.app.create_app`` (off with
``TESSERA_CONSOLE__ENABLED=false``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ..api.problems import register_error_shape
from ..errors import TesseraError
from .settings import ConsoleSettings
from .web import PREFIX, STATIC, Console, Viewer, safe_next

if TYPE_CHECKING:
    from ..api.context import AppContext

#: the page modules of gateway/console, each with ``build(console) -> APIRouter``
PAGES: list[str] = ["learner", "classes", "schools", "admin", "oidc", "links"]


def home_of(console: Console, viewer: Viewer) -> str:
    """Where a role starts: a learner on their profile, a guardian on their child's (or the
    list of them), a teacher on their class (or the list), an admin on the schools."""
    if viewer.role == "learner":
        return f"{PREFIX}/learners/{viewer.person_id}"
    if viewer.role == "guardian":
        wards = console.access.wards(viewer)
        return f"{PREFIX}/learners/{wards[0]}" if len(wards) == 1 else f"{PREFIX}/learners"
    if viewer.role == "teacher":
        sections = console.access.sections(viewer)
        return f"{PREFIX}/classes/{sections[0]}" if len(sections) == 1 else f"{PREFIX}/classes"
    return f"{PREFIX}/schools"


def _core(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("")
    def home(request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        return RedirectResponse(home_of(console, viewer), status_code=303, headers={"Cache-Control": "no-store"})

    @router.get("/sign-in")
    def sign_in(request: Request) -> Response:
        next_url = safe_next(request.query_params.get("next"))
        viewer = console.current(request)
        if viewer is not None:
            return RedirectResponse(next_url if next_url != PREFIX else home_of(console, viewer), status_code=303)
        return console.render(request, "sign_in.html", title="Sign in", next_url=next_url,
                              oidc=bool(console.settings.oidc_issuer and console.settings.oidc_client_id
                                        and console.settings.oidc_tenant))

    @router.post("/sign-out")
    async def sign_out(request: Request, viewer: Viewer = Depends(console.signed_in)) -> Response:
        await console.form(request, viewer)
        resp = RedirectResponse(f"{PREFIX}/sign-in", status_code=303, headers={"Cache-Control": "no-store"})
        return console.end_session(resp)

    return router


def build_router(ctx: AppContext, settings: ConsoleSettings | None = None) -> APIRouter:
    console = Console(ctx, settings)
    router = APIRouter()
    router.include_router(_core(console))
    for name in PAGES:
        router.include_router(importlib.import_module(f"{__package__}.{name}").build(console))
    router.console = console  # type: ignore[attr-defined]
    return router


_registered = False


def _error_page(request: Request, exc: TesseraError) -> Response:
    return request.app.state.console.error_page(request, exc)


def _register_error_pages() -> None:
    """Once per process: the shapes are global, each app's own console renders its errors."""
    global _registered
    if not _registered:
        register_error_shape(PREFIX, _error_page)
        _registered = True


def install(app: FastAPI, ctx: AppContext, settings: ConsoleSettings | None = None) -> Console | None:
    """Mount the console on ``app``: its routers, its stylesheet, its error pages."""
    settings = settings or ConsoleSettings()
    if not settings.enabled:
        return None
    router = build_router(ctx, settings)
    console: Console = router.console  # type: ignore[attr-defined]
    _register_error_pages()
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.state.console = console
    return console


__all__ = ["PAGES", "build_router", "home_of", "install"]
