"""xAPI statements

Revision ID: xapi_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "xapi_0001"
down_revision = None
branch_labels = ("xapi",)
depends_on = "0001"

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "xapi_statements",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("id", gateway.store.db.UUIDType(), nullable=False),
        sa.Column("stored", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verb_id", sa.Text(), nullable=False),
        sa.Column("registration", gateway.store.db.UUIDType(), nullable=True),
        sa.Column("voiding", gateway.store.db.UUIDType(), nullable=True),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.Column("authority", sa.Text(), nullable=False),
        sa.Column("attachments", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_xapi_statements")),
    )
    op.create_index("ix_xapi_statements_tenant_id", "xapi_statements", ["tenant", "id"], unique=True)
    op.create_index("ix_xapi_statements_tenant_stored", "xapi_statements", ["tenant", "stored"])
    op.create_index("ix_xapi_statements_tenant_voiding", "xapi_statements", ["tenant", "voiding"],
                    sqlite_where=sa.text("voiding IS NOT NULL"), postgresql_where=sa.text("voiding IS NOT NULL"))
    op.create_index("ix_xapi_statements_tenant_registration", "xapi_statements", ["tenant", "registration"])
    op.create_table(
        "xapi_statement_agents",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("verb_id", sa.Text(), nullable=False),
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=1), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "agent", "verb_id", "seq", "role", name=op.f("pk_xapi_statement_agents")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "xapi_statement_activities",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("activity", sa.Text(), nullable=False),
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=1), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "activity", "seq", "role", name=op.f("pk_xapi_statement_activities")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "xapi_activities",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("updated", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "id", name=op.f("pk_xapi_activities")),
    )
    op.create_table(
        "xapi_attachments",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("sha2", sa.String(length=128), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "sha2", name=op.f("pk_xapi_attachments")),
    )


def downgrade() -> None:
    op.drop_table("xapi_attachments")
    op.drop_table("xapi_activities")
    op.drop_table("xapi_statement_activities")
    op.drop_table("xapi_statement_agents")
    op.drop_index("ix_xapi_statements_tenant_registration", table_name="xapi_statements")
    op.drop_index("ix_xapi_statements_tenant_voiding", table_name="xapi_statements")
    op.drop_index("ix_xapi_statements_tenant_stored", table_name="xapi_statements")
    op.drop_index("ix_xapi_statements_tenant_id", table_name="xapi_statements")
    op.drop_table("xapi_statements")
