"""``/ndjson/records``: bulk import and streaming export of canonical NDJSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from gateway.auth import Principal
from gateway.auth.scopes import READ_SCOPE
from gateway.errors import ErrorDetail, ScopeError, UnsupportedMediaType, ValidationError
from gateway.model import RECORD_TYPES

if TYPE_CHECKING:
    from gateway.api.context import AppContext

MEDIA_TYPE = "application/x-ndjson"


def build_router(adapter: Any, ctx: AppContext) -> APIRouter:
    """``adapter``: the NdjsonAdapter (its ``parse`` and ``emit``)."""
    router = APIRouter(prefix="/ndjson", tags=["ndjson"])

    @router.post("/records", status_code=201, summary="Import canonical NDJSON atomically")
    async def import_records(request: Request, principal: Principal = Depends(ctx.require("records.write"))) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != MEDIA_TYPE:
            raise UnsupportedMediaType(f"send the body as {MEDIA_TYPE} (got {ctype or 'no content type'})")
        body = await request.body()
        records = await run_in_threadpool(adapter.parse, body, tenant=principal.tenant)
        result = await run_in_threadpool(ctx.store.records.apply, principal.tenant, records)
        return Response(orjson.dumps(result.as_dict()), status_code=201, media_type="application/json")

    @router.get("/records", summary="Export the tenant's records as canonical NDJSON, streamed")
    def export_records(request: Request, principal: Principal = Depends(ctx.require())) -> StreamingResponse:
        kinds = request.query_params.getlist("kind")
        unknown = [k for k in kinds if k not in RECORD_TYPES]
        if unknown:
            raise ValidationError(
                "unknown record kind", errors=[ErrorDetail(f"{k!r} is not one of {sorted(RECORD_TYPES)}", location="query", field="kind") for k in unknown]
            )
        if kinds:
            missing = sorted({READ_SCOPE[k] for k in kinds if not principal.has(READ_SCOPE[k])})
            if missing:
                raise ScopeError(f"exporting these kinds needs the scopes: {' '.join(missing)}", required=missing)
        else:
            kinds = [k for k in RECORD_TYPES if principal.has(READ_SCOPE[k])]
        demographics = principal.has("roster-demographics.readonly")

        def stream() -> Iterator[bytes]:
            for rec in ctx.store.records.iter_records(principal.tenant, kinds):
                if rec.KIND == "person" and not demographics:
                    rec = rec.model_copy(update={"demographics": None})
                yield from adapter.emit([rec])

        return StreamingResponse(stream(), media_type=MEDIA_TYPE)

    return router
