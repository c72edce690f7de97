"""The routing layer's API (docs/routing.md): connections, routes, their health, sync runs,
dead letters (scope ``admin``, each tenant sees only its own), and ``/metrics``.

* ``/v1/connections`` and ``/v1/routes``: list (paged by name: ``limit``, ``cursor``, a
  ``Link: rel=next``), create, show, change (``PATCH``: the fields given), delete (only
  what has no history; ``PATCH {"enabled": false}`` disables a route). Entries declared in
  gateway.yaml are read-only here (409: edit the file). Secrets are never accepted inline,
  only ``env:NAME`` references, and no answer ever holds a secret's value.
* ``/v1/routes/{id}/health``: pending and dead rows, the oldest pending row's age, the
  cursor's age, the last sync run and the remote connection's circuit breaker.
* ``/v1/sync-runs`` (``route_id``, ``status``; newest first) and ``/v1/sync-runs/{id}``.
* ``/v1/dead-letters`` (``route_id``, ``state=dead|discarded``) and ``/{id}`` with the
  request, the response excerpt and the attempts; ``POST /{id}/replay``, ``POST /{id}/discard``
  (or ``DELETE /{id}``); ``POST /v1/dead-letters/replay`` and ``/discard`` take
  ``{"route_id": ...}`` or ``{"ids": [...]}`` for many at once.
* ``/metrics``: Prometheus text (``gateway.routing.metrics.REGISTRY``), store-backed
  gauges refreshed on each scrape. It needs a token with scope ``metrics`` (Prometheus'
  ``oauth2`` scrape setting does the client-credentials grant), or nothing at all when
  ``TESSERA_METRICS_PUBLIC=true`` (for a scrape over a private network only: the route and
  connection names it shows are every tenant's).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..errors import ErrorDetail, NotFound, ValidationError
from ..routing import manage, repository
from .context import AppContext
from .v1 import read_json_body

if TYPE_CHECKING:
    from ..wiring import Wiring

SCOPE = "admin"
#: an outbox id (a BIGINT): anything else is a 422, never a database error
OutboxId = Annotated[int, Path(ge=1, le=2**63 - 1)]
METRICS_SCOPE = "metrics"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _query(request: Request, ctx: AppContext, allowed: set[str]) -> tuple[int, str | None, dict[str, str]]:
    q = request.query_params
    allowed = allowed | {"limit", "cursor"}
    errors = [ErrorDetail(f"unknown query parameter; allowed: {', '.join(sorted(allowed))}", location="query", field=n)
              for n in q if n not in allowed]
    limit = ctx.settings.page_size_default
    if "limit" in q:
        try:
            limit = int(q["limit"])
            if not 1 <= limit <= ctx.settings.page_size_max:
                raise ValueError
        except ValueError:
            errors.append(ErrorDetail(f"must be an integer from 1 to {ctx.settings.page_size_max}", location="query", field="limit"))
    if errors:
        raise ValidationError("invalid query", errors=errors)
    return limit, q.get("cursor"), {k: v for k, v in q.items() if k not in ("limit", "cursor")}


def _uuid_param(value: str | None, name: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError("invalid query", errors=[ErrorDetail("must be a UUID", location="query", field=name)]) from None


def _paged(request: Request, ctx: AppContext, items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    """The /v1 list shape: ``items``, ``next_cursor``, ``next`` and a ``Link: rel=next``."""
    headers: dict[str, str] = {}
    next_url = None
    if next_cursor:
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        params["cursor"] = next_cursor
        base = ctx.settings.public_url.rstrip("/") if ctx.settings.public_url else str(request.base_url).rstrip("/")
        next_url = f"{base}{request.url.path}?{urlencode(params)}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return _json({"items": items, "next_cursor": next_cursor, "next": next_url}, headers=headers)


def _ids_body(body: Any) -> tuple[list[int] | None, uuid.UUID | None]:
    """``{"ids": [1, 2]}`` or ``{"route_id": "..."}`` (or ``{}``: every one of the tenant)."""
    if not isinstance(body, dict) or set(body) - {"ids", "route_id"}:
        raise ValidationError('send {"ids": [outbox ids]} or {"route_id": "..."} (or {} for all)')
    ids = body.get("ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) and 1 <= i < 2**63 for i in ids)):
        raise ValidationError("invalid body", errors=[ErrorDetail("must be a list of dead-letter ids", location="body", field="ids")])
    route = body.get("route_id")
    try:
        return ids, uuid.UUID(route) if route is not None else None
    except (ValueError, AttributeError, TypeError):
        raise ValidationError("invalid body", errors=[ErrorDetail("must be a route id", location="body", field="route_id")]) from None


def refresh_gauges(ctx: AppContext) -> None:
    """The store-backed gauges (pending, dead, cursor age per route; breaker per connection),
    read now: the same in every process. Labels are names, as the engines' counters use;
    routes of one name in several tenants add up (cursor age: the oldest; breaker: open if
    any is)."""
    from ..routing import metrics

    health = repository.route_health(ctx.store)
    names = {c.id: c.name for r in repository.list_routes(ctx.store) for c in (r.source, r.destination) if c is not None}
    pending: dict[str, int] = {}
    dead: dict[str, int] = {}
    cursor: dict[str, float] = {}
    breaker: dict[str, int] = {}
    for h in health:
        pending[h.name] = pending.get(h.name, 0) + h.pending
        dead[h.name] = dead.get(h.name, 0) + h.dead
        if h.cursor_age_seconds is not None:
            cursor[h.name] = max(cursor.get(h.name, 0.0), h.cursor_age_seconds)
        if h.breaker:
            cid = uuid.UUID(h.breaker["connection_id"])
            label = names.get(cid, str(cid))
            breaker[label] = max(breaker.get(label, 0), 1 if h.breaker["state"] == "open" else 0)
    for gauge, values, label in ((metrics.PENDING, pending, "route"), (metrics.DEAD, dead, "route"),
                                 (metrics.CURSOR_AGE, cursor, "route"), (metrics.BREAKER_OPEN, breaker, "connection")):
        gauge.clear()
        for name, value in values.items():
            gauge.labels(**{label: name}).set(value)


def build_router(ctx: AppContext, wiring: Wiring) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["routing"])
    need = Depends(ctx.require(SCOPE))
    store = ctx.store

    # --- connections ---------------------------------------------------------------------------

    @router.get("/connections", summary="The tenant's connections (auth as env: references, never values)")
    def list_connections(request: Request, principal: Principal = need) -> Response:
        limit, cursor, _ = _query(request, ctx, set())
        items, nxt = manage.list_connections(store, principal.tenant, limit=limit, cursor=cursor)
        return _paged(request, ctx, items, nxt)

    @router.post("/connections", status_code=201, summary="Create a connection (secrets only as env:NAME)")
    async def create_connection(request: Request, principal: Principal = need) -> Response:
        body = await read_json_body(request)
        view = await run_in_threadpool(manage.create_connection, store, wiring, principal.tenant, body)
        return _json(view, 201, {"Location": f"/v1/connections/{view['id']}"})

    @router.get("/connections/{connection_id}", summary="One connection")
    def get_connection(connection_id: uuid.UUID, principal: Principal = need) -> Response:
        return _json(manage.get_connection(store, principal.tenant, connection_id))

    @router.patch("/connections/{connection_id}", summary="Change a connection's fields (not one declared in gateway.yaml)")
    async def patch_connection(connection_id: uuid.UUID, request: Request, principal: Principal = need) -> Response:
        body = await read_json_body(request)
        return _json(await run_in_threadpool(manage.update_connection, store, wiring, principal.tenant, connection_id, body))

    @router.delete("/connections/{connection_id}", status_code=204, summary="Delete a connection no route uses")
    def delete_connection(connection_id: uuid.UUID, principal: Principal = need) -> Response:
        manage.delete_connection(store, principal.tenant, connection_id)
        return Response(status_code=204)

    # --- routes ----------------------------------------------------------------------------------

    @router.get("/routes", summary="The tenant's routes")
    def list_routes(request: Request, principal: Principal = need) -> Response:
        limit, cursor, _ = _query(request, ctx, set())
        items, nxt = manage.list_route_views(store, principal.tenant, limit=limit, cursor=cursor)
        return _paged(request, ctx, items, nxt)

    @router.post("/routes", status_code=201, summary="Create a route (pull: source; push: destination)")
    async def create_route(request: Request, principal: Principal = need) -> Response:
        body = await read_json_body(request)
        view = await run_in_threadpool(manage.create_route, store, wiring, principal.tenant, body)
        return _json(view, 201, {"Location": f"/v1/routes/{view['id']}"})

    @router.get("/routes/{route_id}", summary="One route")
    def get_route(route_id: uuid.UUID, principal: Principal = need) -> Response:
        return _json(manage.get_route(store, principal.tenant, route_id))

    @router.patch("/routes/{route_id}", summary="Change a route's fields, e.g. {\"enabled\": false}")
    async def patch_route(route_id: uuid.UUID, request: Request, principal: Principal = need) -> Response:
        body = await read_json_body(request)
        return _json(await run_in_threadpool(manage.update_route, store, wiring, principal.tenant, route_id, body))

    @router.delete("/routes/{route_id}", status_code=204, summary="Delete a route without history (else disable it)")
    def delete_route(route_id: uuid.UUID, principal: Principal = need) -> Response:
        manage.delete_route(store, principal.tenant, route_id)
        return Response(status_code=204)

    @router.get("/routes/{route_id}/health", summary="Pending, dead, oldest pending age, last run, cursor age, breaker")
    def route_health(route_id: uuid.UUID, principal: Principal = need) -> Response:
        found = repository.route_health(store, tenant=principal.tenant, route_ids=[route_id])
        if not found:
            raise NotFound(f"no route {route_id}")
        return _json(found[0].as_dict())

    # --- sync runs -------------------------------------------------------------------------------

    @router.get("/sync-runs", summary="Sync runs, newest first (route_id, status)")
    def list_runs(request: Request, principal: Principal = need) -> Response:
        limit, cursor, q = _query(request, ctx, {"route_id", "status"})
        items, nxt = repository.list_runs(store, principal.tenant, route_id=_uuid_param(q.get("route_id"), "route_id"),
                                          status=q.get("status"), limit=limit, cursor=cursor)
        return _paged(request, ctx, items, nxt)

    @router.get("/sync-runs/{run_id}", summary="One sync run with its errors")
    def get_run(run_id: uuid.UUID, principal: Principal = need) -> Response:
        from sqlalchemy import select

        from ..store import tables as t

        with store.engine.connect() as conn:
            row = conn.execute(select(t.sync_runs).where(t.sync_runs.c.tenant == principal.tenant, t.sync_runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no sync run {run_id}")
        return _json(repository.run_view(row, repository.tenant_secrets(store, principal.tenant)))

    # --- dead letters ----------------------------------------------------------------------------

    @router.get("/dead-letters", summary="Dead letters, oldest first (route_id; state=dead|discarded)")
    def list_dead(request: Request, principal: Principal = need) -> Response:
        limit, cursor, q = _query(request, ctx, {"route_id", "state"})
        state = q.get("state", "dead")
        if state not in ("dead", "discarded"):
            raise ValidationError("invalid query", errors=[ErrorDetail("must be dead or discarded", location="query", field="state")])
        items, nxt = repository.list_dead_letters(store, principal.tenant, route_id=_uuid_param(q.get("route_id"), "route_id"),
                                                  state=state, limit=limit, cursor=cursor)
        return _paged(request, ctx, items, nxt)

    @router.get("/dead-letters/{outbox_id}", summary="One dead letter: request, response excerpt, attempts")
    def get_dead(outbox_id: OutboxId, principal: Principal = need) -> Response:
        return _json(repository.get_dead_letter(store, principal.tenant, outbox_id))

    def _one(outbox_id: int, tenant: str, action: str) -> Response:
        repository.get_dead_letter(store, tenant, outbox_id)  # 404 for another tenant's or an unknown id
        fn = repository.replay_dead_letters if action == "replay" else repository.discard_dead_letters
        n = fn(store, tenant, ids=[outbox_id])
        if n == 0:
            from ..errors import Conflict

            raise Conflict(f"dead letter {outbox_id} is not dead any more (replayed or discarded already)")
        return _json({"replayed" if action == "replay" else "discarded": n})

    @router.post("/dead-letters/replay", summary="Replay many: {\"route_id\": ...} or {\"ids\": [...]} ({} for all)")
    async def replay_many(request: Request, principal: Principal = need) -> Response:
        ids, route_id = _ids_body(await read_json_body(request))
        n = await run_in_threadpool(repository.replay_dead_letters, store, principal.tenant, ids=ids, route_id=route_id)
        return _json({"replayed": n})

    @router.post("/dead-letters/discard", summary="Discard many: {\"route_id\": ...} or {\"ids\": [...]} ({} for all)")
    async def discard_many(request: Request, principal: Principal = need) -> Response:
        ids, route_id = _ids_body(await read_json_body(request))
        n = await run_in_threadpool(repository.discard_dead_letters, store, principal.tenant, ids=ids, route_id=route_id)
        return _json({"discarded": n})

    @router.post("/dead-letters/{outbox_id}/replay", summary="Deliver a dead letter again (fresh attempts, due now)")
    def replay_one(outbox_id: OutboxId, principal: Principal = need) -> Response:
        return _one(outbox_id, principal.tenant, "replay")

    @router.post("/dead-letters/{outbox_id}/discard", summary="Give up on a dead letter (kept as discarded)")
    def discard_one(outbox_id: OutboxId, principal: Principal = need) -> Response:
        return _one(outbox_id, principal.tenant, "discard")

    @router.delete("/dead-letters/{outbox_id}", summary="Give up on a dead letter (kept as discarded)")
    def delete_one(outbox_id: OutboxId, principal: Principal = need) -> Response:
        return _one(outbox_id, principal.tenant, "discard")

    return router


def build_metrics_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["ops"])
    public = ctx.settings.metrics_public
    deps = [] if public else [Depends(ctx.require(METRICS_SCOPE))]

    @router.get("/metrics", summary="Prometheus metrics of the routing layer (scope metrics, or TESSERA_METRICS_PUBLIC)",
                dependencies=deps)
    def metrics_text() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from ..routing.metrics import REGISTRY

        refresh_gauges(ctx)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


__all__ = ["METRICS_SCOPE", "SCOPE", "build_metrics_router", "build_router", "refresh_gauges"]
