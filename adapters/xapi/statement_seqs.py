"""What the statement writer asks the database under the write lock (issue 22): the batch's
seqs, which of its statements an earlier voiding statement targets, and (SQLite) whether one
of its ids is in the merged tier of the ids.

On SQLite both run while every writer of every process waits, so they go to the driver as
plain statements (texts compiled once and kept in the connection's cache), not through
SQLAlchemy's compiler and its expanding IN, which cost several times SQLite's own work for
them (profiled in one process: about a fifth of the time under the lock).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, select

from gateway.store.db import sqlite_in

from .tables import xapi_statements


def allocate_seqs(conn: Connection, n: int) -> list[int]:
    """``n`` increasing statement seqs. SQLite: past the largest, under the write lock the
    transaction holds; PostgreSQL: from the column's sequence."""
    if conn.dialect.name == "postgresql":
        return sorted(conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('xapi_statements', 'seq')) FROM generate_series(1, %(n)s)", {"n": n}
        ).scalars())
    top = conn.exec_driver_sql("SELECT max(seq) FROM xapi_statements").scalar() or 0
    return list(range(top + 1, top + 1 + n))


def voided_by_earlier(conn: Connection, tenant: str, keys: list[uuid.UUID]) -> list[uuid.UUID]:
    """Of the statement ids ``keys``, those an earlier voiding statement targets (Data 2.3.2.s2.b3)."""
    if not keys:
        return []
    if conn.dialect.name == "postgresql":
        s = xapi_statements
        return [r.voiding for r in conn.execute(select(s.c.voiding).where(s.c.tenant == tenant, s.c.voiding.in_(keys)))]
    out: list[uuid.UUID] = []
    for cond, ids in sqlite_in("voiding", [k.bytes for k in keys]):  # parts within SQLite's limit on parameters
        out += [uuid.UUID(bytes=v) for (v,) in conn.exec_driver_sql(f"SELECT voiding FROM xapi_statements WHERE tenant = ? AND {cond}",
                                                                     (tenant, *ids))]
    return out


def merged_ids(conn: Connection, tenant: str, ids: list[bytes]) -> list[bytes]:
    """SQLite: of the statement ids ``ids`` (16 bytes each), those in the merged tier of the ids,
    ``xapi_statement_ids`` (the recent tier's primary key refuses the others; ``tables``)."""
    out: list[bytes] = []
    for cond, keys in sqlite_in("id", ids):
        out += [k for (k,) in conn.exec_driver_sql(f"SELECT id FROM xapi_statement_ids WHERE tenant = ? AND {cond}", (tenant, *keys))]
    return out


__all__ = ["allocate_seqs", "merged_ids", "voided_by_earlier"]
