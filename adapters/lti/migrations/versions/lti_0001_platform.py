"""LTI platform side (tools)

Revision ID: lti_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime, UUIDType

revision = "lti_0001"
down_revision = None
branch_labels = ("lti",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "lti_tools",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("login_url", sa.String(2048), nullable=False),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("target_link_uri", sa.String(2048), nullable=False),
        sa.Column("jwks_url", sa.String(2048), nullable=True),
        sa.Column("public_jwk", sa.Text(), nullable=True),
        sa.Column("deep_link_url", sa.String(2048), nullable=True),
        sa.Column("custom", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_lti_tools")),
    )
    op.create_index("ix_lti_tools_tenant", "lti_tools", ["tenant"])
    op.create_table(
        "lti_deployments",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("deployment_id", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["lti_tools.client_id"], name=op.f("fk_lti_deployments_client_id_lti_tools"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_id", "deployment_id", name=op.f("pk_lti_deployments")),
    )
    op.create_table(
        "lti_used_jti",
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name=op.f("pk_lti_used_jti")),
    )
    op.create_index("ix_lti_used_jti_expires_at", "lti_used_jti", ["expires_at"])
    op.create_table(
        "lti_line_items",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("context_id", UUIDType(), nullable=False),
        sa.Column("label", sa.String(1024), nullable=False),
        sa.Column("score_maximum", sa.Float(), nullable=False),
        sa.Column("resource_id", sa.String(1024), nullable=True),
        sa.Column("resource_link_id", sa.String(255), nullable=True),
        sa.Column("tag", sa.String(1024), nullable=True),
        sa.Column("start_at", UTCDateTime(), nullable=True),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("competency_id", UUIDType(), nullable=True),
        sa.Column("alignment_id", UUIDType(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["lti_tools.client_id"], name=op.f("fk_lti_line_items_client_id_lti_tools"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_line_items")),
    )
    op.create_index("ix_lti_line_items_context", "lti_line_items", ["tenant", "client_id", "context_id"])
    op.create_table(
        "lti_results",
        sa.Column("line_item_id", UUIDType(), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("score_given", sa.Float(), nullable=True),
        sa.Column("score_maximum", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("activity_progress", sa.String(32), nullable=False),
        sa.Column("grading_progress", sa.String(32), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("evidence_id", UUIDType(), nullable=True),
        sa.ForeignKeyConstraint(["line_item_id"], ["lti_line_items.id"], name=op.f("fk_lti_results_line_item_id_lti_line_items"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("line_item_id", "user_id", name=op.f("pk_lti_results")),
    )


def downgrade() -> None:
    op.drop_table("lti_results")
    op.drop_index("ix_lti_line_items_context", table_name="lti_line_items")
    op.drop_table("lti_line_items")
    op.drop_index("ix_lti_used_jti_expires_at", table_name="lti_used_jti")
    op.drop_table("lti_used_jti")
    op.drop_table("lti_deployments")
    op.drop_index("ix_lti_tools_tenant", table_name="lti_tools")
    op.drop_table("lti_tools")
