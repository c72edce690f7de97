"""xAPI: the recent tier of the statement index rows (see adapters/xapi/tables.py)

Revision ID: xapi_0003
Revises: xapi_0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "xapi_0003"
down_revision = "xapi_0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "xapi_recent_agents",
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("verb_id", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=1), nullable=False),
        sa.PrimaryKeyConstraint("seq", "tenant", "agent", "verb_id", "role", name=op.f("pk_xapi_recent_agents")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "xapi_recent_activities",
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("activity", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=1), nullable=False),
        sa.PrimaryKeyConstraint("seq", "tenant", "activity", "role", name=op.f("pk_xapi_recent_activities")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # the rows of the recent tier belong in the merged tables, which is all the older code reads
    op.execute("INSERT INTO xapi_statement_agents (tenant, agent, verb_id, seq, role) "
               "SELECT tenant, agent, verb_id, seq, role FROM xapi_recent_agents")
    op.execute("INSERT INTO xapi_statement_activities (tenant, activity, seq, role) "
               "SELECT tenant, activity, seq, role FROM xapi_recent_activities")
    op.drop_table("xapi_recent_activities")
    op.drop_table("xapi_recent_agents")
