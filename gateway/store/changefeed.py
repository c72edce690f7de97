"""The change feed's order (issue "State agencies", item 2): versions a reader can page
through while writes go on, without missing or repeating a change.

A change's version is its ``seq`` in the append-only change log (``tables.changes``). On
SQLite one transaction writes at a time, so ``seq`` order is commit order and the newest
``seq`` is safe to read up to. On PostgreSQL it is not: ``seq`` comes from a sequence when
a row is inserted, and transactions commit in another order, so a reader that took every
change up to the newest ``seq`` it can see would miss a lower ``seq`` committed later.

The newest *safe* version is therefore computed, without blocking any writer:

* before a transaction inserts its first change rows it takes a shared, transaction-level
  advisory lock whose key carries the sequence's current value (``guard``): a *floor*
  below every ``seq`` the transaction will get. The lock is visible to every session in
  ``pg_locks`` at once and goes away at commit or rollback;
* a reader first reads the newest visible ``seq``, then the smallest floor among the
  locks held (``newest_safe``). Every change at or below that floor belongs to a finished
  transaction: a transaction still running that got a ``seq`` below the newest holds a
  lock with a lower floor, and one that starts later gets a ``seq`` above the newest.

This is the snapshot Ed-Fi's change queries take at the start of a sync (``/v1/changes/
available`` gives it), made safe under concurrent commits. Writers pay one round trip per
batch of change rows; readers pay one small query of ``pg_locks``.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text

from .tables import change_log_horizon, changes

#: the advisory lock namespace (the two-key form's first key): FLOOR_BASE + (floor >> 31)
FLOOR_BASE = 1_700_000_000
_LOW = (1 << 31) - 1

_GUARD = text(
    "SELECT pg_advisory_xact_lock_shared(CAST(:base + (v >> 31) AS integer), CAST(v & :low AS integer)) "
    "FROM (SELECT last_value AS v FROM changes_seq_seq) AS s"
)
_FLOORS = text(
    "SELECT min(((l.classid::bigint - :base) << 31) | l.objid::bigint) FROM pg_locks AS l "
    "WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted "
    "AND l.classid::bigint >= :base AND l.classid::bigint < :base + 1000000 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def guard(conn: Connection) -> None:
    """Call before inserting change rows in a write transaction (PostgreSQL; nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_GUARD, {"base": FLOOR_BASE, "low": _LOW})


def newest_safe(conn: Connection) -> int:
    """The newest version every reader may read up to now (0: no change yet)."""
    newest = conn.scalar(select(func.max(changes.c.seq))) or 0
    if conn.dialect.name != "postgresql":
        return int(newest)
    floor = conn.scalar(_FLOORS, {"base": FLOOR_BASE})
    return int(newest if floor is None else min(newest, floor))


def oldest(conn: Connection) -> int:
    """The oldest version a reader may still ask for: 1, or the first after what a retention
    policy dropped (``partitions.drop_before`` records it). Not ``min(seq)``: a rolled-back
    transaction leaves a gap at the start that lost nothing."""
    return int(conn.scalar(select(change_log_horizon.c.dropped_through).where(change_log_horizon.c.id == 1)) or 0) + 1


__all__ = ["FLOOR_BASE", "guard", "newest_safe", "oldest"]
