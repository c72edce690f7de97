"""Export jobs: one active export per grant (or per tenant) across every server process

``export_jobs`` gains ``lock_key`` (``grant:<id>`` or ``tenant:<name>``) and
``lease_until``, and a partial unique index on ``lock_key`` over the queued and running
jobs: a second export for the same grant is refused by the database itself, whichever
process asks (a conditional insert that fails), not only by a lock inside one process. The
process running a job renews its lease; a job whose lease ran out (its process stopped) is
marked failed by the next request or server start, which frees the key. Jobs made before
this revision keep a null key (null keys never conflict).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("lock_key", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True))
    op.create_index("ux_export_jobs_active_lock_key", "export_jobs", ["lock_key"], unique=True,
                    postgresql_where=ACTIVE, sqlite_where=ACTIVE)


def downgrade() -> None:
    op.drop_index("ux_export_jobs_active_lock_key", table_name="export_jobs")
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lock_key")
