"""Connections, routes and the transactional outbox (DESIGN sections 2 and 6).

The store writes an outbox row for every (push route, changed record) pair in the same
transaction as the change, so a delivery can never be lost between "stored" and "sent".
Routing workers (the routing issue) claim these rows with SELECT ... FOR UPDATE SKIP
LOCKED and hand each record to the destination adapter. The idempotency key
(route, record, content hash) makes a re-enqueued delivery of the same content a no-op.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, insert, select

from ..errors import ConfigError, NotFound
from ..model import RECORD_TYPES, utcnow
from .db import WRITE
from .tables import connections, outbox, routes
from .tenants import ensure_tenant


@dataclass(frozen=True)
class RouteMatch:
    id: uuid.UUID
    kinds: frozenset[str]
    destination_system: str


#: built once: every write transaction runs it, and building a statement (and its cache
#: key) costs more than SQLite takes to answer it
_ROUTES = (
    select(routes.c.id, routes.c.kinds, connections.c.system)
    .join(connections, connections.c.id == routes.c.destination_connection_id)
    .where(routes.c.tenant == bindparam("tenant"), routes.c.enabled.is_(True), routes.c.mode == "push")
)


def matching_routes(conn: Connection, tenant: str) -> list[RouteMatch]:
    """The tenant's enabled push routes, with the system each delivers to."""
    return [RouteMatch(r.id, frozenset(orjson.loads(r.kinds)), r.system) for r in conn.execute(_ROUTES, {"tenant": tenant})]


def outbox_rows(
    routes: list[RouteMatch], tenant: str, kind: str, written: list[tuple[uuid.UUID, str, str]], now: datetime
) -> list[dict[str, Any]]:
    """Outbox rows for the records just written. A record is never routed back to the
    system it came from, so two systems synced both ways do not echo forever."""
    rows = []
    for route in routes:
        if kind not in route.kinds:
            continue
        for rid, digest, source in written:
            if source == route.destination_system:
                continue
            rows.append(
                {
                    "tenant": tenant,
                    "route_id": route.id,
                    "record_kind": kind,
                    "record_id": rid,
                    "content_hash": digest,
                    "idempotency_key": f"{route.id}:{rid}:{digest}",
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    return rows


def enqueue_written(conn: Connection, tenant: str, kind: str, written: list[tuple[uuid.UUID, str, str]], now: datetime,
                    routes: list[RouteMatch] | None = None) -> int:
    """Insert the outbox rows of records of ``kind`` just written, in the caller's transaction
    (for an adapter's own kinds, e.g. ``xapi.statement``); returns how many."""
    rows = outbox_rows(routes if routes is not None else matching_routes(conn, tenant), tenant, kind, written, now)
    if rows:
        conn.execute(insert(outbox), rows)
    return len(rows)


class RoutingStore:
    """Create and list connections and routes. The workers that drain the outbox belong to
    ``gateway.routing``; this is only what the store must know to enqueue deliveries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_connection(
        self,
        tenant: str,
        name: str,
        *,
        adapter: str,
        role: str,
        system: str,
        base_url: str | None = None,
        auth: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        for key, ref in (auth or {}).items():
            if not (isinstance(ref, str) and ref.startswith("env:")):
                raise ConfigError(f"connection auth {key!r} must reference an environment variable as 'env:NAME', never hold a secret")
        cid = uuid.uuid4()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ensure_tenant(conn, tenant)
            conn.execute(
                insert(connections).values(
                    id=cid, tenant=tenant, name=name, adapter=adapter, role=role, system=system, base_url=base_url,
                    auth=orjson.dumps(auth or {}).decode(), options=orjson.dumps(options or {}).decode(), created_at=utcnow(),
                )
            )
        return cid

    def create_route(
        self, tenant: str, name: str, *, destination: uuid.UUID | None = None, kinds: list[str], mode: str = "push",
        source: uuid.UUID | None = None, enabled: bool = True, schedule_seconds: int | None = None,
        options: dict[str, Any] | None = None, orgs: list[str] | None = None,
    ) -> uuid.UUID:
        """A route with no further checks than the store's own (the routing layer's
        ``gateway.routing.manage`` checks roles and kinds against the adapters): kinds are
        canonical record kinds or an adapter's own, which are namespaced (``xapi.statement``);
        a push route delivers to ``destination``, a pull route reads from ``source``."""
        unknown = sorted(k for k in kinds if k not in RECORD_TYPES and "." not in k)
        if unknown:
            raise ConfigError(f"unknown record kinds {unknown}; known: {sorted(RECORD_TYPES)}")
        if mode not in ("push", "pull"):
            raise ConfigError("mode must be push or pull")
        if (mode == "push" and destination is None) or (mode == "pull" and source is None):
            raise ConfigError("a push route needs a destination connection, a pull route a source connection")
        rid = uuid.uuid4()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            for cid in (c for c in (source, destination) if c is not None):
                found = conn.scalar(select(connections.c.id).where(connections.c.tenant == tenant, connections.c.id == cid))
                if found is None:
                    raise NotFound(f"no connection {cid}")
            now = utcnow()
            conn.execute(
                insert(routes).values(
                    id=rid, tenant=tenant, name=name, source_connection_id=source, destination_connection_id=destination,
                    kinds=orjson.dumps(sorted(kinds)).decode(), mode=mode, enabled=enabled, created_at=now, updated_at=now,
                    schedule_seconds=schedule_seconds, next_run_at=now if (mode == "pull" and schedule_seconds) else None,
                    options=orjson.dumps(options or {}).decode(), orgs=orjson.dumps(orgs or []).decode(),
                )
            )
        return rid

    def pending(self, tenant: str, route_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        q = select(outbox).where(outbox.c.tenant == tenant, outbox.c.state == "pending").order_by(outbox.c.id)
        if route_id:
            q = q.where(outbox.c.route_id == route_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
