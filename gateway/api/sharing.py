"""``/v1/grants``, ``/v1/changes`` and ``/v1/exports``: data sharing with state agencies
and research partners (``gateway.sharing`` says what each does).

Who may do what:

* a district creates, lists, revokes its grants and reads their access logs with scope
  ``admin`` (it sees the grants it gave and those it received);
* a reader follows the change feed with ``changes.readonly``: its own tenant's changes, and
  every district's whose active grant allows ``changes.readonly`` (``grant=ID`` narrows
  the feed to one grant);
* a reader exports with ``exports``: its own tenant, a grantor's under ``grant``, or many
  grantors' at once under ``grants`` (a list of grant ids, or ``"all"``: one read of each kind).
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..errors import ErrorDetail, ScopeError, ValidationError
from ..reports import DEFAULT_MIN_CELL, Reports, parse_scope
from ..reports.access import DEIDENTIFIED, FULL
from ..reports.formats import FORMATS as REPORT_FORMATS
from ..reports.scope import report_format
from ..sharing.deidentify import pseudonym_key
from ..sharing.export_many import granted as granted_to
from ..sharing.feed import DEFAULT_LIMIT, ChangeFeed
from ..sharing.grants import GrantStore, parse_when
from ..sharing.jobs import JobRunner
from ..sharing.reports import GrantedReports
from .context import AppContext
from .v1 import read_json_body

GRANT_FIELDS = {"grantee", "purpose", "starts_at", "ends_at", "scopes", "kinds", "deidentified"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError("invalid query", errors=[ErrorDetail("must be an integer", location="query", field=name)]) from None


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError("invalid request", errors=[ErrorDetail("must be a UUID", field=field)]) from None


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["data sharing"])
    grants = GrantStore(ctx.store.engine)
    key = functools.cache(lambda: pseudonym_key(ctx.settings.database_url))  # read (or made) when first needed
    feed = ChangeFeed(ctx.store, grants, key)
    granted = GrantedReports(Reports(ctx.store), grants)
    jobs = JobRunner(ctx.store, grants, Path(ctx.settings.export_dir), key)
    try:
        jobs.recover()
    except SQLAlchemyError:  # an unreachable or unmigrated database: /readyz says so; nothing to recover from it
        pass
    router.export_jobs = jobs  # type: ignore[attr-defined]  # create_app keeps it in app.state (tests wait on it)
    admin = Depends(ctx.require("admin"))

    # --- grants ------------------------------------------------------------------------------------

    @router.post("/grants", status_code=201, summary="Grant another tenant access to this district's data")
    async def create_grant(request: Request, principal: Principal = admin) -> Response:
        body = await read_json_body(request)
        if not isinstance(body, dict):
            raise ValidationError("expected a JSON object")
        unknown = sorted(set(body) - GRANT_FIELDS)
        missing = sorted({"grantee", "purpose", "starts_at", "ends_at", "scopes", "kinds"} - set(body))
        errors = [ErrorDetail("unknown member", field=f) for f in unknown] + [ErrorDetail("required", field=f) for f in missing]
        for f in ("scopes", "kinds"):
            if f in body and not (isinstance(body[f], list) and all(isinstance(x, str) for x in body[f])):
                errors.append(ErrorDetail("must be a list of strings", field=f))
        for f in ("grantee", "purpose", "starts_at", "ends_at"):
            if f in body and not isinstance(body[f], str):
                errors.append(ErrorDetail("must be a string", field=f))
        if "deidentified" in body and not isinstance(body["deidentified"], bool):
            errors.append(ErrorDetail("must be true or false", field="deidentified"))
        if errors:
            raise ValidationError("invalid grant", errors=errors)
        grant = await run_in_threadpool(
            grants.create, principal.tenant, body["grantee"], purpose=body["purpose"],
            starts_at=parse_when(body["starts_at"], "starts_at"), ends_at=parse_when(body["ends_at"], "ends_at"),
            scopes=body["scopes"], kinds=body["kinds"], deidentified=body.get("deidentified", True), created_by=principal.client_id)
        return _json(grant.as_json(), 201)

    @router.get("/grants", summary="The grants this tenant gave and received")
    async def list_grants(request: Request, principal: Principal = admin) -> Response:
        role = request.query_params.get("role", "any")
        if role not in ("any", "grantor", "grantee"):
            raise ValidationError("invalid query", errors=[ErrorDetail("must be any, grantor or grantee", location="query", field="role")])
        found = await run_in_threadpool(grants.find, principal.tenant, role=role)
        return _json({"grants": [g.as_json() for g in found]})

    @router.get("/grants/{grant_id}", summary="One grant (its grantor or grantee only)")
    async def get_grant(grant_id: str, principal: Principal = admin) -> Response:
        return _json((await run_in_threadpool(grants.get, _uuid(grant_id, "grant_id"), tenant=principal.tenant)).as_json())

    @router.post("/grants/{grant_id}/revoke", summary="Revoke a grant at once (its grantor only)")
    async def revoke_grant(grant_id: str, principal: Principal = admin) -> Response:
        g = await run_in_threadpool(grants.revoke, _uuid(grant_id, "grant_id"), grantor=principal.tenant, by=principal.client_id)
        return _json(g.as_json())

    @router.delete("/grants/{grant_id}", summary="Revoke a grant (the same as POST .../revoke; grants are never deleted)")
    async def delete_grant(grant_id: str, principal: Principal = admin) -> Response:
        g = await run_in_threadpool(grants.revoke, _uuid(grant_id, "grant_id"), grantor=principal.tenant, by=principal.client_id)
        return _json(g.as_json())

    @router.get("/grants/{grant_id}/access-log", summary="Every read under a grant (its grantor only)")
    async def access_log(grant_id: str, request: Request, principal: Principal = admin) -> Response:
        after = _int(request, "after", 0) or 0
        limit = min(max(_int(request, "limit", 1000) or 1000, 1), 10_000)
        rows = await run_in_threadpool(grants.access_log, _uuid(grant_id, "grant_id"), grantor=principal.tenant, limit=limit, after=after)
        return _json({"entries": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None})

    # --- the change feed ---------------------------------------------------------------------------

    need_feed = Depends(ctx.require("changes.readonly"))

    @router.get("/changes/available", summary="The oldest and newest change versions (newest: safe to read up to now)")
    async def available(principal: Principal = need_feed) -> Response:
        return _json(await run_in_threadpool(feed.available))

    @router.get("/changes", summary="Changes after a version, in version order, with records or tombstones")
    async def changes(request: Request, principal: Principal = need_feed) -> Response:
        q = request.query_params
        allowed = {"since", "until", "kinds", "limit", "grant"}
        strange = [ErrorDetail(f"unknown query parameter; allowed: {', '.join(sorted(allowed))}", location="query", field=n)
                   for n in q if n not in allowed]
        if strange:
            raise ValidationError("invalid change query", errors=strange)
        grant_id = _uuid(q["grant"], "grant") if "grant" in q else None
        kinds = [k for part in q.getlist("kinds") for k in part.split(",") if k]
        reader = await run_in_threadpool(feed.reader, principal.tenant, principal.client_id, principal.scopes, grant_id=grant_id)
        page = await run_in_threadpool(feed.page, reader, since=_int(request, "since", 0) or 0, until=_int(request, "until", None),
                                       kinds=kinds, limit=_int(request, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT)
        return _json({"since": page.since, "until": page.until, "next_since": page.next_since, "more": page.more,
                      "changes": page.changes})

    # --- reports under grants ----------------------------------------------------------------------

    need_reports = Depends(ctx.require(DEIDENTIFIED, FULL))

    @router.get("/reports/granted/{kind}", summary="Aggregate, de-identified mastery reports of every district that granted this tenant")
    async def granted_report(kind: str, request: Request, principal: Principal = need_reports) -> StreamingResponse:
        q = request.query_params
        allowed = {"format", "grant", "grade", "competency", "framework", "group_by", "as_of", "min_cell"}
        fmt = report_format(q, allowed, REPORT_FORMATS, error=ValidationError)
        scope = parse_scope(grade=q.get("grade"), competency=q.getlist("competency"), framework=q.get("framework"),
                            group_by=q.get("group_by"), as_of=q.get("as_of"))
        grant_id = _uuid(q["grant"], "grant") if "grant" in q else None
        built = await run_in_threadpool(granted.build, principal.tenant, principal.client_id, kind, scope,
                                        min_cell=_int(request, "min_cell", DEFAULT_MIN_CELL) or 0, grant_id=grant_id)
        media, render = REPORT_FORMATS[fmt]
        return StreamingResponse(render(built), media_type=media)

    # --- bulk exports ------------------------------------------------------------------------------

    need_export = Depends(ctx.require("exports"))

    @router.post("/exports", status_code=202, summary="Start a bulk export (Parquet, NDJSON or CSV) of this tenant or under a grant")
    async def start_export(request: Request, principal: Principal = need_export) -> Response:
        body = await read_json_body(request)
        if not isinstance(body, dict) or sorted(set(body) - {"format", "kinds", "since", "grant", "grants"}):
            raise ValidationError("expected an object with format, kinds, and optionally since and grant (or grants)")
        if body.get("grants") is not None:
            return _json(await run_in_threadpool(_start_many, body, principal), 202)
        grant = None
        if body.get("grant") is not None:
            gid = _uuid(str(body["grant"]), "grant")
            found = await run_in_threadpool(grants.active_for, principal.tenant, "exports", grant_id=gid)
            if not found:
                raise ScopeError(f"grant {gid} is unknown, revoked, expired or does not allow exports", required=["exports"])
            grant = found[0]
        since = _export_since(body)
        kinds = _export_kinds(body)
        job = await run_in_threadpool(jobs.submit, tenant=principal.tenant, client_id=principal.client_id,
                                      fmt=str(body.get("format", "parquet")), kinds=kinds, since=since, grant=grant)
        return _json(job, 202)

    def _start_many(body: dict[str, Any], principal: Principal) -> dict[str, Any]:
        """``grants``: a list of grant ids made to this tenant, or ``"all"`` (every active grant to
        it that allows exports and a kind asked): one job, one read of each kind (``export_many``)."""
        named = body["grants"]
        if body.get("grant") is not None or not (named == "all" or (isinstance(named, list) and named and all(isinstance(g, str) for g in named))):
            raise ValidationError("invalid export request", errors=[ErrorDetail(
                'must be a list of grant ids or "all" (and without grant)', field="grants")])
        kinds, since = _export_kinds(body), _export_since(body)
        ids = [] if named == "all" else [_uuid(g, "grants") for g in named]
        _, chosen = granted_to(grants, recipient=principal.tenant, grant_ids=ids, kinds=kinds,
                            refused=lambda message: ScopeError(message, required=["exports"]))
        return jobs.submit_many(tenant=principal.tenant, client_id=principal.client_id, fmt=str(body.get("format", "parquet")),
                                kinds=kinds, since=since, grants=chosen)

    @router.get("/exports", summary="This tenant's exports, newest first")
    async def list_exports(principal: Principal = need_export) -> Response:
        return _json({"exports": await run_in_threadpool(jobs.list, tenant=principal.tenant)})

    @router.get("/exports/{job_id}", summary="One export: its status and, when done, its manifest")
    async def get_export(job_id: str, principal: Principal = need_export) -> Response:
        return _json(await run_in_threadpool(jobs.get, _uuid(job_id, "job_id"), tenant=principal.tenant))

    @router.get("/exports/{job_id}/files/{name:path}", summary="Download one file of a finished export (a multi-grant export's: <district>/<file>)")
    async def export_file(job_id: str, name: str, principal: Principal = need_export) -> FileResponse:
        path = await run_in_threadpool(jobs.file, _uuid(job_id, "job_id"), name, tenant=principal.tenant)
        return FileResponse(path, filename=name)

    return router


def _export_since(body: dict[str, Any]) -> int | None:
    since = body.get("since")
    if since is not None and not (isinstance(since, int) and since >= 0):
        raise ValidationError("invalid export request", errors=[ErrorDetail("must be a change version (an integer >= 0)", field="since")])
    return since


def _export_kinds(body: dict[str, Any]) -> list[str]:
    kinds = body.get("kinds") or []
    if not (isinstance(kinds, list) and all(isinstance(k, str) for k in kinds)):
        raise ValidationError("invalid export request", errors=[ErrorDetail("must be a list of record kinds", field="kinds")])
    return kinds


__all__ = ["build_router"]
