"""Applying a prepared plan: the objects' rows and the canonical records in ONE
transaction (``store.records.apply(..., within=writer(plan))``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, update

from gateway.model import Record, utcnow

from ..tables import objects
from .prepare import Item, Plan, Preparer, Row
from .storage import object_id
from .types import PROMOTED


def write_rows(conn: Connection, tenant: str, rows: list[Row], now: datetime) -> None:
    """Upsert the plan's rows (inside ``store.records.apply``'s transaction)."""
    for r in rows:
        rid = object_id(tenant, r.type, r.sourced_id)
        cols = {k: (r.data.get(f) or {}).get("sourcedId") for k, f in PROMOTED.get(r.type, {}).items()}
        cols.update({k: v for k, v in r.cols.items() if not cols.get(k)})
        values = dict(tenant=tenant, type=r.type, sourced_id=r.sourced_id, source=r.source, status=r.data["status"],
                      data=orjson.dumps(r.data).decode(), derived=orjson.dumps(r.derived).decode(), **cols)
        if r.bump or r.created:
            values["updated_at"] = now
        done = conn.execute(update(objects).where(objects.c.id == rid).values(**values)).rowcount
        if not done:
            conn.execute(insert(objects).values(id=rid, **{"updated_at": now, **values}))


def writer(plan: Plan) -> Callable[[Connection], None]:
    """The ``within`` callback of ``store.records.apply`` that writes the plan's objects."""
    now = utcnow()
    # owners before what references them: the order a reader of the change stream expects
    order = {ty: i for i, ty in enumerate(["category", "scoreScale", "lineItem", "assessmentLineItem", "result", "assessmentResult"])}
    rows = sorted(plan.rows, key=lambda r: order.get(r.type, 9))
    return lambda conn: write_rows(conn, plan.tenant, rows, now)


def apply(store: Any, plan: Plan, records: list[Record] | None = None, *, also: Callable[[Connection], None] | None = None) -> Any:
    """Write the plan: objects and canonical records (``records`` before the plan's own, e.g.
    the rostering records of the same CSV package) in ONE transaction; ``also(conn)`` then
    writes more in it (the import's sealed credentials)."""
    write = writer(plan)

    def within(conn: Connection) -> None:
        write(conn)
        if also is not None:
            also(conn)

    return store.records.apply(plan.tenant, [*(records or []), *plan.records], within=within)


def put_objects(store: Any, tenant: str, source: str, items: list[Item], *, version: str) -> Plan:
    """Validate and write a batch (REST PUT / POST / DELETE, and small CSV imports)."""
    plan = Preparer(store, tenant, source, version=version).prepare(items)
    apply(store, plan)
    return plan
