"""OneRoster 1.1 OAuth 1.0a consumer keys (secrets sealed) and single-use nonces

Revision ID: oneroster_0002
Revises: oneroster_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "oneroster_0002"
down_revision = "oneroster_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oneroster_oauth1_consumers",
        sa.Column("consumer_key", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", gateway.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("consumer_key", name=op.f("pk_oneroster_oauth1_consumers")),
    )
    op.create_index("ix_oneroster_oauth1_consumers_tenant", "oneroster_oauth1_consumers", ["tenant"])
    op.create_table(
        "oneroster_oauth1_nonces",
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("expires_at", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_key", "nonce", "timestamp", name=op.f("pk_oneroster_oauth1_nonces")),
    )
    op.create_index("ix_oneroster_oauth1_nonces_expires_at", "oneroster_oauth1_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oneroster_oauth1_nonces_expires_at", table_name="oneroster_oauth1_nonces")
    op.drop_table("oneroster_oauth1_nonces")
    op.drop_index("ix_oneroster_oauth1_consumers_tenant", table_name="oneroster_oauth1_consumers")
    op.drop_table("oneroster_oauth1_consumers")
