"""The few reads the delivery engines need: a route with its connections, and scrubbing a
connection's secret values out of any text a failure produces.

Small, read-only queries of their own (``gateway.routing.repository`` is the API's and the
CLI's; these are the engine's hot path: built once, one query per route, cached briefly).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, select

from ..store.tables import connections, routes
from .protocol import Connection, Route, env_ref

#: how long a loaded route is reused (seconds): an edited route takes effect within it
ROUTE_TTL = 5.0


def connection_from_row(row: Any) -> Connection:
    return Connection(
        id=row.id, tenant=row.tenant, name=row.name, adapter=row.adapter, role=row.role, system=row.system,
        base_url=row.base_url, auth=orjson.loads(row.auth or "{}"), options=orjson.loads(row.options or "{}"),
    )


_CONNECTION = select(connections).where(connections.c.id == bindparam("cid"))
_ROUTE = select(routes).where(routes.c.id == bindparam("rid"))


@dataclass(frozen=True)
class LoadedRoute:
    route: Route
    enabled: bool
    #: the stored cursor (pull routes)
    watermark: str | None


def load_route(engine: Engine, route_id: uuid.UUID) -> LoadedRoute | None:
    """The route and its connections as stored now, or None when there is no such route."""
    with engine.connect() as conn:
        row = conn.execute(_ROUTE, {"rid": route_id}).first()
        if row is None:
            return None
        found: dict[uuid.UUID, Connection] = {}
        for cid in (row.source_connection_id, row.destination_connection_id):
            if cid is not None and cid not in found:
                crow = conn.execute(_CONNECTION, {"cid": cid}).first()
                if crow is not None:
                    found[cid] = connection_from_row(crow)
    route = Route(
        id=row.id, tenant=row.tenant, name=row.name, mode=row.mode, kinds=tuple(orjson.loads(row.kinds or "[]")),
        source=found.get(row.source_connection_id) if row.source_connection_id else None,
        destination=found.get(row.destination_connection_id) if row.destination_connection_id else None,
        orgs=tuple(orjson.loads(row.orgs or "[]")), mapping=row.mapping, schedule_seconds=row.schedule_seconds,
        options=orjson.loads(row.options or "{}"),
    )
    return LoadedRoute(route, bool(row.enabled), row.watermark)


class RouteCache:
    """Routes by id, each reloaded after ``ROUTE_TTL`` seconds (thread-safe)."""

    def __init__(self, engine: Engine, ttl: float = ROUTE_TTL) -> None:
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._found: dict[uuid.UUID, tuple[float, LoadedRoute | None]] = {}

    def get(self, route_id: uuid.UUID) -> LoadedRoute | None:
        now = time.monotonic()
        with self._lock:
            hit = self._found.get(route_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        loaded = load_route(self.engine, route_id)
        with self._lock:
            self._found[route_id] = (now, loaded)
        return loaded


def secret_values(*conns: Connection | None) -> list[str]:
    """The values of the environment variables the connections' auth references (set ones)."""
    found = []
    for c in conns:
        if c is None:
            continue
        for ref in c.auth.values():
            try:
                value = os.environ.get(env_ref(ref))
            except Exception:  # an inline value (refused elsewhere): scrub it too
                value = ref if isinstance(ref, str) else None
            if value and len(value) >= 4:
                found.append(value)
    return found


def scrub(text: str | None, secrets: list[str]) -> str | None:
    """``text`` with every secret value replaced by ``***``."""
    if not text or not secrets:
        return text
    for value in sorted(secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text
