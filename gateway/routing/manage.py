"""Creating, changing and removing connections and routes: through the API (``/v1/connections``,
``/v1/routes``) and from ``gateway.yaml`` (``apply_config``).

Both paths check alike: the JSON Schema of ``gateway/routing/gateway.schema.json`` (its
``connection`` and ``route`` definitions), then the adapter's role, the kinds, the route's
connections. Secrets are never accepted: ``auth`` holds ``env:NAME`` references only.

Where an entry comes from is its ``origin``: ``config`` (gateway.yaml; the API refuses to
change or delete it: edit the file) or ``api``. Applying the file upserts by (tenant, name);
a route the file no longer declares is disabled, and a connection it no longer declares
keeps its row while every route using it is disabled: their sync runs and dead letters
stay, and declaring them again brings them back. A route or connection deleted through the
API must have no history (no outbox rows or sync runs for a route, no route for a
connection): disable it instead (``PATCH {"enabled": false}``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from .. import PROJECT_ROOT
from ..errors import Conflict, ErrorDetail, NotFound, ValidationError
from ..model import RECORD_TYPES, utcnow
from ..store import Store
from ..store import tables as t
from ..store.db import WRITE
from ..store.tenants import ensure_tenant
from .config import (
    SECRET_OPTION,
    Capabilities,
    ConnectionSpec,
    GatewayConfig,
    RouteSpec,
    capabilities,
    refusal,
    schedule_seconds,
    schema,
)
from .repository import decode_page_cursor, encode_page_cursor, iso, json_field

if TYPE_CHECKING:
    from ..wiring import Wiring

CONNECTION_FIELDS = ("name", "adapter", "role", "system", "base_url", "auth", "options")
ROUTE_FIELDS = ("name", "mode", "source", "destination", "kinds", "orgs", "mapping", "schedule", "enabled", "options")


# --- views ---------------------------------------------------------------------------------------


def connection_view(row: Any) -> dict[str, Any]:
    """What the API and CLI show of a connection: ``auth`` as references (``env:NAME``), never values."""
    m = row._mapping
    return {"id": str(m["id"]), "name": m["name"], "adapter": m["adapter"], "role": m["role"], "system": m["system"],
            "base_url": m["base_url"], "auth": json_field(m["auth"], {}), "options": json_field(m["options"], {}), "origin": m["origin"],
            "created_at": iso(m["created_at"]), "updated_at": iso(m["updated_at"])}


def route_view(row: Any, names: Mapping[uuid.UUID, str]) -> dict[str, Any]:
    m = row._mapping
    src, dst = m["source_connection_id"], m["destination_connection_id"]
    return {"id": str(m["id"]), "name": m["name"], "mode": m["mode"], "enabled": m["enabled"],
            "source": names.get(src) if src else None, "source_id": str(src) if src else None,
            "destination": names.get(dst) if dst else None, "destination_id": str(dst) if dst else None,
            "kinds": json_field(m["kinds"], []), "orgs": json_field(m["orgs"], []), "mapping": m["mapping"],
            "schedule_seconds": m["schedule_seconds"], "options": json_field(m["options"], {}), "origin": m["origin"],
            "cursor": m["watermark"], "cursor_at": iso(m["cursor_at"]), "next_run_at": iso(m["next_run_at"]),
            "created_at": iso(m["created_at"]), "updated_at": iso(m["updated_at"])}


def _names(conn: Any, tenant: str | None = None) -> dict[uuid.UUID, str]:
    q = select(t.connections.c.id, t.connections.c.name)
    if tenant is not None:
        q = q.where(t.connections.c.tenant == tenant)
    return {r.id: r.name for r in conn.execute(q)}


def _page(q: Any, col: Any, limit: int, cursor: str | None) -> Any:
    if cursor:
        (after,) = decode_page_cursor(cursor, 1)
        q = q.where(col > after)
    return q.order_by(col).limit(limit + 1)


def list_connections(store: Store, tenant: str | None = None, *, limit: int = 1000, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Connections by name (every tenant's without ``tenant``; then each has ``tenant``)."""
    q = select(t.connections)
    if tenant is not None:
        q = q.where(t.connections.c.tenant == tenant)
    with store.engine.connect() as conn:
        rows = conn.execute(_page(q, t.connections.c.name, limit, cursor) if tenant is not None
                            else q.order_by(t.connections.c.tenant, t.connections.c.name)).all()
    items = []
    for r in rows[:limit]:
        view = connection_view(r)
        if tenant is None:
            view["tenant"] = r.tenant
        items.append(view)
    return items, (encode_page_cursor(rows[limit - 1].name) if tenant is not None and len(rows) > limit else None)


def list_route_views(store: Store, tenant: str | None = None, *, limit: int = 1000, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    q = select(t.routes)
    if tenant is not None:
        q = q.where(t.routes.c.tenant == tenant)
    with store.engine.connect() as conn:
        rows = conn.execute(_page(q, t.routes.c.name, limit, cursor) if tenant is not None
                            else q.order_by(t.routes.c.tenant, t.routes.c.name)).all()
        names = _names(conn, tenant)
    items = []
    for r in rows[:limit]:
        view = route_view(r, names)
        if tenant is None:
            view["tenant"] = r.tenant
        items.append(view)
    return items, (encode_page_cursor(rows[limit - 1].name) if tenant is not None and len(rows) > limit else None)


def _row(conn: Any, table: Any, tenant: str, id: uuid.UUID, what: str) -> Any:
    row = conn.execute(select(table).where(table.c.tenant == tenant, table.c.id == id)).first()
    if row is None:
        raise NotFound(f"no {what} {id}")
    return row


def get_connection(store: Store, tenant: str, connection_id: uuid.UUID) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return connection_view(_row(conn, t.connections, tenant, connection_id, "connection"))


def get_route(store: Store, tenant: str, route_id: uuid.UUID) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return route_view(_row(conn, t.routes, tenant, route_id, "route"), _names(conn, tenant))


# --- checks --------------------------------------------------------------------------------------


def _schema_errors(definition: str, body: Any) -> list[ErrorDetail]:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    full = schema()
    sub = dict(full["$defs"][definition])
    sub["$defs"] = full["$defs"]
    errors = []
    for err in Draft202012Validator(sub).iter_errors(body):
        path = ".".join(str(p) for p in err.absolute_path) or None
        message = err.message
        if err.validator == "pattern" and len(err.absolute_path) == 2 and err.absolute_path[0] == "auth":
            message = "a secret is never accepted: reference an environment variable as env:NAME"
        errors.append(ErrorDetail(message, location="body", field=path))
    return errors


def _role_object(wiring: Wiring, spec: ConnectionSpec) -> tuple[Capabilities | None, str | None]:
    """What the connection's role can do, or the reason it cannot be had."""
    roles = wiring.routing_roles
    if spec.role not in roles:
        return None, f"unknown connection role {spec.role!r}; known: {', '.join(sorted(roles)) or 'none (no installed adapter declares one)'}"
    if spec.adapter != roles[spec.role][0]:
        return None, f"adapter {spec.adapter!r} does not declare role {spec.role!r} (adapter {roles[spec.role][0]!r} does)"
    try:
        return capabilities(roles[spec.role][1], spec), None
    except Exception as exc:  # the adapter's factory refusing the connection's options
        return None, refusal(spec, exc)


def check_connection(body: Any, tenant: str, wiring: Wiring) -> ConnectionSpec:
    """An API body -> the connection it declares; ``ValidationError`` naming every field otherwise."""
    if isinstance(body, dict) and "tenant" in body:
        raise ValidationError("the connection is invalid", errors=[ErrorDetail("the tenant is the access token's; leave it out", location="body", field="tenant")])
    errors = _schema_errors("connection", body)
    if errors:
        raise ValidationError("the connection is invalid", errors=errors)
    roles = wiring.routing_roles
    adapter = body.get("adapter") or (roles[body["role"]][0] if body["role"] in roles else "")
    spec = ConnectionSpec(tenant=tenant, name=body["name"], adapter=adapter, role=body["role"], system=body.get("system") or body["name"],
                          base_url=body.get("base_url"), auth=dict(body.get("auth") or {}), options=dict(body.get("options") or {}))
    _, why = _role_object(wiring, spec)
    if why:
        raise ValidationError("the connection is invalid", errors=[ErrorDetail(why, location="body", field="role")])
    for key, value in spec.options.items():
        if isinstance(value, str) and SECRET_OPTION.search(key) and not value.startswith("env:"):
            raise ValidationError("the connection is invalid", errors=[ErrorDetail(
                "looks like a secret: reference an environment variable as env:NAME", location="body", field=f"options.{key}")])
    return spec


def unset_variables(spec: ConnectionSpec, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``env:`` variables of a connection this process does not have."""
    env = os.environ if environ is None else environ
    refs = list(spec.auth.values()) + [v for v in spec.options.values() if isinstance(v, str) and v.startswith("env:")]
    return sorted({r[4:] for r in refs if r[4:] not in env})


def check_route(body: Any, tenant: str, connections: Mapping[str, ConnectionSpec], wiring: Wiring) -> RouteSpec:
    """An API body -> the route it declares (``connections``: the tenant's, by name)."""
    if isinstance(body, dict) and "tenant" in body:
        raise ValidationError("the route is invalid", errors=[ErrorDetail("the tenant is the access token's; leave it out", location="body", field="tenant")])
    errors = _schema_errors("route", body)
    if errors:
        raise ValidationError("the route is invalid", errors=errors)
    spec = RouteSpec(tenant=tenant, name=body["name"], mode=body["mode"], kinds=tuple(body["kinds"]), source=body.get("source"),
                     destination=body.get("destination"), orgs=tuple(body.get("orgs") or ()), mapping=body.get("mapping"),
                     schedule_seconds=schedule_seconds(body.get("schedule")), enabled=body.get("enabled", True),
                     options=dict(body.get("options") or {}))
    known = set(RECORD_TYPES) | set(wiring.routing_kinds)
    errors = [ErrorDetail(f"unknown record kind; known: {', '.join(sorted(known))}", location="body", field=f"kinds.{i}")
              for i, k in enumerate(spec.kinds) if k not in known]
    want, other = ("source", "destination") if spec.mode == "pull" else ("destination", "source")
    if getattr(spec, other) is not None:
        errors.append(ErrorDetail(f"a {spec.mode} route has no {other}", location="body", field=other))
    ref = getattr(spec, want)
    if ref is None:
        errors.append(ErrorDetail(f"a {spec.mode} route needs a {want} connection (its name)", location="body", field=want))
    elif ref not in connections:
        errors.append(ErrorDetail(f"no connection {ref!r}", location="body", field=want))
    else:
        can, why = _role_object(wiring, connections[ref])
        if can is None:
            errors.append(ErrorDetail(why if why and why.startswith("connection ") else f"connection {ref!r}: {why}", location="body", field=want))
        elif spec.mode == "pull" and not can.source:
            errors.append(ErrorDetail(f"connection {ref!r} (role {connections[ref].role}) cannot be pulled from", location="body", field=want))
        elif spec.mode == "push" and not can.destination:
            errors.append(ErrorDetail(f"connection {ref!r} (role {connections[ref].role}) cannot be delivered to", location="body", field=want))
        elif spec.mode == "push" and can.kinds:
            errors += [ErrorDetail(f"connection {ref!r} does not deliver {k!r}", location="body", field=f"kinds.{i}")
                       for i, k in enumerate(spec.kinds) if k in known and k not in can.kinds]
    if spec.mode == "push" and spec.schedule_seconds is not None:
        errors.append(ErrorDetail("a push route delivers on change and has no schedule", location="body", field="schedule"))
    if spec.mapping and ("/" in spec.mapping or "\\" in spec.mapping or not (PROJECT_ROOT / "mappings" / spec.mapping).is_file()):
        errors.append(ErrorDetail("no such mapping file under mappings/ (give its file name)", location="body", field="mapping"))
    if errors:
        raise ValidationError("the route is invalid", errors=errors)
    return spec


def _specs_by_name(conn: Any, tenant: str) -> dict[str, ConnectionSpec]:
    return {r.name: ConnectionSpec(tenant=tenant, name=r.name, adapter=r.adapter, role=r.role, system=r.system, base_url=r.base_url,
                                   auth=json_field(r.auth, {}), options=json_field(r.options, {}))
            for r in conn.execute(select(t.connections).where(t.connections.c.tenant == tenant))}


# --- writes --------------------------------------------------------------------------------------


def _connection_values(spec: ConnectionSpec) -> dict[str, Any]:
    return {"name": spec.name, "adapter": spec.adapter, "role": spec.role, "system": spec.system, "base_url": spec.base_url,
            "auth": orjson.dumps(dict(spec.auth), option=orjson.OPT_SORT_KEYS).decode(),
            "options": orjson.dumps(dict(spec.options), option=orjson.OPT_SORT_KEYS).decode()}


def _route_values(spec: RouteSpec, ids: Mapping[str, uuid.UUID]) -> dict[str, Any]:
    return {"name": spec.name, "mode": spec.mode, "kinds": orjson.dumps(sorted(spec.kinds)).decode(),
            "source_connection_id": ids[spec.source] if spec.source else None,
            "destination_connection_id": ids[spec.destination] if spec.destination else None,
            "orgs": orjson.dumps(list(spec.orgs)).decode(), "mapping": spec.mapping, "schedule_seconds": spec.schedule_seconds,
            "enabled": spec.enabled, "options": orjson.dumps(dict(spec.options), option=orjson.OPT_SORT_KEYS).decode()}


def _duplicate(what: str, name: str) -> Conflict:
    return Conflict(f"a {what} named {name!r} exists already for this tenant")


def create_connection(store: Store, wiring: Wiring, tenant: str, body: Any) -> dict[str, Any]:
    spec = check_connection(body, tenant, wiring)
    cid, now = uuid.uuid4(), utcnow()
    try:
        with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ensure_tenant(conn, tenant)
            conn.execute(insert(t.connections).values(id=cid, tenant=tenant, origin="api", created_at=now, updated_at=now,
                                                      **_connection_values(spec)))
    except DBIntegrityError:
        raise _duplicate("connection", spec.name) from None
    view = get_connection(store, tenant, cid)
    view["unset_variables"] = unset_variables(spec)
    return view


def _editable(row: Any, what: str) -> None:
    if row.origin == "config":
        raise Conflict(f"{what} {row.name!r} is declared in gateway.yaml: change it there (then `tessera config apply`)")


def update_connection(store: Store, wiring: Wiring, tenant: str, connection_id: uuid.UUID, patch: Any) -> dict[str, Any]:
    """Change the given fields (the others stay) and check the result as a whole."""
    if not isinstance(patch, dict):
        raise ValidationError("send a JSON object with the fields to change")
    with store.engine.connect() as conn:
        row = _row(conn, t.connections, tenant, connection_id, "connection")
    _editable(row, "connection")
    current = {k: v for k, v in connection_view(row).items() if k in CONNECTION_FIELDS and v is not None}
    if "role" in patch and "adapter" not in patch:
        current.pop("adapter", None)  # a new role: the adapter that declares it
    merged = {k: v for k, v in {**current, **patch}.items() if v is not None}  # null removes an optional field
    spec = check_connection(merged, tenant, wiring)
    try:
        with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(update(t.connections).where(t.connections.c.id == connection_id)
                         .values(updated_at=utcnow(), **_connection_values(spec)))
    except DBIntegrityError:
        raise _duplicate("connection", spec.name) from None
    view = get_connection(store, tenant, connection_id)
    view["unset_variables"] = unset_variables(spec)
    return view


def delete_connection(store: Store, tenant: str, connection_id: uuid.UUID) -> None:
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        row = _row(conn, t.connections, tenant, connection_id, "connection")
        _editable(row, "connection")
        used = conn.execute(select(t.routes.c.name).where((t.routes.c.source_connection_id == connection_id)
                                                          | (t.routes.c.destination_connection_id == connection_id))).scalars().all()
        if used:
            raise Conflict(f"connection {row.name!r} is used by routes {', '.join(sorted(used))}: delete or change them first")
        conn.execute(delete(t.connection_health).where(t.connection_health.c.connection_id == connection_id))
        conn.execute(delete(t.connections).where(t.connections.c.id == connection_id))


def _schedule_values(spec: RouteSpec, before: Any, now: datetime) -> dict[str, Any]:
    """A pull route whose schedule is new, changed or re-enabled is due at once."""
    if spec.mode != "pull" or spec.schedule_seconds is None:
        return {"next_run_at": None}
    if before is not None and before.schedule_seconds == spec.schedule_seconds and before.enabled and before.next_run_at is not None:
        return {}
    return {"next_run_at": now}


def create_route(store: Store, wiring: Wiring, tenant: str, body: Any) -> dict[str, Any]:
    with store.engine.connect() as conn:
        specs = _specs_by_name(conn, tenant)
        ids = {name: rid for rid, name in _names(conn, tenant).items()}
    spec = check_route(body, tenant, specs, wiring)
    rid, now = uuid.uuid4(), utcnow()
    try:
        with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ensure_tenant(conn, tenant)
            conn.execute(insert(t.routes).values(id=rid, tenant=tenant, origin="api", created_at=now, updated_at=now,
                                                 **_route_values(spec, ids), **_schedule_values(spec, None, now)))
    except DBIntegrityError:
        raise _duplicate("route", spec.name) from None
    return get_route(store, tenant, rid)


def update_route(store: Store, wiring: Wiring, tenant: str, route_id: uuid.UUID, patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise ValidationError("send a JSON object with the fields to change")
    with store.engine.connect() as conn:
        row = _row(conn, t.routes, tenant, route_id, "route")
        specs = _specs_by_name(conn, tenant)
        names = _names(conn, tenant)
    _editable(row, "route")
    view = route_view(row, names)
    current = {k: v for k, v in view.items() if k in ROUTE_FIELDS and v is not None and v != []}
    if row.schedule_seconds is not None:
        current["schedule"] = row.schedule_seconds
    merged = {**current, **patch}
    merged = {k: v for k, v in merged.items() if v is not None}  # null removes an optional field
    spec = check_route(merged, tenant, specs, wiring)
    now = utcnow()
    try:
        with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(update(t.routes).where(t.routes.c.id == route_id).values(
                updated_at=now, **_route_values(spec, {n: i for i, n in names.items()}), **_schedule_values(spec, row, now)))
    except DBIntegrityError:
        raise _duplicate("route", spec.name) from None
    return get_route(store, tenant, route_id)


def delete_route(store: Store, tenant: str, route_id: uuid.UUID) -> None:
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        row = _row(conn, t.routes, tenant, route_id, "route")
        _editable(row, "route")
        history = conn.execute(select(t.outbox.c.id).where(t.outbox.c.route_id == route_id).limit(1)).first() or \
            conn.execute(select(t.sync_runs.c.id).where(t.sync_runs.c.route_id == route_id).limit(1)).first()
        if history is not None:
            raise Conflict(f"route {row.name!r} has deliveries or sync runs: disable it instead (PATCH {{\"enabled\": false}}) to keep its history")
        conn.execute(delete(t.routes).where(t.routes.c.id == route_id))


# --- gateway.yaml --------------------------------------------------------------------------------


@dataclass
class ApplyReport:
    """What ``apply_config`` changed, by ``tenant/name``."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: entries created through the API that the file now declares (they become the file's)
    adopted: list[str] = field(default_factory=list)
    #: routes disabled because the file no longer declares them (or their connection)
    disabled: list[str] = field(default_factory=list)
    #: connections the file no longer declares (kept, their routes disabled)
    retired_connections: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.adopted or self.disabled or self.retired_connections)


def apply_config(store: Store, config: GatewayConfig, *, now: datetime | None = None) -> ApplyReport:
    """Write a checked ``gateway.yaml`` to the store, in one transaction (module docstring).
    A file that declares no ``connections`` or ``routes`` at all changes nothing. Several
    workers starting at once may race to create the same names: the one that loses reads
    the winner's rows and applies again."""
    if not config.declares_routing:
        return ApplyReport()
    for attempt in range(3):
        try:
            return _apply(store, config, now or utcnow())
        except DBIntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _apply(store: Store, config: GatewayConfig, now: datetime) -> ApplyReport:
    report = ApplyReport()
    c, r = t.connections.c, t.routes.c
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        for tenant in sorted({x.tenant for x in config.connections} | {x.tenant for x in config.routes}):
            ensure_tenant(conn, tenant)
        ids: dict[tuple[str, str], uuid.UUID] = {}
        for spec in config.connections:
            key = f"{spec.tenant}/{spec.name}"
            values = _connection_values(spec)
            row = conn.execute(select(t.connections).where(c.tenant == spec.tenant, c.name == spec.name)).first()
            if row is None:
                cid = uuid.uuid4()
                conn.execute(insert(t.connections).values(id=cid, tenant=spec.tenant, origin="config", created_at=now, updated_at=now, **values))
                report.created.append(f"connection {key}")
            else:
                cid = row.id
                same = all(getattr(row, k) == v for k, v in values.items()) and row.origin == "config"
                if not same:
                    conn.execute(update(t.connections).where(c.id == cid).values(origin="config", updated_at=now, **values))
                    (report.adopted if row.origin != "config" else report.updated).append(f"connection {key}")
                else:
                    report.unchanged.append(f"connection {key}")
            ids[(spec.tenant, spec.name)] = cid
        declared = set(ids.values())
        retired = [row for row in conn.execute(select(t.connections).where(c.origin == "config")) if row.id not in declared]
        for row in retired:
            report.retired_connections.append(f"{row.tenant}/{row.name}")
        route_ids: set[uuid.UUID] = set()
        for rspec in config.routes:
            key = f"{rspec.tenant}/{rspec.name}"
            names = {name: i for (tn, name), i in ids.items() if tn == rspec.tenant}
            values = _route_values(rspec, names)
            row = conn.execute(select(t.routes).where(r.tenant == rspec.tenant, r.name == rspec.name)).first()
            if row is None:
                rid = uuid.uuid4()
                conn.execute(insert(t.routes).values(id=rid, tenant=rspec.tenant, origin="config", created_at=now, updated_at=now,
                                                     **values, **_schedule_values(rspec, None, now)))
                report.created.append(f"route {key}")
            else:
                rid = row.id
                same = all(getattr(row, k) == v for k, v in values.items()) and row.origin == "config"
                if not same:
                    conn.execute(update(t.routes).where(r.id == rid).values(origin="config", updated_at=now, **values,
                                                                             **_schedule_values(rspec, row, now)))
                    (report.adopted if row.origin != "config" else report.updated).append(f"route {key}")
                else:
                    report.unchanged.append(f"route {key}")
            route_ids.add(rid)
        retired_ids = [row.id for row in retired]
        for row in conn.execute(select(t.routes).where(r.enabled.is_(True))):
            gone = row.origin == "config" and row.id not in route_ids
            orphan = row.source_connection_id in retired_ids or row.destination_connection_id in retired_ids
            if gone or orphan:
                conn.execute(update(t.routes).where(r.id == row.id).values(enabled=False, next_run_at=None, updated_at=now))
                report.disabled.append(f"{row.tenant}/{row.name}")
    return report


__all__ = [
    "ApplyReport", "apply_config", "check_connection", "check_route", "connection_view", "create_connection", "create_route",
    "delete_connection", "delete_route", "get_connection", "get_route", "list_connections", "list_route_views", "route_view",
    "unset_variables", "update_connection", "update_route",
]
