"""PostgreSQL: evidence and the change log become range-partitioned by month

``evidence`` is partitioned by ``observed_at`` and ``changes`` by ``at``
(``gateway.store.partitions`` says why and how they are kept). Each table is rebuilt: the
old one is renamed, the partitioned one created with the same columns, indexes and
defaults (the change log keeps its sequence, ``changes_seq_seq``), a partition made for
every month its rows fall in and the months up to three ahead, plus a default partition,
and the rows copied over. Primary keys gain the partition key: ``(id, observed_at)`` and
``(seq, at)``. SQLite keeps one table each. On both, ``change_log_horizon`` records how far
a retention policy has dropped the change log.

Downgrade rebuilds plain tables the same way.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from gateway.store.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = {
    "evidence": ("observed_at", ("id", "observed_at"), [
        ("ix_evidence_tenant_competency_id", "tenant, competency_id"),
        ("ix_evidence_tenant_learner_id_competency_id", "tenant, learner_id, competency_id"),
        ("ix_evidence_tenant_updated_at_id", "tenant, updated_at, id"),
    ]),
    "changes": ("at", ("seq", "at"), [("ix_changes_tenant_seq", "tenant, seq")]),
}


def _add_months(d: date, n: int) -> date:
    m = d.year * 12 + d.month - 1 + n
    return date(m // 12, m % 12 + 1, 1)


def _months(lo: date, hi: date) -> list[date]:
    out, d = [], date(lo.year, lo.month, 1)
    while d <= hi:
        out.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


def _rebuild(table: str, partitioned: bool) -> None:
    col, pk, indexes = TABLES[table]
    conn = op.get_bind()
    old = f"{table}_rebuild_old"
    if table == "changes":
        conn.execute(text("ALTER SEQUENCE changes_seq_seq OWNED BY NONE"))
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(text(f'ALTER TABLE "{old}" RENAME CONSTRAINT "pk_{table}" TO "pk_{old}"'))
    for name, _ in indexes:
        conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{name}_old"'))
    tail = f' PARTITION BY RANGE ("{col}")' if partitioned else ""
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS){tail}'))
    key = pk if partitioned else pk[:1]
    conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({", ".join(key)})'))
    for name, cols in indexes:
        conn.execute(text(f'CREATE INDEX "{name}" ON "{table}" ({cols})'))
    if partitioned:
        lo, hi = conn.execute(text(f'SELECT min("{col}"), max("{col}") FROM "{old}"')).one()
        today = datetime.now(UTC).date()
        first = min(lo.date(), today) if lo else today
        last = _add_months(max(hi.date(), today) if hi else today, 3)
        for m in _months(first, last):
            nm = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
            conn.execute(text(f'CREATE TABLE "{table}_y{m.year:04d}m{m.month:02d}" PARTITION OF "{table}" '
                              f"FOR VALUES FROM ('{m.isoformat()} 00:00:00+00') TO ('{nm.isoformat()} 00:00:00+00')"))
        conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
    conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{old}"'))
    conn.execute(text(f'DROP TABLE "{old}"'))
    if table == "changes":
        conn.execute(text("ALTER SEQUENCE changes_seq_seq OWNED BY changes.seq"))


def upgrade() -> None:
    op.create_table(
        "change_log_horizon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("dropped_through", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log_horizon")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        _rebuild(table, partitioned=True)


def downgrade() -> None:
    op.drop_table("change_log_horizon")
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        _rebuild(table, partitioned=False)
