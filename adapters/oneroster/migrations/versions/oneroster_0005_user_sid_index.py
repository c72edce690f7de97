"""Index the user a gradebook object names: ``/students/{id}/results``, and the results that
hold a student unresolved (found when an import stores the student, to derive their evidence)

Revision ID: oneroster_0005
Revises: oneroster_0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "oneroster_0005"
down_revision = "oneroster_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_oneroster_objects_tenant_user_sid", "oneroster_objects", ["tenant", "user_sid"])


def downgrade() -> None:
    op.drop_index("ix_oneroster_objects_tenant_user_sid", table_name="oneroster_objects")
