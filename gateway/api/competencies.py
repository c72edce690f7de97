"""The competency structure on the canonical API: hierarchy, prerequisites, crosswalks, search.

``GET /v1/competencies/{id}/children | /ancestors | /prerequisites | /equivalents`` and
``GET /v1/competency-search?q=...``. Thin (STYLE.md): check the query, authorise, ask
``gateway.store.competencies.CompetencyRepository``, answer with the competencies as stored.
Lookup by code is ``GET /v1/competencies?code=...`` (gateway/api/v1.py).

Include it in ``gateway/api/app.py`` with ``app.include_router(competencies.build_router(ctx))``.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import Principal
from ..errors import ErrorDetail, ValidationError
from ..store.competencies import CompetencyRepository
from .context import AppContext

SCOPE = "competencies.readonly"


def _answer(competency_id: uuid.UUID | None, items: list[dict[str, Any]], **extra: Any) -> Response:
    body: dict[str, Any] = {}
    if competency_id is not None:
        body["competency_id"] = str(competency_id)
    body.update(extra)
    body["items"] = items
    return Response(orjson.dumps(body), media_type="application/json")


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["competencies"])
    need = Depends(ctx.require(SCOPE))
    repo = CompetencyRepository.of(ctx.store)

    @router.get("/competencies/{competency_id}/children", summary="Direct children (is_child_of), in sequence order")
    def children(competency_id: uuid.UUID, principal: Principal = need) -> Response:
        return _answer(competency_id, repo.children(principal.tenant, competency_id))

    @router.get("/competencies/{competency_id}/ancestors", summary="Every ancestor (is_child_of), nearest first")
    def ancestors(competency_id: uuid.UUID, principal: Principal = need) -> Response:
        return _answer(competency_id, repo.ancestors(principal.tenant, competency_id))

    @router.get("/competencies/{competency_id}/prerequisites",
                summary="Every prerequisite (precedes), transitively, in learning order; 409 names the items of a cycle")
    def prerequisites(competency_id: uuid.UUID, principal: Principal = need) -> Response:
        return _answer(competency_id, repo.prerequisites(principal.tenant, competency_id))

    @router.get("/competencies/{competency_id}/equivalents",
                summary="Crosswalk: every competency linked by exact_match_of, transitively, across frameworks")
    def equivalents(competency_id: uuid.UUID, principal: Principal = need) -> Response:
        return _answer(competency_id, repo.equivalents(principal.tenant, competency_id))

    @router.get("/competency-search", summary="Competencies whose full statement contains every word of q, best first")
    def search(request: Request, principal: Principal = need) -> Response:
        q = request.query_params
        allowed = {"q", "limit", "framework_id"}
        errors = [ErrorDetail(f"unknown query parameter; allowed: {', '.join(sorted(allowed))}", location="query", field=n)
                  for n in q if n not in allowed]
        limit = 20
        if "limit" in q:
            try:
                limit = int(q["limit"])
                if not 1 <= limit <= 100:
                    raise ValueError
            except ValueError:
                errors.append(ErrorDetail("must be an integer from 1 to 100", location="query", field="limit"))
        framework_id = None
        if "framework_id" in q:
            try:
                framework_id = uuid.UUID(q["framework_id"])
            except ValueError:
                errors.append(ErrorDetail("must be a UUID", location="query", field="framework_id"))
        if not q.get("q", "").strip():
            errors.append(ErrorDetail("give the words to search for", location="query", field="q"))
        if errors:
            raise ValidationError("invalid query", errors=errors)
        return _answer(None, repo.search(principal.tenant, q["q"], limit=limit, framework_id=framework_id), q=q["q"])

    return router


__all__ = ["build_router"]
