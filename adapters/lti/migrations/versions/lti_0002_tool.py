"""LTI tool side (platforms, login state, contexts, nonces, LTI 1.1 credentials, outcomes)

Revision ID: lti_0002
Revises: lti_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime, UUIDType

revision = "lti_0002"
down_revision = "lti_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lti_tool_platforms",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("deployment_ids", sa.Text(), nullable=False),
        sa.Column("auth_login_url", sa.String(length=2048), nullable=False),
        sa.Column("token_url", sa.String(length=2048), nullable=False),
        sa.Column("jwks_url", sa.String(length=2048), nullable=False),
        sa.Column("roster_system", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_tool_platforms")),
        sa.UniqueConstraint("issuer", "client_id", name=op.f("uq_lti_tool_platforms_issuer_client_id")),
    )
    op.create_index("ix_lti_tool_platforms_tenant", "lti_tool_platforms", ["tenant"], unique=False)
    op.create_table(
        "lti_tool_login_states",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("platform_id", UUIDType(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("target_link_uri", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["lti_tool_platforms.id"], ondelete="CASCADE",
            name=op.f("fk_lti_tool_login_states_platform_id_lti_tool_platforms"),
        ),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_lti_tool_login_states")),
    )
    op.create_table(
        "lti_tool_contexts",
        sa.Column("platform_id", UUIDType(), nullable=False),
        sa.Column("context_id", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("section_id", UUIDType(), nullable=True),
        sa.Column("ags_lineitems", sa.String(length=2048), nullable=True),
        sa.Column("ags_scopes", sa.Text(), nullable=False),
        sa.Column("nrps_url", sa.String(length=2048), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["lti_tool_platforms.id"], ondelete="CASCADE",
            name=op.f("fk_lti_tool_contexts_platform_id_lti_tool_platforms"),
        ),
        sa.PrimaryKeyConstraint("platform_id", "context_id", name=op.f("pk_lti_tool_contexts")),
    )
    op.create_table(
        "lti_nonces",
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("nonce", sa.String(length=300), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "nonce", name=op.f("pk_lti_nonces")),
    )
    op.create_index("ix_lti_nonces_expires_at", "lti_nonces", ["expires_at"], unique=False)
    op.create_table(
        "lti11_credentials",
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("roster_system", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_key", name=op.f("pk_lti11_credentials")),
    )
    op.create_table(
        "lti11_outcome_targets",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("person_id", UUIDType(), nullable=False),
        sa.Column("resource_link_id", sa.String(length=255), nullable=False),
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("service_url", sa.String(length=2048), nullable=False),
        sa.Column("sourcedid", sa.String(length=1024), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consumer_key"], ["lti11_credentials.consumer_key"], ondelete="CASCADE",
            name=op.f("fk_lti11_outcome_targets_consumer_key_lti11_credentials"),
        ),
        sa.PrimaryKeyConstraint("tenant", "person_id", "resource_link_id", name=op.f("pk_lti11_outcome_targets")),
    )
    op.create_table(
        "lti11_results",
        sa.Column("sourcedid", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("learner_id", UUIDType(), nullable=False),
        sa.Column("activity_id", sa.String(length=1024), nullable=False),
        sa.Column("competency_id", UUIDType(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evidence_id", UUIDType(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consumer_key"], ["lti11_credentials.consumer_key"], ondelete="CASCADE",
            name=op.f("fk_lti11_results_consumer_key_lti11_credentials"),
        ),
        sa.PrimaryKeyConstraint("sourcedid", name=op.f("pk_lti11_results")),
    )


def downgrade() -> None:
    op.drop_table("lti11_results")
    op.drop_table("lti11_outcome_targets")
    op.drop_table("lti11_credentials")
    op.drop_index("ix_lti_nonces_expires_at", table_name="lti_nonces")
    op.drop_table("lti_nonces")
    op.drop_table("lti_tool_contexts")
    op.drop_table("lti_tool_login_states")
    op.drop_index("ix_lti_tool_platforms_tenant", table_name="lti_tool_platforms")
    op.drop_table("lti_tool_platforms")
