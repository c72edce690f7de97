"""The routing layer's reads and small writes: routes and connections as the protocol's
objects, the scheduler's due routes, cursors, sync runs, dead letters and health.

Every engine (embedded, Temporal), the API (``gateway.api.routing``) and the CLI
(``gateway.routing.cli``) read routes through these functions, so a route means the same
thing everywhere. Each takes the ``Store`` and opens its own short transaction (a write in
``WRITE`` mode: SQLite's immediate transactions). Creating, changing and applying
connections and routes (the API, ``gateway.yaml``) is ``gateway.routing.manage``.

Conventions:

* a function given ``tenant`` answers ``NotFound`` for another tenant's id, as the API
  does for records; without ``tenant`` (engines, which act for every tenant) it finds any;
* times are timezone-aware UTC; ``now`` is a parameter wherever the answer depends on it,
  so a test or a scheduler passes its own clock;
* the outbox's ``state`` is ``pending``, ``delivered``, ``dead`` (the dead-letter queue) or
  ``discarded`` (a dead letter an operator gave up on: kept for the record, never retried).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, or_, select, true, update

from ..errors import Conflict, ErrorDetail, NotFound, ValidationError
from ..model import utcnow
from ..store import Store
from ..store import tables as t
from ..store.db import WRITE
from .engine import SyncRunSummary
from .protocol import Connection, Route

# --- rows -> protocol objects --------------------------------------------------------------------


def json_field(text: str | None, default: Any) -> Any:
    """A JSON text column's value (``default`` when empty)."""
    return orjson.loads(text) if text else default


def connection_of(row: Any) -> Connection:
    """A ``connections`` row as a ``protocol.Connection`` (auth: references, never values)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    return Connection(id=m["id"], tenant=m["tenant"], name=m["name"], adapter=m["adapter"], role=m["role"], system=m["system"],
                      base_url=m["base_url"], auth=json_field(m["auth"], {}), options=json_field(m["options"], {}))


def load_connection(store: Store, connection_id: uuid.UUID, *, tenant: str | None = None) -> Connection:
    q = select(t.connections).where(t.connections.c.id == connection_id)
    if tenant is not None:
        q = q.where(t.connections.c.tenant == tenant)
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no connection {connection_id}")
    return connection_of(row)


def _routes_with_connections(conn: Any, where: Any) -> list[Route]:
    rows = conn.execute(select(t.routes).where(where).order_by(t.routes.c.tenant, t.routes.c.name)).all()
    ids = {i for r in rows for i in (r.source_connection_id, r.destination_connection_id) if i is not None}
    conns = {c.id: connection_of(c) for c in conn.execute(select(t.connections).where(t.connections.c.id.in_(ids)))} if ids else {}
    return [route_of(r, conns) for r in rows]


def route_of(row: Any, connections: dict[uuid.UUID, Connection]) -> Route:
    """A ``routes`` row as a ``protocol.Route`` with its connections (``connections`` by id)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    src, dst = m["source_connection_id"], m["destination_connection_id"]
    return Route(id=m["id"], tenant=m["tenant"], name=m["name"], mode=m["mode"], kinds=tuple(json_field(m["kinds"], [])),
                 source=connections.get(src) if src else None, destination=connections.get(dst) if dst else None,
                 orgs=tuple(json_field(m["orgs"], [])), mapping=m["mapping"], schedule_seconds=m["schedule_seconds"],
                 options=json_field(m["options"], {}))


def load_route(store: Store, route_id: uuid.UUID, *, tenant: str | None = None) -> Route:
    """Route ``route_id`` with its source/destination ``Connection`` (enabled or not)."""
    where = t.routes.c.id == route_id
    if tenant is not None:
        where = and_(where, t.routes.c.tenant == tenant)
    with store.engine.connect() as conn:
        found = _routes_with_connections(conn, where)
    if not found:
        raise NotFound(f"no route {route_id}")
    return found[0]


def find_route(store: Store, name_or_id: str, *, tenant: str | None = None) -> Route:
    """A route by id, or by name (in ``tenant``; without one, the name must be unique
    across tenants): what the CLI's ROUTE arguments take."""
    try:
        return load_route(store, uuid.UUID(name_or_id), tenant=tenant)
    except ValueError:
        pass
    where = t.routes.c.name == name_or_id
    if tenant is not None:
        where = and_(where, t.routes.c.tenant == tenant)
    with store.engine.connect() as conn:
        found = _routes_with_connections(conn, where)
    if not found:
        raise NotFound(f"no route {name_or_id!r}" + (f" for tenant {tenant!r}" if tenant else ""))
    if len(found) > 1:
        raise Conflict(f"route {name_or_id!r} exists for several tenants ({', '.join(r.tenant for r in found)}): give --tenant")
    return found[0]


def list_routes(store: Store, *, tenant: str | None = None, enabled: bool | None = None, mode: str | None = None) -> list[Route]:
    """Routes (every tenant's without ``tenant``), by tenant and name."""
    conds = []
    if tenant is not None:
        conds.append(t.routes.c.tenant == tenant)
    if enabled is not None:
        conds.append(t.routes.c.enabled.is_(enabled))
    if mode is not None:
        conds.append(t.routes.c.mode == mode)
    with store.engine.connect() as conn:
        return _routes_with_connections(conn, and_(true(), *conds))


# --- the scheduler -------------------------------------------------------------------------------


def routes_due(store: Store, now: datetime | None = None) -> list[Route]:
    """Enabled pull routes with a schedule whose next start is due (never started: due at once)."""
    now = now or utcnow()
    where = and_(t.routes.c.enabled.is_(True), t.routes.c.mode == "pull", t.routes.c.schedule_seconds.is_not(None),
                 or_(t.routes.c.next_run_at.is_(None), t.routes.c.next_run_at <= now))
    with store.engine.connect() as conn:
        return _routes_with_connections(conn, where)


def claim_due(store: Store, route_id: uuid.UUID, now: datetime | None = None) -> bool:
    """Move a due route's next start one interval on, if it is still due: True for the
    caller that moved it (the one that runs the pull), False if another got there first."""
    now = now or utcnow()
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        row = conn.execute(select(t.routes.c.schedule_seconds, t.routes.c.next_run_at).where(t.routes.c.id == route_id)).first()
        if row is None or row.schedule_seconds is None or (row.next_run_at is not None and row.next_run_at > now):
            return False
        res = conn.execute(update(t.routes).where(t.routes.c.id == route_id, _same_time(t.routes.c.next_run_at, row.next_run_at))
                           .values(next_run_at=now + timedelta(seconds=row.schedule_seconds)))
        return res.rowcount == 1


def _same_time(col: Any, value: datetime | None) -> Any:
    return col.is_(None) if value is None else col == value


# --- cursors -------------------------------------------------------------------------------------


def get_cursor(store: Store, route_id: uuid.UUID) -> str | None:
    with store.engine.connect() as conn:
        return conn.scalar(select(t.routes.c.watermark).where(t.routes.c.id == route_id))


def save_cursor(store: Store, route_id: uuid.UUID, cursor: str, now: datetime | None = None) -> None:
    """Store a route's cursor (after the page it covers is committed) and when it moved."""
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(update(t.routes).where(t.routes.c.id == route_id).values(watermark=cursor, cursor_at=now or utcnow()))


def reset_cursor(store: Store, route_id: uuid.UUID, *, tenant: str | None = None) -> None:
    """Forget a route's cursor: its next pull is a full one (which also retires what the source no longer lists)."""
    where = t.routes.c.id == route_id
    if tenant is not None:
        where = and_(where, t.routes.c.tenant == tenant)
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        if conn.execute(update(t.routes).where(where).values(watermark=None, cursor_at=None)).rowcount == 0:
            raise NotFound(f"no route {route_id}")


# --- sync runs -----------------------------------------------------------------------------------


def start_run(store: Store, route: Route, *, trigger: str = "manual", engine: str = "embedded",
              cursor_before: str | None = None, now: datetime | None = None) -> uuid.UUID:
    """A ``running`` sync run of ``route``; ``finish_run`` closes it."""
    run_id = uuid.uuid4()
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(insert(t.sync_runs).values(
            id=run_id, tenant=route.tenant, route_id=route.id, trigger=trigger, engine=engine, status="running",
            started_at=now or utcnow(), cursor_before=cursor_before, errors="[]"))
    return run_id


def finish_run(store: Store, summary: SyncRunSummary, *, now: datetime | None = None, max_errors: int = 100) -> None:
    """Record a run's counts, cursor, errors (the first ``max_errors``; never a secret:
    callers pass messages built from redacted requests) and final status."""
    errors = summary.errors[:max_errors]
    if len(summary.errors) > max_errors:
        errors.append({"message": f"... and {len(summary.errors) - max_errors} more errors"})
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(update(t.sync_runs).where(t.sync_runs.c.id == summary.id).values(
            status=summary.status, finished_at=now or utcnow(), read=summary.read, written=summary.written,
            unchanged=summary.unchanged, deleted=summary.deleted, failed=summary.failed,
            cursor_after=summary.cursor_after, errors=orjson.dumps(errors).decode()))


def run_view(row: Any, secrets: Sequence[str] = ()) -> dict[str, Any]:
    m = row._mapping
    seconds = (m["finished_at"] - m["started_at"]).total_seconds() if m["finished_at"] else None
    return {
        "id": str(m["id"]), "route_id": str(m["route_id"]), "trigger": m["trigger"], "engine": m["engine"],
        "status": m["status"], "started_at": iso(m["started_at"]), "finished_at": iso(m["finished_at"]),
        "seconds": seconds, "read": m["read"], "written": m["written"], "unchanged": m["unchanged"],
        "deleted": m["deleted"], "failed": m["failed"], "cursor_before": m["cursor_before"],
        "cursor_after": m["cursor_after"],
        "errors": [{k: scrub(v, secrets) if isinstance(v, str) else v for k, v in e.items()} for e in json_field(m["errors"], [])],
    }


def iso(v: datetime | None) -> str | None:
    """ISO 8601 with ``Z``, as the API shows times."""
    return v.isoformat().replace("+00:00", "Z") if v else None


def encode_page_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([str(p) for p in parts])).decode().rstrip("=")


def decode_page_cursor(cursor: str, n: int) -> list[str]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(parts, list) and len(parts) == n and all(isinstance(p, str) for p in parts)):
            raise ValueError
        return parts
    except (ValueError, orjson.JSONDecodeError):
        raise ValidationError("invalid cursor", errors=[ErrorDetail("not a cursor this API issued", location="query", field="cursor")]) from None


def list_runs(store: Store, tenant: str, *, route_id: uuid.UUID | None = None, status: str | None = None, limit: int = 100,
              cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Sync runs, newest first, a page at a time: (runs, the next page's cursor or None)."""
    s = t.sync_runs.c
    q = select(t.sync_runs).where(s.tenant == tenant)
    if route_id is not None:
        q = q.where(s.route_id == route_id)
    if status is not None:
        q = q.where(s.status == status)
    if cursor:
        at, rid = decode_page_cursor(cursor, 2)
        try:
            started, last = datetime.fromisoformat(at), uuid.UUID(rid)
        except ValueError:
            raise ValidationError("invalid cursor", errors=[ErrorDetail("not a cursor this API issued", location="query", field="cursor")]) from None
        q = q.where(or_(s.started_at < started, and_(s.started_at == started, s.id < last)))
    q = q.order_by(s.started_at.desc(), s.id.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    nxt = encode_page_cursor(rows[limit - 1].started_at.isoformat(), rows[limit - 1].id) if len(rows) > limit else None
    secrets = tenant_secrets(store, tenant) if rows else []
    return [run_view(r, secrets) for r in rows[:limit]], nxt


def last_run(store: Store, route_id: uuid.UUID) -> dict[str, Any] | None:
    s = t.sync_runs.c
    with store.engine.connect() as conn:
        row = conn.execute(select(t.sync_runs).where(s.route_id == route_id).order_by(s.started_at.desc(), s.id.desc()).limit(1)).first()
    return run_view(row, tenant_secrets(store, row.tenant)) if row else None


# --- dead letters --------------------------------------------------------------------------------


def tenant_secrets(store: Store, tenant: str | None) -> list[str]:
    """The values of the environment variables the tenant's connections reference (every
    tenant's for None), longest first: what ``scrub`` masks in anything shown."""
    import os

    q = select(t.connections.c.auth, t.connections.c.options)
    if tenant is not None:
        q = q.where(t.connections.c.tenant == tenant)
    names: set[str] = set()
    with store.engine.connect() as conn:
        for row in conn.execute(q):
            refs = list(json_field(row.auth, {}).values()) + list(json_field(row.options, {}).values())
            names |= {r[4:] for r in refs if isinstance(r, str) and r.startswith("env:")}
    values = {os.environ[n] for n in names if len(os.environ.get(n, "")) >= 4}
    return sorted(values, key=len, reverse=True)


def scrub(text: str | None, secrets: Sequence[str]) -> str | None:
    """``text`` with every secret value masked: a last line of defence when what a remote
    system echoed back (a request, a response excerpt, an error) is shown."""
    if not text:
        return text
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text


def dead_letter_view(row: Any, *, full: bool = False, secrets: Sequence[str] = ()) -> dict[str, Any]:
    m = row._mapping
    view = {
        "id": m["id"], "tenant": m["tenant"], "route_id": str(m["route_id"]), "record_kind": m["record_kind"], "record_id": str(m["record_id"]),
        "content_hash": m["content_hash"], "idempotency_key": m["idempotency_key"], "state": m["state"],
        "attempts": m["attempts"], "last_status": m["last_status"], "last_error": scrub(m["last_error"], secrets),
        "created_at": iso(m["created_at"]), "dead_at": iso(m["dead_at"]),
    }
    if full:
        view["request"] = scrub(m["last_request"], secrets)
        view["response"] = scrub(m["last_response"], secrets)
        view["waiting_on"] = scrub(m["waiting_on"], secrets)
    return view


def list_dead_letters(store: Store, tenant: str | None, *, route_id: uuid.UUID | None = None, state: str = "dead", limit: int = 100,
                      cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Dead letters (``state='discarded'``: those given up on), oldest first, a page at a
    time; ``tenant`` None: every tenant's (the operator's CLI)."""
    o = t.outbox.c
    q = select(t.outbox).where(o.state == state)
    if tenant is not None:
        q = q.where(o.tenant == tenant)
    if route_id is not None:
        q = q.where(o.route_id == route_id)
    if cursor:
        (after,) = decode_page_cursor(cursor, 1)
        if not after.isdigit():
            raise ValidationError("invalid cursor", errors=[ErrorDetail("not a cursor this API issued", location="query", field="cursor")])
        q = q.where(o.id > int(after))
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(o.id).limit(limit + 1)).all()
    nxt = encode_page_cursor(rows[limit - 1].id) if len(rows) > limit else None
    secrets = tenant_secrets(store, tenant) if rows else []
    return [dead_letter_view(r, secrets=secrets) for r in rows[:limit]], nxt


def get_dead_letter(store: Store, tenant: str | None, outbox_id: int) -> dict[str, Any]:
    """One dead (or discarded) letter with its request, response excerpt and attempts."""
    o = t.outbox.c
    q = select(t.outbox).where(o.id == outbox_id, o.state.in_(("dead", "discarded")))
    if tenant is not None:
        q = q.where(o.tenant == tenant)
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no dead letter {outbox_id}")
    return dead_letter_view(row, full=True, secrets=tenant_secrets(store, row.tenant))


def replay_dead_letters(store: Store, tenant: str | None, *, ids: Sequence[int] | None = None, route_id: uuid.UUID | None = None,
                        now: datetime | None = None) -> int:
    """Put dead letters back in the queue, due now with a fresh attempt count (the last
    error stays visible until the next attempt): the given ``ids``, or every dead letter of
    ``route_id``, or every one of the tenant (``tenant`` None: of every tenant). Returns how many."""
    o = t.outbox.c
    q = update(t.outbox).where(o.state == "dead")
    if tenant is not None:
        q = q.where(o.tenant == tenant)
    if ids is not None:
        q = q.where(o.id.in_(list(ids)))
    if route_id is not None:
        q = q.where(o.route_id == route_id)
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        return conn.execute(q.values(state="pending", attempts=0, next_attempt_at=now or utcnow(), dead_at=None,
                                     locked_until=None, lease_owner=None, waiting_on=None)).rowcount


def discard_dead_letters(store: Store, tenant: str | None, *, ids: Sequence[int] | None = None, route_id: uuid.UUID | None = None) -> int:
    """Give up on dead letters: ``discarded``, kept for the record, never retried. Returns how many."""
    o = t.outbox.c
    q = update(t.outbox).where(o.state == "dead")
    if tenant is not None:
        q = q.where(o.tenant == tenant)
    if ids is not None:
        q = q.where(o.id.in_(list(ids)))
    if route_id is not None:
        q = q.where(o.route_id == route_id)
    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        return conn.execute(q.values(state="discarded")).rowcount


# --- health --------------------------------------------------------------------------------------


#: a delivery pending longer than this makes its route ``stalled`` (retries with backoff and a
#: waiting dependency stay well below it unless something is wrong)
STALLED_SECONDS = 900.0
#: a scheduled pull later than one interval and this makes its route ``overdue``
OVERDUE_SECONDS = 300.0


@dataclass(frozen=True)
class RouteHealth:
    route_id: uuid.UUID
    tenant: str
    name: str
    mode: str
    enabled: bool
    pending: int
    dead: int
    oldest_pending_seconds: float | None
    cursor_age_seconds: float | None
    last_run: dict[str, Any] | None
    breaker: dict[str, Any] | None
    next_run_at: datetime | None
    #: a scheduled pull: how long past its start time it is (None: not due yet, or no schedule)
    overdue_seconds: float | None = None

    @property
    def status(self) -> str:
        """``ok``, or what needs a look first: ``disabled``; ``breaker-open``; ``dead-letters``;
        ``failing`` (the last run failed); ``overdue`` (a scheduled pull more than one interval,
        and at least ``OVERDUE_SECONDS``, late: nothing is running the scheduler); ``stalled``
        (a delivery pending for more than ``STALLED_SECONDS``: nothing is delivering)."""
        if not self.enabled:
            return "disabled"
        if self.breaker and self.breaker["state"] == "open":
            return "breaker-open"
        if self.dead:
            return "dead-letters"
        if self.last_run and self.last_run["status"] == "failed":
            return "failing"
        if self.overdue_seconds is not None:
            return "overdue"
        if self.oldest_pending_seconds is not None and self.oldest_pending_seconds > STALLED_SECONDS:
            return "stalled"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "route_id": str(self.route_id), "name": self.name, "mode": self.mode, "enabled": self.enabled, "status": self.status,
            "pending": self.pending, "dead": self.dead, "oldest_pending_seconds": self.oldest_pending_seconds,
            "cursor_age_seconds": self.cursor_age_seconds, "next_run_at": iso(self.next_run_at), "last_run": self.last_run,
            "breaker": self.breaker, "overdue_seconds": self.overdue_seconds,
        }


def breaker_view(row: Any, now: datetime, secrets: Sequence[str] = ()) -> dict[str, Any]:
    m = row._mapping
    is_open = m["open_until"] is not None and m["open_until"] > now
    return {"connection_id": str(m["connection_id"]), "state": "open" if is_open else "closed",
            "consecutive_failures": m["consecutive_failures"], "open_until": iso(m["open_until"]) if is_open else None,
            "last_error": scrub(m["last_error"], secrets), "last_success_at": iso(m["last_success_at"]), "last_failure_at": iso(m["last_failure_at"])}


def _overdue(row: Any, now: datetime) -> float | None:
    if row.mode != "pull" or not row.enabled or row.schedule_seconds is None or row.next_run_at is None:
        return None
    late = (now - row.next_run_at).total_seconds()
    return late if late > max(float(row.schedule_seconds), OVERDUE_SECONDS) else None


def route_health(store: Store, *, tenant: str | None = None, route_ids: Sequence[uuid.UUID] | None = None,
                 now: datetime | None = None) -> list[RouteHealth]:
    """Health of routes (a tenant's, or the given ids, or all): queue counts, the oldest
    pending row's age, cursor age, the last sync run and the remote connection's breaker.
    A few grouped queries whatever the number of routes."""
    now = now or utcnow()
    r, o, s, h = t.routes.c, t.outbox.c, t.sync_runs.c, t.connection_health.c
    conds = []
    if tenant is not None:
        conds.append(r.tenant == tenant)
    if route_ids is not None:
        conds.append(r.id.in_(list(route_ids)))
    with store.engine.connect() as conn:
        routes = conn.execute(select(t.routes).where(and_(true(), *conds)).order_by(r.tenant, r.name)).all()
        ids = [row.id for row in routes]
        if not ids:
            return []
        counts: dict[tuple[uuid.UUID, str], tuple[int, datetime | None]] = {
            (row.route_id, row.state): (row.n, row.oldest)
            for row in conn.execute(select(o.route_id, o.state, func.count().label("n"), func.min(o.created_at).label("oldest"))
                                    .where(o.route_id.in_(ids), o.state.in_(("pending", "dead"))).group_by(o.route_id, o.state))}
        latest = (select(s.route_id, func.max(s.started_at).label("at")).where(s.route_id.in_(ids)).group_by(s.route_id).subquery())
        runs: dict[uuid.UUID, dict[str, Any]] = {}
        run_rows = conn.execute(select(t.sync_runs).join(latest, and_(s.route_id == latest.c.route_id, s.started_at == latest.c.at))).all()
        remote = {row.id: (row.source_connection_id if row.mode == "pull" else row.destination_connection_id) for row in routes}
        conn_ids = [c for c in remote.values() if c is not None]
        health_rows = conn.execute(select(t.connection_health).where(h.connection_id.in_(conn_ids))).all() if conn_ids else []
    secrets = tenant_secrets(store, tenant) if run_rows or health_rows else []
    for row in run_rows:
        runs[row.route_id] = run_view(row, secrets)
    breakers = {row.connection_id: breaker_view(row, now, secrets) for row in health_rows}
    found = []
    for row in routes:
        pending, oldest = counts.get((row.id, "pending"), (0, None))
        dead, _ = counts.get((row.id, "dead"), (0, None))
        found.append(RouteHealth(
            route_id=row.id, tenant=row.tenant, name=row.name, mode=row.mode, enabled=row.enabled, pending=pending, dead=dead,
            oldest_pending_seconds=(now - oldest).total_seconds() if oldest else None,
            cursor_age_seconds=(now - row.cursor_at).total_seconds() if row.cursor_at else None,
            last_run=runs.get(row.id), breaker=breakers.get(remote[row.id]) if remote[row.id] else None,
            next_run_at=row.next_run_at, overdue_seconds=_overdue(row, now)))
    return found


__all__ = [
    "OVERDUE_SECONDS", "STALLED_SECONDS", "RouteHealth", "claim_due", "scrub", "tenant_secrets", "connection_of", "decode_page_cursor", "discard_dead_letters", "encode_page_cursor",
    "find_route", "finish_run", "get_cursor", "iso", "json_field", "get_dead_letter", "last_run", "list_dead_letters", "list_routes", "list_runs",
    "load_connection", "load_route", "replay_dead_letters", "reset_cursor", "route_health", "route_of", "routes_due",
    "run_view", "save_cursor", "start_run",
]
