"""sample adapter: notes

Revision ID: sample_0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision = "sample_0001"
down_revision = None
branch_labels = ("sample",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "sample_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_notes")),
    )


def downgrade() -> None:
    op.drop_table("sample_notes")
