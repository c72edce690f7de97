"""LTI's own tables, platform side: registered tools, their deployments, used assertion ids,
and the Assignment and Grade Services' line items and results.

Canonical records (Evidence, Alignment) stay in the gateway's tables; these hold only
what LTI itself needs to answer its own APIs: a line item's label and maximum, the
latest result per (line item, user) that ``results`` GET returns, and which tool owns
what. Line items and results are written in the same transaction as the canonical
records made from them (``RecordStore.apply(within=...)``).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, String, Table, Text

from gateway.store.types import UTCDateTime, UUIDType

from ..metadata import metadata

#: A tool registered with Tessera-as-platform (LTI 1.3 core 5.2 / Security Framework 4).
#: ``client_id`` is issued by Tessera and unique across tenants: the token endpoint finds
#: the tenant from it.
lti_tools = Table(
    "lti_tools",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("login_url", String(2048), nullable=False),  # OIDC third-party login initiation URL
    Column("redirect_uris", Text(), nullable=False),  # JSON list: where id_tokens may be posted
    Column("target_link_uri", String(2048), nullable=False),  # the default launch URL
    Column("jwks_url", String(2048)),
    Column("public_jwk", Text()),  # JSON: a tool without a JWKS URL registers one public key
    Column("deep_link_url", String(2048)),
    Column("custom", Text(), nullable=False),  # JSON object of custom parameters
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_lti_tools_tenant", "tenant"),
)

lti_deployments = Table(
    "lti_deployments",
    metadata,
    Column("client_id", String(128), ForeignKey("lti_tools.client_id", ondelete="CASCADE"), primary_key=True),
    Column("deployment_id", String(255), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

#: ``jti`` of client assertions (RFC 7523 3: single use) and registration tokens already
#: spent, kept until they expire.
lti_used_jti = Table(
    "lti_used_jti",
    metadata,
    Column("issuer", String(128), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_lti_used_jti_expires_at", "expires_at"),
)

#: AGS 2.0 line items: one gradebook column of one context, owned by one tool.
lti_line_items = Table(
    "lti_line_items",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("client_id", String(128), ForeignKey("lti_tools.client_id", ondelete="CASCADE"), nullable=False),
    Column("context_id", UUIDType(), nullable=False),  # the canonical Section
    Column("label", String(1024), nullable=False),
    Column("score_maximum", Float(), nullable=False),
    Column("resource_id", String(1024)),
    Column("resource_link_id", String(255)),
    Column("tag", String(1024)),
    Column("start_at", UTCDateTime()),
    Column("end_at", UTCDateTime()),
    Column("competency_id", UUIDType()),
    Column("alignment_id", UUIDType()),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_lti_line_items_context", "tenant", "client_id", "context_id"),
)

#: AGS 2.0 results: the latest score of each user on each line item.
lti_results = Table(
    "lti_results",
    metadata,
    Column("line_item_id", UUIDType(), ForeignKey("lti_line_items.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("score_given", Float()),
    Column("score_maximum", Float()),
    Column("comment", Text()),
    Column("activity_progress", String(32), nullable=False),
    Column("grading_progress", String(32), nullable=False),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("evidence_id", UUIDType()),
)
