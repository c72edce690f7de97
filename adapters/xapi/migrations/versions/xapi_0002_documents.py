"""xAPI documents (state, activity profile, agent profile) and cmi5 sessions

Revision ID: xapi_0002
Revises: xapi_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime, UUIDType

revision = "xapi_0002"
down_revision = "xapi_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xapi_documents",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("registration", sa.String(length=36), nullable=False),
        sa.Column("doc_key", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=16), nullable=False),
        sa.Column("activity_id", sa.Text(), nullable=True),
        sa.Column("agent", sa.Text(), nullable=True),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("etag", sa.String(length=40), nullable=False),
        sa.Column("updated", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "scope", "registration", "doc_key", name=op.f("pk_xapi_documents")),
    )
    op.create_index(
        "ix_xapi_documents_tenant_scope_updated", "xapi_documents", ["tenant", "scope", "updated"], unique=False
    )
    op.create_table(
        "xapi_cmi5_sessions",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("session_id", sa.String(length=512), nullable=False),
        sa.Column("registration", UUIDType(), nullable=True),
        sa.Column("launch_mode", sa.String(length=16), nullable=True),
        sa.Column("mastery_score", sa.Float(), nullable=True),
        sa.Column("move_on", sa.String(length=64), nullable=True),
        sa.Column("launched_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "session_id", name=op.f("pk_xapi_cmi5_sessions")),
    )


def downgrade() -> None:
    op.drop_table("xapi_cmi5_sessions")
    op.drop_index("ix_xapi_documents_tenant_scope_updated", table_name="xapi_documents")
    op.drop_table("xapi_documents")
