"""xAPI: evidence derived behind the acknowledgement: the ``deferred`` mark of a statement and
the consumer's durable cursor (see adapters/xapi/derive.py)

Revision ID: xapi_0004
Revises: xapi_0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "xapi_0004"
down_revision = "xapi_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("xapi_statements", sa.Column("deferred", sa.Boolean(), nullable=True))
    op.create_table(
        "xapi_derive_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated", gateway.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_xapi_derive_cursor")),
    )
    # every statement stored so far had its evidence derived in its own transaction
    bind = op.get_bind()
    top = bind.execute(sa.text("SELECT COALESCE(MAX(seq), 0) FROM xapi_statements")).scalar()
    cursor = sa.table("xapi_derive_cursor", sa.column("name"), sa.column("seq"),
                      sa.column("updated", gateway.store.db.UTCDateTime(timezone=True)))
    op.bulk_insert(cursor, [{"name": "evidence", "seq": int(top or 0), "updated": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("xapi_derive_cursor")
    with op.batch_alter_table("xapi_statements") as batch:
        batch.drop_column("deferred")
