"""The OneRoster adapter's own tables: gradebook and resource objects, as the wire gave them.

Categories, line items, results, score scales, assessment line items and results, and the
resources service's objects have no canonical kind of their own (DESIGN section 3 turns
results into Evidence and line-item objectives into Alignments, but the objects themselves
must still be served back by the REST provider and exported to CSV unchanged). They are
kept here, one row per object, as normalised OneRoster 1.2 JSON (``data``), with the
references the nested REST paths select on promoted to indexed columns.

A row is keyed by ``(tenant, type, sourced_id)``: the REST binding addresses these objects
by sourcedId alone (``PUT /results/{sourcedId}``), so one tenant has one result of a given
sourcedId whichever system wrote it; ``source`` says who wrote it last. ``derived`` lists
the canonical records the object produced (its alignments, its evidence per objective),
so a replacement can supersede or retire exactly those.

``oneroster_credentials`` holds the user passwords an import was told to keep
(``credentials``: kept only with ``TESSERA_ONEROSTER__KEEP_CREDENTIALS=sealed``), each sealed
with the gateway's secret key, one row per user and slot (``password``, a ``metadata.*``
column, or one credential of a 1.2 user profile). The canonical person never holds them.

OneRoster 1.1's OAuth 1.0a consumer keys and nonces are the gateway's
(``gateway.auth.consumers``, purpose ``oneroster``), shared with LTI 1.1.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, MetaData, String, Table, Text

from gateway.store.types import NAMING, UTCDateTime, UUIDType

metadata = MetaData(naming_convention=NAMING)

objects = Table(
    "oneroster_objects",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("type", String(32), nullable=False),
    Column("sourced_id", String(255), nullable=False),
    Column("source", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # what the nested paths select on: classes/{id}/..., lineItems/{id}/results, .../students/{id}/results
    Column("class_sid", String(255)),
    Column("line_item_sid", String(255)),
    Column("user_sid", String(255)),
    Column("course_sid", String(255)),
    Column("school_sid", String(255)),
    Column("resource_sid", String(255)),
    Column("data", Text(), nullable=False),
    Column("derived", Text(), nullable=False),
    Index("ix_oneroster_objects_tenant_type_sourced_id", "tenant", "type", "sourced_id", unique=True),
    Index("ix_oneroster_objects_tenant_type_updated_at", "tenant", "type", "updated_at"),
    Index("ix_oneroster_objects_tenant_class_sid", "tenant", "class_sid"),
    Index("ix_oneroster_objects_tenant_line_item_sid", "tenant", "line_item_sid"),
    # a user's results (``/students/{id}/results``), and the results holding a student unresolved
    Index("ix_oneroster_objects_tenant_user_sid", "tenant", "user_sid"),
)

credentials = Table(
    "oneroster_credentials",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("person_id", UUIDType(), primary_key=True),
    # "password", "metadata.<name>" or "userProfiles/<profileId>/<n>" (``credentials.Slot``)
    Column("slot", String(600), primary_key=True),
    Column("secret_sealed", Text(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
