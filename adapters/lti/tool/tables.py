"""LTI's own tables, tool side: registered platforms, login state, nonces, LTI 1.1 outcomes;
and ``upsert``, the one INSERT-or-UPDATE the per-context and per-link rows are written with.

Why each exists:

- ``lti_tool_platforms``: the platforms (LMSs) Tessera is registered with as a tool (LTI 1.3
  core 3.1.3: issuer + client_id identify a registration; deployment ids live under it).
- ``lti_tool_login_states``: the OIDC third-party initiated login (Security Framework 5.1.1)
  hands the launch a ``state`` and a ``nonce``; the launch must present the state it was
  given (also in a cookie) exactly once, so it is kept server-side until used or expired,
  and shared by every API process.
- ``lti_tool_contexts``: per platform and LMS context (a course), what the latest launch from it
  said about its services: the AGS line items URL and granted scopes, the NRPS memberships URL,
  and the canonical Section it maps to, so mastery can be posted and rosters pulled later,
  outside any launch (AGS 3.1 and NRPS 3.6.1.1 give these only in launches).
- ``lti_nonces``: single-use nonces of LTI 1.3 (the id_token ``nonce``; ``scope`` says
  whose): a replay finds the row and is refused. Rows live only as long as the timestamp
  window that would accept them again.
- LTI 1.1 / OAuth 1.0a keys and secrets shared with a peer, either an LMS launching
  Tessera (role ``tool``) or an LTI 1.1 tool Tessera launches and receives outcomes from
  (role ``consumer``), and their spent ``oauth_nonce`` values, are the gateway's
  (``gateway.auth.consumers``, purposes ``lti11.tool`` and ``lti11.consumer``). The two
  tables below name a key by its ``consumer_key``; removing the key removes their rows
  (``lti11.Credentials.remove``).
- ``lti11_outcome_targets``: tool role; where to send a learner's outcome for a resource link
  (``lis_outcome_service_url`` + ``lis_result_sourcedid`` from the launch).
- ``lti11_results``: consumer role; the ``lis_result_sourcedid`` values Tessera issued, what
  they stand for (learner, activity, competency), and the current result for readResult.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.types import UTCDateTime, UUIDType

from ..metadata import metadata

platforms = Table(
    "lti_tool_platforms",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("issuer", String(1024), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("deployment_ids", Text(), nullable=False),  # JSON list of strings
    Column("auth_login_url", String(2048), nullable=False),
    Column("token_url", String(2048), nullable=False),
    Column("jwks_url", String(2048), nullable=False),
    Column("roster_system", String(128), nullable=False),  # identifier system of the LIS sourcedids
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("issuer", "client_id"),
    Index("ix_lti_tool_platforms_tenant", "tenant"),
)

login_states = Table(
    "lti_tool_login_states",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("platform_id", UUIDType(), ForeignKey("lti_tool_platforms.id", ondelete="CASCADE"), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("target_link_uri", String(2048), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

contexts = Table(
    "lti_tool_contexts",
    metadata,
    Column("platform_id", UUIDType(), ForeignKey("lti_tool_platforms.id", ondelete="CASCADE"), primary_key=True),
    Column("context_id", String(255), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("section_id", UUIDType()),
    Column("ags_lineitems", String(2048)),
    Column("ags_scopes", Text(), nullable=False),  # JSON list of the scopes the AGS claim granted
    Column("nrps_url", String(2048)),
    Column("updated_at", UTCDateTime(), nullable=False),
)

nonces = Table(
    "lti_nonces",
    metadata,
    Column("scope", String(300), primary_key=True),
    Column("nonce", String(300), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_lti_nonces_expires_at", "expires_at"),
)

outcome_targets = Table(
    "lti11_outcome_targets",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("person_id", UUIDType(), primary_key=True),
    Column("resource_link_id", String(255), primary_key=True),
    Column("consumer_key", String(255), nullable=False),
    Column("service_url", String(2048), nullable=False),
    Column("sourcedid", String(1024), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

results = Table(
    "lti11_results",
    metadata,
    Column("sourcedid", String(255), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("consumer_key", String(255), nullable=False),
    Column("learner_id", UUIDType(), nullable=False),
    Column("activity_id", String(1024), nullable=False),
    Column("competency_id", UUIDType()),
    Column("score", Float()),
    Column("evidence_id", UUIDType()),
    Column("updated_at", UTCDateTime(), nullable=False),
)


def upsert(conn: Connection, table: Any, row: dict[str, Any], keys: list[str]) -> None:
    """INSERT, or UPDATE the row with the same ``keys`` (both engines speak ON CONFLICT)."""
    ins = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table).values(**row)
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_={k: ins.excluded[k] for k in row if k not in keys}))
