"""drop ix_changes_record_id: an index no query reads, paid for on every write

The change log is read by tenant and sequence (``RecordStore.changes_since``, the routing
layer's cursor); nothing looks changes up by record id. The index cost one random-key
B-tree insert per changed record: on the xAPI ingest it was one of the pages every SQLite
commit rewrote, and on PostgreSQL one more index entry per mastery state a recompute writes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.drop_index("ix_changes_record_id")


def downgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.create_index("ix_changes_record_id", ["record_id"], unique=False)
