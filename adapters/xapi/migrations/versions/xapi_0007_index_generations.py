"""xAPI, SQLite: the merged statement index rows keyed by a generation of seqs first

``xapi_statement_agents`` / ``xapi_statement_activities`` gain ``gen`` (``seq >> 14``: 16,384
statements a generation), on SQLite the first column of their primary key, so that a merge step
of the recent tier (``adapters/xapi/index_tiers.py``) appends into the newest generations' key
ranges instead of writing most leaf pages of both tables; ``xapi_index_gens`` lists the
generations, which a query walks newest first (``adapters/xapi/statement_query.py``). On SQLite
both tables are rebuilt (WITHOUT ROWID, the new key; the rows copied in its order) and the
generations of their rows listed. On PostgreSQL ``gen`` is 0, the column's default (its index
rows keep their key, a unique index, and are written directly: a column added with a constant
default rewrites no row) and ``xapi_index_gens`` stays empty.
Downgrade rebuilds the old keys (SQLite) or drops the column (PostgreSQL).

Revision ID: xapi_0007
Revises: xapi_0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "xapi_0007"
down_revision = "xapi_0006"
branch_labels = None
depends_on = None

#: the generation of a seq, as ``adapters/xapi/tables.GEN_BITS`` when this was written
GEN_BITS = 14
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: table -> its columns after ``gen`` and ``tenant`` (name, type), which with them are its key but ``stored``
COLUMNS = {
    "xapi_statement_agents": [("agent", sa.Text()), ("verb_id", sa.Text()), ("seq", BIG_ID), ("role", sa.String(length=1))],
    "xapi_statement_activities": [("activity", sa.Text()), ("seq", BIG_ID), ("role", sa.String(length=1))],
}


def _rebuild(table: str, generations: bool) -> None:
    """SQLite: ``table`` made again with the key of ``generations`` (gen first) or of before, its
    rows copied in that key's order."""
    old = f"{table}_rebuild_old"
    op.rename_table(table, old)
    rest = COLUMNS[table]
    key = ["tenant", *(name for name, _ in rest)]
    cols = [sa.Column("tenant", sa.String(length=63), nullable=False),
            *(sa.Column(name, type_, nullable=False, autoincrement=False) for name, type_ in rest),
            sa.Column("stored", gateway.store.db.UTCDateTime(timezone=True), nullable=True)]
    if generations:
        cols.insert(0, sa.Column("gen", sa.Integer(), nullable=False, autoincrement=False))
        key.insert(0, "gen")
    op.create_table(table, *cols, sa.PrimaryKeyConstraint(*key, name=f"pk_{table}"), sqlite_with_rowid=False)
    names = [c.name for c in cols]
    picked = [f"seq >> {GEN_BITS}" if c == "gen" else c for c in names]
    order = ", ".join(f"{names.index(c) + 1}" for c in key)
    op.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(picked)} FROM {old} ORDER BY {order}")
    op.drop_table(old)


def upgrade() -> None:
    op.create_table(
        "xapi_index_gens",
        sa.Column("gen", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("gen", name=op.f("pk_xapi_index_gens")),
    )
    if op.get_bind().dialect.name != "sqlite":
        for table in COLUMNS:
            op.add_column(table, sa.Column("gen", sa.Integer(), nullable=False, server_default="0"))
        return
    for table in COLUMNS:
        _rebuild(table, generations=True)
    op.execute("INSERT INTO xapi_index_gens (gen) SELECT DISTINCT gen FROM xapi_statement_agents")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in COLUMNS:
            _rebuild(table, generations=False)
    else:
        for table in COLUMNS:
            op.drop_column(table, "gen")
    op.drop_table("xapi_index_gens")
