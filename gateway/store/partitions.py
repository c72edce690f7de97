"""Monthly range partitions on PostgreSQL (issue "State agencies", item 5).

At the volume of a state (hundreds of millions of evidence items and changes a month) one
table per kind keeps growing indexes that no query needs whole. On PostgreSQL, ``evidence``
(by ``observed_at``) and the change log ``changes`` (by ``at``) are range-partitioned by
month with declarative partitioning (migration 0011), so that:

* a query bounded in time reads only its months' partitions (the planner prunes the rest;
  ``tests/test_partitions.py`` asserts the plans);
* a retention policy drops whole months of the change log at the cost of a ``DROP TABLE``
  (``drop_before``); evidence is never dropped: it is the record of what a learner showed;
* indexes stay the size of a month.

An adapter registers tables of its own (``register``): the xAPI adapter's raw statements,
``xapi_statements`` by ``stored`` (retainable), with their index rows, which follow its
months (``adapters/xapi/partitions.py`` says how).

Each table also has a ``_default`` partition, so a row from a month no partition covers yet
(an evidence item observed years ago, or dated in the future) is stored, never refused.
``ensure`` (run by ``tessera migrate`` and ``tessera partitions ensure``, e.g. daily) makes
the partitions of the coming months ahead of time, and the partition of any month that has
rows waiting in ``_default`` (moving them in). SQLite keeps one table per kind.

A partitioned table's primary key must hold its partition key: evidence is keyed
``(id, observed_at)`` (an evidence item's ``observed_at`` never changes: evidence is
append-only) and the change log ``(seq, at)``; the store's upsert names ``(id,
observed_at)`` as its conflict target on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

#: table -> the column it is partitioned by
PARTITIONED: dict[str, str] = {"evidence": "observed_at", "changes": "at"}
#: tables whose old partitions a retention policy may drop (evidence is never dropped)
RETAINABLE: set[str] = {"changes"}
#: table -> the tables partitioned by the same months whose partitions are dropped with its own
FOLLOWERS: dict[str, tuple[str, ...]] = {}
#: table -> run with each partition of it detached by retention, before it is dropped
BEFORE_DROP: dict[str, Callable[[Connection, str], None]] = {}
#: indexes a partitioned table lacks on PostgreSQL though the declared table has them (the
#: declared one serves SQLite), and indexes it has in place of the declared primary key
NOT_PARTITIONED_INDEXES: set[str] = set()
PARTITIONED_ONLY_INDEXES: set[str] = set()


def register(table: str, column: str, *, retainable: bool = False, followers: tuple[str, ...] = (),
             before_drop: Callable[[Connection, str], None] | None = None) -> None:
    """An adapter's table partitioned by month on ``column`` (by its own migration), and its
    followers (tables partitioned by the same months whose partitions retention drops with
    the table's: registered with the same column)."""
    PARTITIONED[table] = column
    for f in followers:
        PARTITIONED[f] = column
    if followers:
        FOLLOWERS[table] = followers
    if retainable:
        RETAINABLE.add(table)
    if before_drop is not None:
        BEFORE_DROP[table] = before_drop


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    start: date | None  # None: the default partition
    end: date | None
    rows: int


_MONTH = re.compile(r"^(.+)_(y\d{4}m\d{2}|default)$")


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """For Alembic's comparisons: a table's monthly partitions (and their indexes) are not
    tables of their own; the partitioned parent is compared with the declared table, but for
    the indexes a partitioned table has in place of a declared one (``register``)."""
    if type_ == "index" and name in PARTITIONED_ONLY_INDEXES and reflected:
        return False
    if type_ == "index" and name in NOT_PARTITIONED_INDEXES and compare_to is None and not reflected:
        return False  # declared, missing from the database: PostgreSQL's partitioned table
    table = getattr(obj, "table", None) if type_ == "index" else obj
    tname = getattr(table, "name", name) or ""
    m = _MONTH.match(tname)
    return not (reflected and m is not None and m.group(1) in PARTITIONED)


def month_start(d: date | datetime) -> date:
    return date(d.year, d.month, 1)


def next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def add_months(d: date, n: int) -> date:
    m = d.year * 12 + d.month - 1 + n
    return date(m // 12, m % 12 + 1, 1)


def name_of(table: str, start: date) -> str:
    return f"{table}_y{start.year:04d}m{start.month:02d}"


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.scalar(text("SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                                 "WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace"), {"t": table}))


def partitions(conn: Connection, table: str) -> list[Partition]:
    """The table's partitions, oldest first, the default last (PostgreSQL; [] elsewhere)."""
    if not is_partitioned(conn, table):
        return []
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), COALESCE(s.n_live_tup, 0) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE p.relname = :t ORDER BY c.relname"), {"t": table}).all()
    out = []
    for name, bound, n in rows:
        if bound == "DEFAULT":
            out.append(Partition(table, name, None, None, int(n)))
            continue
        # FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00'), printed in the
        # session's time zone (-05: FROM ('2025-12-31 19:00:00-05')): the months are UTC's
        lo, hi = (_utc_day(part.split("'")[1]) for part in bound.split(" TO "))
        out.append(Partition(table, name, lo, hi, int(n)))
    return sorted(out, key=lambda p: (p.start is None, p.start or date.min))


def _utc_day(bound: str) -> date:
    """The UTC day of a partition bound as PostgreSQL prints it (an instant with its offset)."""
    return datetime.fromisoformat(bound).astimezone(UTC).date()


def create_month(conn: Connection, table: str, start: date) -> str:
    """Create the partition of the month at ``start``, moving in any of its rows the
    default partition holds (a partition cannot be attached over rows the default has)."""
    col = PARTITIONED[table]
    name, end = name_of(table, start), next_month(start)
    lo, hi = f"{start.isoformat()} 00:00:00+00", f"{end.isoformat()} 00:00:00+00"
    default = f"{table}_default"
    waiting = conn.scalar(text(f'SELECT count(*) FROM "{default}" WHERE "{col}" >= :lo AND "{col}" < :hi'), {"lo": lo, "hi": hi})
    if not waiting:
        conn.execute(text(f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" FOR VALUES FROM (\'{lo}\') TO (\'{hi}\')'))
        return name
    conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
    conn.execute(text(f'WITH moved AS (DELETE FROM "{default}" WHERE "{col}" >= :lo AND "{col}" < :hi RETURNING *) '
                      f'INSERT INTO "{name}" SELECT * FROM moved'), {"lo": lo, "hi": hi})
    conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM (\'{lo}\') TO (\'{hi}\')'))
    return name


def ensure(conn: Connection, *, ahead: int = 3, today: date | None = None) -> list[str]:
    """Partitions for this month and ``ahead`` months after it, and for every month whose
    rows wait in a default partition. Returns the names created (nothing on SQLite)."""
    created: list[str] = []
    this = month_start(today or datetime.now(UTC).date())
    for table, col in PARTITIONED.items():
        if not is_partitioned(conn, table):
            continue
        have = {p.start for p in partitions(conn, table) if p.start is not None}
        months = {add_months(this, i) for i in range(ahead + 1)}
        months |= {month_start(r[0]) for r in conn.execute(
            text(f'SELECT DISTINCT date_trunc(\'month\', "{col}" AT TIME ZONE \'UTC\') FROM "{table}_default" '
                 f'WHERE "{col}" IS NOT NULL'))}
        for start in sorted(months - have):
            created.append(create_month(conn, table, start))
    return created


def drop_before(conn: Connection, table: str, months: int, *, today: date | None = None) -> list[str]:
    """Retention: drop the partitions of ``table`` whose whole month ended more than
    ``months`` months ago. Only tables in ``RETAINABLE``; the default partition stays. Each
    partition is detached, handed to the table's ``BEFORE_DROP`` (the xAPI statements forget
    their ids), dropped, and the same month's partitions of its ``FOLLOWERS`` with it (the
    statements' index rows). The change log records how far it is dropped (410 below it)."""
    if table not in RETAINABLE:
        raise ValueError(f"{table} is never dropped by retention (only {', '.join(sorted(RETAINABLE))})")
    if months < 1:
        raise ValueError("keep at least one month")
    cutoff = add_months(month_start(today or datetime.now(UTC).date()), -months)
    dropped, through = [], 0
    for p in partitions(conn, table):
        if p.end is not None and p.end <= cutoff:
            if table == "changes":
                through = max(through, conn.scalar(text(f'SELECT max(seq) FROM "{p.name}"')) or 0)
            conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{p.name}"'))
            if table in BEFORE_DROP:
                BEFORE_DROP[table](conn, p.name)
            conn.execute(text(f'DROP TABLE "{p.name}"'))
            dropped.append(p.name)
            for follower in FOLLOWERS.get(table, ()):
                name = name_of(follower, p.start or date.min)
                if conn.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is not None:
                    conn.execute(text(f'ALTER TABLE "{follower}" DETACH PARTITION "{name}"'))
                    conn.execute(text(f'DROP TABLE "{name}"'))
                    dropped.append(name)
    if through:  # the feed answers 410 below this (changefeed.oldest)
        conn.execute(text("INSERT INTO change_log_horizon (id, dropped_through, at) VALUES (1, :s, now()) ON CONFLICT (id) "
                          "DO UPDATE SET dropped_through = greatest(change_log_horizon.dropped_through, excluded.dropped_through), "
                          "at = excluded.at"), {"s": through})
    return dropped


__all__ = ["BEFORE_DROP", "FOLLOWERS", "PARTITIONED", "include_object", "RETAINABLE", "register", "Partition", "create_month", "drop_before", "ensure", "is_partitioned", "partitions"]
