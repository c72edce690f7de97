"""What the integrator pages show and do, read from the store for one tenant.

Every function takes the viewer's ``tenant`` and reads only that tenant's rows; an id of
another tenant is ``NotFound``, as an unknown one is.

* **Imports** are the runs of the tenant's pull routes (``sync_runs``): the store keeps each
  run's counts and its errors (``{message, location, field}``; a location such as
  ``users.csv row 4`` is split into the file and the row). A ``tessera import ...`` from the
  command line leaves no run in the store, so it is not listed.
* **Credentials**: OAuth clients (``gateway.auth.clients``) and the LRS's HTTP Basic
  credentials, which are OAuth clients holding the xAPI adapter's scopes: which scopes those
  are is asked of the wiring (the adapter protocol's ``scopes``), never of ``adapters``.
* **Routing**: ``gateway.routing.repository`` (health, runs, dead letters), as the API uses it.
* **Unaligned evidence**: evidence whose ``competency_id`` is null, grouped by its activity.
  Aligning an activity writes one batch through the same door as ``POST /v1/batches``
  (``parse_batch`` then ``RecordStore.apply``): the Alignment, and the activity's unaligned
  evidence aligned late (``competency_id`` and ``alignment_id``, the only fields the store
  lets change), so the mastery engine updates those learners' states in the same transaction.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, func, select

from ..auth.clients import Client
from ..errors import NotFound
from ..model import record_id, utcnow
from ..routing import repository as routing
from ..store import Store
from ..store import tables as t

ACTIVE = "active"
#: the most unaligned evidence rows one page reads (the count is always exact)
UNALIGNED_SCAN = 20_000
#: the console's name as the source system of the alignments it writes
SOURCE = "console"


# --- overview -------------------------------------------------------------------------------------


@dataclass
class Overview:
    counts: dict[str, int]
    attention: list[tuple[str, str, str]]  # (what, detail, link)


def _count(conn: Any, table: Any, *where: Any) -> int:
    return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def overview(store: Store, tenant: str, lrs_scopes: frozenset[str]) -> Overview:
    """Counts of the tenant's data and what needs a look first (dead letters, routes that
    are stalled, failing or cut off, imports with errors, unaligned evidence)."""
    with store.engine.connect() as conn:
        ev = t.evidence.c
        counts = {
            "people": _count(conn, t.people, t.people.c.tenant == tenant, t.people.c.status == ACTIVE),
            "classes": _count(conn, t.sections, t.sections.c.tenant == tenant, t.sections.c.status == ACTIVE),
            "frameworks": _count(conn, t.frameworks, t.frameworks.c.tenant == tenant, t.frameworks.c.status == ACTIVE),
            "evidence": _count(conn, t.evidence, ev.tenant == tenant, ev.status == ACTIVE),
            "unaligned": _count(conn, t.evidence, ev.tenant == tenant, ev.status == ACTIVE, ev.competency_id.is_(None),
                                ev.voided.is_(False)),
            "connections": _count(conn, t.connections, t.connections.c.tenant == tenant),
            "routes": _count(conn, t.routes, t.routes.c.tenant == tenant),
            "dead_letters": _count(conn, t.outbox, t.outbox.c.tenant == tenant, t.outbox.c.state == "dead"),
        }
    clients = [c for c in list_clients(store, tenant) if c.active]
    counts["lrs_credentials"] = sum(1 for c in clients if is_lrs(c, lrs_scopes))
    counts["clients"] = len(clients) - counts["lrs_credentials"]
    attention: list[tuple[str, str, str]] = []
    if counts["dead_letters"]:
        attention.append(("Deliveries that failed", f"{counts['dead_letters']} waiting in the dead-letter queue",
                          "/console/admin/routing#dead-letters"))
    for h in routing.route_health(store, tenant=tenant):
        if h.status not in ("ok", "disabled", "dead-letters"):
            attention.append((f"Route {h.name}", STATUS_TEXT.get(h.status, h.status), "/console/admin/routing#routes"))
    failed = [r for r in imports(store, tenant, limit=20) if r["status"] in ("failed", "partial")]
    if failed:
        attention.append(("Imports with errors", f"{len(failed)} of the last 20 imports had errors", "/console/admin/imports"))
    if counts["unaligned"]:
        n = counts["unaligned"]
        attention.append(("Evidence not linked to a standard", f"{n} item{'s' if n != 1 else ''}", "/console/admin/unaligned"))
    return Overview(counts, attention)


STATUS_TEXT = {
    "ok": "working", "disabled": "turned off", "breaker-open": "paused after repeated failures (circuit breaker open)",
    "dead-letters": "has failed deliveries", "failing": "its last run failed",
    "overdue": "a scheduled run is late (is the scheduler running?)", "stalled": "deliveries are waiting too long (stalled)",
}


# --- imports --------------------------------------------------------------------------------------

_WHERE = re.compile(r"^(?P<file>[^\s]+\.(?:csv|json|ndjson|jsonl|xml|zip))(?:[\s:,]+(?P<row>.*))?$", re.IGNORECASE)


def split_location(location: str | None) -> tuple[str, str]:
    """``users.csv row 4`` -> (``users.csv``, ``row 4``); anything else: ("", location)."""
    loc = (location or "").strip()
    m = _WHERE.match(loc)
    if m:
        return m.group("file"), (m.group("row") or "").strip()
    return "", loc


SOURCES = {"oneroster.csv": "OneRoster files", "oneroster.rest": "OneRoster provider", "case": "CASE framework",
           "ndjson": "Tessera records (NDJSON)"}


def imports(store: Store, tenant: str, *, limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
    """The tenant's imports, newest first: the runs of its pull routes and the imports run
    with ``tessera import`` (``gateway.store.imports``), each with a name and its errors as
    ``{file, row, field, message}``."""
    runs = route_runs(store, tenant, limit=limit, before=before) + import_runs(store, tenant, limit=limit, before=before)
    runs.sort(key=lambda r: r["started"], reverse=True)
    return runs[:limit]


def import_runs(store: Store, tenant: str, *, limit: int, before: datetime | None) -> list[dict[str, Any]]:
    out = []
    for r in store.imports.recent(tenant, limit=limit, before=before):
        read = r["created"] + r["updated"] + r["unchanged"]
        status = "failed" if r["status"] == "failed" else ("partial" if r["deviations"] else "succeeded")
        out.append({
            "id": r["id"], "route_name": f"{SOURCES.get(r['source'], r['source'])}: {r['what']}", "status": status,
            "started": r["started_at"], "started_at": r["started_at"], "message": r["message"],
            "seconds": (r["finished_at"] - r["started_at"]).total_seconds(), "read": read, "written": r["created"] + r["updated"],
            "unchanged": r["unchanged"], "deleted": 0, "failed": len(r["errors"]) if r["status"] == "failed" else 0,
            "errors": [{"file": f, "row": rw, "field": str(e.get("field") or ""), "message": str(e.get("message") or "")}
                       for e in r["errors"] for f, rw in [split_location(e.get("location"))]],
        })
    return out


def route_runs(store: Store, tenant: str, *, limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
    """The runs of the tenant's pull routes, newest first, each with its route's name and
    its errors as ``{file, row, field, message}``."""
    s, r = t.sync_runs.c, t.routes.c
    q = (select(t.sync_runs, r.name.label("route_name"))
         .join(t.routes, and_(r.id == s.route_id, r.tenant == s.tenant))
         .where(s.tenant == tenant, r.mode == "pull"))
    if before is not None:
        q = q.where(s.started_at < before)
    q = q.order_by(s.started_at.desc(), s.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    secrets = routing.tenant_secrets(store, tenant) if rows else []
    out = []
    for row in rows:
        view = routing.run_view(row, secrets)
        view["route_name"] = row.route_name
        view["started"] = row.started_at
        view["errors"] = [{"file": f, "row": rw, "field": str(e.get("field") or ""), "message": str(e.get("message") or "")}
                          for e in view["errors"] for f, rw in [split_location(e.get("location"))]]
        out.append(view)
    return out


# --- credentials ----------------------------------------------------------------------------------


def list_clients(store: Store, tenant: str) -> list[Client]:
    """The tenant's OAuth clients (LRS credentials included), newest first."""
    from ..auth.clients import ClientStore

    return sorted(ClientStore(store.engine).list(tenant), key=lambda c: c.created_at, reverse=True)


def is_lrs(client: Client, lrs_scopes: frozenset[str]) -> bool:
    """LRS credentials: a client whose scopes are all the xAPI adapter's."""
    return bool(client.scopes) and all(s in lrs_scopes for s in client.scopes)


def tenant_client(store: Store, tenant: str, client_id: str) -> Client:
    """The client when it belongs to ``tenant``; NotFound otherwise (also for another tenant's)."""
    from ..auth.clients import ClientStore

    try:
        client = ClientStore(store.engine).get(client_id)
    except NotFound:
        raise NotFound("no such credential") from None
    if client.tenant != tenant:
        raise NotFound("no such credential")
    return client


def tenant_info(store: Store, tenant: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(t.tenants).where(t.tenants.c.id == tenant)).first()
    return {"id": tenant, "name": row.name if row else tenant, "created_at": row.created_at if row else None}


# --- routing --------------------------------------------------------------------------------------


def connections(store: Store, tenant: str) -> list[dict[str, Any]]:
    """The tenant's connections, each with its circuit breaker (``health``: None before any call)."""
    from ..routing.manage import list_connections

    items, _ = list_connections(store, tenant, limit=1000)
    now = utcnow()
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.connection_health).where(t.connection_health.c.tenant == tenant)).all()
    secrets = routing.tenant_secrets(store, tenant) if rows else []
    health = {str(r.connection_id): routing.breaker_view(r, now, secrets) for r in rows}
    for item in items:
        item["health"] = health.get(item["id"])
    return items


def routes(store: Store, tenant: str) -> list[dict[str, Any]]:
    """The tenant's routes with their health and last sync run."""
    names = {r.id: r for r in routing.list_routes(store, tenant=tenant)}
    out = []
    for h in routing.route_health(store, tenant=tenant):
        route = names.get(h.route_id)
        view = h.as_dict()
        view["status_text"] = STATUS_TEXT.get(h.status, h.status)
        view["source"] = route.source.name if route and route.source else None
        view["destination"] = route.destination.name if route and route.destination else None
        view["kinds"] = list(route.kinds) if route else []
        out.append(view)
    return out


def dead_letters(store: Store, tenant: str, limit: int = 200) -> list[dict[str, Any]]:
    items, _ = routing.list_dead_letters(store, tenant, limit=limit)
    names = {str(r.id): r.name for r in routing.list_routes(store, tenant=tenant)}
    for item in items:
        item["route_name"] = names.get(item["route_id"], item["route_id"])
    return items


def dead_letter(store: Store, tenant: str, outbox_id: int) -> dict[str, Any]:
    item = routing.get_dead_letter(store, tenant, outbox_id)
    names = {str(r.id): r.name for r in routing.list_routes(store, tenant=tenant)}
    item["route_name"] = names.get(item["route_id"], item["route_id"])
    return item


# --- unaligned evidence ---------------------------------------------------------------------------


@dataclass
class Activity:
    system: str
    id: str
    title: str
    items: int = 0
    learners: set[str] = field(default_factory=set)
    first: str = ""
    last: str = ""


@dataclass
class Unaligned:
    total: int
    activities: list[Activity]
    without_activity: int
    scanned_all: bool


def _unaligned_rows(conn: Any, tenant: str, *extra: Any, limit: int = UNALIGNED_SCAN) -> list[Any]:
    ev = t.evidence.c
    q = (select(ev.id, ev.data).where(ev.tenant == tenant, ev.status == ACTIVE, ev.competency_id.is_(None), ev.voided.is_(False), *extra)
         .order_by(ev.observed_at.desc(), ev.id).limit(limit))
    return conn.execute(q).all()


def unaligned(store: Store, tenant: str) -> Unaligned:
    """The tenant's unaligned evidence grouped by activity, most items first."""
    ev = t.evidence.c
    with store.engine.connect() as conn:
        total = _count(conn, t.evidence, ev.tenant == tenant, ev.status == ACTIVE, ev.competency_id.is_(None), ev.voided.is_(False))
        rows = _unaligned_rows(conn, tenant)
    acts: dict[tuple[str, str], Activity] = {}
    without = 0
    for row in rows:
        doc = orjson.loads(row.data)
        act = doc.get("activity") or {}
        if not act.get("system") or not act.get("id"):
            without += 1
            continue
        key = (act["system"], act["id"])
        a = acts.get(key)
        if a is None:
            a = acts[key] = Activity(act["system"], act["id"], act.get("title") or "")
        a.items += 1
        a.learners.add(doc["learner_id"])
        when = doc.get("observed_at") or ""
        a.first = min(a.first, when) if a.first else when
        a.last = max(a.last, when)
    ordered = sorted(acts.values(), key=lambda a: (-a.items, a.system, a.id))
    return Unaligned(total, ordered, without, len(rows) == total)


def activity_evidence(store: Store, tenant: str, system: str, activity_id: str) -> list[dict[str, Any]]:
    """The unaligned evidence of one activity (stored JSON, parsed)."""
    with store.engine.connect() as conn:
        rows = _unaligned_rows(conn, tenant, t.evidence.c.data.contains(activity_id, autoescape=True))
    docs = [orjson.loads(r.data) for r in rows]
    return [d for d in docs if (d.get("activity") or {}).get("system") == system and d["activity"].get("id") == activity_id]


def frameworks(store: Store, tenant: str) -> list[dict[str, Any]]:
    f = t.frameworks.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(f.id, f.data).where(f.tenant == tenant, f.status == ACTIVE)).all()
    return sorted(({"id": str(r.id), "title": orjson.loads(r.data).get("title") or str(r.id)} for r in rows),
                  key=lambda x: x["title"].lower())


def competencies(store: Store, tenant: str, framework_id: uuid.UUID) -> list[dict[str, Any]]:
    """A framework's competencies, by code then statement."""
    c = t.competencies.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.id, c.code, c.data).where(c.tenant == tenant, c.framework_id == framework_id,
                                                               c.status == ACTIVE)).all()
    out = []
    for r in rows:
        doc = orjson.loads(r.data)
        out.append({"id": str(r.id), "code": r.code or "", "statement": doc.get("short_statement") or doc.get("statement") or ""})
    return sorted(out, key=lambda x: (_natural(x["code"]), x["statement"]))


def _natural(code: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", code) if p]


def competency(store: Store, tenant: str, competency_id: uuid.UUID) -> dict[str, Any] | None:
    c = t.competencies.c
    with store.engine.connect() as conn:
        row = conn.execute(select(c.id, c.code, c.framework_id, c.data).where(
            c.tenant == tenant, c.id == competency_id, c.status == ACTIVE)).first()
    if row is None:
        return None
    doc = orjson.loads(row.data)
    return {"id": str(row.id), "code": row.code or "", "statement": doc.get("statement") or "", "framework_id": str(row.framework_id)}


def alignment_native_id(system: str, activity_id: str) -> str:
    """The console's alignment of one activity: one per (system, activity), so aligning the
    same activity again replaces it rather than adding a second."""
    return "activity:" + hashlib.sha256(f"{system}\n{activity_id}".encode()).hexdigest()[:40]


def align(store: Store, tenant: str, system: str, activity_id: str, competency_id: uuid.UUID,
          evidence: Iterable[dict[str, Any]]) -> tuple[uuid.UUID, int]:
    """Align an activity to a competency, and its unaligned ``evidence`` with it, in one batch
    written as ``POST /v1/batches`` writes one. Returns (alignment id, evidence aligned)."""
    from ..api.v1 import parse_batch

    native = alignment_native_id(system, activity_id)
    alignment_id = record_id(tenant, "alignment", SOURCE, native)
    body: list[dict[str, Any]] = [{
        "kind": "alignment", "tenant": tenant, "source": SOURCE, "native_id": native, "target_system": system,
        "target_kind": "activity", "target_id": activity_id, "competency_id": str(competency_id)}]
    items = list(evidence)
    for doc in items:
        late = {k: v for k, v in doc.items() if k != "updated_at"}
        late["competency_id"], late["alignment_id"] = str(competency_id), str(alignment_id)
        body.append(late)
    store.records.apply(tenant, parse_batch({"records": body}, tenant=tenant))
    return alignment_id, len(items)


__all__ = ["Activity", "Overview", "STATUS_TEXT", "Unaligned", "activity_evidence", "align", "alignment_native_id", "competencies",
           "competency", "connections", "dead_letter", "dead_letters", "frameworks", "imports", "is_lrs", "list_clients", "overview",
           "routes", "split_location", "tenant_client", "tenant_info", "unaligned"]
