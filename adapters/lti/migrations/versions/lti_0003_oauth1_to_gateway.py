"""LTI 1.1 keys and their OAuth 1.0a nonces move to the gateway's one consumer store

Copies every row of ``lti11_credentials`` into the gateway's ``oauth1_consumers``
(revision 0006, hence ``depends_on``) with the purpose ``lti11.<role>`` and the
``roster_system`` among its attributes, and the OAuth 1.0a nonces kept in ``lti_nonces``
(scope ``oauth1:<key>``, nonce ``<timestamp>:<nonce>``) into ``oauth1_nonces``. The
outcome targets and issued sourcedids keep naming their key, without a foreign key to a
table that is no longer the adapter's; then ``lti11_credentials`` is dropped. A consumer
key already used by another adapter's consumer stops the upgrade (primary key), rather
than losing either key. The downgrade moves the rows back.

Revision ID: lti_0003
Revises: lti_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

from gateway.store.types import UTCDateTime

revision = "lti_0003"
down_revision = "lti_0002"
branch_labels = None
depends_on = "0006"

PURPOSES = ("lti11.tool", "lti11.consumer")
OAUTH1 = "oauth1:"
#: the foreign keys of lti_0002 that pointed at lti11_credentials, by table
FKS = {
    "lti11_outcome_targets": "fk_lti11_outcome_targets_consumer_key_lti11_credentials",
    "lti11_results": "fk_lti11_results_consumer_key_lti11_credentials",
}

credentials = sa.table(
    "lti11_credentials", sa.column("consumer_key"), sa.column("tenant"), sa.column("role"), sa.column("name"),
    sa.column("secret_sealed"), sa.column("roster_system"), sa.column("created_at"),
)
lti_nonces = sa.table("lti_nonces", sa.column("scope"), sa.column("nonce"), sa.column("expires_at"))
consumers = sa.table(
    "oauth1_consumers", sa.column("consumer_key"), sa.column("tenant"), sa.column("purpose"), sa.column("name"),
    sa.column("secret_sealed"), sa.column("scopes"), sa.column("attributes"), sa.column("created_at"), sa.column("revoked_at"),
)
nonces = sa.table("oauth1_nonces", sa.column("consumer_key"), sa.column("nonce"), sa.column("timestamp"), sa.column("expires_at"))


def upgrade() -> None:
    conn = op.get_bind()
    rows = [
        {"consumer_key": r.consumer_key, "tenant": r.tenant, "purpose": f"lti11.{r.role}", "name": r.name,
         "secret_sealed": r.secret_sealed, "scopes": "", "attributes": orjson.dumps({"roster_system": r.roster_system}).decode(),
         "created_at": r.created_at, "revoked_at": None}
        for r in conn.execute(sa.select(credentials))
    ]
    if rows:
        conn.execute(sa.insert(consumers), rows)
    spent = []
    for r in conn.execute(sa.select(lti_nonces).where(lti_nonces.c.scope.startswith(OAUTH1))):
        timestamp, _, nonce = r.nonce.partition(":")
        key = r.scope[len(OAUTH1):]
        if timestamp.isdigit() and nonce and len(nonce) <= 255 and len(key) <= 255:
            spent.append({"consumer_key": key, "nonce": nonce, "timestamp": int(timestamp), "expires_at": r.expires_at})
    if spent:
        conn.execute(sa.insert(nonces), spent)
    conn.execute(sa.delete(lti_nonces).where(lti_nonces.c.scope.startswith(OAUTH1)))
    for table, fk in FKS.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(fk, type_="foreignkey")
    op.drop_table("lti11_credentials")


def downgrade() -> None:
    op.create_table(
        "lti11_credentials",
        sa.Column("consumer_key", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("roster_system", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_key", name=op.f("pk_lti11_credentials")),
    )
    conn = op.get_bind()
    mine = conn.execute(sa.select(consumers).where(consumers.c.purpose.in_(PURPOSES))).all()
    if mine:
        conn.execute(sa.insert(credentials), [
            {"consumer_key": r.consumer_key, "tenant": r.tenant, "role": r.purpose.removeprefix("lti11."), "name": r.name,
             "secret_sealed": r.secret_sealed, "roster_system": str(orjson.loads(r.attributes or "{}").get("roster_system", "sis")),
             "created_at": r.created_at}
            for r in mine
        ])
        keys = [r.consumer_key for r in mine]
        spent = conn.execute(sa.select(nonces).where(nonces.c.consumer_key.in_(keys))).all()
        if spent:
            conn.execute(sa.insert(lti_nonces), [
                {"scope": f"{OAUTH1}{r.consumer_key}"[:300], "nonce": f"{r.timestamp}:{r.nonce}"[:300], "expires_at": r.expires_at}
                for r in spent
            ])
        conn.execute(sa.delete(nonces).where(nonces.c.consumer_key.in_(keys)))
        conn.execute(sa.delete(consumers).where(consumers.c.purpose.in_(PURPOSES)))
    # rows whose key is gone could not take the foreign key back
    for table in FKS:
        t = sa.table(table, sa.column("consumer_key"))
        conn.execute(sa.delete(t).where(t.c.consumer_key.not_in(sa.select(credentials.c.consumer_key))))
    for table, fk in FKS.items():
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(fk, "lti11_credentials", ["consumer_key"], ["consumer_key"], ondelete="CASCADE")
