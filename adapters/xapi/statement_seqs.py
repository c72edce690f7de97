"""What the statement writer asks the database under the write lock (issue 22): the batch's
seqs and which of its statements an earlier voiding statement targets.

On SQLite both run while every writer of every process waits, so they go to the driver as
plain statements (texts compiled once and kept in the connection's cache), not through
SQLAlchemy's compiler and its expanding IN, which cost several times SQLite's own work for
them (profiled in one process: about a fifth of the time under the lock).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, select

from gateway.store.db import SQLITE_MAX_PARAMS

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
    for i in range(0, len(keys), _PART):  # parts within SQLite's limit on parameters (the padding doubles a list)
        part = keys[i:i + _PART]
        size = max(16, 1 << (len(part) - 1).bit_length())  # padded with repeats (which change nothing in IN): few texts
        ids = [k.bytes for k in part] + [part[0].bytes] * (size - len(part))
        sql = f"SELECT voiding FROM xapi_statements WHERE tenant = ? AND voiding IN ({', '.join(['?'] * size)})"
        out += [uuid.UUID(bytes=v) for (v,) in conn.exec_driver_sql(sql, (tenant, *ids))]
    return out


#: ids a part of ``voided_by_earlier`` asks on SQLite: a power of two, with the tenant's parameter
#: within the library's limit (``SQLITE_MAX_PARAMS``: 32,766 by default, 999 in old builds)
_PART = 1 << (min(4096, SQLITE_MAX_PARAMS - 1).bit_length() - 1)


__all__ = ["allocate_seqs", "voided_by_earlier"]
