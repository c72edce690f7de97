"""xAPI, SQLite: statement ids in two tiers, as the index rows are (see adapters/xapi/tables.py)

A new statement's id goes to ``xapi_recent_ids`` (a small b-tree keyed by ``(tenant, id)``) and
moves, with its index rows, into ``xapi_statement_ids``, which holds on SQLite too every id
stored before: the unique index ``ix_xapi_statements_tenant_id`` on the statements, whose random
keys cost a leaf page a statement at every commit, is dropped, and ``xapi_statement_ids`` (empty
on SQLite until now) is made again WITHOUT ROWID: one b-tree, not a table and its key's index.
On PostgreSQL (ids in
``xapi_statement_ids`` since xapi_0005) only the table is made, and stays empty.

Revision ID: xapi_0006
Revises: xapi_0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "xapi_0006"
down_revision = "xapi_0005"
branch_labels = None
depends_on = None


def _ids_table(rowid: bool) -> None:
    op.create_table(
        "xapi_statement_ids",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("id", gateway.store.db.UUIDType(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stored", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "id", name=op.f("pk_xapi_statement_ids")),
        sqlite_with_rowid=rowid,
    )


def upgrade() -> None:
    op.create_table(
        "xapi_recent_ids",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("id", gateway.store.db.UUIDType(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "id", name=op.f("pk_xapi_recent_ids")),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_table("xapi_statement_ids")  # empty on SQLite (xapi_0005)
    _ids_table(rowid=False)
    op.execute("INSERT INTO xapi_statement_ids (tenant, id, seq, stored) "
               "SELECT tenant, id, seq, stored FROM xapi_statements ORDER BY tenant, id")
    op.drop_index("ix_xapi_statements_tenant_id", table_name="xapi_statements")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_xapi_statements_tenant_id", "xapi_statements", ["tenant", "id"], unique=True)
        op.drop_table("xapi_statement_ids")
        _ids_table(rowid=True)  # empty, as xapi_0005 left it
    op.drop_table("xapi_recent_ids")
