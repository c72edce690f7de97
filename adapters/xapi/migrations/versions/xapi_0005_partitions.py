"""xAPI, PostgreSQL: raw statements and their index rows range-partitioned by month on ``stored``

``xapi_statements`` and its index rows (``xapi_statement_agents``, ``xapi_statement_activities``,
which gain the statement's ``stored``) become partitioned by month on ``stored``
(``adapters/xapi/partitions.py`` says why and how they are read and dropped). Each table is
rebuilt: the old one renamed, the partitioned one created with the same columns and defaults
(the statements keep their sequence, ``xapi_statements_seq_seq``), a partition made for every
month the rows fall in and the months up to three ahead, plus a default partition, and the rows
copied over. Keys: the statements ``(seq, stored)``; the index rows a unique index of their old
primary key and ``stored`` (a partitioned table's unique index must hold the partition key; the
index rows need no primary key). The unique index on ``(tenant, id)`` becomes the
non-partitioned ``xapi_statement_ids``, filled from the statements stored so far.

On SQLite the layout stays: the index rows' ``stored`` is null and ``xapi_statement_ids`` empty.
Downgrade rebuilds plain tables the same way.

Revision ID: xapi_0005
Revises: xapi_0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

import gateway.store.db

revision = "xapi_0005"
down_revision = "xapi_0004"
branch_labels = None
depends_on = None

#: table -> (primary key of the plain table, indexes of both layouts (name, columns, predicate), unique
#: index of the partitioned table in place of its primary key, unique index of the plain table only)
TABLES: dict[str, tuple[str, list[tuple[str, str, str]], tuple[str, str] | None, tuple[str, str] | None]] = {
    "xapi_statements": ("seq", [
        ("ix_xapi_statements_tenant_stored", "tenant, stored", ""),
        ("ix_xapi_statements_tenant_voiding", "tenant, voiding", " WHERE voiding IS NOT NULL"),
        ("ix_xapi_statements_tenant_registration", "tenant, registration", ""),
    ], None, ("ix_xapi_statements_tenant_id", "tenant, id")),
    "xapi_statement_agents": ("tenant, agent, verb_id, seq, role", [],
                              ("ix_xapi_statement_agents_key", "tenant, agent, verb_id, seq, role, stored"), None),
    "xapi_statement_activities": ("tenant, activity, seq, role", [],
                                  ("ix_xapi_statement_activities_key", "tenant, activity, seq, role, stored"), None),
}


def _add_months(d: date, n: int) -> date:
    m = d.year * 12 + d.month - 1 + n
    return date(m // 12, m % 12 + 1, 1)


def _months(lo: date, hi: date) -> list[date]:
    out, d = [], date(lo.year, lo.month, 1)
    while d <= hi:
        out.append(d)
        d = _add_months(d, 1)
    return out


def _rebuild(table: str, partitioned: bool, months: list[date]) -> None:
    pk, indexes, key, plain_only = TABLES[table]
    conn = op.get_bind()
    old = f"{table}_rebuild_old"
    if table == "xapi_statements":
        conn.execute(text("ALTER SEQUENCE xapi_statements_seq_seq OWNED BY NONE"))
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    # free the names of its indexes (and of its primary key, whose index carries the name)
    for (name,) in conn.execute(text("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                     "WHERE i.indrelid = CAST(:t AS regclass)"), {"t": old}).all():
        conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{name}_old"'))
    tail = ' PARTITION BY RANGE ("stored")' if partitioned else ""
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS){tail}'))
    if not partitioned:
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({pk})'))
        if plain_only:
            conn.execute(text(f'CREATE UNIQUE INDEX "{plain_only[0]}" ON "{table}" ({plain_only[1]})'))
    elif key is None:
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({pk}, stored)'))
    else:
        conn.execute(text(f'CREATE UNIQUE INDEX "{key[0]}" ON "{table}" ({key[1]})'))
    for name, cols, where in indexes:
        conn.execute(text(f'CREATE INDEX "{name}" ON "{table}" ({cols}){where}'))
    if partitioned:
        for m in months:
            nm = _add_months(m, 1)
            conn.execute(text(f'CREATE TABLE "{table}_y{m.year:04d}m{m.month:02d}" PARTITION OF "{table}" '
                              f"FOR VALUES FROM ('{m.isoformat()} 00:00:00+00') TO ('{nm.isoformat()} 00:00:00+00')"))
        conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
    names = list(conn.execute(text(
        "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum"), {"t": table}).scalars())
    cols = ", ".join(names)
    if table == "xapi_statements" or not partitioned:
        conn.execute(text(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM "{old}"'))
    else:  # the index rows take their statement's stored (a row without a statement is no use)
        picked = ", ".join("s.stored" if c == "stored" else f"o.{c}" for c in names)
        conn.execute(text(f'INSERT INTO "{table}" ({cols}) SELECT {picked} FROM "{old}" o JOIN xapi_statements s ON s.seq = o.seq'))
    conn.execute(text(f'DROP TABLE "{old}"'))
    if table == "xapi_statements":
        conn.execute(text("ALTER SEQUENCE xapi_statements_seq_seq OWNED BY xapi_statements.seq"))


def upgrade() -> None:
    op.create_table(
        "xapi_statement_ids",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("id", gateway.store.db.UUIDType(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stored", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "id", name=op.f("pk_xapi_statement_ids")),
    )
    for table in ("xapi_statement_agents", "xapi_statement_activities"):
        op.add_column(table, sa.Column("stored", gateway.store.db.UTCDateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    lo, hi = conn.execute(text("SELECT min(stored), max(stored) FROM xapi_statements")).one()
    today = datetime.now(UTC).date()
    months = _months(min(lo.date(), today) if lo else today, _add_months(max(hi.date(), today) if hi else today, 3))
    for table in TABLES:  # the statements first: the index rows take their stored from them
        _rebuild(table, True, months)
    conn.execute(text("INSERT INTO xapi_statement_ids (tenant, id, seq, stored) SELECT tenant, id, seq, stored FROM xapi_statements"))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table in TABLES:
            _rebuild(table, False, [])
    for table in ("xapi_statement_activities", "xapi_statement_agents"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("stored")
    op.drop_table("xapi_statement_ids")
