"""OneRoster user credentials kept sealed (opt-in): ``oneroster_credentials``

Revision ID: oneroster_0004
Revises: oneroster_0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "oneroster_0004"
down_revision = "oneroster_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oneroster_credentials",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("person_id", gateway.store.db.UUIDType(), nullable=False),
        sa.Column("slot", sa.String(length=600), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "person_id", "slot", name=op.f("pk_oneroster_credentials")),
    )


def downgrade() -> None:
    op.drop_table("oneroster_credentials")
