"""index rostering records by (tenant, native_id)

OneRoster's REST binding addresses every record by its sourcedId (our native_id); without
this index each /users/{sourcedId} scanned the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("orgs", "academic_sessions", "courses", "sections", "people", "enrollments")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_index(f"ix_{table}_tenant_native_id", ["tenant", "native_id"], unique=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_tenant_native_id")
