"""``GET /v1/reports/{kind}``: mastery reports for schools, districts and states.

Kinds: ``distribution``, ``progression``, ``evidence-volume``, ``states``, ``grades``
(``gateway.reports`` says what each counts). ``format=csv|ndjson|json`` (default json);
the body is streamed. Who may read what (and de-identified or not): ``gateway.reports.access``.

Include it in ``gateway/api/app.py`` with ``app.include_router(reports.build_router(ctx))``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..errors import NotFound
from ..reports.access import DEIDENTIFIED, FULL, deidentify_for
from ..reports.builder import Reports
from ..reports.formats import FORMATS
from ..reports.scope import KINDS, parse_scope, report_format
from .context import AppContext

PARAMS = frozenset({"format", "org", "section", "grade", "group", "competency", "framework", "group_by", "as_of",
                    "deidentified", "min_cell"})


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/v1/reports", tags=["reports"])
    need = Depends(ctx.require(FULL, DEIDENTIFIED))
    reports = Reports(ctx.store)

    @router.get("/{kind}", summary="A mastery report as CSV, NDJSON or JSON (streamed); de-identified on request")
    async def report(kind: str, request: Request, principal: Principal = need) -> StreamingResponse:
        if kind not in KINDS:
            raise NotFound(f"no report {kind!r}; reports: {', '.join(KINDS)}")
        q = request.query_params
        fmt = report_format(q, PARAMS, FORMATS)
        scope = parse_scope(org=q.get("org"), section=q.get("section"), grade=q.get("grade"), group=q.get("group"),
                            competency=q.getlist("competency"), framework=q.get("framework"), group_by=q.get("group_by"),
                            as_of=q.get("as_of"))
        deid = deidentify_for(q, principal, scope)
        built = await run_in_threadpool(reports.build, kind, principal.tenant, scope, deid)
        media, render = FORMATS[fmt]
        return StreamingResponse(render(built), media_type=media)

    return router


__all__ = ["build_router"]
