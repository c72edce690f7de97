"""``GET /v1/reports/{kind}``: mastery reports for schools, districts and states.

Kinds: ``distribution``, ``progression``, ``evidence-volume``, ``states``, ``grades``
(``gateway.mastery.reports`` and ``gateway.mastery.grades`` say what each counts).
``format=csv|ndjson|json`` (default json); the body is streamed.

Who may read what:

- ``mastery.readonly``: every report, identified or (``deidentified=true``) not;
  grouping or filtering by a demographic in identified mode also needs
  ``roster-demographics.readonly`` (the counts would otherwise disclose them).
- ``reports.deidentified`` alone (a state education agency's pull): de-identified
  reports only; asking for ``deidentified=false`` is refused (403).

Learner pseudonyms are keyed with the server's ``TESSERA_REPORT_SALT`` environment
variable, which is never logged nor returned.

Include it in ``gateway/api/app.py`` with ``app.include_router(reports.build_router(ctx))``.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..errors import ErrorDetail, NotFound, ScopeError
from ..mastery.reports import (
    DEFAULT_MIN_CELL,
    FORMATS,
    KINDS,
    PERSON_GROUPINGS,
    BadReportRequest,
    Deidentify,
    Reports,
    Scope,
    bad,
    parse_scope,
    salt_from_env,
)
from .context import AppContext

SALT_ENV = "TESSERA_REPORT_SALT"
FULL, DEIDENTIFIED = "mastery.readonly", "reports.deidentified"
PARAMS = frozenset({"format", "org", "section", "grade", "group", "competency", "framework", "group_by", "as_of",
                    "deidentified", "min_cell"})
DEMOGRAPHIC = PERSON_GROUPINGS - {"grade"}


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise bad(name, "expected true or false")
    return value == "true"


def _min_cell(value: str | None) -> int:
    if value is None:
        return DEFAULT_MIN_CELL
    try:
        return int(value)
    except ValueError:
        raise bad("min_cell", "must be an integer of at least 1") from None


def _deidentify(q: Any, principal: Principal, scope: Scope) -> Deidentify | None:
    """De-identified or not, from ``deidentified`` and ``min_cell`` and what the client may read."""
    asked = _flag("deidentified", q.get("deidentified"))
    if not principal.has(FULL):
        if asked is False:
            raise ScopeError(f"identified reports need the scope {FULL}; this client may read de-identified reports only",
                             required=[FULL])
        asked = True
    min_cell = _min_cell(q.get("min_cell"))
    if asked:
        return Deidentify(salt=salt_from_env(SALT_ENV) if os.environ.get(SALT_ENV) else None, min_cell=min_cell)
    if "min_cell" in q:
        raise bad("min_cell", "goes with deidentified=true")
    if (scope.group_by in DEMOGRAPHIC or scope.group) and not principal.has("roster-demographics.readonly"):
        raise ScopeError("identified reports by demographic group need roster-demographics.readonly "
                         "(or ask for deidentified=true)", required=["roster-demographics.readonly"])
    return None


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/v1/reports", tags=["reports"])
    need = Depends(ctx.require(FULL, DEIDENTIFIED))
    reports = Reports(ctx.store)

    @router.get("/{kind}", summary="A mastery report as CSV, NDJSON or JSON (streamed); de-identified on request")
    async def report(kind: str, request: Request, principal: Principal = need) -> StreamingResponse:
        if kind not in KINDS:
            raise NotFound(f"no report {kind!r}; reports: {', '.join(KINDS)}")
        q = request.query_params
        strange = [ErrorDetail(f"unknown query parameter; allowed: {', '.join(sorted(PARAMS))}", location="query", field=n)
                   for n in q if n not in PARAMS]
        if strange:
            raise BadReportRequest("invalid report request", errors=strange)
        fmt = q.get("format", "json")
        if fmt not in FORMATS:
            raise bad("format", f"must be one of {', '.join(FORMATS)}")
        scope = parse_scope(org=q.get("org"), section=q.get("section"), grade=q.get("grade"), group=q.get("group"),
                            competency=q.getlist("competency"), framework=q.get("framework"), group_by=q.get("group_by"),
                            as_of=q.get("as_of"))
        deid = _deidentify(q, principal, scope)
        built = await run_in_threadpool(reports.build, kind, principal.tenant, scope, deid)
        media, render = FORMATS[fmt]
        return StreamingResponse(render(built), media_type=media)

    return router


__all__ = ["build_router"]
