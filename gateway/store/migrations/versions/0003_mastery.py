"""mastery engine: evidence and state columns it reads, learning plans, person-bound clients

The engine recomputes millions of states without parsing each evidence item's JSON, so
the fields it needs are promoted to columns (and backfilled from the stored JSON); reports
group states by competency and level through one index; learning plans get a table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RECORD_COLUMNS = (
    ("id", gateway.store.db.UUIDType(), False),
    ("tenant", sa.String(length=63), False),
    ("source", sa.String(length=128), False),
    ("native_id", sa.String(length=255), False),
    ("status", sa.String(length=16), False),
    ("created_at", gateway.store.db.UTCDateTime(timezone=True), False),
    ("updated_at", gateway.store.db.UTCDateTime(timezone=True), False),
    ("content_hash", sa.String(length=64), False),
    ("data", sa.Text(), False),
)


def _backfill(table: str, fields: dict[str, tuple[sa.types.TypeEngine, Callable[[dict], object]]]) -> None:
    """Copy promoted fields out of each row's JSON (``fields``: column -> (type, getter))."""
    conn = op.get_bind()
    tbl = sa.Table(table, sa.MetaData(), sa.Column("id", gateway.store.db.UUIDType()), sa.Column("data", sa.Text()),
                   *(sa.Column(c, type_) for c, (type_, _) in fields.items()))
    for rid, data in conn.execute(sa.select(tbl.c.id, tbl.c.data)).all():
        doc = orjson.loads(data)
        conn.execute(sa.update(tbl).where(tbl.c.id == rid).values({c: get(doc) for c, (_, get) in fields.items()}))


def _uuid(v: str | None) -> uuid.UUID | None:
    return uuid.UUID(v) if v else None


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("scaled", sa.Float(), nullable=True))
        batch.add_column(sa.Column("level", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("evidence_kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("success", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("superseded_by", gateway.store.db.UUIDType(), nullable=True))
    _backfill("evidence", {
        "scaled": (sa.Float(), lambda d: (d.get("score") or {}).get("scaled")),
        "level": (sa.String(), lambda d: d.get("level")),
        "evidence_kind": (sa.String(), lambda d: d.get("evidence_kind", "assessment")),
        "success": (sa.Boolean(), lambda d: d.get("success")),
        "superseded_by": (gateway.store.db.UUIDType(), lambda d: _uuid(d.get("superseded_by"))),
    })
    with op.batch_alter_table("mastery_states") as batch:
        batch.add_column(sa.Column("level", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("value", sa.Float(), nullable=True))
        batch.add_column(sa.Column("mastered", sa.Boolean(), nullable=True))
        batch.drop_index("ix_mastery_states_tenant_competency_id")
        batch.create_index("ix_mastery_states_report", ["tenant", "competency_id", "level", "learner_id"], unique=False,
                           postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
    _backfill("mastery_states", {
        "level": (sa.String(), lambda d: d.get("level")),
        "value": (sa.Float(), lambda d: d.get("value")),
        "mastered": (sa.Boolean(), lambda d: bool(d.get("mastered"))),
    })
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("person_id", gateway.store.db.UUIDType(), nullable=True))
    op.create_table(
        "learning_plans",
        *(sa.Column(name, type_, nullable=nullable) for name, type_, nullable in RECORD_COLUMNS),
        sa.Column("learner_id", gateway.store.db.UUIDType(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learning_plans")),
    )
    with op.batch_alter_table("learning_plans") as batch:
        batch.create_index("ix_learning_plans_tenant_updated_at_id", ["tenant", "updated_at", "id"], unique=False)
        batch.create_index("ix_learning_plans_tenant_learner_id", ["tenant", "learner_id"], unique=False)


def downgrade() -> None:
    op.drop_table("learning_plans")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("person_id")
    with op.batch_alter_table("mastery_states") as batch:
        batch.drop_index("ix_mastery_states_report")
        batch.create_index("ix_mastery_states_tenant_competency_id", ["tenant", "competency_id"], unique=False)
        batch.drop_column("mastered")
        batch.drop_column("value")
        batch.drop_column("level")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("superseded_by")
        batch.drop_column("success")
        batch.drop_column("evidence_kind")
        batch.drop_column("level")
        batch.drop_column("scaled")
