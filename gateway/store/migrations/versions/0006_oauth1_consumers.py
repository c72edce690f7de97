"""one OAuth 1.0a consumer table and one nonce table for every adapter that verifies signatures

OneRoster 1.1 and LTI 1.1 each kept their own consumer keys and nonces. The gateway keeps
them now (``gateway.auth.consumers``); each adapter's own revision, which depends on this
one, copies its rows here and drops its old tables, so this revision knows no adapter.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth1_consumers",
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.id"], name=op.f("fk_oauth1_consumers_tenant_tenants")),
        sa.PrimaryKeyConstraint("consumer_key", name=op.f("pk_oauth1_consumers")),
    )
    op.create_index("ix_oauth1_consumers_tenant_purpose", "oauth1_consumers", ["tenant", "purpose"], unique=False)
    op.create_table(
        "oauth1_nonces",
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_key", "nonce", "timestamp", name=op.f("pk_oauth1_nonces")),
    )
    op.create_index("ix_oauth1_nonces_expires_at", "oauth1_nonces", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_oauth1_nonces_expires_at", table_name="oauth1_nonces")
    op.drop_table("oauth1_nonces")
    op.drop_index("ix_oauth1_consumers_tenant_purpose", table_name="oauth1_consumers")
    op.drop_table("oauth1_consumers")
