"""OneRoster gradebook and resource objects

Revision ID: oneroster_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "oneroster_0001"
down_revision = None
branch_labels = ("oneroster",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "oneroster_objects",
        sa.Column("id", gateway.store.db.UUIDType(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("sourced_id", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("class_sid", sa.String(length=255), nullable=True),
        sa.Column("line_item_sid", sa.String(length=255), nullable=True),
        sa.Column("user_sid", sa.String(length=255), nullable=True),
        sa.Column("course_sid", sa.String(length=255), nullable=True),
        sa.Column("school_sid", sa.String(length=255), nullable=True),
        sa.Column("resource_sid", sa.String(length=255), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("derived", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oneroster_objects")),
    )
    op.create_index("ix_oneroster_objects_tenant_type_sourced_id", "oneroster_objects", ["tenant", "type", "sourced_id"], unique=True)
    op.create_index("ix_oneroster_objects_tenant_type_updated_at", "oneroster_objects", ["tenant", "type", "updated_at"])
    op.create_index("ix_oneroster_objects_tenant_class_sid", "oneroster_objects", ["tenant", "class_sid"])
    op.create_index("ix_oneroster_objects_tenant_line_item_sid", "oneroster_objects", ["tenant", "line_item_sid"])


def downgrade() -> None:
    op.drop_index("ix_oneroster_objects_tenant_line_item_sid", table_name="oneroster_objects")
    op.drop_index("ix_oneroster_objects_tenant_class_sid", table_name="oneroster_objects")
    op.drop_index("ix_oneroster_objects_tenant_type_updated_at", table_name="oneroster_objects")
    op.drop_index("ix_oneroster_objects_tenant_type_sourced_id", table_name="oneroster_objects")
    op.drop_table("oneroster_objects")
