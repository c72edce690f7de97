"""The sample adapter's one table, built as an adapter's tables are (``gateway.store.types``)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from gateway.store.types import NAMING, UTCDateTime

metadata = MetaData(naming_convention=NAMING)

sample_notes = Table(
    "sample_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime(timezone=True), nullable=False),
)
