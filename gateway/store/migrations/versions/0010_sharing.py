"""data sharing: grants from a district to a state or research tenant, their access log, bulk export jobs

Issue "State agencies": a district grants another tenant access for a purpose, from a date
to a date, limited to scopes and record kinds, de-identified or not; every read under a
grant is logged; exports asked through the API run as jobs with a manifest.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UUIDType
from gateway.store.types import UTCDateTime

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("grantor", sa.String(length=63), nullable=False),
        sa.Column("grantee", sa.String(length=63), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("starts_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("kinds", sa.Text(), nullable=False),
        sa.Column("deidentified", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["grantor"], ["tenants.id"], name=op.f("fk_grants_grantor_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_index("ix_grants_grantee", "grants", ["grantee"], unique=False)
    op.create_index("ix_grants_grantor", "grants", ["grantor"], unique=False)
    op.create_table(
        "grant_access_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("grant_id", UUIDType(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], name=op.f("fk_grant_access_log_grant_id_grants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grant_access_log")),
    )
    op.create_index("ix_grant_access_log_grant_id_at", "grant_access_log", ["grant_id", "at"], unique=False)
    op.create_table(
        "export_jobs",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("grant_id", UUIDType(), nullable=True),
        sa.Column("source_tenant", sa.String(length=63), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("kinds", sa.Text(), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], name=op.f("fk_export_jobs_grant_id_grants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
    )
    op.create_index("ix_export_jobs_tenant_created_at", "export_jobs", ["tenant", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_export_jobs_tenant_created_at", table_name="export_jobs")
    op.drop_table("export_jobs")
    op.drop_index("ix_grant_access_log_grant_id_at", table_name="grant_access_log")
    op.drop_table("grant_access_log")
    op.drop_index("ix_grants_grantor", table_name="grants")
    op.drop_index("ix_grants_grantee", table_name="grants")
    op.drop_table("grants")
