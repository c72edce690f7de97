"""OneRoster 1.1 OAuth 1.0a consumer keys and nonces move to the gateway's one consumer store

Copies every row of ``oneroster_oauth1_consumers`` (purpose ``oneroster``, no attributes)
and ``oneroster_oauth1_nonces`` into the gateway's ``oauth1_consumers`` and
``oauth1_nonces`` (revision 0006, hence ``depends_on``), then drops the adapter's tables.
A consumer key already used by another adapter's consumer stops the upgrade (primary
key), rather than losing either key. The downgrade moves the rows back.

Revision ID: oneroster_0003
Revises: oneroster_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime

revision = "oneroster_0003"
down_revision = "oneroster_0002"
branch_labels = None
depends_on = "0006"

PURPOSE = "oneroster"

old_consumers = sa.table(
    "oneroster_oauth1_consumers", sa.column("consumer_key"), sa.column("tenant"), sa.column("name"), sa.column("secret_sealed"),
    sa.column("scopes"), sa.column("created_at"), sa.column("revoked_at"),
)
old_nonces = sa.table("oneroster_oauth1_nonces", sa.column("consumer_key"), sa.column("nonce"), sa.column("timestamp"),
                      sa.column("expires_at"))
consumers = sa.table(
    "oauth1_consumers", sa.column("consumer_key"), sa.column("tenant"), sa.column("purpose"), sa.column("name"),
    sa.column("secret_sealed"), sa.column("scopes"), sa.column("attributes"), sa.column("created_at"), sa.column("revoked_at"),
)
nonces = sa.table("oauth1_nonces", sa.column("consumer_key"), sa.column("nonce"), sa.column("timestamp"), sa.column("expires_at"))
NONCE_COLUMNS = ["consumer_key", "nonce", "timestamp", "expires_at"]


def upgrade() -> None:
    o = old_consumers.c
    op.execute(sa.insert(consumers).from_select(
        ["consumer_key", "tenant", "purpose", "name", "secret_sealed", "scopes", "attributes", "created_at", "revoked_at"],
        sa.select(o.consumer_key, o.tenant, sa.literal(PURPOSE), o.name, o.secret_sealed, o.scopes, sa.literal("{}"),
                  o.created_at, o.revoked_at),
    ))
    op.execute(sa.insert(nonces).from_select(NONCE_COLUMNS, sa.select(*(old_nonces.c[n] for n in NONCE_COLUMNS))))
    op.drop_index("ix_oneroster_oauth1_nonces_expires_at", table_name="oneroster_oauth1_nonces")
    op.drop_table("oneroster_oauth1_nonces")
    op.drop_index("ix_oneroster_oauth1_consumers_tenant", table_name="oneroster_oauth1_consumers")
    op.drop_table("oneroster_oauth1_consumers")


def downgrade() -> None:
    op.create_table(
        "oneroster_oauth1_consumers",
        sa.Column("consumer_key", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("consumer_key", name=op.f("pk_oneroster_oauth1_consumers")),
    )
    op.create_index("ix_oneroster_oauth1_consumers_tenant", "oneroster_oauth1_consumers", ["tenant"])
    op.create_table(
        "oneroster_oauth1_nonces",
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_key", "nonce", "timestamp", name=op.f("pk_oneroster_oauth1_nonces")),
    )
    op.create_index("ix_oneroster_oauth1_nonces_expires_at", "oneroster_oauth1_nonces", ["expires_at"])
    c = consumers.c
    mine = sa.select(c.consumer_key).where(c.purpose == PURPOSE)
    op.execute(sa.insert(old_consumers).from_select(
        ["consumer_key", "tenant", "name", "secret_sealed", "scopes", "created_at", "revoked_at"],
        sa.select(c.consumer_key, c.tenant, c.name, c.secret_sealed, c.scopes, c.created_at, c.revoked_at).where(c.purpose == PURPOSE),
    ))
    op.execute(sa.insert(old_nonces).from_select(
        NONCE_COLUMNS, sa.select(*(nonces.c[n] for n in NONCE_COLUMNS)).where(nonces.c.consumer_key.in_(mine))))
    op.execute(sa.delete(nonces).where(nonces.c.consumer_key.in_(mine)))
    op.execute(sa.delete(consumers).where(c.purpose == PURPOSE))
