"""The LRS's document tables: State, Activity Profile and Agent Profile documents, and the
cmi5 sessions the evidence mapper needs to judge statements it cannot judge alone.

Documents (xAPI 1.0.3 Communication 2.3-2.7) are addressed by a *scope* (which resource,
activity id, agent), for State a registration, and a document id within them. Both can be arbitrarily
long strings (IRIs, JSON agents), so rows are keyed by their SHA-256 (``scope`` and
``doc_key``): fixed-size primary keys every engine can index, with the original values kept
beside them for listing and for cmi5 lookups.

cmi5 sessions: a cmi5 AU's own statements do not say in which launch mode they were made,
nor always against which masteryScore; the LMS's "launched" statement does (cmi5 9.6.3.2,
9.6.3.3, 9.6.3.6). The mapper keeps one row per session id from the launched statement, in
the same transaction as the statement, and reads it back for the session's later statements.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, LargeBinary, String, Table, Text

from gateway.store.types import UTCDateTime, UUIDType

from .tables import metadata

xapi_documents = Table(
    "xapi_documents",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("scope", String(64), primary_key=True),  # sha256 hex of resource|activity|agent
    # a State document's registration (lower-case UUID), "" for none: part of its address
    Column("registration", String(36), primary_key=True),
    Column("doc_key", String(64), primary_key=True),  # sha256 hex of the stateId / profileId
    Column("resource", String(16), nullable=False),  # state | activity_profile | agent_profile
    Column("activity_id", Text()),
    Column("agent", Text()),  # the agent's inverse functional identifier (validation.agent_key)
    Column("doc_id", Text(), nullable=False),
    Column("content", LargeBinary(), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("etag", String(40), nullable=False),  # SHA-1 hex of content
    Column("updated", UTCDateTime(), nullable=False),
    Index("ix_xapi_documents_tenant_scope_updated", "tenant", "scope", "updated"),
)

xapi_cmi5_sessions = Table(
    "xapi_cmi5_sessions",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("session_id", String(512), primary_key=True),
    Column("registration", UUIDType()),
    Column("launch_mode", String(16)),
    Column("mastery_score", Float()),
    Column("move_on", String(64)),
    Column("launched_at", UTCDateTime()),
)
