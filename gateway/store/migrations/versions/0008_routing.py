"""routing: cursors and schedules on routes, leases and dead letters on the outbox, sync runs, connection health

The routing layer (DESIGN section 6) needs, beyond the foundation's connections, routes and
outbox:

* ``routes``: a pull route's destination is this Tessera's own store, so
  ``destination_connection_id`` may be null; the cursor's age (``cursor_at``), an org
  filter, a mapping, a pull interval and the scheduler's next start; ``origin`` tells a
  route declared in ``gateway.yaml`` from one created through the API;
* ``outbox``: who holds a row's lease, the destination's last status, a redacted summary of
  the last request and an excerpt of the response (what a dead letter shows), a dependency
  the destination did not know yet, and when the row was delivered or dead-lettered;
* ``sync_runs``: one row per execution of a route, with its counts and errors;
* ``connection_health``: the circuit breaker of each connection, shared by every worker.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UUIDType
from gateway.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as b:
        b.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="api"))
        b.add_column(sa.Column("updated_at", UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("routes") as b:
        b.alter_column("destination_connection_id", existing_type=UUIDType(), nullable=True)
        b.add_column(sa.Column("cursor_at", UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("orgs", sa.Text(), nullable=False, server_default="[]"))
        b.add_column(sa.Column("mapping", sa.String(length=256), nullable=True))
        b.add_column(sa.Column("schedule_seconds", sa.Integer(), nullable=True))
        b.add_column(sa.Column("next_run_at", UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("options", sa.Text(), nullable=False, server_default="{}"))
        b.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="api"))
        b.add_column(sa.Column("updated_at", UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as b:
        b.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("last_status", sa.Integer(), nullable=True))
        b.add_column(sa.Column("last_request", sa.Text(), nullable=True))
        b.add_column(sa.Column("last_response", sa.Text(), nullable=True))
        b.add_column(sa.Column("waiting_on", sa.Text(), nullable=True))
        b.add_column(sa.Column("delivered_at", UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("dead_at", UTCDateTime(timezone=True), nullable=True))
    op.create_index("ix_outbox_route_id_state", "outbox", ["route_id", "state"], unique=False)
    op.create_table(
        "sync_runs",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("route_id", UUIDType(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("read", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("written", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("unchanged", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cursor_before", sa.Text(), nullable=True),
        sa.Column("cursor_after", sa.Text(), nullable=True),
        sa.Column("errors", sa.Text(), nullable=False, server_default="[]"),
        sa.ForeignKeyConstraint(["route_id"], ["routes.id"], name=op.f("fk_sync_runs_route_id_routes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index("ix_sync_runs_tenant_route_id_started_at", "sync_runs", ["tenant", "route_id", "started_at"], unique=False)
    op.create_table(
        "connection_health",
        sa.Column("connection_id", UUIDType(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("open_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_success_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"], name=op.f("fk_connection_health_connection_id_connections")),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_connection_health")),
    )


def downgrade() -> None:
    op.drop_table("connection_health")
    op.drop_index("ix_sync_runs_tenant_route_id_started_at", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_index("ix_outbox_route_id_state", table_name="outbox")
    with op.batch_alter_table("outbox") as b:
        for c in ("dead_at", "delivered_at", "waiting_on", "last_response", "last_request", "last_status", "lease_owner"):
            b.drop_column(c)
    with op.batch_alter_table("routes") as b:
        for c in ("updated_at", "origin", "options", "next_run_at", "schedule_seconds", "mapping", "orgs", "cursor_at"):
            b.drop_column(c)
        b.alter_column("destination_connection_id", existing_type=UUIDType(), nullable=False)
    with op.batch_alter_table("connections") as b:
        b.drop_column("updated_at")
        b.drop_column("origin")
