"""The LRS's own tables: statements as received (immutable), and their query indexes."""

from __future__ import annotations

from sqlalchemy import MetaData

from gateway.store.tables import NAMING

metadata = MetaData(naming_convention=NAMING)
