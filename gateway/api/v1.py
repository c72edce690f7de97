"""The canonical API: ``/v1/...`` read endpoints with keyset pagination, and the batch write.

Routers stay thin (STYLE.md): parse and check the query, authorise, call the store,
answer. Record JSON is served exactly as stored, spliced into the page without a
parse/serialise round trip; only a record that holds references unresolved
(``extensions["unresolved"]``, ``gateway.store.unresolved``) is parsed, to leave out those
that a later batch has resolved since.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import Principal
from ..errors import ErrorDetail, MalformedInput, UnsupportedMediaType, ValidationError
from ..model import Record, ensure_aware, parse_record
from ..model.tenancy import claim_tenant, labels, relabel
from ..store.evidence import wait_for_derived
from .context import AppContext


@dataclass(frozen=True)
class Collection:
    path: str
    kind: str
    scopes: tuple[str, ...]
    #: query parameter -> (column, parser)
    filters: dict[str, tuple[str, Any]]


def _uuid(v: str) -> uuid.UUID:
    return uuid.UUID(v)


def _bool(v: str) -> bool:
    if v not in ("true", "false"):
        raise ValueError("expected true or false")
    return v == "true"


ROSTER = ("roster-core.readonly",)
COLLECTIONS = [
    Collection("orgs", "org", ROSTER, {"type": ("type", str), "parent_id": ("parent_id", _uuid)}),
    Collection("academic-sessions", "academic_session", ROSTER, {"type": ("type", str), "school_year": ("school_year", int)}),
    Collection("courses", "course", ROSTER, {"org_id": ("org_id", _uuid)}),
    Collection("sections", "section", ROSTER, {"course_id": ("course_id", _uuid), "org_id": ("org_id", _uuid)}),
    Collection("people", "person", ROSTER, {"role": ("primary_role", str)}),
    Collection(
        "enrollments", "enrollment", ROSTER,
        {"person_id": ("person_id", _uuid), "section_id": ("section_id", _uuid), "role": ("role", str)},
    ),
    Collection("frameworks", "framework", ("competencies.readonly",), {}),
    Collection("mastery-states", "mastery_state", ("mastery.readonly",), {
        "learner_id": ("learner_id", _uuid), "competency_id": ("competency_id", _uuid), "level": ("level", str),
        "mastered": ("mastered", _bool),
    }),
    Collection(
        "competencies", "competency", ("competencies.readonly",),
        {"framework_id": ("framework_id", _uuid), "code": ("code", str)},
    ),
    Collection(
        "evidence", "evidence", ("evidence.readonly",),
        {"learner_id": ("learner_id", _uuid), "competency_id": ("competency_id", _uuid), "voided": ("voided", _bool),
         # evidence no alignment resolved yet: kept, never dropped, listed for an integrator to align
         "unaligned": ("competency_id__null", _bool)},
    ),
]
COMMON_PARAMS = {"limit", "cursor", "updated_since", "status"}
#: kinds derived from inputs an adapter may acknowledge first (``gateway.store.evidence.wait_for_derived``):
#: their lists take ``consistent_through`` and say how far derivation has come
DERIVED_KINDS = {"evidence": "consistent_through", "mastery_state": "consistent_through"}


def _parse_query(request: Request, coll: Collection, ctx: AppContext) -> tuple[int, str | None, datetime | None, dict[str, Any]]:
    errors: list[ErrorDetail] = []
    q = request.query_params
    extra = {DERIVED_KINDS[coll.kind]} if coll.kind in DERIVED_KINDS else set()
    for name in q:
        if name not in COMMON_PARAMS and name not in coll.filters and name not in extra:
            allowed = ", ".join(sorted(COMMON_PARAMS | set(coll.filters) | extra))
            errors.append(ErrorDetail(f"unknown query parameter; allowed: {allowed}", location="query", field=name))
    limit = ctx.settings.page_size_default
    if "limit" in q:
        try:
            limit = int(q["limit"])
            if not 1 <= limit <= ctx.settings.page_size_max:
                raise ValueError
        except ValueError:
            errors.append(ErrorDetail(f"must be an integer from 1 to {ctx.settings.page_size_max}", location="query", field="limit"))
    since = None
    if "updated_since" in q:
        try:
            since = ensure_aware(datetime.fromisoformat(q["updated_since"].replace("Z", "+00:00")))
        except ValueError:
            errors.append(ErrorDetail("must be an ISO 8601 date-time, e.g. 2026-09-01T00:00:00Z", location="query", field="updated_since"))
    filters: dict[str, Any] = {}
    if "status" in q:
        if q["status"] not in ("active", "tobedeleted"):
            errors.append(ErrorDetail("must be active or tobedeleted", location="query", field="status"))
        filters["status"] = q["status"]
    for name, (column, parse) in coll.filters.items():
        if name in q:
            try:
                filters[column] = parse(q[name])
            except ValueError as exc:
                errors.append(ErrorDetail(f"invalid value: {exc}", location="query", field=name))
    if errors:
        raise ValidationError("invalid query", errors=errors)
    return limit, q.get("cursor"), since, filters


def _strip_demographics(data: str, principal: Principal) -> str:
    """roster-core.readonly sees people without their demographics (OneRoster 1.2 scope rule)."""
    if principal.has("roster-demographics.readonly") or '"demographics"' not in data:
        return data
    doc = orjson.loads(data)
    doc.pop("demographics", None)
    return orjson.dumps(doc).decode()


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["canonical"])

    def add_collection(coll: Collection) -> None:
        need = ctx.require(*coll.scopes)

        def list_records(request: Request, principal: Principal = Depends(need)) -> Response:
            limit, cursor, since, filters = _parse_query(request, coll, ctx)
            headers: dict[str, str] = {}
            if coll.kind in DERIVED_KINDS:  # first: wait (bounded) for what the client asked to see
                headers.update(wait_for_derived(ctx.store, principal.tenant, request.query_params.get("consistent_through")))
            page = ctx.store.records.page(principal.tenant, coll.kind, limit=limit, cursor=cursor, updated_since=since, filters=filters)
            items = ctx.store.records.show_unresolved(principal.tenant, page.items)
            if coll.kind == "person":
                items = [_strip_demographics(d, principal) for d in items]
            next_url = None
            if page.next_cursor:
                params = {k: v for k, v in request.query_params.items() if k != "cursor"}
                params["cursor"] = page.next_cursor
                base = ctx.settings.public_url.rstrip("/") if ctx.settings.public_url else str(request.base_url).rstrip("/")
                next_url = f"{base}{request.url.path}?{urlencode(params)}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            body = (
                '{"items":[' + ",".join(items) + '],"next_cursor":'
                + (f'"{page.next_cursor}"' if page.next_cursor else "null")
                + ',"next":' + (orjson.dumps(next_url).decode() if next_url else "null") + "}"
            )
            return Response(body, media_type="application/json", headers=headers)

        def get_record(record_id: uuid.UUID, principal: Principal = Depends(need)) -> Response:
            data = ctx.store.records.show_unresolved(principal.tenant, [ctx.store.records.get_json(principal.tenant, coll.kind, record_id)])[0]
            if coll.kind == "person":
                data = _strip_demographics(data, principal)
            return Response(data, media_type="application/json")

        router.add_api_route(f"/{coll.path}", list_records, methods=["GET"], name=f"list_{coll.path}",
                             summary=f"List {coll.path} (keyset pagination)")
        router.add_api_route(f"/{coll.path}/{{record_id}}", get_record, methods=["GET"], name=f"get_{coll.path}",
                             summary=f"One of {coll.path}; 404 also for other tenants' ids")

    for coll in COLLECTIONS:
        add_collection(coll)

    @router.post("/batches", status_code=201, summary="Write canonical records of any kind, atomically")
    async def post_batch(request: Request, principal: Principal = Depends(ctx.require("records.write"))) -> Response:
        body = await read_json_body(request)
        records = parse_batch(body, tenant=principal.tenant)
        from starlette.concurrency import run_in_threadpool

        result = await run_in_threadpool(ctx.store.records.apply, principal.tenant, records)
        return Response(orjson.dumps(result.as_dict()), status_code=201, media_type="application/json")

    return router


async def read_json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType(f"send the body as application/json (got {ctype or 'no content type'})")
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput("the request body is not valid JSON", errors=[ErrorDetail(str(exc), location="body")]) from None


def parse_batch(body: Any, *, tenant: str) -> list[Record]:
    """``{"records": [...]}`` -> records of ``tenant``, with every error located as ``records[i].field``.
    Which tenant a record is for: ``gateway.model.tenancy`` (the rule NDJSON imports follow too)."""
    if not isinstance(body, dict) or set(body) != {"records"} or not isinstance(body["records"], list):
        raise ValidationError('expected an object with exactly one member, "records": an array of canonical records')
    items = body["records"]
    mapping = labels((item for item in items if isinstance(item, dict)), tenant)
    records, errors = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):  # parse_record would take a string for JSON text and skip the tenant check
            errors.append(ErrorDetail("must be a JSON object: a canonical record", location=f"records[{i}]"))
            continue
        try:
            item = claim_tenant(item, tenant)
        except ValueError as exc:
            errors.append(ErrorDetail(str(exc), location=f"records[{i}]", field="tenant"))
            continue
        if mapping:
            item = relabel(item, mapping)
        try:
            records.append(parse_record(item, location=f"records[{i}]"))
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationError("the batch was rejected; nothing was stored", errors=errors)
    return records
