"""index enrollments by (tenant, person_id, section_id) instead of (tenant, person_id)

"Is this person an active member of this section?" (an LTI AGS score's user, NRPS) names
both. With two two-column indexes that each match it fully, SQLite's planner (no
statistics) took (tenant, section_id) and read every enrollment of the section to find
one person: a score for a class of 500 cost 500 row reads. The three-column index
matches the question exactly and still serves every lookup by person.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_index("ix_enrollments_tenant_person_id")
        batch.create_index("ix_enrollments_tenant_person_id_section_id", ["tenant", "person_id", "section_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_index("ix_enrollments_tenant_person_id_section_id")
        batch.create_index("ix_enrollments_tenant_person_id", ["tenant", "person_id"], unique=False)
