"""The outbox rows of statements: push routes of kind ``xapi.statement`` (``routing``).

``StatementStore._write`` calls ``enqueue`` inside its write transaction, so a statement is
committed together with its deliveries or not at all, as canonical records are
(``gateway.store.outbox``). A statement is never routed back to the system it came from
(the statement store's evidence source: ``xapi`` for a POST, the connection's system for a
pull).
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import Connection

from gateway.model import utcnow
from gateway.store.outbox import RouteMatch, enqueue_written, matching_routes

KIND = "xapi.statement"


def enqueue(conn: Connection, tenant: str, ids: list[str], bodies: list[str], source: str,
            routes: list[RouteMatch] | None = None) -> int:
    """Outbox rows of kind ``xapi.statement`` for the statements just written, in their
    transaction, for every enabled push route that carries the kind (``routes``: those,
    read already in this transaction)."""
    if routes is None:
        routes = [r for r in matching_routes(conn, tenant) if KIND in r.kinds]
    if not routes:
        return 0
    written = [(uuid.UUID(i), hashlib.sha256(b.encode()).hexdigest(), source) for i, b in zip(ids, bodies, strict=True)]
    return enqueue_written(conn, tenant, KIND, written, utcnow(), routes)


__all__ = ["KIND", "enqueue"]
